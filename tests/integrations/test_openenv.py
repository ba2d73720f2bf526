"""`sparring serve` driven by OpenEnv's own client (openenv.core.GenericEnvClient) on loopback: full episodes of a
single-turn and a multi-turn env, several sessions at once, a seed per session."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gymnasium
import pytest

import sparring  # noqa: F401
from sparring.policies.vllm_server import free_port

openenv_core = pytest.importorskip("openenv.core", reason='OpenEnv is not installed (pip install "sparring[openenv]")')
GenericEnvClient = openenv_core.GenericEnvClient
STARTUP_LIMIT_S = 120  # a bound on waiting for the server to listen, not a speed check
ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def serve():
    """Start `sparring serve ENV ...` in its own process group; yields a function ENV, *kwargs -> base URL."""
    processes, urls = [], {}

    def start(env_id, *kwargs):
        if (env_id, *kwargs) in urls:  # one server per env and arguments, shared by the tests
            return urls[(env_id, *kwargs)]
        port = free_port()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        process = subprocess.Popen([sys.executable, "-m", "sparring.cli", "serve", env_id, "--port", str(port),
                                    *kwargs], env=env, start_new_session=True, stderr=subprocess.PIPE, text=True)
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_LIMIT_S
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=5) as response:
                    if response.status == 200:
                        urls[(env_id, *kwargs)] = url
                        return url
            except OSError:
                pass
            if process.poll() is not None:
                raise RuntimeError(f"sparring serve exited with {process.returncode}: {process.stderr.read()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"sparring serve did not answer on {url} in {STARTUP_LIMIT_S} s")
            time.sleep(0.5)

    yield start
    for process in processes:
        if process.poll() is not None:
            continue
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def play_expert(url, env_id, seed, env_kwargs):
    """One full episode through OpenEnv's client: reset with `seed`, then the expert's actions of the same task as
    a local env poses it; returns what the client saw and what the local env gave."""
    local = gymnasium.make(env_id, **env_kwargs).unwrapped
    local_observation, local_info = local.reset(seed=seed)
    seen = []
    with GenericEnvClient(base_url=url).sync() as client:
        result = client.reset(seed=seed)
        assert result.observation["text"] == local_observation and result.observation["task"] == local_info["task"]
        assert not result.done and result.observation["verdict"] is None
        for action in local.expert_actions():
            expected = local.step(action)
            result = client.step({"text": action})
            seen.append(result)
            assert (result.observation["text"], result.reward, result.done) == \
                (expected[0], expected[1], expected[2] or expected[3])
        state = client.state()
    assert result.done and result.observation["verdict"]["success"] is True
    assert state["task"] == local_info["task"] and state["step_count"] == len(seen)
    assert state["verdict"] == result.observation["verdict"]
    return seen


def test_single_turn_env_sessions_at_once_each_with_its_seed(serve):
    url = serve("Countdown-v0", "difficulty=easy", "instruction=compact")
    seeds = list(range(8))
    with ThreadPoolExecutor(len(seeds)) as pool:
        episodes = list(pool.map(lambda s: play_expert(url, "Countdown-v0", s, {"difficulty": "easy",
                                                                               "instruction": "compact"}), seeds))
    assert [len(e) for e in episodes] == [1] * len(seeds) and all(e[-1].reward == 1.0 for e in episodes)
    with GenericEnvClient(base_url=url).sync() as client:  # a wrong answer, a posed task, an item of the split
        task = {"numbers": [8, 3, 2], "target": 22}
        assert client.reset(task=task).observation["task"] == task
        result = client.step({"text": "<answer>8*3+2</answer>"})
        assert result.done and result.reward == 0.1 and result.observation["verdict"]["success"] is False
        item = gymnasium.make("Countdown-v0", difficulty="easy").unwrapped.generate_task(5, seed=2).to_dict()
        assert client.reset(index=5, task_seed=2).observation["task"] == item


def test_multi_turn_env_sessions_interleaved_stay_isolated(serve):
    kwargs = {"difficulty": "easy"}
    url = serve("TextNav-v0", "difficulty=easy")
    with ThreadPoolExecutor(4) as pool:
        episodes = list(pool.map(lambda s: play_expert(url, "TextNav-v0", s, kwargs), [11, 12, 13, 11]))
    assert all(len(e) > 1 for e in episodes)
    assert [r.observation["text"] for r in episodes[0]] == [r.observation["text"] for r in episodes[3]]  # same seed
    # two sessions open at once, stepped in turn: each follows its own episode
    local = [gymnasium.make("TextNav-v0", **kwargs).unwrapped for _ in range(2)]
    plans = [env.reset(seed=20 + i) and env.expert_actions() for i, env in enumerate(local)]
    with GenericEnvClient(base_url=url).sync() as a, GenericEnvClient(base_url=url).sync() as b:
        clients = [a, b]
        for i, client in enumerate(clients):
            client.reset(seed=20 + i)
        for turn in range(max(map(len, plans))):
            for env, plan, client in zip(local, plans, clients):
                if turn < len(plan):
                    assert client.step({"text": plan[turn]}).observation["text"] == env.step(plan[turn])[0]
        assert [c.state()["verdict"]["success"] for c in clients] == [True, True]


def test_bad_requests_get_errors_that_say_what_is_accepted(serve, capsys):
    url = serve("Countdown-v0", "difficulty=easy", "instruction=compact")
    with GenericEnvClient(base_url=url).sync() as client:
        with pytest.raises(Exception, match="task_seed"):
            client.reset(tasks={"numbers": [1]})
        with pytest.raises(Exception, match="Countdown task"):
            client.reset(task={"numbers": [1]})
        client.reset(seed=0)
        assert client.step({"text": "\x00" * 10_000}).reward == 0.0  # model output never breaks the server
    from sparring.cli import main

    assert main(["serve", "Countdwn-v0"]) == 2
    assert "did you mean 'Countdown-v0'" in capsys.readouterr().err
