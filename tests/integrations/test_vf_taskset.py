"""sparring envs as a verifiers taskset: loaded by verifiers' own loaders, and evaluated with verifiers' own
`vf-eval` against the tiny model behind vLLM's OpenAI-compatible server (needs vLLM, as the openai backend's
tests do, and `uv`, which verifiers' chat harness runs its program with; skipped without them)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium
import pytest

import sparring  # noqa: F401

pytest.importorskip("verifiers.v1", reason='verifiers is not installed (pip install "sparring[verifiers]")')

from kit import NO_VLLM  # noqa: E402
from verifiers.v1.utils.loaders import environment_class, taskset_class  # noqa: E402

import sparring_verifiers  # noqa: E402
from sparring.integrations.verifiers import SparringConfig, SparringEnv, SparringTaskset  # noqa: E402

STARTUP_LIMIT_S = 300  # a bound on waiting for vLLM, not a speed check
ROOT = Path(__file__).parents[2]


def test_verifiers_loads_the_taskset_and_env_by_id_and_the_tasks_are_the_splits_items():
    assert taskset_class("sparring-verifiers") is SparringTaskset
    assert environment_class("sparring-verifiers") is SparringEnv
    assert sparring_verifiers.SparringTaskset is SparringTaskset
    config = SparringConfig(id="sparring-verifiers", env_id="TextNav-v0", split="test-seen", n=3, seed=4,
                            env_kwargs={"difficulty": "easy"})
    tasks = list(SparringTaskset(config))
    env = gymnasium.make("TextNav-v0", split="test-seen", difficulty="easy").unwrapped
    assert len(tasks) == 3
    for i, task in enumerate(tasks):
        observation, info = env.reset(options={"index": i, "seed": 4})
        assert (task.data.prompt, task.data.task, task.data.name) == \
            (observation, json.loads(json.dumps(info["task"])), f"TextNav-v0/test-seen#{i}")
    given = [{"numbers": [8, 3, 2], "target": 22}]
    assert [t.data.task for t in SparringTaskset(config.model_copy(update={"env_id": "Countdown-v0", "tasks": given,
                                                                           "env_kwargs": {}}))] == given
    with pytest.raises(ValueError, match="n and max_turns must be >= 1"):
        list(SparringTaskset(config.model_copy(update={"n": 0})))


@pytest.fixture(scope="module")
def vllm_url(request):
    pytest.importorskip("vllm", reason=NO_VLLM)  # before the taught model is made: a skip costs nothing
    # The taught model learnt its answers after <bos>. vLLM's chat endpoint tokenizes the chat template's text
    # without special tokens (sparring's openai backend asks for them; verifiers' harness does not), so this
    # copy's template writes <bos> itself, as most chat models' templates do.
    from transformers import AutoTokenizer

    from sparring.policies.vllm_server import VLLMServer

    taught = request.getfixturevalue("taught_checkpoint")
    checkpoint = request.getfixturevalue("tmp_path_factory").mktemp("taught-bos") / "model"
    shutil.copytree(taught, checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    tokenizer.chat_template = "{{ bos_token }}" + tokenizer.chat_template
    tokenizer.save_pretrained(checkpoint)
    with VLLMServer(checkpoint, served_model_name="tiny", startup_timeout_s=STARTUP_LIMIT_S) as running:
        yield running.base_url


def vf_eval(url, tmp_path, *flags):
    """Run verifiers' own `vf-eval` on the sparring taskset; returns the traces it wrote, one per episode."""
    if shutil.which("uv") is None and not (Path(sys.executable).parent / "uv").exists():
        pytest.skip("verifiers' chat harness runs its program with uv: pip install uv")
    vf_eval_bin = Path(sys.executable).parent / "vf-eval"
    env = {**os.environ, "SPARRING_TEST_KEY": "none", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")]), "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    out = tmp_path / "vf"
    result = subprocess.run([str(vf_eval_bin), "sparring-verifiers", *flags, "--no-push", "--model", "tiny",
                             "--client.base-url", url, "--client.api-key-var", "SPARRING_TEST_KEY",
                             "--num-rollouts", "1", "--sampling.temperature", "0", "--output-dir", str(out)],
                            env=env, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (traces,) = out.glob("*/traces.jsonl")
    return [json.loads(line) for line in traces.read_text().splitlines()]


def test_vf_eval_scores_the_taught_model_with_the_envs_verdicts(vllm_url, tmp_path):
    tasks = [{"numbers": [8, 3, 2], "target": 22}, {"numbers": [5, 5], "target": 25}, {"numbers": [9, 4], "target": 36}]
    episodes = vf_eval(vllm_url, tmp_path, "--env.taskset.env-id", "Countdown-v0", "--env.taskset.env-kwargs",
                       json.dumps({"instruction": "compact"}), "--env.taskset.tasks", json.dumps(tasks),
                       "--sampling.max-tokens", "24")
    assert len(episodes) == 3 and all(e["ok"] and not e["errors"] for e in episodes), episodes
    by_target = {e["task"]["data"]["task"]["target"]: e["traces"][0] for e in episodes}
    assert all(trace["info"]["sparring"]["turns"] == 1 for trace in by_target.values())
    for target in (22, 25):  # taught: the tiny model's greedy answers solve them
        assert by_target[target]["info"]["sparring"]["success"] is True
        assert by_target[target]["rewards"]["sparring_verdict"]["score"] == 1.0
    assert by_target[36]["info"]["sparring"]["success"] is False  # never taught
    assert by_target[36]["rewards"]["sparring_verdict"]["score"] < 1.0


def test_vf_eval_plays_a_multi_turn_env_until_max_turns(vllm_url, tmp_path):
    episodes = vf_eval(vllm_url, tmp_path, "--env.taskset.env-id", "TextNav-v0", "--env.taskset.env-kwargs",
                       json.dumps({"difficulty": "easy"}), "--env.taskset.n", "2", "--env.taskset.max-turns", "3",
                       "--sampling.max-tokens", "8")
    assert len(episodes) == 2 and all(e["ok"] for e in episodes), episodes
    for episode in episodes:
        info = episode["traces"][0]["info"]["sparring"]
        score = episode["traces"][0]["rewards"]["sparring_verdict"]["score"]
        assert 1 <= info["turns"] <= 3
        if info["feedback"].startswith("the episode did not end"):  # cut at max_turns: unfinished scores 0
            assert info["turns"] == 3 and score == 0.0 and info["success"] is False
        elif info["feedback"] == "the agent stopped before the episode ended":  # e.g. the tiny model's context
            assert info["turns"] < 3 and score == 0.0 and info["success"] is False
    assert max(e["traces"][0]["info"]["sparring"]["turns"] for e in episodes) > 1  # the env answered, the model went on
