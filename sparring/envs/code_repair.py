"""CodeRepair: fix a program over several turns, seeing its failing tests after each attempt.

The self-repair setting of the self-debugging papers (and Guided-ReST's code self-repair): the
episode starts from a buggy program (or from nothing), each action is a whole new program, and the
next observation lists the VISIBLE tests it fails (input, expected, got, error), until every test
passes or `max_turns` attempts are spent.

Visible and held-out tests: success needs every test, and the held-out ones are never shown (not their
inputs, not their expected values, not how many fail), so a program that only maps the inputs it has
seen to the outputs it has seen (a lookup table built from the feedback) cannot succeed. CodeSynth:
the prompt's examples and the first half of the hidden tests are visible, the other half is held out.
HumanEval: the check's assertions in odd positions (the 2nd, 4th, ...) are held out. A task with a
single test (a HumanEval check with one assertion, a CodeSynth task with no hidden tests) has nothing
to hold out: there, success rests on visible tests alone. Tasks come from any code family: `CodeSynth-v0` (the default) or
`HumanEval-v0`. A buggy program is the family's reference with one seeded mutation that makes at
least one test fail: a changed constant or op of a CodeSynth program, a flipped operator, comparison,
constant or boolean in a HumanEval canonical solution. The expert answers with the reference.

    >>> env = gymnasium.make("CodeRepair-v0", difficulty="easy", max_turns=3)
    >>> observation, info = env.reset(seed=0)       # the examples, the buggy program and its failures
"""

from __future__ import annotations

import ast
import random
from dataclasses import dataclass
from typing import Any

from sparring.envs import codesynth, humaneval
from sparring.envs.base import TextEnv, Verdict, check_choice, check_task_keys, item_rng
from sparring.envs.code_grading import (
    REWARDS,
    Grade,
    TestOutcome,
    check_limits,
    check_sandbox_spec,
    extract_code,
    grade,
    resolve_sandbox,
)
from sparring.envs.code_harness import same_value
from sparring.errors import UnknownNameError

SOURCES = ("CodeSynth-v0", "HumanEval-v0")
STARTS = ("buggy", "scratch")
SHAPINGS = ("none", "improvement")
MAX_PROGRAM_CHARS = 20_000
MAX_MUTANT_TRIES = 40
MAX_SHOWN_FAILURES = 5


def held_out(source: str, task: Any, total: int) -> frozenset[int]:
    """The positions (in the grade's outcomes) of the tests never shown to the model (see the module docstring)."""
    if source == "CodeSynth-v0":
        return frozenset(range(len(task.examples) + len(task.tests) // 2, total))
    return frozenset(range(1, total, 2))


def visible_feedback(result: Grade, hidden: frozenset[int]) -> str:
    """What the model is told about an attempt: the visible tests it fails, nothing of the held-out ones
    beyond that some fail (which the episode's going on tells anyway)."""
    if result.load_error or result.success:
        return result.feedback(MAX_SHOWN_FAILURES)
    visible = [o for i, o in enumerate(result.outcomes) if i not in hidden]
    total = result.total - len(hidden)
    failures = [o for o in visible if not o.passed] + [TestOutcome(False, "(a test without a result)")] * \
        max(0, total - len(visible))
    if not failures:
        return f"all {total} visible tests pass, but the program fails held-out tests (they are not shown)"
    lines = [f"{len(failures)} of {total} visible tests failed:"]
    lines += [f"- {o.line()}" for o in failures[:MAX_SHOWN_FAILURES]]
    if len(failures) > MAX_SHOWN_FAILURES:
        lines.append(f"- ... and {len(failures) - MAX_SHOWN_FAILURES} more")
    return "\n".join(lines)


# ---- task ---------------------------------------------------------------------------------------

def _source_task_type(source: str) -> type:
    return codesynth.CodeSynthTask if source == "CodeSynth-v0" else humaneval.HumanEvalTask


@dataclass(frozen=True)
class CodeRepairTask:
    source: str  # the env id of the family the task comes from
    task: Any  # that family's task
    program: str | None  # the program to repair; None: write one from scratch

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "task": self.task.to_dict(), "program": self.program}

    @classmethod
    def from_dict(cls, data: Any) -> CodeRepairTask:
        """Validate `{"source": "CodeSynth-v0" | "HumanEval-v0", "task": {...}, "program": str | None}`."""
        keys = {"source", "task", "program"}
        check_task_keys("CodeRepair", data, keys)
        source = check_choice("CodeRepair source", data["source"], SOURCES)
        program = data["program"]
        if program is not None and (not isinstance(program, str) or len(program) > MAX_PROGRAM_CHARS):
            raise ValueError(f"task 'program' must be None or a string of at most {MAX_PROGRAM_CHARS} characters")
        return cls(source, _source_task_type(source).from_dict(data["task"]), program)


@dataclass(frozen=True)
class CodeRepairConfig:
    """Where tasks come from and how the episode starts."""

    source: str = "CodeSynth-v0"   # the family the problems come from: CodeSynth-v0 or HumanEval-v0
    source_difficulty: str = "easy"  # a preset of the source family
    start: str = "buggy"  # "buggy": repair a mutated reference; "scratch": write the first program too

    def __post_init__(self) -> None:
        check_choice("CodeRepair source", self.source, SOURCES)
        check_choice("CodeRepair start", self.start, STARTS)
        presets = codesynth.PRESETS if self.source == "CodeSynth-v0" else humaneval.PRESETS
        if self.source_difficulty not in presets:
            raise UnknownNameError(f"{self.source} difficulty (source_difficulty)", self.source_difficulty, presets)


PRESETS = {
    "easy": CodeRepairConfig(source_difficulty="easy"),
    "medium": CodeRepairConfig(source_difficulty="medium"),
    "hard": CodeRepairConfig(source_difficulty="hard"),
}


# ---- buggy programs -----------------------------------------------------------------------------

def codesynth_mutants(task: codesynth.CodeSynthTask, rng: random.Random) -> list[str]:
    """Every one-step mutation of the program (another constant, or another op of the same types) that
    fails a test by the DSL's own reckoning, rendered as code, in a seeded order."""
    out = []
    for position, step in enumerate(task.program):
        op = codesynth.OPS[step.op]
        for other in codesynth.OPS.values():
            if other.source != op.source or other.target != op.target:
                continue
            for k in other.constants or (None,):
                replacement = codesynth.Step(other.name, k)
                if replacement == step:
                    continue
                program = task.program[:position] + (replacement,) + task.program[position + 1:]
                if _fails_a_test(program, task):
                    out.append(codesynth.render_program(program))
    rng.shuffle(out)
    return list(dict.fromkeys(out))


def _fails_a_test(program: tuple[codesynth.Step, ...], task: codesynth.CodeSynthTask) -> bool:
    for given, output in task.examples + task.tests:
        try:
            if not same_value(codesynth.run_program(program, given), output):
                return True
        except Exception:  # noqa: BLE001  (the mutant raises on this input: it fails)
            return True
    return False


_FLIPS: dict[type, type] = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult,
                            ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
                            ast.NotEq: ast.Eq, ast.And: ast.Or, ast.Or: ast.And}


class _Mutator(ast.NodeTransformer):
    """Applies the `target`-th of the mutation sites it visits (counting them all when target is -1)."""

    def __init__(self, target: int = -1):
        self.target, self.sites = target, 0

    def _site(self) -> bool:
        hit = self.sites == self.target
        self.sites += 1
        return hit

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        if type(node.op) in _FLIPS and self._site():
            node.op = _FLIPS[type(node.op)]()
        return node

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        self.generic_visit(node)
        if self._site():
            node.op = _FLIPS[type(node.op)]()
        return node

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        if type(node.ops[0]) in _FLIPS and self._site():
            node.ops[0] = _FLIPS[type(node.ops[0])]()
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if type(node.value) is bool and self._site():
            return ast.copy_location(ast.Constant(not node.value), node)
        if type(node.value) is int and self._site():
            return ast.copy_location(ast.Constant(node.value + 1), node)
        return node


def humaneval_mutants(task: humaneval.HumanEvalTask, rng: random.Random) -> list[str]:
    """The canonical solution with one operator, comparison, boolean or integer constant changed, for
    every site in the solution's body, in a seeded order (whether each fails a test is checked by running it)."""
    problem = task.problem
    source = problem["prompt"] + problem["canonical_solution"]
    tree = ast.parse(source)
    function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == problem["entry_point"])
    counter = _Mutator()
    counter.visit(function)
    mutants = []
    for site in range(counter.sites):
        mutated = ast.parse(source)
        target = next(n for n in mutated.body if isinstance(n, ast.FunctionDef) and n.name == problem["entry_point"])
        _Mutator(site).visit(target)
        target.body = [s for s in target.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)
                                                       and isinstance(s.value.value, str))]  # without the docstring
        mutants.append(ast.unparse(target))
    rng.shuffle(mutants)
    return mutants


# ---- guidance (expert iteration's guided traces) ------------------------------------------------

GUIDANCE_KINDS = ("landmarks", "hints", "prefix")


def _tokens(program: str) -> list[tuple[str, str, int, int, int]] | None:
    """The program's tokens as (kind, text, line, start column, end column), without layout tokens; None when
    it does not tokenize."""
    import io
    import token
    import tokenize

    layout = {token.NEWLINE, token.NL, token.INDENT, token.DEDENT, token.COMMENT, token.ENDMARKER}
    try:
        found = list(tokenize.generate_tokens(io.StringIO(program).readline))
    except (tokenize.TokenError, SyntaxError):
        return None
    out = []
    for t in found:
        if t.type in layout:
            continue
        kind = ("boolean" if t.string in ("True", "False") else "logical operator" if t.string in ("and", "or", "not")
                else "constant" if t.type in (token.NUMBER, token.STRING) else "operator" if t.type == token.OP
                else "name")
        out.append((kind, t.string, t.start[0], t.start[1], t.end[1] if t.end[0] == t.start[0] else t.start[1]))
    return out


def repair_hint(buggy: str, reference: str) -> str | None:
    """Where the program to repair differs from the reference and what kind of thing differs there, never the
    fix: `the bug is on line 3, at '!=': an operator is wrong`. Built from difflib's matching of the two
    programs' tokens, one place per line of the buggy program; the quoted text is the buggy program's own
    (already in the prompt), the reference's tokens are only named by kind. None when the programs do not
    tokenize or do not differ."""
    import difflib

    old, new = _tokens(buggy), _tokens(reference)
    if old is None or new is None or not old:
        return None
    matcher = difflib.SequenceMatcher(None, [t[1] for t in old], [t[1] for t in new], autojunk=False)
    places: dict[int, list[Any]] = {}  # buggy line -> [first token, end token, kinds changed]
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        a, b = (i1, i2) if i2 > i1 else (max(0, i1 - 1), min(len(old), i1 + 1))  # an insertion: its neighbours
        place = places.setdefault(old[a][2], [a, b, set()])
        place[0], place[1] = min(place[0], a), max(place[1], b)
        place[2] |= {t[0] for t in old[i1:i2] + new[j1:j2]}
    if not places:
        return None
    said, lines = [], buggy.splitlines()
    for line, (a, b, kinds) in sorted(places.items()):
        last = max((t for t in old[a:b] if t[2] == line), key=lambda t: t[4])
        shown = lines[line - 1][old[a][3]:last[4]] if line <= len(lines) else old[a][1]
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        if len(kinds) == 1 and b - a == 1:
            kind = next(iter(kinds))
            what = f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} is wrong"
        elif "name" not in kinds:
            what = f"its {' and '.join(sorted(kinds))} are wrong"
        else:
            what = "this part computes the wrong thing"
        said.append(f"on line {line}, at {shown!r}: {what}")
    return "the bug is " + "; and ".join(said)


def reference_program(source: str, task: Any) -> str:
    """The reference solution written as the buggy programs are (CodeSynth: the one-line program; HumanEval:
    the function without its docstring, through ast.unparse), so the two differ only where the bug is."""
    if source == "CodeSynth-v0":
        return codesynth.render_program(task.program)
    problem = task.problem
    tree = ast.parse(problem["prompt"] + problem["canonical_solution"])
    function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == problem["entry_point"])
    function.body = [s for s in function.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)
                                                       and isinstance(s.value.value, str))] or [ast.Pass()]
    return ast.unparse(function)


# ---- the environment ----------------------------------------------------------------------------

class CodeRepairEnv(TextEnv):
    """CodeRepair: submit a program, read its failing tests, revise, up to `max_turns` attempts.

    ## Action Space
    Text: a whole program (the last ```python block that defines the entry point, or the raw text).
    ## Observation Space
    Text: first the problem (the source family's prompt) with the program to repair and the visible
    tests it fails; after each attempt, the visible tests that attempt fails (input, expected, got,
    error). Held-out tests decide success too but are never shown (module docstring).
    ## Reward
    `shaping="none"`: 0 until the last step, then 1.0 on success, else the fraction of tests passed
    (`reward="fraction"`) or 0 (`reward="binary"`, the default). `shaping="improvement"`: every step
    earns the gain in the fraction of tests passed over the previous program (the starting program,
    or nothing), so the episode's return is the final fraction minus the starting one. The verdict's
    reward is the episode's return.
    ## Episode End
    Terminates when an attempt passes every test, or after `max_turns` attempts.
    ## Arguments
    - `split`: the source's splits: CodeSynth's "train", "test-seen" or "test-unseen"; HumanEval's "test"
    - `difficulty`: the source family's preset, "easy", "medium" or "hard" (sets `source_difficulty`)
    - `max_turns`: attempts allowed, 1..100 (default 3)
    - `shaping`: "none" (reward at the end) or "improvement" (each step earns its gain in tests passed)
    - `reward`: with shaping "none": "binary" (1.0 on success, else 0) or "fraction" (of the tests passed)
    - `instruction`: "full" or "compact" (the source's prompt mode)
    - `sandbox`: where programs run: "local", "docker" or a `sparring.sandboxes` Sandbox
    - `timeout_s`: wall seconds per program run
    - `call_timeout_s`: CPU seconds per test call
    - `memory_mb`: memory cap of a program run
    ## Version History
    v0: initial version.
    """

    family = "code"
    skill_kind = "function"  # a function a verified answer defined, shown to later tasks as code to call or copy
    task_type = CodeRepairTask
    config_class = CodeRepairConfig
    presets = PRESETS
    splits = codesynth.SPLITS

    def __init__(self, render_mode: str | None = None, *, split: str = "train", difficulty: str | None = None,
                 max_turns: int = 3, shaping: str = "none", reward: str = "binary", instruction: str = "full",
                 sandbox: Any = "local", timeout_s: float = 10.0, call_timeout_s: float = 2.0, memory_mb: int = 512,
                 **knobs: Any):
        super().__init__(render_mode, split=split, difficulty=difficulty,
                         env_args=("max_turns", "shaping", "reward", "instruction", "sandbox", "timeout_s",
                                   "call_timeout_s", "memory_mb"), **knobs)
        if isinstance(max_turns, bool) or not isinstance(max_turns, int) or not 1 <= max_turns <= 100:
            raise ValueError(f"max_turns must be an integer in 1..100, got {max_turns!r}")
        self.max_turns = max_turns
        self.shaping = check_choice("CodeRepair shaping", shaping, SHAPINGS)
        self.reward_mode = check_choice("CodeRepair reward", reward, REWARDS)
        self.instruction = check_choice("CodeRepair instruction", instruction, ("full", "compact"))
        self.sandbox_spec = check_sandbox_spec(sandbox)
        self.limits = check_limits(timeout_s, call_timeout_s, memory_mb)
        self.turns, self.fractions = 0, []

    # ---- tasks ----------------------------------------------------------------------------------
    def _source_task(self, config: CodeRepairConfig, rng: random.Random) -> Any:
        if config.source == "CodeSynth-v0":
            split = self.split
            return codesynth.sample_task(codesynth.PRESETS[config.source_difficulty], split, rng)
        return humaneval.HumanEvalTask(rng.choice(humaneval.PRESETS[config.source_difficulty].task_ids()))

    def _buggy_program(self, source: str, task: Any, rng: random.Random) -> str | None:
        if source == "CodeSynth-v0":
            mutants = codesynth_mutants(task, rng)
            return mutants[0] if mutants else None
        for mutant in humaneval_mutants(task, rng)[:MAX_MUTANT_TRIES]:  # keep one that fails cleanly
            result = self._grade(source, task, mutant)
            if result.load_error is None and result.status == "ok" and not result.success and \
                    all("timed out" not in (o.error or "") for o in result.outcomes):
                return mutant
        return None

    def sample_task(self, rng: random.Random, config: CodeRepairConfig) -> CodeRepairTask:
        for _ in range(1000):
            task = self._source_task(config, rng)
            if config.start == "scratch":
                return CodeRepairTask(config.source, task, None)
            program = self._buggy_program(config.source, task, rng)
            if program is not None:
                return CodeRepairTask(config.source, task, program)
        raise ValueError(f"could not find a program to repair for {config}")

    def generate_task(self, index: int, *, seed: int = 0, config: CodeRepairConfig | None = None) -> CodeRepairTask:
        """Item `index` for `seed`: a pure function of them (for HumanEval, as long as the sandbox runs
        the mutants the same way: one that times out is skipped)."""
        return self.sample_task(item_rng("CodeRepair", self.split, self.splits, seed, index), config or self.config)

    # ---- grading --------------------------------------------------------------------------------
    def _grade(self, source: str, task: Any, code: str) -> Grade:
        sandbox = resolve_sandbox(self.sandbox_spec)
        if source == "CodeSynth-v0":
            return grade(sandbox, code, task.suite(), **self.limits)
        return grade(sandbox, code, humaneval.HumanEvalTests(task.task_id), **self.limits)

    def _program(self, answer: str) -> str:
        if self.task.source == "CodeSynth-v0":
            return extract_code(answer, codesynth.ENTRY_POINT)
        return humaneval.assemble_program(self.task.task, answer)

    def _problem(self) -> str:
        if self.task.source == "CodeSynth-v0":
            return codesynth.prompt(self.task.task, self.instruction)
        return humaneval.prompt(self.task.task, "full" if self.instruction == "full" else "raw")

    def _begin(self) -> tuple[str, dict[str, Any]]:
        self.turns = 0
        problem = self._problem()
        if self.task.program is None:
            self.fractions = [0.0]
            return f"{problem}\n\nYou have {self.max_turns} attempts; after each you see the tests it fails.", {}
        start = self._grade(self.task.source, self.task.task, self._program(self.task.program))
        self.fractions = [start.fraction]
        return (f"{problem}\n\nThis program fails some tests:\n```python\n{self.task.program.rstrip()}\n```\n"
                f"{self._feedback(start)}\nWrite a corrected program ({self.max_turns} attempts).", {})

    def _feedback(self, result: Grade) -> str:
        return visible_feedback(result, held_out(self.task.source, self.task.task, result.total))

    def _act(self, action: str) -> tuple[str, float, bool, bool, Verdict | None, dict[str, Any]]:
        self.turns += 1
        result = self._grade(self.task.source, self.task.task, self._program(action))
        self.fractions.append(result.fraction)
        done = result.success or self.turns >= self.max_turns
        if self.shaping == "improvement":
            reward = self.fractions[-1] - self.fractions[-2]
        elif done:
            reward = result.verdict(self.reward_mode).reward
        else:
            reward = 0.0
        if not done:
            left = self.max_turns - self.turns
            return (f"{self._feedback(result)}\nRevise the program ({left} attempt{'s' if left > 1 else ''} left).",
                    reward, False, False, None, {})
        base = result.verdict(self.reward_mode)
        total = self.fractions[-1] - self.fractions[0] if self.shaping == "improvement" else reward
        hidden = held_out(self.task.source, self.task.task, result.total)
        failures = [o.to_dict() for i, o in enumerate(result.outcomes) if i not in hidden and not o.passed]
        details = {**base.details, "failures": failures[:MAX_SHOWN_FAILURES], "held_out": len(hidden),
                   "turns": self.turns, "fractions": self.fractions}
        verdict = Verdict(total, result.success, self._feedback(result), details)
        return verdict.feedback, reward, True, False, verdict, {}

    # guided traces (expert iteration's `guided`): a hint from the reference solution's diff
    def check_guidance(self, kind: str) -> None:
        """A ValueError when this env cannot give guidance of `kind`: CodeRepair-v0 gives `hints` on buggy starts."""
        check_choice("guidance kind", kind, GUIDANCE_KINDS)
        if kind != "hints":
            raise ValueError(f"CodeRepair-v0 has no {kind!r} guidance: a program has no intermediate results to use "
                             "as landmarks, and any prefix of the reference either already holds the fix or is the "
                             "buggy program's own start; use guidance 'hints' (where the bug is and what kind)")
        if self.config.start != "buggy":
            raise ValueError("CodeRepair-v0's hints come from the program to repair, and start='scratch' has none: "
                             "set start='buggy' (the default)")

    def guidance(self, task: dict[str, Any], kind: str) -> str | None:
        """`hints`: where the program to repair differs from the reference and what kind of token differs there
        (`repair_hint`), not the fix; None for a task with no program to repair."""
        self.check_guidance(kind)
        parsed = CodeRepairTask.from_dict(task)
        if parsed.program is None:
            return None
        return repair_hint(parsed.program, reference_program(parsed.source, parsed.task))

    def expert_actions(self) -> list[str]:
        if self.done:
            return []
        if self.task.source == "CodeSynth-v0":
            return [codesynth.expert_solution(self.task.task)]
        return [humaneval.expert_solution(self.task.task)]
