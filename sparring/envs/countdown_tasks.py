"""Countdown's tasks: the task and its knobs, the generator and its splits, the exact verifier, the prompts,
the expert's answers and its guidance. The environments that pose them are in `sparring.envs.countdown`.

    >>> from sparring.envs.countdown_tasks import PRESETS, generate_task, verify
    >>> task = generate_task(PRESETS["easy"], "train", seed=0, index=0)
    >>> verify(task, "<answer>8*3-2</answer>").success   # doctest: +SKIP
"""

from __future__ import annotations

import random
import re
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from sparring.envs.base import Verdict, as_text, check_choice, check_task_keys, extract_answer, is_int, item_rng
from sparring.envs.countdown_expert import Step, solve, solve_steps
from sparring.envs.expr import ExprError, format_value, parse
from sparring.errors import UnsolvableTaskError

SPLITS = ("train", "test-seen", "test-unseen")
MAX_NUMBERS = 8  # the expert's exhaustive search grows too fast beyond this
MAX_VALUE = 10**9
MAX_ATTEMPTS = 200_000


# ---- task ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CountdownTask:
    numbers: tuple[int, ...]
    target: int

    def to_dict(self) -> dict[str, Any]:
        return {"numbers": list(self.numbers), "target": self.target}

    @classmethod
    def from_dict(cls, data: Any) -> CountdownTask:
        """Validate a task dict `{"numbers": [int, ...], "target": int}` (from a user or a proposer)."""
        check_task_keys("Countdown", data, {"numbers", "target"})
        numbers, target = data["numbers"], data["target"]
        if not isinstance(numbers, (list, tuple)) or not all(is_int(n) for n in numbers):
            raise ValueError(f"task 'numbers' must be a list of integers, got {numbers!r}")
        if not 1 <= len(numbers) <= MAX_NUMBERS or not all(0 <= n <= MAX_VALUE for n in numbers):
            raise ValueError(f"task 'numbers' must hold 1 to {MAX_NUMBERS} integers in 0..{MAX_VALUE}, got {numbers!r}")
        if not is_int(target) or abs(target) > MAX_VALUE:
            raise ValueError(f"task 'target' must be an integer in -{MAX_VALUE}..{MAX_VALUE}, got {target!r}")
        return cls(tuple(numbers), target)


# ---- generator ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CountdownConfig:
    """The difficulty knobs. `num_numbers` is a count or an inclusive `(min, max)` range."""

    num_numbers: int | tuple[int, int] = 4  # numbers per task: a count or a (min, max) range
    min_number: int = 1            # smallest number drawn
    max_number: int = 99           # largest number drawn
    min_target: int = 10           # smallest target
    max_target: int = 100          # largest target

    def __post_init__(self) -> None:
        count = self.num_numbers
        if isinstance(count, list):
            object.__setattr__(self, "num_numbers", count := tuple(count))
        low, high = count if isinstance(count, tuple) and len(count) == 2 else (count, count)
        if not (is_int(low) and is_int(high) and 2 <= low <= high <= MAX_NUMBERS):
            raise ValueError(f"num_numbers must be an integer or a (min, max) pair in 2..{MAX_NUMBERS}, got {count!r}")
        for name in ("min_number", "max_number", "min_target", "max_target"):
            if not is_int(getattr(self, name)):
                raise ValueError(f"{name} must be an integer, got {getattr(self, name)!r}")
        if not 1 <= self.min_number <= self.max_number <= MAX_VALUE:
            raise ValueError(f"need 1 <= min_number <= max_number <= {MAX_VALUE}, "
                             f"got min_number={self.min_number}, max_number={self.max_number}")
        if not 0 <= self.min_target <= self.max_target <= MAX_VALUE:
            raise ValueError(f"need 0 <= min_target <= max_target <= {MAX_VALUE}, "
                             f"got min_target={self.min_target}, max_target={self.max_target}")

    @property
    def count_range(self) -> tuple[int, int]:
        return self.num_numbers if isinstance(self.num_numbers, tuple) else (self.num_numbers, self.num_numbers)


PRESETS = {
    "easy": CountdownConfig(num_numbers=3),                                    # TinyZero's 3-number tasks
    "medium": CountdownConfig(num_numbers=4),                                  # Stream of Search
    "hard": CountdownConfig(num_numbers=(5, 6), max_number=100, min_target=100, max_target=999),  # reasoning-gym
}


def is_held_out_target(target: int) -> bool:
    """About one target in ten never appears in `train` (Stream of Search's unseen targets).
    A fixed hash of the target alone, so every seed and every run agrees on the held-out set."""
    return (target * 2654435761 >> 8) % 10 == 0


def split_of(task: CountdownTask) -> str:
    """The split a task belongs to: `test-unseen` by its target; otherwise a fixed hash of its
    content puts one task in ten in `test-seen`, so `train` and the test splits never share a task."""
    if is_held_out_target(task.target):
        return "test-unseen"
    key = f"{sorted(task.numbers)}>{task.target}".encode()
    return "test-seen" if zlib.crc32(key) % 10 == 0 else "train"


def _combinations(a: int, b: int) -> list[int]:
    """What two numbers can make under Stream of Search's rules: no negative results, exact division."""
    results = [a + b, a * b, abs(a - b)]
    if b and a % b == 0:
        results.append(a // b)
    if a and b % a == 0:
        results.append(b // a)
    return results


def _draw(config: CountdownConfig, rng: random.Random) -> CountdownTask | None:
    """One attempt: random numbers combined in a random order by random operations, the last one
    chosen among those that land in the target range (None when none does). Solvable by construction."""
    rand, low, high, smallest = rng.random, *config.count_range, config.min_number
    span = config.max_number - smallest + 1
    numbers = [smallest + int(rand() * span) for _ in range(low + int(rand() * (high - low + 1)))]
    values = list(numbers)
    while len(values) > 2:
        a = values.pop(int(rand() * len(values)))
        b = values.pop(int(rand() * len(values)))
        results = _combinations(a, b)
        values.append(results[int(rand() * len(results))])
    targets = [t for t in _combinations(*values) if config.min_target <= t <= config.max_target]
    return CountdownTask(tuple(numbers), targets[int(rand() * len(targets))]) if targets else None


def sample_task(config: CountdownConfig, split: str, rng: random.Random) -> CountdownTask:
    """A task of `split` drawn with `rng`: built backwards from a random expression, redrawn until its
    target is in range and it belongs to `split`."""
    for _ in range(MAX_ATTEMPTS):
        task = _draw(config, rng)
        if task is not None and split_of(task) == split:
            return task
    raise ValueError(f"could not generate a {split!r} Countdown task for {config} in {MAX_ATTEMPTS} attempts: "
                     "the target range is out of reach of these numbers; widen min_target..max_target")


def generate_task(config: CountdownConfig, split: str = "train", seed: int = 0, index: int = 0) -> CountdownTask:
    """Item `index` of `split` for `seed`: a pure function of its arguments, always solvable."""
    return sample_task(config, split, item_rng("Countdown", split, SPLITS, seed, index))


def generate_tasks(config: CountdownConfig, split: str = "train", seed: int = 0, n: int = 100,
                   start: int = 0) -> list[CountdownTask]:
    """Items `start .. start + n - 1` of a split."""
    return [generate_task(config, split, seed, i) for i in range(start, start + n)]


def task_problems(task: CountdownTask, config: CountdownConfig, split: str) -> list[str]:
    """Why `task` is not one this config and split would pose (empty when it is): how proposed tasks are
    held to the knobs. Says nothing about solvability (that is the expert's to certify)."""
    problems = []
    low, high = config.count_range
    if not low <= len(task.numbers) <= high:
        problems.append(f"has {len(task.numbers)} numbers, the knobs allow {low} to {high}")
    outside = [n for n in task.numbers if not config.min_number <= n <= config.max_number]
    if outside:
        problems.append(f"numbers {outside} are outside {config.min_number}..{config.max_number}")
    if not config.min_target <= task.target <= config.max_target:
        problems.append(f"target {task.target} is outside {config.min_target}..{config.max_target}")
    if split_of(task) != split:
        problems.append(f"belongs to the {split_of(task)!r} split, not {split!r}")
    return problems


# ---- verifier -----------------------------------------------------------------------------------

def _times(k: int) -> str:
    return {1: "once", 2: "twice"}.get(k, f"{k} times")


_MOVE = re.compile(r"\s*(?:<answer>)?\s*(\d{1,15})\s*([-+*/×÷])\s*(\d{1,15})\s*(?:=\s*(\d{1,30}))?\s*(?:</answer>)?\s*")
_STATE = re.compile(r"\s*((?:(?:\d{1,15}|_)\s+)*(?:\d{1,15}|_))\s*->\s*(\d{1,15})\s*")
_OPS = {"×": "*", "÷": "/"}


def check_move(values: list[int], action: str, *, need_result: bool = False) -> Step | str:
    """The move `a op b` (optionally `a op b=r`) on the current `values` as a `Step`, or why it is not a
    legal one under Stream of Search's rules: operands among `values`, no negative results, exact division."""
    match = _MOVE.fullmatch(action) if len(action) <= 200 else None
    if match is None:
        return f"{action[:40]!r} is not a move; write two current numbers and an operation, like 8*3"
    a, op, b, claim = int(match[1]), _OPS.get(match[2], match[2]), int(match[3]), match[4]
    pool = Counter(values)
    pool[a] -= 1
    pool[b] -= 1
    if pool[a] < 0 or pool[b] < 0:
        return f"{a} and {b} are not both among the current numbers {values}"
    if op == "-" and a < b:
        return f"{a}-{b} goes below zero"
    if op == "/" and (b == 0 or a % b):
        return f"{a}/{b} is not an exact division"
    result = {"+": a + b, "-": a - b, "*": a * b, "/": a // b if b else 0}[op]
    if claim is None and need_result:
        return f"{a}{op}{b} does not give its result; write {a}{op}{b}={result}"
    if claim is not None and int(claim) != result:
        return f"{a}{op}{b} is {result}, not {claim}"
    return Step(a, op, b, result)


def apply_move(values: list[int], step: Step) -> list[int]:
    """The numbers left after `step`: its operands removed, its result last."""
    left = list(values)
    left.remove(int(step.left))
    left.remove(int(step.right))
    return [*left, int(step.result)]


def state_text(values: Sequence[int | None], target: int) -> str:
    """The numbers left and the target as the compact prompt writes a task: `24 2 -> 22` (`_` for a used slot)."""
    return f"{' '.join('_' if v is None else str(v) for v in values)} -> {target}"


def apply_to_slots(slots: list[int | None], step: Step) -> list[int | None]:
    """The task's slots after `step`: its result in the first operand's slot, `_` in the second's; every other
    number stays where the task wrote it, so each state line is the one before with two places changed."""
    out = list(slots)
    first = out.index(int(step.left))
    out[first] = None
    second = out.index(int(step.right))
    out[first], out[second] = int(step.result), None
    return out


MAX_STEP_LINES = 4 * MAX_NUMBERS


def verify_steps(task: CountdownTask, completion: Any, *, allow_subset: bool = False,
                 format_reward: float = 0.1) -> Verdict:
    """Grade the last `<answer>...</answer>` of `completion` as one operation per line. Never raises.

    Each line is a step `a op b=r` on the numbers still available (Stream of Search's rules: no negative
    results, exact division), checked exactly, or a state line `n1 n2 ... -> target`, which must name the
    numbers left and the target. Correct when every given number is used (with `allow_subset`: any of
    them) and the last result is the target. Feedback names the first wrong line. Reward as `verify`:
    `format_reward` for well-formed lines that are wrong, 0.0 for no answer or a line that is no step.
    """
    return _grade_steps(task, completion, allow_subset, format_reward, [])


def _grade_steps(task: CountdownTask, completion: Any, allow_subset: bool, format_reward: float,
                 steps: list[Step]) -> Verdict:
    """`verify_steps`, appending to `steps` each step it read (all of them when the verdict is a success)."""
    text = as_text(completion)
    content = extract_answer(text)
    if content is None:
        reason = "the <answer> tag is never closed with </answer>" if "<answer>" in text else "no <answer> tag"
        return Verdict(0.0, False, reason, {"error": "no_answer", "answer": None, "steps": 0})
    shown = content if len(content) <= 80 else content[:77] + "..."
    lines = [line.strip() for line in content.splitlines() if line.strip()]
    details: dict[str, Any] = {"answer": shown, "steps": 0, "error": None}
    if len(lines) > MAX_STEP_LINES:
        return Verdict(0.0, False, f"the answer has {len(lines)} lines; at most {MAX_STEP_LINES} are read",
                       {**details, "error": "too_long"})
    values = list(task.numbers)

    def wrong(i: int, line: str, why: str, error: str, reward: float) -> Verdict:
        shown_line = line if len(line) <= 40 else line[:37] + "..."
        return Verdict(reward, False, f"line {i} ({shown_line!r}): {why}", {**details, "steps": len(steps), "error": error})

    if not lines:
        return Verdict(0.0, False, "the answer holds no steps; write one operation per line, like 8*3=24",
                       {**details, "error": "no_steps"})
    for i, line in enumerate(lines, 1):
        state = _STATE.fullmatch(line) if len(line) <= 200 else None
        if state is not None:
            said = [int(n) for n in state[1].split() if n != "_"]
            if Counter(said) != Counter(values) or int(state[2]) != task.target:
                return wrong(i, line, f"the numbers left are {state_text(values, task.target)}", "wrong_state",
                             float(format_reward))
            continue
        move = check_move(values, line, need_result=True)
        if isinstance(move, str):
            syntax = _MOVE.fullmatch(line) is None if len(line) <= 200 else True
            return wrong(i, line, move, "not_a_step" if syntax else "wrong_step", 0.0 if syntax else float(format_reward))
        values = apply_move(values, move)
        steps.append(move)
    details["steps"] = len(steps)
    last = int(steps[-1].result) if steps else (values[0] if len(values) == 1 else None)
    if not allow_subset and len(values) > 1:
        problem = f"does not use {', '.join(map(str, values[:-1] if steps else values))}" if steps else "makes no step"
        if steps and last != task.target:
            problem += f"; the last result is {last}, the target is {task.target}"
        return Verdict(float(format_reward), False, problem, {**details, "error": "wrong_numbers"})
    if last != task.target and not (allow_subset and not steps and task.target in task.numbers):
        return Verdict(float(format_reward), False, f"the last result is {last}, the target is {task.target}",
                       {**details, "error": "wrong_value"})
    return Verdict(1.0, True, f"correct: {', '.join(map(str, steps)) or task.target} reaches {task.target}", details)


def verify(task: CountdownTask, completion: Any, *, allow_subset: bool = False, format_reward: float = 0.1) -> Verdict:
    """Grade the last `<answer>...</answer>` of `completion` exactly. Never raises on any input.

    Reward 1.0 when the expression uses every given number exactly once (a subset with
    `allow_subset`) and equals the target; `format_reward` for a well-formed expression that is
    wrong; 0.0 when there is no answer or it does not parse. An answer may end with `= <value>`,
    which must then be the expression's value.
    """
    text = as_text(completion)
    content = extract_answer(text)
    if content is None:
        reason = "the <answer> tag is never closed with </answer>" if "<answer>" in text else "no <answer> tag"
        return Verdict(0.0, False, reason, {"error": "no_answer", "answer": None})
    shown = content if len(content) <= 80 else content[:77] + "..."
    expression, _, claim = content.rpartition("=") if "=" in content else (content, "", "")
    try:
        expr = parse(expression)
        claimed = parse(claim).value if claim else None
    except ExprError as error:
        return Verdict(0.0, False, f"{shown!r} is not a valid expression: {error}",
                       {"error": error.code, "answer": shown})
    problems = []
    if sorted(expr.literals) != sorted(task.numbers):
        unused, extra = list(task.numbers), []
        for number in expr.literals:
            if number in unused:
                unused.remove(number)
            elif number not in extra:
                extra.append(number)
        for number in extra:
            given, used = task.numbers.count(number), _times(expr.literals.count(number))
            if not given:
                problems.append(f"uses {number}, which is not one of the given numbers")
            elif given == 1:
                problems.append(f"uses {number} {used}")
            else:
                problems.append(f"uses {number} {used} (it is given {_times(given)})")
        if unused and not allow_subset:
            problems.append(f"does not use {', '.join(map(str, sorted(unused)))}")
    wrong_numbers = bool(problems)
    if expr.value != task.target:
        problems.append(f"equals {format_value(expr.value)}, the target is {task.target}")
    if claimed is not None and claimed != expr.value:
        problems.append(f"claims = {format_value(claimed)}, but the expression equals {format_value(expr.value)}")
    details = {"answer": shown, "value": format_value(expr.value), "numbers_used": list(expr.literals),
               "error": None if not problems else "wrong_numbers" if wrong_numbers else "wrong_value"}
    if problems:
        return Verdict(float(format_reward), False, "; ".join(problems), details)
    return Verdict(1.0, True, f"correct: {expression.strip()} = {task.target}", details)


INSTRUCTIONS = ("full", "compact")
ANSWER_FORMATS = ("expression", "steps", "steps-with-state")


def prompt(task: CountdownTask, instruction: str = "full", answer_format: str = "expression") -> str:
    """TinyZero's instruction, or (`compact`) just `8 3 2 -> 22`: short inputs for a small model."""
    if instruction == "compact":
        return state_text(list(task.numbers), task.target)
    numbers = ", ".join(map(str, task.numbers))
    if answer_format != "expression":
        example = "8*3=24\n24-2=22" if answer_format == "steps" else "8*3=24\n24 _ 2 -> 22\n24-2=22\n22 _ _ -> 22"
        state = (" After each step you may restate the numbers in their places, _ for those used, and the target."
                 if answer_format == "steps-with-state" else "")
        return (f"Using the numbers [{numbers}], reach {task.target}. Write one operation per line with its result, "
                "combining two of the numbers still available with +, -, * or / (no negative results, exact "
                f"division only); each number can only be used once, and the last result must be {task.target}."
                f"{state} Show your work in <think> </think> tags and return the steps in <answer> </answer> tags, "
                f"for example <answer>{example}</answer>.")
    return (f"Using the numbers [{numbers}], create an equation that equals {task.target}. You can use basic "
            "arithmetic operations (+, -, *, /) and each number can only be used once. Show your work in "
            "<think> </think> tags. And return the final answer in <answer> </answer> tags, for example "
            "<answer> (1 + 2) / 3 </answer>.")


def render_steps(task: CountdownTask, steps: list[Step], answer_format: str = "steps") -> str:
    """`steps` one per line (`steps-with-state`: each followed by the state, the task's numbers in their places)."""
    lines: list[str] = []
    slots: list[int | None] = list(task.numbers)
    for step in steps:
        lines.append(str(step))
        if answer_format == "steps-with-state":
            slots = apply_to_slots(slots, step)
            lines.append(state_text(slots, task.target))
    return "\n".join(lines)


def read_steps(task: CountdownTask, completion: Any) -> list[Step] | None:
    """The steps of a step answer that verifies for `task`, or None (never raises)."""
    steps: list[Step] = []
    return steps if _grade_steps(task, completion, False, 0.1, steps).success else None


def expert_steps(task: CountdownTask, answer_format: str = "steps", *, allow_subset: bool = False,
                 rng: random.Random | None = None) -> str:
    """An exact solution one whole-number operation per line (`steps-with-state`: each step followed by the
    state, the task's numbers in their places with `_` for those used up: `8*3=24` then `24 _ 2 -> 22`);
    `rng` picks a random one of the solutions."""
    found = solve_steps(list(task.numbers), task.target, allow_subset=allow_subset, integer_only=True, rng=rng)
    if found is None:
        raise UnsolvableTaskError(f"Countdown task {task.to_dict()} has no solution in whole-number steps")
    return render_steps(task, found[1], answer_format)


def expert_answer(task: CountdownTask, answer_format: str = "expression", *, allow_subset: bool = False,
                  rng: random.Random | None = None) -> str:
    """The expert's whole answer in `answer_format`, tags included (`rng`: a random one of the solutions)."""
    if answer_format == "expression" and rng is None:
        return f"<answer>{expert_solution(task, allow_subset=allow_subset)}</answer>"
    if answer_format == "expression":
        found = solve(list(task.numbers), task.target, allow_subset=allow_subset, integer_only=True, rng=rng)
        if found is None:
            raise UnsolvableTaskError(f"Countdown task {task.to_dict()} has no solution in whole-number steps")
        return f"<answer>{found}</answer>"
    return f"<answer>{expert_steps(task, answer_format, allow_subset=allow_subset, rng=rng)}</answer>"


def expert_solution(task: CountdownTask, *, allow_subset: bool = False) -> str:
    """An exact solution: whole-number steps first (fast, how generated tasks are built), then any rational."""
    found = solve(list(task.numbers), task.target, allow_subset=allow_subset, integer_only=True) \
        or solve(list(task.numbers), task.target, allow_subset=allow_subset)
    if found is None:
        raise UnsolvableTaskError(f"Countdown task {task.to_dict()} has no solution")
    return found


# ---- guidance (expert iteration's guided traces) ------------------------------------------------

GUIDANCE_KINDS = ("landmarks", "hints", "prefix")


def guidance(task: CountdownTask, kind: str, answer_format: str = "expression") -> str | None:
    """What the expert tells the policy about `task` (Guided-ReST's landmarks, a Socratic hint, or a prefix of
    the answer), from its whole-number solution; None when the task has none. `landmarks`: the results the
    solution passes through (`reach 24, then 22`); `hints`: its first operation (`start with 8*3`); `prefix`: the
    start of the answer, which the policy continues: a step answer's first half of the steps (at least one, never
    all: `<answer>8*3=24` and a newline), an expression up to its second number (`<answer>8*3`, `<answer>(3+8`)."""
    check_choice("guidance kind", kind, GUIDANCE_KINDS)
    check_choice("Countdown answer_format", answer_format, ANSWER_FORMATS)
    found = solve_steps(list(task.numbers), task.target, integer_only=True)
    if found is None or not found[1]:
        return None
    expression, steps = found
    if kind == "landmarks":
        return "reach " + ", then ".join(format_value(Fraction(s.result)) for s in steps)
    if kind == "hints":
        first = steps[0]
        return f"start with {format_value(Fraction(first.left))}{first.op}{format_value(Fraction(first.right))}"
    if len(steps) < 2:  # a one-step solution has no start that leaves the policy anything to write
        return None
    if answer_format == "expression":
        tokens = re.findall(r"\d+|\S", expression)
        second = [i for i, t in enumerate(tokens) if t.isdigit()][1]
        return "<answer>" + "".join(tokens[:second + 1])
    return f"<answer>{render_steps(task, steps[:max(1, len(steps) // 2)], answer_format)}\n"


# ---- features (skill retrieval) -----------------------------------------------------------------

def task_features(task: dict[str, Any]) -> list[str]:
    """What a planner sees in a Countdown task before solving it: how the target compares with the numbers'
    sum, largest number and largest product, which numbers divide it, parity, ones and duplicates."""
    numbers, target = sorted(task.get("numbers", [])), task.get("target", 0)
    if not numbers:
        return []
    tokens = [f"count{len(numbers)}", "t_above_sum" if target > sum(numbers) else "t_within_sum",
              "t_above_max" if target > numbers[-1] else "t_below_max",
              "t_even" if target % 2 == 0 else "t_odd", f"t_digits{len(str(abs(target)))}"]
    if len(numbers) >= 2:
        tokens.append("t_above_top_product" if target > numbers[-1] * numbers[-2] else "t_within_top_product")
    divisors = sum(1 for n in set(numbers) if n > 1 and target % n == 0)
    tokens.append(f"t_divisors{min(divisors, 2)}")
    if 1 in numbers:
        tokens.append("has_one")
    if len(set(numbers)) < len(numbers):
        tokens.append("has_duplicate")
    return tokens
