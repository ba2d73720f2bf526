"""Property tests: the verifier never raises, and it agrees with an independent exact evaluation."""

from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparring.envs.countdown import CountdownTask, verify
from sparring.envs.expr import ExprError, parse

TASK = CountdownTask((25, 50, 75, 100, 3, 6), 952)
HOSTILE = st.sampled_from(["9**9**9", "9" * 5000, "(" * 500, ")" * 500, "1/0", "__import__('os').system('x')",
                           "lambda: 1", "[].__class__", "1e308", "0x1F", "∞", "\x00", "\ud800", "=", "==", "<answer>",
                           "</answer>", "*", "+", "-", "/", "(", ")", " ", "25", "50", "999999999999999"])
settings.register_profile("sparring", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("sparring")


@given(st.text(max_size=3000))
def test_any_text_gets_a_verdict(text):
    for completion in (text, f"<answer>{text}</answer>", f"<answer>{text}"):
        verdict = verify(TASK, completion)
        assert verdict.reward in (0.0, 0.1, 1.0) and isinstance(verdict.feedback, str) and verdict.feedback


@given(st.lists(HOSTILE, max_size=60).map("".join))
def test_hostile_expressions_get_a_verdict(text):
    verdict = verify(TASK, f"<answer>{text}</answer>")
    assert not verdict.success or sorted(parse(text).literals) == sorted(TASK.numbers)
    try:
        parse(text)
    except ExprError as error:  # the only exception the parser raises
        assert error.code and str(error)


def expressions(numbers):
    """Random expression trees over a shuffled subset of `numbers`, with their exact values."""
    def build(values):
        if len(values) == 1:
            return st.just((str(values[0]), Fraction(values[0])))
        return st.integers(1, len(values) - 1).flatmap(lambda k: st.tuples(
            build(values[:k]), build(values[k:]), st.sampled_from("+-*/")).map(combine))

    def combine(parts):
        (left, lv), (right, rv), op = parts
        if op == "/" and rv == 0:
            op = "+"
        value = {"+": lv + rv, "-": lv - rv, "*": lv * rv, "/": lv / rv if rv else 0}[op]
        return f"({left}{op}{right})", value
    return st.permutations(numbers).flatmap(lambda p: build(list(p)))


@given(st.lists(st.integers(1, 100), min_size=2, max_size=6).flatmap(lambda ns: st.tuples(st.just(ns), expressions(ns))))
def test_verdict_matches_exact_evaluation(case):
    numbers, (text, value) = case
    if value.denominator == 1:
        assert verify(CountdownTask(tuple(numbers), int(value)), f"<answer>{text}</answer>").success
    assert not verify(CountdownTask(tuple(numbers), int(value) + 1), f"<answer>{text}</answer>").success
    if len(numbers) > 2:
        assert not verify(CountdownTask(tuple(numbers[:-1]), 1), f"<answer>{text}</answer>").success
