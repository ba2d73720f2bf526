"""The conformance suite: every sparring env id, as Gymnasium and our contract expect it."""

import json
import subprocess
import sys
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sparring
from sparring.envs.catalog import env_ids

# ReasoningGym-v0 needs dataset=... (tests/envs/test_rgym.py checks every dataset); TextWorld-v0 compiles a game per
# seed, seconds each (tests/envs/test_textworld.py runs sparring.check and its own tests on fewer games)
NEEDS_ARGUMENTS = {"ReasoningGym-v0", "TextWorld-v0"}
IDS = [env_id for env_id in env_ids() if env_id not in NEEDS_ARGUMENTS]
JUNK = ["", " ", "\x00", "<answer>", "</answer>", "<answer></answer>", "<answer>9**9**9</answer>",
        "<answer>" + "(" * 10_000 + "</answer>", "9" * 100_000, "\ud800", "\U0001f600" * 50,
        "<answer>__import__('os').system('echo hacked')</answer>", "go north", "1+1", "1/0", "<answer>1/0</answer>",
        '{"name": "x", "arguments": {}}', "\n\n\t", "stop", "take all"]


def test_sparring_registers_its_envs():
    assert "Countdown-v0" in IDS and "CountdownSteps-v0" in IDS
    assert all(gymnasium.spec(env_id).entry_point.startswith("sparring.") for env_id in IDS)


def test_ids_do_not_collide_with_gymnasium():
    code = ("import gymnasium; before = set(gymnasium.registry); import sparring; "
            "print(sorted(set(sparring.env_ids()) & before))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_make_without_import():
    code = "import gymnasium; env = gymnasium.make('sparring:Countdown-v0'); print(env.reset(seed=0)[1]['task'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "numbers" in out


def test_mistyped_id_names_the_choices():
    with pytest.raises(ValueError, match=r"did you mean 'Countdown-v0'\?.*CountdownSteps-v0"):
        sparring.make("Countdwn-v0")
    with pytest.raises(gymnasium.error.NameNotFound, match="Did you mean"):
        gymnasium.make("Countdwn-v0")


@pytest.mark.parametrize("env_id", IDS)
def test_check_env(env_id):
    env = gymnasium.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any Gymnasium warning fails the test
        check_env(env.unwrapped)


@pytest.mark.parametrize("env_id", IDS)
def test_same_seed_same_episodes(env_id):
    a, b = gymnasium.make(env_id), gymnasium.make(env_id)
    seen = set()
    for seed in range(20):
        obs_a, info_a = a.reset(seed=seed)
        obs_b, info_b = b.reset(seed=seed)
        assert obs_a == obs_b and info_a == info_b
        seen.add(json.dumps(info_a["task"]))
        for action in ["junk", a.unwrapped.expert_actions()[0]]:
            assert a.step(action)[:4] == b.step(action)[:4]
    assert len(seen) > 15  # different seeds, different tasks
    # unseeded resets continue the seeded stream identically
    a.reset(seed=7), b.reset(seed=7)
    assert [a.reset()[1]["task"] for _ in range(5)] == [b.reset()[1]["task"] for _ in range(5)]


VECTOR_ACTIONS = [("junk 1+2", "<answer>1</answer>"), ("go north", "é 😀 \u2028 <answer>2</answer>"), ("look", "stop"),
                  ("take all", "<answer>(1+2)*3</answer>"), ("", " "), ("inventory", "help"), ("e", "w")]
VECTOR_MODES = {"sync": ("sync", {}), "async": ("async", {}), "async-pickled": ("async", {"shared_memory": False}),
                "async-uncopied": ("async", {"copy": False})}


def single_env_rollouts(env_id, seeds, actions):
    """What a vector env of `env_id` must return, from one plain env per slot (Gymnasium's next-step autoreset)."""
    rollouts = []
    for slot, seed in enumerate(seeds):
        env = gymnasium.make(env_id)
        observation, _ = env.reset(seed=seed)
        steps, done = [observation], False
        for action in actions:
            if done:
                observation, _ = env.reset()
                steps.append((observation, 0.0, False, False))
                done = False
            else:
                observation, reward, terminated, truncated, _ = env.step(action[slot])
                steps.append((observation, reward, terminated, truncated))
                done = terminated or truncated
        rollouts.append(steps)
    return [tuple(step[t] for step in rollouts) for t in range(len(actions) + 1)]


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("mode", VECTOR_MODES)
def test_vector_envs_return_what_single_envs_do(env_id, mode):
    """Sync and async vector envs (shared memory or not, copied or not) give each slot's observations exactly."""
    expected = single_env_rollouts(env_id, [1, 2], VECTOR_ACTIONS)
    vectorization_mode, vector_kwargs = VECTOR_MODES[mode]
    envs = gymnasium.make_vec(env_id, num_envs=2, vectorization_mode=vectorization_mode, vector_kwargs=vector_kwargs)
    try:
        observations, infos = envs.reset(seed=[1, 2])
        assert tuple(observations) == expected[0] and all(observations)
        for t, actions in enumerate(VECTOR_ACTIONS, start=1):
            observations, rewards, terminated, truncated, infos = envs.step(actions)
            assert rewards.shape == (2,) and terminated.dtype == np.bool_
            got = tuple(zip(observations, rewards.tolist(), terminated.tolist(), truncated.tolist()))
            assert got == expected[t], f"step {t}"
    finally:
        envs.close()


def test_shared_memory_carries_any_text_and_follows_the_buffer():
    import copy
    import multiprocessing

    from gymnasium.vector.utils import create_shared_memory, read_from_shared_memory, write_to_shared_memory

    from sparring.envs.base import UnicodeText

    space = UnicodeText(64)
    memory = create_shared_memory(space, n=3, ctx=multiprocessing)
    view = read_from_shared_memory(space, memory, n=3)  # read once, as AsyncVectorEnv does
    texts = ["é 😀 \ud800 \x00 end", "", "x" * 64]
    for index, text in enumerate(texts):
        write_to_shared_memory(space, index, text, memory)
    assert copy.deepcopy(view) == tuple(texts) and view[1:] == tuple(texts[1:]) and len(view) == 3
    write_to_shared_memory(space, 1, "later", memory)
    assert view[1] == "later"


@pytest.mark.parametrize("env_id", IDS)
def test_reset_with_task_reproduces_it(env_id):
    env = gymnasium.make(env_id)
    for seed in range(10):
        obs, info = env.reset(seed=seed)
        task = json.loads(json.dumps(info["task"]))  # JSON-serialisable
        obs2, info2 = env.reset(options={"task": task})
        assert (obs2, info2["task"]) == (obs, info["task"])


@pytest.mark.parametrize("env_id", IDS)
def test_index_and_difficulty_options(env_id):
    env = gymnasium.make(env_id)
    first = env.reset(options={"index": 5, "seed": 3})[1]["task"]
    assert env.reset(seed=99, options={"index": 5, "seed": 3})[1]["task"] == first
    assert env.reset(options={"index": 6, "seed": 3})[1]["task"] != first
    for difficulty in env.unwrapped.presets:  # the option draws what an env made with that preset draws
        preset = gymnasium.make(env_id, difficulty=difficulty)
        for seed in (0, 1):
            drawn = env.reset(seed=seed, options={"difficulty": difficulty})[1]["task"]
            assert drawn == preset.reset(seed=seed)[1]["task"], (difficulty, seed)
        indexed = env.reset(options={"index": 5, "seed": 3, "difficulty": difficulty})[1]["task"]
        assert indexed == preset.unwrapped.generate_task(5, seed=3).to_dict(), difficulty
    tasks = {json.dumps(env.reset(seed=0, options={"difficulty": d})[1]["task"], sort_keys=True)
             for d in env.unwrapped.presets}
    assert len(tasks) > 1  # the presets draw different tasks: the option is not ignored


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("difficulty", ["easy", "medium", "hard"])
def test_expert_solves_100_generated_tasks(env_id, difficulty):
    env = gymnasium.make(env_id, difficulty=difficulty)
    n = 100 if difficulty != "hard" else 30
    for seed in range(n):
        env.reset(seed=seed)
        actions = env.unwrapped.expert_actions()
        for i, action in enumerate(actions):
            _, reward, terminated, truncated, info = env.step(action)
            assert terminated == (i == len(actions) - 1)
        assert info["verdict"]["success"] and reward == 1.0, info


@pytest.mark.parametrize("env_id", IDS)
def test_junk_actions_never_raise(env_id):
    env = gymnasium.make(env_id)
    for seed, junk in enumerate(JUNK + [None, 42, b"\xff\xfe", ["list"]]):
        env.reset(seed=seed)
        for _ in range(10):
            obs, reward, terminated, truncated, info = env.step(junk)
            assert isinstance(obs, str) and isinstance(reward, float)
            if terminated or truncated:
                assert set(info["verdict"]) == {"reward", "success", "feedback", "details"}
                assert info["verdict"]["success"] is False
                break
        else:
            pytest.fail(f"{env_id} never ended an episode of junk {junk!r}")
        json.dumps(info["verdict"])  # the verdict is JSON-serialisable too


@pytest.mark.parametrize("env_id", IDS)
def test_step_after_the_end_does_not_raise(env_id):
    env = gymnasium.make(env_id)
    env.reset(seed=0)
    for action in env.unwrapped.expert_actions():
        env.step(action)
    obs, reward, terminated, _, info = env.step("more")
    assert terminated and reward == 0.0 and "reset" in info["verdict"]["feedback"]


@pytest.mark.parametrize("env_id", IDS)
def test_render_modes(env_id, capsys):
    env = gymnasium.make(env_id, render_mode="ansi")
    obs, _ = env.reset(seed=0)
    assert obs in env.render()
    env = gymnasium.make(env_id, render_mode="human")
    env.reset(seed=0)
    assert capsys.readouterr().out.strip()
