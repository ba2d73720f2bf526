"""The Countdown expert: an exhaustive solver, and Stream-of-Search style search traces for bootstrap data.

    >>> solve([8, 3, 2], 22)
    '8*3-2'
    >>> print(search_trace([8, 3, 2], 22).text.splitlines()[0])
    Current State: 22:[8, 3, 2], Operations: []
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass
from fractions import Fraction
from itertools import combinations
from typing import NamedTuple

from sparring.envs.expr import format_value

Value = int | Fraction


class Node(NamedTuple):
    value: Value
    text: str
    prec: int  # 3 a literal, 2 a product or quotient, 1 a sum or difference


class Step(NamedTuple):
    """One operation `left op right = result`, as a player writes it."""

    left: Value
    op: str
    right: Value
    result: Value

    def __str__(self) -> str:
        return f"{format_value(Fraction(self.left))}{self.op}{format_value(Fraction(self.right))}={format_value(Fraction(self.result))}"


def _wrap(node: Node, below: int) -> str:
    return f"({node.text})" if node.prec < below else node.text


def combine(a: Node, b: Node, op: str) -> Node:
    """`a op b` with the fewest parentheses that keep its meaning."""
    if op == "+":
        return Node(a.value + b.value, f"{a.text}+{b.text}", 1)
    if op == "-":
        return Node(a.value - b.value, f"{a.text}-{_wrap(b, 2)}", 1)
    if op == "*":
        return Node(a.value * b.value, f"{_wrap(a, 2)}*{_wrap(b, 2)}", 2)
    value = a.value // b.value if isinstance(a.value, int) and isinstance(b.value, int) and a.value % b.value == 0 \
        else Fraction(a.value) / b.value
    return Node(value, f"{_wrap(a, 2)}/{_wrap(b, 3)}", 2)


def moves(a: Node, b: Node, integer_only: bool) -> list[tuple[Node, Step]]:
    """Every result of combining `a` and `b` once. `integer_only` is Stream of Search's rule:
    subtraction never goes below zero and division must be exact."""
    out = []
    for x, y in ((a, b), (b, a)) if a.value != b.value else ((a, b),):
        if x is a:
            out.append((combine(x, y, "+"), Step(x.value, "+", y.value, x.value + y.value)))
            out.append((combine(x, y, "*"), Step(x.value, "*", y.value, x.value * y.value)))
        if not integer_only or x.value >= y.value:
            node = combine(x, y, "-")
            out.append((node, Step(x.value, "-", y.value, node.value)))
        if y.value != 0 and (not integer_only or x.value % y.value == 0):
            node = combine(x, y, "/")
            out.append((node, Step(x.value, "/", y.value, node.value)))
    return out


def _leaves(numbers: list[int]) -> tuple[Node, ...]:
    return tuple(Node(n, str(n), 3) for n in numbers)


def _dfs(state: tuple[Node, ...], target: Value, integer_only: bool, dead: set, path: list[Step],
         rng: random.Random | None = None) -> Node | None:
    if len(state) == 1:
        return state[0] if state[0].value == target else None
    key = tuple(sorted(node.value for node in state))
    if key in dead:
        return None
    pairs = list(combinations(range(len(state)), 2))
    if rng:
        rng.shuffle(pairs)
    for i, j in pairs:
        rest = state[:i] + state[i + 1:j] + state[j + 1:]
        children = moves(state[i], state[j], integer_only)
        if rng:
            rng.shuffle(children)
        for node, step in children:
            path.append(step)
            found = _dfs(rest + (node,), target, integer_only, dead, path, rng)
            if found is not None:
                return found
            path.pop()
    dead.add(key)
    return None


def solve_steps(numbers: list[int], target: int, *, allow_subset: bool = False, integer_only: bool = False,
                rng: random.Random | None = None) -> tuple[str, list[Step]] | None:
    """An expression and its operations, each given number used once (or, with `allow_subset`, the
    fewest numbers that reach the target), or None when the task has no solution under these rules.
    With `rng` the search explores in a random order: a random one of the solutions, not always the same."""
    dead: set = set()
    sizes = range(1, len(numbers) + 1) if allow_subset else (len(numbers),)
    for size in sizes:
        tried = set()
        for chosen in combinations(sorted(numbers), size):
            if chosen in tried:
                continue
            tried.add(chosen)
            path: list[Step] = []
            found = _dfs(_leaves(list(chosen)), target, integer_only, dead, path, rng)
            if found is not None:
                return found.text, path
    return None


def solve(numbers: list[int], target: int, *, allow_subset: bool = False, integer_only: bool = False,
          rng: random.Random | None = None) -> str | None:
    """An expression that solves the task exactly, or None when it has no solution (`rng`: a random one)."""
    found = solve_steps(numbers, target, allow_subset=allow_subset, integer_only=integer_only, rng=rng)
    return found[0] if found else None


# ---- Stream-of-Search style traces ---------------------------------------------------------------

HEURISTICS = ("sum", "closest")
STRATEGIES = ("dfs", "bfs")


def _score(values: list[Value], target: int, heuristic: str) -> Value:
    if heuristic == "sum":
        return abs(target - sum(values))
    return min(abs(target - v) for v in values)


@dataclass(frozen=True)
class SearchTrace:
    text: str  # the trace, ending with `<answer>...</answer>` when the goal was reached
    solution: str | None
    nodes: int  # operations explored


def _state_line(target: int, state: tuple[Node, ...], ops: list[Step]) -> str:
    values = ", ".join(format_value(Fraction(n.value)) for n in state)
    return f"Current State: {target}:[{values}], Operations: [{', '.join(repr(str(s)) for s in ops)}]"


def search_trace(numbers: list[int], target: int, *, strategy: str = "dfs", heuristic: str = "sum",
                 node_budget: int = 1_000, beam: int = 5) -> SearchTrace:
    """Search the way Stream of Search writes it down: each state, each operation explored, dead ends,
    backtracking, and `Goal Reached` (SoS's rules: non-negative subtraction, exact division).

    `dfs` explores children best-first by `heuristic` and backtracks; `bfs` expands level by level,
    keeping the `beam` best children of each state. At most `node_budget` operations are explored.
    """
    from sparring.errors import UnknownNameError

    if strategy not in STRATEGIES:
        raise UnknownNameError("search strategy", strategy, STRATEGIES)
    if heuristic not in HEURISTICS:
        raise UnknownNameError("search heuristic", heuristic, HEURISTICS)
    lines: list[str] = []
    nodes = 0

    def children(state: tuple[Node, ...]) -> list[tuple[Value, int, tuple[Node, ...], Step]]:
        out = []
        for i, j in combinations(range(len(state)), 2):
            rest = state[:i] + state[i + 1:j] + state[j + 1:]
            for node, step in moves(state[i], state[j], integer_only=True):
                child = rest + (node,)
                out.append((_score([n.value for n in child], target, heuristic), len(out), child, step))
        out.sort(key=lambda c: (c[0], c[1]))
        return out

    def explore(step: Step, child: tuple[Node, ...]) -> bool:
        """Write one explored operation; True when it reaches the goal."""
        nonlocal nodes
        nodes += 1
        values = ", ".join(format_value(Fraction(n.value)) for n in child)
        lines.append(f"Exploring Operation: {step}, Resulting Numbers: [{values}]")
        if len(child) == 1:
            if child[0].value == target:
                lines.append(f"{format_value(Fraction(child[0].value))},{target} equal: Goal Reached")
                return True
            lines.append(f"{format_value(Fraction(child[0].value))},{target} unequal: No Solution")
        return False

    start = _leaves(numbers)
    solution: Node | None = None
    if strategy == "dfs":
        def dfs(state: tuple[Node, ...], ops: list[Step]) -> Node | None:
            lines.append(_state_line(target, state, ops))
            for _, _, child, step in children(state):
                if nodes >= node_budget:
                    return None
                if explore(step, child):
                    return child[0]
                if len(child) > 1:
                    found = dfs(child, ops + [step])
                    if found is not None:
                        return found
                    lines.append(f"Moving back to: {_state_line(target, state, ops)[15:]}")
            return None
        solution = dfs(start, [])
    else:
        frontier: list[tuple[tuple[Node, ...], list[Step]]] = [(start, [])]
        while frontier and solution is None and nodes < node_budget:
            next_level = []
            for state, ops in frontier:
                lines.append(_state_line(target, state, ops))
                for _, _, child, step in heapq.nsmallest(beam, children(state), key=lambda c: (c[0], c[1])):
                    if nodes >= node_budget:
                        break
                    if explore(step, child):
                        solution = child[0]
                        break
                    if len(child) > 1:
                        next_level.append((child, ops + [step]))
                if solution is not None or nodes >= node_budget:
                    break
            frontier = next_level
    if solution is None:
        lines.append("Search budget exhausted: no solution found" if nodes >= node_budget
                     else "No solution exists" if strategy == "dfs" else "No solution found within the beam")
        return SearchTrace("\n".join(lines), None, nodes)
    lines.append(f"<answer>{solution.text}</answer>")
    return SearchTrace("\n".join(lines), solution.text, nodes)
