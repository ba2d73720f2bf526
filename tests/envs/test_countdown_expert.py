import pytest

from sparring.envs.countdown_expert import search_trace, solve, solve_steps
from sparring.envs.countdown_tasks import PRESETS, CountdownTask, generate_tasks, verify
from sparring.errors import UnknownNameError


def test_solution_uses_every_number_and_minimal_parentheses():
    assert solve([8, 3, 2], 22) == "2*(3+8)"
    found = solve([4, 3, 2], 10)
    assert "(" not in found and verify(CountdownTask((4, 3, 2), 10), f"<answer>{found}</answer>").success
    text, steps = solve_steps([8, 3, 2], 22)
    assert [str(s) for s in steps] == ["3+8=11", "2*11=22"]


def test_subsets_take_the_fewest_numbers():
    assert solve([10, 2, 7], 10, allow_subset=True) == "10"
    assert solve([10, 2, 7], 5, allow_subset=True) in ("10/2", "7-2")


@pytest.mark.parametrize("strategy", ["dfs", "bfs"])
@pytest.mark.parametrize("heuristic", ["sum", "closest"])
def test_search_traces_reach_the_goal_and_verify(strategy, heuristic):
    solved = 0
    for task in generate_tasks(PRESETS["medium"], "train", seed=1, n=30):
        trace = search_trace(list(task.numbers), task.target, strategy=strategy, heuristic=heuristic,
                             node_budget=100_000)
        assert trace.text.startswith(f"Current State: {task.target}:") and trace.nodes >= 1
        if trace.solution is not None:
            solved += 1
            assert "Goal Reached" in trace.text
            assert verify(task, trace.text).success  # the trace ends with a gradeable <answer>
        else:
            assert strategy == "bfs" and trace.text.endswith("No solution found within the beam")
    assert solved == 30 if strategy == "dfs" else solved >= 20  # DFS is complete; a beam may miss


def test_search_traces_show_dead_ends_and_backtracking():
    trace = search_trace([19, 36, 55, 7], 65, strategy="dfs", heuristic="closest", node_budget=10_000)
    assert "unequal: No Solution" in trace.text and "Moving back to" in trace.text


def test_node_budget_is_respected():
    trace = search_trace([3, 7, 11, 13], 997, node_budget=50)
    assert trace.solution is None and trace.nodes <= 50 and "budget exhausted" in trace.text
    assert not verify(CountdownTask((3, 7, 11, 13), 997), trace.text).success


def test_unknown_strategy_names_the_choices():
    with pytest.raises(UnknownNameError, match="did you mean 'bfs'"):
        search_trace([1, 2], 3, strategy="bsf")


def test_a_random_search_order_gives_diverse_valid_solutions():
    import random

    rng = random.Random(0)
    task = CountdownTask((8, 3, 2, 5), 21)
    found = {solve(list(task.numbers), task.target, integer_only=True, rng=rng) for _ in range(30)}
    assert len(found) >= 4
    assert all(verify(task, f"<answer>{expr}</answer>").success for expr in found)
    assert solve([3, 7], 100, rng=rng) is None
