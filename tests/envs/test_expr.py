from fractions import Fraction

import pytest

from sparring.envs.expr import MAX_CHARS, ExprError, parse


@pytest.mark.parametrize("text, value, literals", [
    ("1+2*3", 7, (1, 2, 3)), ("(1+2)*3", 9, (1, 2, 3)), ("8/3", Fraction(8, 3), (8, 3)),
    ("10-4-3", 3, (10, 4, 3)), ("100/10/5", 2, (100, 10, 5)), (" ( ( 7 ) ) ", 7, (7,)), ("007", 7, (7,)),
    ("2*(3+4)/7", 2, (2, 3, 4, 7)), ("6 × 7 ÷ 2", 21, (6, 7, 2)),
])
def test_values_are_exact(text, value, literals):
    expr = parse(text)
    assert expr.value == value and isinstance(expr.value, Fraction) and expr.literals == literals


@pytest.mark.parametrize("text, code", [
    ("", "empty"), ("   ", "empty"), ("1+", "syntax"), ("(1+2", "syntax"), ("1+2)", "syntax"), ("()", "syntax"),
    ("1 2", "syntax"), ("2**3", "power"), ("9**9**9", "power"), ("-1", "unary"), ("1*-1", "unary"),
    ("1/0", "division_by_zero"), ("1/(2-2)", "division_by_zero"), ("1.5", "bad_character"), ("x", "bad_character"),
    ("__import__('os')", "bad_character"), ("١+1", "bad_character"), ("1" * 16, "too_large"),
    ("(" * 40 + "1" + ")" * 40, "too_deep"), ("1+" * 600 + "1", "too_long"), ("1=1", "syntax"),
])
def test_errors_have_codes_and_reasons(text, code):
    with pytest.raises(ExprError) as caught:
        parse(text)
    assert caught.value.code == code and str(caught.value)


def test_unary_signs_on_request():
    assert parse("-(-3)", allow_unary=True).value == 3
    assert parse("2*-3", allow_unary=True).value == -6


def test_value_size_is_bounded(monkeypatch):
    text = "*".join(["999999999999999"] * 60)  # about 3,000 bits: within the default bound ...
    assert len(text) < MAX_CHARS and parse(text).value > 10**800
    monkeypatch.setattr("sparring.envs.expr.MAX_BITS", 512)  # ... which every intermediate value respects
    with pytest.raises(ExprError, match="512 bits"):
        parse(text)
    with pytest.raises(ExprError, match="512 bits"):
        parse("+".join(f"1/{999999999999999 - k}" for k in range(24)))  # denominators grow too
