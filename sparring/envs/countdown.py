"""Countdown: reach a target number from given numbers with + - * /, each number used exactly once.

`Countdown-v0` is single-turn (one answer, graded exactly): an expression (`answer_format="expression"`)
or one operation per line with its result (`"steps"`, Stream of Search style: `8*3=24` then `24-2=22`;
`"steps-with-state"` also restates the numbers left after each step, `24 2 -> 22`, so a longer task
reads, step after step, like a shorter one). `CountdownSteps-v0` plays the same tasks one operation
per turn, as Stream of Search writes its states. The tasks, their generator and verifier, the prompts and
the expert's answers are in `sparring.envs.countdown_tasks`; this file holds the envs and the family's hooks.

    >>> import gymnasium, sparring
    >>> env = gymnasium.make("Countdown-v0", difficulty="easy")
    >>> observation, info = env.reset(seed=0)
    >>> info["task"]                                 # doctest: +SKIP
    {'numbers': [44, 19, 35], 'target': 98}
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import Any

from sparring.envs import countdown_tasks
from sparring.envs.base import SingleTurnEnv, TextEnv, Verdict, check_choice, extract_answer, is_int
from sparring.envs.countdown_expert import Step, solve_steps
from sparring.envs.countdown_tasks import (
    ANSWER_FORMATS,
    GUIDANCE_KINDS,
    INSTRUCTIONS,
    PRESETS,
    SPLITS,
    CountdownConfig,
    CountdownTask,
    apply_move,
    check_move,
    expert_solution,
    read_steps,
    render_steps,
    task_features,
)
from sparring.envs.expr import ExprError, expression_pattern, format_value, instantiate, parse
from sparring.errors import UnsolvableTaskError

# The model-free curriculum's default ladder (`curriculum_levels`): knob overrides, easiest first.
CURRICULUM_LEVELS: tuple[dict[str, Any], ...] = (
    {"num_numbers": 3, "max_number": 10}, {"num_numbers": 3, "max_number": 20}, {"num_numbers": 3, "max_number": 30},
    {"num_numbers": [3, 4], "max_number": 20}, {"num_numbers": 4, "max_number": 30})

# a proposer's compact task, `8 3 2 -> 22` (bounded: a proposal is an attacker's text)
_COMPACT = re.compile(r"\s*(\d{1,10}(?:[ ,]+\d{1,10}){0,15})\s*->\s*(-?\d{1,10})\s*")


class CountdownFamily:
    """What both Countdown envs share: the tasks, their knobs and splits, and the family hooks (see
    `sparring.envs.base.TextEnv`). A mixin: `CountdownEnv` and `CountdownStepsEnv` list it before their base."""

    family = "countdown"
    task_type = CountdownTask
    config_class = CountdownConfig
    presets = PRESETS
    splits = SPLITS
    curriculum_levels = CURRICULUM_LEVELS
    skill_kind = "expression"
    config: CountdownConfig
    split: str

    def generate_task(self, index: int, *, seed: int = 0, config: CountdownConfig | None = None) -> CountdownTask:
        return countdown_tasks.generate_task(config or self.config, self.split, seed, index)

    def sample_task(self, rng: random.Random, config: CountdownConfig) -> CountdownTask:
        return countdown_tasks.sample_task(config, self.split, rng)

    def task_problems(self, task: CountdownTask, config: CountdownConfig | None = None) -> list[str]:
        """Why `task` lies outside this env's knobs (or `config`'s) and split; empty when it lies within."""
        return countdown_tasks.task_problems(task, config or self.config, self.split)

    def compact_task(self, task: dict[str, Any]) -> str | None:
        return f"{' '.join(map(str, task['numbers']))} -> {task['target']}"

    def parse_compact_task(self, text: str) -> dict[str, Any] | None:
        match = _COMPACT.fullmatch(text)
        if match is None:
            return None
        return {"numbers": [int(n) for n in re.split(r"[ ,]+", match[1].strip())], "target": int(match[2])}

    def skill_features(self, task: dict[str, Any]) -> list[str]:
        return task_features(task)  # the numbers and the target: all of it is in the observation

    def similar_task_chains(self, tasks: list[dict[str, Any]], length: int, rng: random.Random,
                            key: Callable[[dict[str, Any]], str]) -> list[list[dict[str, Any]]]:
        """Each task in turn followed by tasks its expert's expression pattern solves (`similar_tasks`), as many
        tasks in all as given (`key` is not needed: the chains are made, not found)."""
        chains, total = [], 0
        for task in tasks:
            if total >= len(tasks):
                break
            chain = self.similar_tasks(task, min(length, len(tasks) - total), rng)
            chains.append(chain)
            total += len(chain)
        return chains

    def similar_tasks(self, task: dict[str, Any], length: int, rng: random.Random) -> list[dict[str, Any]]:
        """`task` and up to `length - 1` tasks that the same expression pattern solves (the expert's, for `task`),
        with fresh numbers drawn with `rng` within the env's knobs and split."""
        found = expression_pattern("".join(expert_solution(CountdownTask.from_dict(task)).split()))
        chain, seen = [task], {json.dumps(task, sort_keys=True)}
        if found is None:
            return chain
        pattern, args = found
        config = self.config
        for _ in range(200 * length):
            if len(chain) >= length:
                break
            numbers = [rng.randint(config.min_number, config.max_number) for _ in args]
            try:
                value = parse(instantiate(pattern, numbers)).value
            except (ExprError, ZeroDivisionError):
                continue
            if value.denominator != 1:
                continue
            candidate = {"numbers": numbers, "target": int(value)}
            key = json.dumps(candidate, sort_keys=True)
            if key in seen or self.task_problems(CountdownTask.from_dict(candidate)):
                continue
            seen.add(key)
            chain.append(candidate)
        return chain


class CountdownEnv(CountdownFamily, SingleTurnEnv):
    """Countdown in one turn: the observation poses the task, the action is the answer.

    ## Action Space
    Any text (`UnicodeText`); the last `<answer>...</answer>` is graded: an expression (`8*3-2`), or with
    `answer_format="steps"` one operation per line with its result (`8*3=24` newline `24-2=22`), each line
    checked exactly; `"steps-with-state"` is the same answer, and the expert also restates the numbers
    after each step in their places (`24 _ 2 -> 22`); such state lines are checked when present.
    ## Observation Space
    Text: TinyZero's instruction with the numbers and the target; after the step, the verdict's feedback.
    ## Reward
    1.0 correct; `format_reward` (default 0.1, TinyZero's) for a well-formed wrong answer; 0 otherwise.
    ## Episode End
    Terminates after one step.
    ## Arguments
    - `split`: "train", "test-seen" or "test-unseen" (held-out: never in train)
    - `difficulty`: "easy" 3 numbers, "medium" 4, "hard" 5-6; the knobs of `CountdownConfig` below refine it
    - `allow_subset`: True: an answer may leave numbers unused (default: every number exactly once)
    - `format_reward`: reward of a well-formed wrong answer, in [0, 1] (TinyZero's 0.1)
    - `instruction`: "full" (TinyZero's wording) or "compact" (`8 3 2 -> 22`, for small models)
    - `answer_format`: "expression" (`8*3-2`), "steps" (`8*3=24` newline `24-2=22`) or "steps-with-state"
      (each step followed by the numbers left in their places, `24 _ 2 -> 22`)
    ## Version History
    v0: initial version.
    """

    def __init__(self, render_mode: str | None = None, *, split: str = "train", difficulty: str | None = None,
                 allow_subset: bool = False, format_reward: float = 0.1, instruction: str = "full",
                 answer_format: str = "expression", **knobs: Any):
        super().__init__(render_mode, split=split, difficulty=difficulty,
                         env_args=("allow_subset", "format_reward", "instruction", "answer_format"), **knobs)
        self.instruction = check_choice("Countdown instruction", instruction, INSTRUCTIONS)
        self.answer_format = check_choice("Countdown answer_format", answer_format, ANSWER_FORMATS)
        if not isinstance(allow_subset, bool):
            raise TypeError(f"allow_subset must be True or False, got {allow_subset!r}")
        if not isinstance(format_reward, (int, float)) or not 0.0 <= format_reward <= 1.0:
            raise ValueError(f"format_reward must be a number in [0, 1], got {format_reward!r}")
        self.allow_subset, self.format_reward = allow_subset, float(format_reward)

    def _begin(self) -> tuple[str, dict[str, Any]]:
        return countdown_tasks.prompt(self.task, self.instruction, self.answer_format), {}

    def verify(self, answer: str) -> Verdict:
        grade = countdown_tasks.verify if self.answer_format == "expression" else countdown_tasks.verify_steps
        return grade(self.task, answer, allow_subset=self.allow_subset, format_reward=self.format_reward)

    def expert_answer(self) -> str:
        return countdown_tasks.expert_answer(self.task, self.answer_format, allow_subset=self.allow_subset)

    @classmethod
    def answer_key(cls, task: dict[str, Any], actions: Sequence[str], verdict: Mapping[str, Any]) -> str | None:
        """The value of the final answer's expression, when it parses and uses exactly the given numbers (the target
        is never looked at); None: no answer."""
        content = extract_answer(actions[-1] if actions else "")
        if content is None:
            return None
        expression = content.rpartition("=")[0] if "=" in content else content
        try:
            expr = parse(expression)
        except ExprError:
            return None
        if sorted(expr.literals) != sorted(task.get("numbers", [])):
            return None
        return format_value(expr.value)

    # search over first moves (expert iteration's `search`): the policy finishes each smaller task
    def decompose(self, task: dict[str, Any], n: int, rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
        """Up to `n` random legal first moves on `task`, each with the smaller task it leaves (the same target,
        the move's result in place of its operands): `[(move, subtask), ...]`. Needs step answers."""
        if self.answer_format == "expression":
            raise ValueError("search over first moves needs step answers: set answer_format='steps' or "
                             "'steps-with-state' on Countdown-v0")
        parsed = CountdownTask.from_dict(task)
        if len(parsed.numbers) < 3:
            return []
        moves = admissible_moves(list(parsed.numbers))
        out = []
        for move in rng.sample(moves, min(n, len(moves))):
            step = check_move(list(parsed.numbers), move)
            assert not isinstance(step, str)
            out.append((str(step), {"numbers": apply_move(list(parsed.numbers), step), "target": parsed.target}))
        return out

    def compose(self, task: dict[str, Any], move: str, sub_answer: str) -> str | None:
        """The whole answer to `task`: `move`, then the steps of `sub_answer` (a verified answer to the smaller
        task `move` leaves), in this env's answer format; None when `sub_answer` does not verify."""
        parsed = CountdownTask.from_dict(task)
        first = check_move(list(parsed.numbers), move, need_result=True)
        if isinstance(first, str):
            return None
        rest = read_steps(CountdownTask(tuple(apply_move(list(parsed.numbers), first)), parsed.target), sub_answer)
        if rest is None:
            return None
        return f"<answer>{render_steps(parsed, [first, *rest], self.answer_format)}</answer>"

    # guided traces (expert iteration's `guided`): the expert's guidance on a task the policy failed
    def check_guidance(self, kind: str) -> None:
        """A ValueError when this env cannot give guidance of `kind` (see `guidance`)."""
        countdown_tasks.guidance(CountdownTask((1, 1), 2), kind, self.answer_format)

    def guidance(self, task: dict[str, Any], kind: str) -> str | None:
        """`landmarks`, `hints` or `prefix` for `task` in this env's answer format (module function `guidance`); None if none."""
        return countdown_tasks.guidance(CountdownTask.from_dict(task), kind, self.answer_format)


def state_line(target: int, values: list[int], steps: list[Step]) -> str:
    """Stream of Search's state: `Current State: 24:[8, 3], Operations: ['5+3=8']`."""
    return f"Current State: {target}:[{', '.join(map(str, values))}], Operations: [{', '.join(repr(str(s)) for s in steps)}]"


def admissible_moves(values: list[int]) -> list[str]:
    """Every legal move on `values`: `a+b`, `a*b`, `a-b` (a >= b), `a/b` (exact)."""
    out: list[str] = []
    for i in range(len(values)):
        for j in range(len(values)):
            a, b = values[i], values[j]
            if i == j:
                continue
            if i < j:
                out += [f"{a}+{b}", f"{a}*{b}"]
            if a >= b:
                out.append(f"{a}-{b}")
            if b and a % b == 0:
                out.append(f"{a}/{b}")
    return list(dict.fromkeys(out))


class CountdownStepsEnv(CountdownFamily, TextEnv):
    """Countdown one operation per step, with Stream of Search's state and rules.

    ## Action Space
    Text: one move `a op b` on two of the current numbers (`8*3`, optionally `8*3=24`, optionally in
    `<answer>` tags). Subtraction must not go below zero and division must be exact.
    ## Observation Space
    Text: the instruction, then `Current State: <target>:[<numbers>], Operations: [...]` after every move.
    ## Reward
    1.0 on the step that leaves the target as the last number; 0 otherwise.
    ## Episode End
    Terminates when one number is left, or after more than `max_invalid_moves` invalid moves.
    `info["admissible_commands"]` lists the legal moves.
    ## Arguments
    - `split`: "train", "test-seen" or "test-unseen" (held-out: never in train)
    - `difficulty`: "easy" 3 numbers, "medium" 4, "hard" 5-6; the knobs of `CountdownConfig` below refine it
    - `max_invalid_moves`: invalid moves allowed before the episode ends (failed); default 3
    - `instruction`: "full" (the rules in words) or "compact" (no instructions, the state as `24:[8, 3, 2]`)
    ## Version History
    v0: initial version.
    """

    def __init__(self, render_mode: str | None = None, *, split: str = "train", difficulty: str | None = None,
                 max_invalid_moves: int = 3, instruction: str = "full", **knobs: Any):
        super().__init__(render_mode, split=split, difficulty=difficulty,
                         env_args=("max_invalid_moves", "instruction"), **knobs)
        self.instruction = check_choice("CountdownSteps instruction", instruction, INSTRUCTIONS)
        if not is_int(max_invalid_moves) or max_invalid_moves < 0:
            raise ValueError(f"max_invalid_moves must be an integer >= 0, got {max_invalid_moves!r}")
        self.max_invalid_moves = max_invalid_moves
        self.values: list[int] = []
        self.steps: list[Step] = []
        self.invalid_moves = 0

    def _state(self) -> tuple[str, dict[str, Any]]:
        line = (f"{self.task.target}:[{', '.join(map(str, self.values))}]" if self.instruction == "compact"
                else state_line(self.task.target, self.values, self.steps))
        return line, {"admissible_commands": admissible_moves(self.values) if not self.done else []}

    def _begin(self) -> tuple[str, dict[str, Any]]:
        self.values, self.steps, self.invalid_moves = list(self.task.numbers), [], 0
        if self.instruction == "compact":
            return self._state()
        numbers = ", ".join(map(str, self.task.numbers))
        intro = (f"Using the numbers [{numbers}], reach {self.task.target}. Each move combines two of the current "
                 "numbers with +, -, * or / and replaces them with the result (no negative results, exact "
                 "division only). Write one move per turn, like 8*3. The game ends when one number is left.\n")
        observation, info = self._state()
        return intro + observation, info

    def _act(self, action: str) -> tuple[str, float, bool, bool, Verdict | None, dict[str, Any]]:
        move = check_move(self.values, action)
        if isinstance(move, str):
            self.invalid_moves += 1
            if self.invalid_moves > self.max_invalid_moves:
                self.done = True
                verdict = self._verdict(False, f"too many invalid moves ({self.invalid_moves}; at most "
                                               f"{self.max_invalid_moves}); the last: {move}")
                return verdict.feedback, 0.0, True, False, verdict, {"admissible_commands": []}
            observation, info = self._state()
            return f"Invalid move: {move}.\n{observation}", 0.0, False, False, None, info
        self.values = apply_move(self.values, move)
        self.steps.append(move)
        if len(self.values) > 1:
            observation, info = self._state()
            return observation, 0.0, False, False, None, info
        self.done = True
        final = self.values[0]
        if final == self.task.target:
            verdict = self._verdict(True, f"correct: reached {final} with {', '.join(map(str, self.steps))}")
        else:
            verdict = self._verdict(False, f"the last number is {final}, the target is {self.task.target}")
        observation, info = self._state()
        return f"{observation}\n{verdict.feedback}", verdict.reward, True, False, verdict, info

    @classmethod
    def answer_key(cls, task: dict[str, Any], actions: Sequence[str], verdict: Mapping[str, Any]) -> str | None:
        """The last number left (the verdict's `final`); None when the episode did not get there."""
        final = verdict.get("details", {}).get("final")
        return None if final is None else str(final)

    def _verdict(self, success: bool, feedback: str) -> Verdict:
        return Verdict(1.0 if success else 0.0, success, feedback,
                       {"operations": [str(s) for s in self.steps], "moves": len(self.steps),
                        "invalid_moves": self.invalid_moves, "final": self.values[0] if len(self.values) == 1 else None})

    def expert_actions(self) -> list[str]:
        if self.done:
            return []
        found = solve_steps(self.values, self.task.target, integer_only=True)
        if found is None:
            raise UnsolvableTaskError(f"no whole-number moves reach {self.task.target} from {self.values}")
        return [f"{format_value(Fraction(s.left))}{s.op}{format_value(Fraction(s.right))}" for s in found[1]]

    # guided traces (expert iteration's `guided`): landmarks and hints; no prefix (a prefix here is moves
    # the expert plays, not the start of an answer the policy continues)
    def check_guidance(self, kind: str) -> None:
        """A ValueError when this env cannot give guidance of `kind`: CountdownSteps-v0 gives landmarks and hints."""
        check_choice("guidance kind", kind, GUIDANCE_KINDS)
        if kind == "prefix":
            raise ValueError("CountdownSteps-v0 plays one move per turn, so there is no answer to start for the "
                             "policy: use guidance 'landmarks' or 'hints' (or 'prefix' on Countdown-v0)")

    def guidance(self, task: dict[str, Any], kind: str) -> str | None:
        """`landmarks` or `hints` for `task` (module function `guidance`); None if none."""
        self.check_guidance(kind)
        return countdown_tasks.guidance(CountdownTask.from_dict(task), kind, "steps")
