"""The evaluation: success and pass@k with their Wilson intervals on known values, and the generic hook (the mean
of each numeric verdict detail: TextNav's SPL reaches the metrics)."""

import math

import pytest

from sparring.evaluation import evaluate, mean_details, pass_at_k, wilson_interval


def test_mean_details_averages_numbers_and_booleans_and_skips_the_rest():
    verdicts = [{"details": {"spl": 1.0, "moves": 3, "oracle_success": True, "path": ["a"], "goal": "x"}},
                {"details": {"spl": 0.5, "moves": 5, "oracle_success": False, "final": None}},
                {"details": {}}, {}]
    assert mean_details(verdicts) == {"moves": 4.0, "oracle_success": 0.5, "spl": 0.75}
    assert mean_details([{"details": {"spl": float("nan")}}]) == {}


# ---- the numbers every README table shows: success, pass@k and their Wilson intervals ----------------

@pytest.mark.parametrize("successes, n, low, high", [  # the score interval by hand (0/n: z²/(n + z²));
    # R's prop.test(x, n, correct = FALSE) gives the same
    (0, 20, 0.0, 0.16113), (20, 20, 0.83887, 1.0), (5, 20, 0.11186, 0.46871), (12, 20, 0.38658, 0.78120),
    (1, 10, 0.01788, 0.40416), (50, 100, 0.40383, 0.59617)])
def test_wilson_interval_on_known_values(successes, n, low, high):
    assert wilson_interval(successes, n) == pytest.approx((low, high), abs=1e-5)


@pytest.mark.parametrize("n, c, k, expected", [
    (10, 3, 2, 1 - (7 / 10) * (6 / 9)), (20, 4, 1, 0.2), (5, 0, 3, 0.0), (5, 5, 1, 1.0), (4, 2, 3, 1.0),
    (8, 1, 4, 0.5), (3, 1, 3, 1.0)])
def test_pass_at_k_is_the_unbiased_estimate(n, c, k, expected):
    """1 - C(n - c, k) / C(n, k) (Chen et al., 2021)."""
    assert pass_at_k(n, c, k) == pytest.approx(expected)
    assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k))


def test_evaluate_reports_the_share_a_scripted_policy_solves():
    """Greedy: 3 of 8 tasks solved; sampling k=4: 4 of 4 on 2 tasks, 1 of 4 on 3 more, none on the rest."""
    from kit import countdown_share_policy

    from sparring.envs.catalog import draw_tasks

    tasks = draw_tasks("Countdown-v0", {"instruction": "compact"}, "test-seen", 0, 0, 8)
    keys = [(tuple(t["numbers"]), t["target"]) for t in tasks]
    policy = countdown_share_policy({keys[0], keys[3], keys[7]}, {keys[1]: 4, keys[2]: 4, keys[4]: 1, keys[5]: 1,
                                                                   keys[7]: 1})
    result = evaluate(policy, "Countdown-v0", {"instruction": "compact"}, tasks, k=4, temperature=0.7)
    assert (result.n_tasks, result.success, result.k) == (8, 3 / 8, 4)
    assert (result.success_low, result.success_high) == wilson_interval(3, 8)  # (pinned above)
    assert result.pass_at_k == 5 / 8  # k samples per task: pass@k is the share of tasks solved at least once
    assert (result.pass_at_k_low, result.pass_at_k_high) == wilson_interval(5, 8)
    greedy_only = evaluate(policy, "Countdown-v0", {"instruction": "compact"}, tasks)
    assert greedy_only.success == 3 / 8 and greedy_only.pass_at_k is None
