"""sparring.seeds: the run's named streams keep the numbers the loop drew before they had names, and never meet."""

from sparring.seeds import TASKS_PER_STREAM, Seeds, Stream


def test_the_streams_keep_the_numbers_runs_were_made_with():
    s = Seeds(7)
    assert (s.round(3), s.rngs(3), s.control(3), s.bootstrap(), s.evaluation()) == (7003, 70003, 10, 7, 7)
    assert s.train_tasks(2) == Stream(7, 2 * 10**9)
    assert s.replay_tasks(2) == Stream(7, 2 * 10**9 + 10**9 // 4)
    assert s.control_tasks(2) == Stream(7, 2 * 10**9 + 10**9 // 2)
    assert s.curriculum_tasks(2) == Stream(7, 2 * 10**9 + 10**8)
    assert s.dev_tasks(500) == Stream(8, 10**9 - 500)
    assert s.roles_bootstrap_tasks() == Stream(10, 0) and s.instruction_routes(2) == Stream(11, 2 * 10**6)
    assert s.eval_tasks() == Stream(7, 0)


def test_no_two_task_streams_of_a_run_share_a_task():
    """The same generator seed and an overlapping index range would draw the same tasks: the ranges a run of 50
    rounds draws (each stream as many items as its round could ask for) are disjoint per generator seed."""
    s, n = Seeds(0), 10**7
    ranges: list[tuple[int, int, int, str]] = []
    for r in range(51):
        for name in ("train_tasks", "replay_tasks", "control_tasks", "curriculum_tasks"):
            stream = getattr(s, name)(r)
            ranges.append((stream.seed, stream.start, stream.start + n, f"{name}({r})"))
        routes = s.instruction_routes(r)
        ranges.append((routes.seed, routes.start, routes.start + 10**6, f"instruction_routes({r})"))
    dev = s.dev_tasks(n)
    ranges += [(dev.seed, dev.start, dev.start + n, "dev_tasks"),
               (s.roles_bootstrap_tasks().seed, 0, n, "roles_bootstrap_tasks")]
    ranges.sort()
    for (seed_a, _, end_a, a), (seed_b, start_b, _, b) in zip(ranges, ranges[1:]):
        assert seed_a != seed_b or end_a <= start_b, f"{a} and {b} overlap"
    assert all(end <= TASKS_PER_STREAM * 51 for _, _, end, _ in ranges)
