"""The evaluation's generic hook: the mean of each numeric verdict detail (TextNav's SPL reaches the metrics)."""

from sparring.evaluation import mean_details


def test_mean_details_averages_numbers_and_booleans_and_skips_the_rest():
    verdicts = [{"details": {"spl": 1.0, "moves": 3, "oracle_success": True, "path": ["a"], "goal": "x"}},
                {"details": {"spl": 0.5, "moves": 5, "oracle_success": False, "final": None}},
                {"details": {}}, {}]
    assert mean_details(verdicts) == {"moves": 4.0, "oracle_success": 0.5, "spl": 0.75}
    assert mean_details([{"details": {"spl": float("nan")}}]) == {}
