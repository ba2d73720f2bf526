import pytest

from sparring.trainers.expert_iteration import ExpertIterationConfig, select_verified
from sparring.trajectories import Trajectory, Turn


def episode(task: int, action: str, success: bool) -> Trajectory:
    return Trajectory("Countdown-v0", {"numbers": [task], "target": task}, [Turn("obs", action)],
                      {"reward": float(success), "success": success, "feedback": "", "details": {}})


def test_keeps_distinct_verified_answers_and_measures_exploration():
    k = 4
    samples = ([episode(0, "a", True), episode(0, "a", True), episode(0, "b", True), episode(0, "c", False)]
               + [episode(1, "x", False)] * 4
               + [episode(2, "y", True), episode(2, "z", False), episode(2, "z", False), episode(2, "z", False)])
    kept, metrics = select_verified(samples, k, max_per_task=2)
    assert [t.turns[0].action for t in kept] == ["a", "b", "y"]
    assert metrics["ei/pass@1"] == 4 / 12 and metrics["ei/pass@4"] == 2 / 3
    assert metrics["ei/distinct_correct"] == (2 + 0 + 1) / 3
    # B-STaR balance, n* = 8: task 0: min(2/8, 1) * 2/3; task 1: 0; task 2: min(1/8, 1) * 1/1
    assert metrics["ei/balance"] == pytest.approx((2 / 8 * 2 / 3 + 0 + 1 / 8) / 3)
    kept, _ = select_verified(samples, k, max_per_task=1)
    assert [t.turns[0].action for t in kept] == ["a", "y"]


def test_hard_tasks_weigh_more():
    samples = [episode(0, "a", True)] * 4 + [episode(1, "b", True)] + [episode(1, "c", False)] * 3
    kept, metrics = select_verified(samples, 4, max_per_task=1, weight_hard=True)
    assert [t.turns[0].action for t in kept] == ["a"] + ["b"] * 4  # solved 4/4: once; solved 1/4: four times
    assert metrics["ei/kept"] == 2 and metrics["ei/examples"] == 5


def test_another_verifier_decides_what_is_kept():
    """A majority vote or a judge may accept a wrong answer and reject a right one: its flags decide what is kept;
    the exploration metrics stay the env's."""
    samples = [episode(0, "a", True), episode(0, "b", False), episode(1, "c", False), episode(1, "d", False)]
    kept, metrics = select_verified(samples, 2, max_per_task=1, verified=[False, True, True, False])
    assert [t.turns[0].action for t in kept] == ["b", "c"] and metrics["ei/pass@1"] == 1 / 4
    with pytest.raises(ValueError, match="one per trajectory"):
        select_verified(samples, 2, max_per_task=1, verified=[True])


def test_max_invalid_drops_successes_that_hold_invalid_actions():
    """A TextNav episode can succeed after invalid commands; with max_invalid 0 only clean successes are kept."""
    samples = [episode(0, "a", True), episode(0, "b", True), episode(1, "c", True), episode(1, "d", False)]
    for t, invalid in zip(samples, [2, 0, 1, 0]):
        t.verdict["details"] = {"invalid_actions": invalid}
    kept, metrics = select_verified(samples, 2, max_per_task=2, max_invalid=0)
    assert [t.turns[0].action for t in kept] == ["b"] and metrics["ei/rejected_invalid"] == 2
    kept, metrics = select_verified(samples, 2, max_per_task=2, max_invalid=1)
    assert [t.turns[0].action for t in kept] == ["b", "c"] and metrics["ei/rejected_invalid"] == 1
    kept, metrics = select_verified(samples, 2, max_per_task=2)
    assert [t.turns[0].action for t in kept] == ["a", "b", "c"] and "ei/rejected_invalid" not in metrics


@pytest.mark.parametrize("field, value", [("k", 0), ("max_per_task", 0), ("temperature", 0.0), ("max_invalid", -1),
                                          ("max_invalid", True)])
def test_config_checks(field, value):
    with pytest.raises(ValueError, match=field):
        ExpertIterationConfig(**{field: value})


class ThreeNumberSolver:
    """A policy that can do Countdown tasks of at most 3 numbers (the expert's step answers, with states) and
    writes nothing useful for longer ones: what a bootstrap on at most 3 numbers gives, idealised."""

    backend, name, spec = "scripted", "three-number-solver", None

    def generate(self, prompts, params):
        import random

        from sparring.envs.countdown_tasks import CountdownTask, expert_answer
        from sparring.errors import UnsolvableTaskError
        from sparring.policies.policy import Completion

        out = []
        for prompt in prompts:
            text = prompt if isinstance(prompt, str) else prompt[-1]["content"]
            numbers, target = text.split("->")
            task = CountdownTask(tuple(int(n) for n in numbers.split()), int(target))
            answer = "<answer>1+1=2</answer>"
            if len(task.numbers) <= 3:
                try:
                    answer = expert_answer(task, "steps-with-state", rng=random.Random(len(out)))
                except UnsolvableTaskError:
                    pass
            out.append([Completion(answer) for _ in range(params.n)])
        return out

    def close(self):
        pass


def test_search_finishes_after_first_moves_and_keeps_whole_answers_that_verify():
    """Search over first moves climbs one number: the policy solves the 3-number tasks that random legal first
    moves leave, and the whole 4-number answers are graded by the env on the whole task."""
    import gymnasium

    from sparring.envs.countdown_tasks import CountdownConfig, generate_tasks
    from sparring.trainers.expert_iteration import ExpertIterationTrainer

    kwargs = {"num_numbers": 4, "max_number": 20, "min_target": 1, "instruction": "compact",
              "answer_format": "steps-with-state"}
    tasks = [t.to_dict() for t in generate_tasks(CountdownConfig(4, max_number=20, min_target=1), n=20)]
    trainer = ExpertIterationTrainer(ExpertIterationConfig(k=2, search=6, max_per_task=2), "Countdown-v0", kwargs,
                                     max_tokens=120)
    policy = ThreeNumberSolver()
    assert not any(t.success for t in trainer.collect(policy, tasks))  # sampling alone never solves 4 numbers
    kept, attempts, metrics = trainer.search(policy, tasks, seed=0)
    assert metrics["ei/search_solved"] >= 0.5 and kept and len(kept) == metrics["ei/search_kept"]
    env = gymnasium.make("Countdown-v0", **kwargs)
    for trajectory in kept:
        assert trajectory.source == "search" and trajectory.success
        answer = trajectory.turns[0].action
        assert answer.startswith(f"<answer>{trajectory.meta['first_move']}\n")
        env.reset(options={"task": trajectory.task})  # graded again from scratch: right on the whole task
        assert env.step(answer)[1] == 1.0 and trajectory.turns[0].observation == env.unwrapped._begin()[0]
    per_task = {}
    for trajectory in kept:
        per_task.setdefault(trajectory.meta["task_index"], []).append(trajectory)
    assert max(len(v) for v in per_task.values()) <= 2


def test_search_needs_an_env_that_splits_tasks():
    from sparring.trainers.expert_iteration import ExpertIterationTrainer

    trainer = ExpertIterationTrainer(ExpertIterationConfig(search=2), "Countdown-v0", {"answer_format": "expression"})
    with pytest.raises(ValueError, match="answer_format='steps'"):
        trainer.search(ThreeNumberSolver(), [{"numbers": [1, 2, 3, 4], "target": 10}])
    trainer = ExpertIterationTrainer(ExpertIterationConfig(search=2), "CountdownSteps-v0", {})
    with pytest.raises(ValueError, match="expert_iteration.search=0"):
        trainer.search(ThreeNumberSolver(), [{"numbers": [1, 2, 3, 4], "target": 10}])


def test_tree_search_traces_pass_the_invalid_action_filter_the_samples_pass(monkeypatch):
    """With `max_invalid`, a verified trace of the tree search that made more invalid actions than that is not
    kept (TextNav: training on a lucky episode's invalid commands teaches them), as for the samples."""
    import sparring.search as search
    from sparring.trainers.expert_iteration import ExpertIterationConfig, ExpertIterationTrainer
    from sparring.trajectories import Trajectory, Turn

    def trace(task, invalid, success=True):
        t = Trajectory("TextNav-v0", task, verdict={"reward": float(success), "success": success,
                                                    "details": {"invalid_actions": invalid}})
        t.turns.append(Turn("obs", "n", 0.0))
        t.meta.update(nodes=3, tokens=10)
        return t

    tasks = [{"seed": i} for i in range(3)]
    found = [trace(tasks[0], 0), trace(tasks[1], 2), trace(tasks[2], 1, success=False)]
    monkeypatch.setattr(search.TreeSearch, "run", lambda self, todo, seed=0: found[:len(todo)])
    failed = [trace(task, 0, success=False) for task in tasks]  # k=1: every task failed its sample
    for max_invalid, kept in ((0, [0]), (2, [0, 1]), (None, [0, 1])):
        trainer = ExpertIterationTrainer(ExpertIterationConfig(k=1, max_invalid=max_invalid), "TextNav-v0", {})
        solved, attempts, metrics = trainer.tree_search(None, tasks, failed)
        assert [t.meta["task_index"] for t in solved] == kept and len(attempts) == 3
        assert metrics["ei/tree_recovered"] == pytest.approx(len(kept) / 3)
