import pytest

from sparring.envs.countdown_tasks import PRESETS, generate_tasks
from sparring.errors import UnknownNameError
from sparring.policies.hf import HFPolicy
from sparring.policies.policy import SamplingParams
from sparring.solver import Solver, by_task
from sparring.trajectories import load_trajectories, save_trajectories

TASKS = [t.to_dict() for t in generate_tasks(PRESETS["easy"], "train", seed=0, n=4)]


def test_single_turn_k_samples_per_task_in_order(tiny_checkpoint):
    solver = Solver(HFPolicy(tiny_checkpoint), "Countdown-v0", {"instruction": "compact"},
                    SamplingParams(max_tokens=8, seed=0))
    trajectories = solver.run(TASKS, k=3)
    assert len(trajectories) == 12
    for i, t in enumerate(trajectories):
        assert t.task == TASKS[i // 3] and t.meta["sample"] == i % 3 and len(t.turns) == 1
        assert t.verdict["feedback"] and t.turns[0].token_ids and len(t.turns[0].logprobs) == len(t.turns[0].token_ids)
        assert t.turns[0].observation == " ".join(map(str, t.task["numbers"])) + f" -> {t.task['target']}"


def test_multi_turn_episodes_run_to_their_end(tiny_checkpoint):
    solver = Solver(HFPolicy(tiny_checkpoint), "CountdownSteps-v0", {"instruction": "compact", "max_invalid_moves": 2},
                    SamplingParams(max_tokens=6, seed=0))
    trajectories = solver.run(TASKS, k=2)
    for t in trajectories:
        assert t.verdict and len(t.turns) >= 2  # a random model makes invalid moves: the env ends it after 3
        assert t.conversation()[0] == {"role": "user", "content": t.turns[0].observation}
        assert t.turns[1].observation.startswith("Invalid move") or ":" in t.turns[1].observation


def test_max_turns_ends_episodes_with_a_verdict(tiny_checkpoint):
    solver = Solver(HFPolicy(tiny_checkpoint), "CountdownSteps-v0", {"max_invalid_moves": 100},
                    SamplingParams(max_tokens=4, seed=0), max_turns=3)
    for t in solver.run(TASKS[:2]):
        assert len(t.turns) == 3 and t.verdict["feedback"] == "ran out of turns (3)" and not t.success


def test_trajectories_round_trip_through_parquet(tiny_checkpoint, tmp_path):
    trajectories = Solver(HFPolicy(tiny_checkpoint), "Countdown-v0", {}, SamplingParams(max_tokens=8)).run(TASKS, k=2)
    path = save_trajectories(trajectories, tmp_path / "trajectories")
    assert sorted(p.name for p in path.iterdir()) == ["data-00000.parquet"]
    assert load_trajectories(path) == trajectories
    from datasets import load_dataset

    dataset = load_dataset("parquet", data_dir=str(path), split="train")
    assert dataset.num_rows == 8 and {"env_id", "task", "turns", "reward", "success", "feedback"} <= set(dataset.column_names)


def test_unknown_env_id_is_a_clear_error(tiny_checkpoint):
    with pytest.raises(UnknownNameError, match="Countdown-v0"):
        Solver(HFPolicy(tiny_checkpoint), "Countdwn-v0")


def test_envs_are_pooled_across_runs(tiny_checkpoint, monkeypatch):
    import gymnasium

    made = []
    real_make = gymnasium.make
    monkeypatch.setattr(gymnasium, "make", lambda *a, **kw: made.append(a) or real_make(*a, **kw))
    solver = Solver(HFPolicy(tiny_checkpoint), "CountdownSteps-v0", {"max_invalid_moves": 7},  # a pool of its own
                    SamplingParams(max_tokens=4, seed=0), max_turns=2)
    first = solver.run(TASKS, k=2)
    assert len(made) == 8
    again = solver.run(TASKS[:3], k=2)  # 6 of the 8 idle envs, reset with new tasks: nothing is built
    assert len(made) == 8 and [t.task for t in again] == [t for t in TASKS[:3] for _ in range(2)]
    assert all(len(t.turns) <= 2 and t.verdict for t in first + again)


def test_by_task_groups_k_episodes_per_task(tiny_checkpoint):
    trajectories = Solver(HFPolicy(tiny_checkpoint), "Countdown-v0", {}, SamplingParams(max_tokens=4)).run(TASKS, k=3)
    groups = by_task(trajectories, 3)
    assert [[t.task for t in g] for g in groups] == [[task] * 3 for task in TASKS]
    with pytest.raises(ValueError, match="groups of k=5"):
        by_task(trajectories, 5)
