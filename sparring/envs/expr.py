"""Exact arithmetic on untrusted text: + - * / and parentheses over integers, evaluated with `Fraction`.

No `eval`, no `ast`, no sympy: a tokenizer and a recursive-descent parser that computes the value as
it parses. Work is bounded on any input: the text length, the literal length, the nesting depth and
the size of every intermediate value are capped, and breaking a cap is an `ExprError`, never a hang.

    >>> parse("(8 - 2) * 4").value
    Fraction(24, 1)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import cast

MAX_CHARS = 1_000
MAX_DIGITS = 15
MAX_DEPTH = 32
MAX_BITS = 4_096

_PLAIN = re.compile(r"[0-9+\-*/()\s]*")  # the common case: nothing to translate or reject
_TOKEN = re.compile(r"[0-9]+|[-+*/()=]")
_ALIASES = str.maketrans({"×": "*", "·": "*", "÷": "/", "−": "-", "–": "-"})
_END = ""  # the token after the last one
Value = int | Fraction  # ints while the arithmetic stays whole (fast), Fractions after an inexact division


class ExprError(ValueError):
    """Why a text is not a valid expression: `code` for programs, the message for people."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Expr:
    value: Fraction
    literals: tuple[int, ...]  # every integer literal, in the order written


def format_value(value: Fraction) -> str:
    """`24` for whole numbers, `23/2` otherwise."""
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def parse(text: str, *, allow_unary: bool = False) -> Expr:
    """Parse and evaluate `text` exactly. Raises `ExprError` with a plain-words reason on anything else."""
    if len(text) > MAX_CHARS:
        raise ExprError("too_long", f"the expression is too long ({len(text)} characters; at most {MAX_CHARS})")
    if not text.isascii():
        text = text.translate(_ALIASES)
    if "**" in text:
        raise ExprError("power", "it uses ** (powers are not allowed; only + - * / and parentheses)")
    if _PLAIN.fullmatch(text) is None:
        for char in text:
            if char not in "0123456789+-*/()=" and not char.isspace():
                raise ExprError("bad_character", f"it contains {char!r}; only integers, + - * / and parentheses are allowed")
    tokens = _TOKEN.findall(text)
    if not tokens:
        raise ExprError("empty", "the answer is empty")
    parser = _Parser(tokens + [_END], allow_unary)
    value = Fraction(parser.sum(0))
    if parser.pos < len(tokens):
        token = tokens[parser.pos]
        reason = "an unmatched ')'" if token == ")" else "'='" if token == "=" else repr(token)
        raise ExprError("syntax", f"unexpected {reason} after a complete expression")
    return Expr(value, tuple(parser.literals))


class _Parser:
    def __init__(self, tokens: list[str], allow_unary: bool):
        self.tokens, self.allow_unary = tokens, allow_unary
        self.pos = 0
        self.literals: list[int] = []

    def sum(self, depth: int) -> Value:
        value = self.product(depth)
        while (op := self.tokens[self.pos]) == "+" or op == "-":
            self.pos += 1
            right = self.product(depth)
            value = _checked(value + right if op == "+" else value - right)
        return value

    def product(self, depth: int) -> Value:
        value = self.atom(depth)
        while (op := self.tokens[self.pos]) == "*" or op == "/":
            self.pos += 1
            right = self.atom(depth)
            if op == "*":
                value = _checked(value * right)
            elif right == 0:
                raise ExprError("division_by_zero", "it divides by zero")
            elif type(value) is int and type(right) is int:  # stay on ints while division is exact
                value = value // right if value % right == 0 else _checked(Fraction(value, right))
            else:  # not both ints: a Fraction
                value = _checked(cast(Value, value / right))
        return value

    def atom(self, depth: int) -> Value:
        token = self.tokens[self.pos]
        if token == _END:
            raise ExprError("syntax", "the expression ends too early (a number or '(' is missing)")
        self.pos += 1
        if token[0] in "0123456789":
            if len(token) > MAX_DIGITS:
                raise ExprError("too_large", f"the number {token[:20]}... is too long (at most {MAX_DIGITS} digits)")
            self.literals.append(int(token))
            return self.literals[-1]
        if token == "(":
            if depth >= MAX_DEPTH:
                raise ExprError("too_deep", f"parentheses are nested more than {MAX_DEPTH} deep")
            value = self.sum(depth + 1)
            if self.tokens[self.pos] != ")":
                raise ExprError("syntax", "a '(' is never closed")
            self.pos += 1
            return value
        if token in ("-", "+"):
            if not self.allow_unary:
                raise ExprError("unary", f"it uses a unary {token!r}; each operation combines two numbers")
            if depth >= MAX_DEPTH:
                raise ExprError("too_deep", f"signs are nested more than {MAX_DEPTH} deep")
            value = self.atom(depth + 1)
            return -value if token == "-" else value
        raise ExprError("syntax", f"unexpected {token!r} where a number or '(' should be")


def _checked(value: Value) -> Value:
    if type(value) is int:
        too_large = value.bit_length() > MAX_BITS
    else:
        too_large = value.numerator.bit_length() > MAX_BITS or value.denominator.bit_length() > MAX_BITS
    if too_large:
        raise ExprError("too_large", f"an intermediate value exceeds {MAX_BITS} bits")
    return value


# ---- patterns: an expression with its numbers as letters (a reusable skill, a family of similar tasks) ----

LETTERS = "abcdefgh"


def expression_pattern(expression: str) -> tuple[str, list[int]] | None:
    """`8*3-2` -> (`a*b-c`, [8, 3, 2]): the numbers replaced by letters in the order written; None when the text
    has no number or more than `LETTERS` holds."""
    numbers = [int(n) for n in re.findall(r"\d+", expression)]
    if not numbers or len(numbers) > len(LETTERS):
        return None
    letters = iter(LETTERS)
    return re.sub(r"\d+", lambda _: next(letters), expression), numbers


def instantiate(pattern: str, args: list[int]) -> str:
    """A pattern's letters replaced by `args` in order: `instantiate("a*b-c", [8, 3, 2]) == "8*3-2"`."""
    values = dict(zip(LETTERS, map(str, args)))
    return re.sub(r"[a-h]", lambda m: values.get(m[0], m[0]), pattern)
