"""Property tests: the verifier never raises, and it agrees with an independent exact evaluation."""

import re
from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparring.envs.countdown_tasks import CountdownTask, expert_answer, extract_answer, verify, verify_steps
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


# ---- answer_format="steps": one operation per line ------------------------------------------------

STEP_LINE = st.one_of(
    st.tuples(st.integers(0, 120), st.sampled_from("+-*/×÷"), st.integers(0, 120), st.integers(-5, 15000)).map(
        lambda t: f"{t[0]}{t[1]}{t[2]}={t[3]}"),
    st.lists(st.integers(0, 120), min_size=1, max_size=7).map(lambda ns: " ".join(map(str, ns)) + " -> 952"),
    HOSTILE, st.text(max_size=30))


@given(st.lists(STEP_LINE, max_size=40).map("\n".join))
def test_any_steps_get_a_verdict_and_success_is_a_real_solution(text):
    for completion in (text, f"<answer>{text}</answer>", f"<answer>{text}"):
        verdict = verify_steps(TASK, completion)
        assert verdict.reward in (0.0, 0.1, 1.0) and isinstance(verdict.feedback, str) and verdict.feedback
        if verdict.success:  # replay the lines independently: legal moves that end on the target
            values = list(TASK.numbers)
            for line in extract_answer(completion).splitlines():
                if "->" in line or not line.strip():
                    continue
                a, op, b, result = re.fullmatch(r"\s*(\d+)\s*(\S)\s*(\d+)\s*=\s*(\d+)\s*", line).groups()
                a, b, result = int(a), int(b), int(result)
                values.remove(a)
                values.remove(b)
                assert result == {"+": a + b, "-": a - b, "*": a * b, "/": a // b if b and a % b == 0 else -1,
                                  "×": a * b, "÷": a // b if b and a % b == 0 else -1}[op] >= 0
                values.append(result)
            assert values == [TASK.target]


@given(st.lists(st.integers(1, 30), min_size=2, max_size=5), st.integers(0, 10**6), st.data())
def test_expert_steps_verify_and_any_corruption_is_named(numbers, seed, data):
    import random

    from sparring.envs.countdown_expert import solve_steps

    found = solve_steps(numbers, numbers[0] + numbers[1], integer_only=True)  # a reachable target, when all are used
    if found is None:
        return
    task = CountdownTask(tuple(numbers), found[1][-1].result)
    for answer_format in ("steps", "steps-with-state"):
        answer = expert_answer(task, answer_format, rng=random.Random(seed))
        assert verify_steps(task, answer).success
        lines = extract_answer(answer).splitlines()
        i = data.draw(st.integers(0, len(lines) - 1))
        if "->" in lines[i]:
            continue
        a, rest = lines[i].split("=")
        lines[i] = f"{a}={int(rest) + 1}"  # one result off by one: that line is named
        verdict = verify_steps(task, "<answer>" + "\n".join(lines) + "</answer>")
        assert not verdict.success and verdict.feedback.startswith(f"line {i + 1} ")
