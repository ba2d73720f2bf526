"""Grading model-written code: run it in a sandbox on test inputs, judge the returned values outside.

Every code env (HumanEval-v0, CodeSynth-v0, CodeRepair-v0) grades through `grade`:

1. the program and the harness (`sparring.envs.code_harness`) go into a sandbox together with the
   test INPUTS only; the expected outputs never enter it;
2. the harness calls the entry point on each input and sends each return value back as strictly
   typed JSON behind a random per-run marker (exact builtin types only);
3. here, outside, the values are decoded into fresh builtin objects and a `TestSuite` judges them.

So an early `exit(0)`, a printed "all tests passed", a forged result line, a monkeypatched builtin or
a return value with a rigged `__eq__` earns nothing: the only way to produce the expected values is
to compute them. A call without a result (a crash, a timeout, a killed run) is a failed test.

    >>> suite = IOTestSuite("f", [Call([2]), Call([5])], [4, 25])
    >>> grade(shared_sandbox("local"), "def f(x): return x * x", suite).success     # doctest: +SKIP
    True
"""

from __future__ import annotations

import atexit
import hashlib
import json
import multiprocessing.util
import os
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sparring.envs.base import Verdict, check_choice
from sparring.envs.code_harness import decode_value, encode_value, same_value
from sparring.sandboxes import BACKENDS as SANDBOX_BACKENDS
from sparring.sandboxes import SandboxError, make_sandbox

HARNESS_SOURCE = (Path(__file__).parent / "code_harness.py").read_text()
REWARDS = ("fraction", "binary")
MAX_RESULT_CHARS = 100_000
MAX_TIMEOUTS = 2  # after this many calls time out, the harness runs no more (an endless loop costs two timeouts)
MAX_SHOWN_CHARS = 200
COUNTED_STATUSES = ("ok", "error")  # the runs whose results count: the harness ended on its own
CACHE_SIZE = 20_000
SHARED_MEMORY_MB = 4096  # the ceiling of the shared sandboxes; each run sets its own limits below it
SHARED_TIMEOUT_S = 600.0


# ---- what goes in and what comes back ------------------------------------------------------------

@dataclass(frozen=True)
class Call:
    """One call of the entry point: positional and keyword arguments, plain builtin values."""

    args: Sequence[Any]
    kwargs: dict[str, Any] = field(default_factory=dict)

    def encoded(self) -> dict[str, Any]:
        return {"args": encode_value(list(self.args)), "kwargs": encode_value(dict(self.kwargs))}

    def render(self, name: str) -> str:
        parts = [show_value(a) for a in self.args] + [f"{k}={show_value(v)}" for k, v in self.kwargs.items()]
        return clip(f"{name}({', '.join(parts)})")


@dataclass(frozen=True)
class CallResult:
    """What one call returned (decoded outside the sandbox), or why there is no value."""

    value: Any = None
    error: str | None = None
    timeout: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Execution:
    """One sandbox run of a program over a list of calls."""

    results: list[CallResult]
    load_error: str | None
    status: str  # the sandbox's status of the whole run
    isolation: str

    @property
    def cacheable(self) -> bool:
        """A result that another run would repeat (no timer or resource limit decided it)."""
        return self.status in ("ok", "error") and not any(r.timeout for r in self.results)


@dataclass(frozen=True)
class TestOutcome:
    passed: bool
    call: str  # the input, as a call: `f([1, 2], 3)`
    expected: str | None = None
    got: str | None = None
    error: str | None = None
    check: str | None = None  # the assertion that judged it, where the test is one

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "input": self.call, "expected": self.expected, "got": self.got,
                "error": self.error, "check": self.check}

    def line(self) -> str:
        text = f"{self.call}"
        if self.expected is not None:
            text += f": expected {self.expected}"
        if self.error:
            text += f", error: {self.error}" if self.expected is not None else f": error: {self.error}"
        elif self.got is not None:
            text += f", got {self.got}"
        if self.check and not self.error:
            text += f" (check: {self.check})"
        return text


class TestSuite(Protocol):
    """The tests of one task: the inputs that go into the sandbox, and the judge of what comes back."""

    entry_point: str
    calls: list[Call]
    total: int

    def judge(self, results: list[CallResult]) -> list[TestOutcome]: ...


class IOTestSuite:
    """Input-output tests: call i passes when its value is `same_value` as `expected[i]` (exact types)."""

    def __init__(self, entry_point: str, calls: list[Call], expected: list[Any]):
        if len(calls) != len(expected):
            raise ValueError(f"{len(calls)} calls but {len(expected)} expected values")
        self.entry_point, self.calls, self.expected = entry_point, calls, expected
        self.total = len(calls)

    def judge(self, results: list[CallResult]) -> list[TestOutcome]:
        outcomes = []
        for call, want, got in zip(self.calls, self.expected, results):
            shown = call.render(self.entry_point)
            if not got.ok:
                outcomes.append(TestOutcome(False, shown, show_value(want), None, got.error))
            else:
                outcomes.append(TestOutcome(same_value(got.value, want), shown, show_value(want), show_value(got.value)))
        return outcomes


@dataclass(frozen=True)
class Grade:
    outcomes: list[TestOutcome]
    total: int
    load_error: str | None = None
    status: str = "ok"
    isolation: str = ""

    @property
    def passed(self) -> int:
        return sum(o.passed for o in self.outcomes)

    @property
    def fraction(self) -> float:
        return min(self.passed, self.total) / self.total if self.total else 0.0

    @property
    def success(self) -> bool:
        return self.load_error is None and len(self.outcomes) == self.total and self.passed == self.total

    def feedback(self, max_failures: int = 5) -> str:
        if self.load_error:
            return f"the program failed before any test ran: {self.load_error}"
        if self.success:
            return f"all {self.total} tests passed"
        failures = [o for o in self.outcomes if not o.passed]
        lines = [f"{self.total - self.passed} of {self.total} tests failed:"]
        lines += [f"- {o.line()}" for o in failures[:max_failures]]
        if len(failures) > max_failures:
            lines.append(f"- ... and {len(failures) - max_failures} more")
        return "\n".join(lines)

    def verdict(self, reward: str = "fraction", max_failures: int = 5) -> Verdict:
        """The env's verdict: reward 1.0 when every test passes, else the fraction passed (or 0 with "binary")."""
        value = 1.0 if self.success else (self.fraction if reward == "fraction" else 0.0)
        details = {"passed": self.passed, "total": self.total, "load_error": self.load_error,
                   "status": self.status, "isolation": self.isolation,
                   "failures": [o.to_dict() for o in self.outcomes if not o.passed][:max_failures]}
        return Verdict(value, self.success, self.feedback(max_failures), details)


def clip(text: str, limit: int = MAX_SHOWN_CHARS) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def show_value(value: Any) -> str:
    try:
        return clip(repr(value))
    except (RecursionError, ValueError):  # too deep, or an int past the conversion limit
        return f"<a {type(value).__name__} too large to show>"


# ---- code in the action ---------------------------------------------------------------------------

_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:^[ \t]*```|\Z)", re.S | re.M)
_PYTHON = ("python", "py", "python3", "")


def extract_code(text: str, entry_point: str | None = None) -> str:
    """The program in a model's answer: the last fenced Python block (the last one that defines
    `entry_point`, when one does), an unclosed fence's remainder, or else the whole text."""
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(text)]
    if not blocks:
        return text
    python = [body for lang, body in blocks if lang in _PYTHON] or [body for _, body in blocks]
    if entry_point:
        defines = re.compile(rf"^\s*(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", re.M)
        python = [body for body in python if defines.search(body)] or python
    return python[-1]


# ---- running --------------------------------------------------------------------------------------

_cache: OrderedDict[str, Execution] = OrderedDict()
_cache_lock = threading.Lock()


def run_calls(sandbox: Any, program: str, entry_point: str, calls: list[Call], *, call_timeout_s: float = 3.0,
              timeout_s: float = 10.0, memory_mb: int = 512, use_cache: bool = True) -> Execution:
    """Run `program` in `sandbox`, call `entry_point` on each of `calls`, and decode what came back.

    Deterministic executions are cached by (program, calls, limits): the same answer to the same task
    is run once per process.
    """
    return run_calls_many(sandbox, [(program, entry_point, calls)], call_timeout_s=call_timeout_s,
                          timeout_s=timeout_s, memory_mb=memory_mb, use_cache=use_cache)[0]


def run_calls_many(sandbox: Any, jobs: list[tuple[str, str, list[Call]]], *, call_timeout_s: float = 3.0,
                   timeout_s: float = 10.0, memory_mb: int = 512, use_cache: bool = True) -> list[Execution]:
    """`run_calls` for many (program, entry point, calls) jobs at once, in parallel over the sandbox's
    workers (`run_many` where the sandbox has it); executions come back in job order."""
    executions: list[Execution | None] = [None] * len(jobs)
    requests, pending = [], []
    for position, (program, entry_point, calls) in enumerate(jobs):
        program = program.encode("utf-8", "replace").decode("utf-8")  # lone surrogates cannot be written to a file
        encoded = [call.encoded() for call in calls]
        key = hashlib.sha256(json.dumps([getattr(sandbox, "backend", type(sandbox).__name__), program, entry_point,
                                         encoded, call_timeout_s, timeout_s, memory_mb]).encode()).hexdigest()
        if use_cache:
            with _cache_lock:
                if key in _cache:
                    _cache.move_to_end(key)
                    executions[position] = _cache[key]
                    continue
        marker = f"@@sparring-{secrets.token_hex(12)}@@"
        config = {"marker": marker, "entry_point": entry_point, "calls": encoded, "call_timeout_s": call_timeout_s,
                  "max_result_chars": MAX_RESULT_CHARS, "max_timeouts": MAX_TIMEOUTS}
        requests.append({"code": HARNESS_SOURCE, "stdin": json.dumps(config), "files": {"solution.py": program},
                         "timeout_s": timeout_s, "memory_mb": memory_mb})
        pending.append((position, key, marker, len(calls)))
    if len(requests) > 1 and callable(getattr(sandbox, "run_many", None)):
        results = sandbox.run_many(requests)
    else:
        results = [sandbox.run(r.pop("code"), **r) for r in requests]
    failed = [r for r in results if r.status == "sandbox_error"]
    if failed and not getattr(sandbox, "available", lambda: True)():
        # the infrastructure failed, not the programs: grading them 0 would train on it; the caller stops instead
        raise SandboxError(f"the {getattr(sandbox, 'backend', 'sandbox')} sandbox is unavailable, so "
                           f"{len(failed)} program(s) could not be graded: {failed[0].stderr.strip()[-400:]}")
    for (position, key, marker, n_calls), result in zip(pending, results):
        execution = parse_results(result.stdout, marker, n_calls, result.status, result.exit_code,
                                  getattr(result, "isolation", ""))
        executions[position] = execution
        if use_cache and execution.cacheable:
            with _cache_lock:
                _cache[key] = execution
                while len(_cache) > CACHE_SIZE:
                    _cache.popitem(last=False)
    return executions  # type: ignore[return-value]


def parse_results(stdout: str, marker: str, n_calls: int, status: str, exit_code: int | None = 0,
                  isolation: str = "") -> Execution:
    """The harness's result lines in `stdout` as an `Execution`. Never raises: a malformed, duplicated or
    missing line makes that call a failure, and so does every value of a run whose status is not one of
    COUNTED_STATUSES (the sandbox, not the program, decides the status)."""
    found: dict[int, CallResult] = {}
    conflicts: set[int] = set()
    load_error = None
    for line in stdout.splitlines():
        if not line.startswith(marker):
            continue
        try:
            record = json.loads(line[len(marker):])
        except (ValueError, RecursionError):
            continue
        if type(record) is not dict:
            continue
        if set(record) == {"load_error"} and type(record["load_error"]) is str:
            load_error = clip(record["load_error"], 500)
            continue
        index = record.get("i")
        if type(index) is not int or not 0 <= index < n_calls:
            continue
        if set(record) == {"i", "value"}:
            try:
                parsed = CallResult(value=decode_value(record["value"]))
            except (ValueError, RecursionError, TypeError) as error:
                parsed = CallResult(error=f"the return value came back malformed: {clip(str(error), 100)}")
        elif set(record) in ({"i", "error"}, {"i", "error", "timeout"}) and type(record["error"]) is str:
            parsed = CallResult(error=clip(record["error"], 300), timeout=record.get("timeout") is True)
        else:
            continue
        if index in found and found[index] != parsed:
            conflicts.add(index)
        found.setdefault(index, parsed)
    ended = {"timeout": "the run went past its time limit", "memory": "the run went past its memory limit",
             "output_limit": "the run wrote too much output", "killed": "the run was killed",
             "sandbox_error": "the sandbox failed to run the program"}.get(status)
    if ended is None:
        ended = f"the program exited (code {exit_code}) before this test ran"
    results = []
    for i in range(n_calls):
        if status not in COUNTED_STATUSES and i in found and found[i].ok:
            # a run that did not end on its own (killed, timed out, out of memory, ...) proves nothing: what
            # stopped it may have been a forger who wrote its result lines first
            results.append(CallResult(error=f"not counted: {ended}", timeout=status == "timeout"))
        elif i in conflicts:
            results.append(CallResult(error="conflicting results for this test"))
        elif load_error is not None:
            results.append(CallResult(error=load_error))
        else:
            results.append(found.get(i, CallResult(error=f"no result: {ended}", timeout=status == "timeout")))
    return Execution(results, load_error, status, isolation)


def grade(sandbox: Any, program: str, suite: TestSuite, **limits: Any) -> Grade:
    """Run `program` on `suite`'s inputs in `sandbox` and judge the results outside."""
    return grade_many(sandbox, [(program, suite)], **limits)[0]


def grade_many(sandbox: Any, jobs: list[tuple[str, TestSuite]], **limits: Any) -> list[Grade]:
    """`grade` for many (program, suite) pairs, run in parallel over the sandbox's workers."""
    executions = run_calls_many(sandbox, [(program, suite.entry_point, suite.calls) for program, suite in jobs],
                                **limits)
    grades = []
    for (_, suite), execution in zip(jobs, executions):
        if execution.load_error is not None:
            grades.append(Grade([], suite.total, execution.load_error, execution.status, execution.isolation))
        else:
            grades.append(Grade(suite.judge(execution.results), suite.total, None, execution.status,
                                execution.isolation))
    return grades


# ---- one sandbox per process -----------------------------------------------------------------------

_shared: dict[tuple[int, str], Any] = {}
_shared_lock = threading.Lock()


def shared_sandbox(backend: str = "local") -> Any:
    """This process's sandbox for `backend`, started on first use and closed at exit. A forked child
    (AsyncVectorEnv's workers) starts its own instead of using its parent's."""
    check_choice("sandbox backend", backend, SANDBOX_BACKENDS)

    key = (os.getpid(), backend)
    with _shared_lock:
        if key not in _shared:
            _shared[key] = make_sandbox(backend, workers=2, timeout_s=SHARED_TIMEOUT_S, memory_mb=SHARED_MEMORY_MB)
            # a forked worker ends with os._exit, past atexit: multiprocessing runs its finalizers first
            multiprocessing.util.Finalize(_shared[key], close_shared_sandboxes, exitpriority=10)
        return _shared[key]


def close_shared_sandboxes() -> None:
    """Close the sandboxes this process started (what runs at exit)."""
    with _shared_lock:
        mine = [key for key in _shared if key[0] == os.getpid()]
        sandboxes = [_shared.pop(key) for key in mine]
    for sandbox in sandboxes:
        sandbox.close()


atexit.register(close_shared_sandboxes)


def resolve_sandbox(spec: Any) -> Any:
    """A sandbox from an env's `sandbox` argument: "local" or "docker" (this process's shared one), or an
    object with `run` (used as it is; its owner closes it)."""
    if isinstance(spec, str):
        return shared_sandbox(spec)
    if callable(getattr(spec, "run", None)):
        return spec
    raise TypeError(f"sandbox must be 'local', 'docker' or a Sandbox (from sparring.sandboxes.make_sandbox), "
                    f"got {spec!r}")


def check_limits(timeout_s: Any, call_timeout_s: Any, memory_mb: Any) -> dict[str, Any]:
    """An env's run limits, checked: seconds per run, seconds per call of the entry point, memory in MB."""
    for name, value, high in (("timeout_s", timeout_s, SHARED_TIMEOUT_S),
                              ("call_timeout_s", call_timeout_s, SHARED_TIMEOUT_S),
                              ("memory_mb", memory_mb, SHARED_MEMORY_MB)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= high:
            raise ValueError(f"{name} must be a number in (0, {high:g}], got {value!r}")
    if memory_mb < 64:
        raise ValueError(f"memory_mb must be at least 64 (python3 itself needs it), got {memory_mb!r}")
    return {"timeout_s": float(timeout_s), "call_timeout_s": float(call_timeout_s), "memory_mb": int(memory_mb)}


def check_sandbox_spec(spec: Any) -> Any:
    """Validate an env's `sandbox` argument without starting anything."""
    if isinstance(spec, str):
        check_choice("sandbox backend", spec, SANDBOX_BACKENDS)
    elif not callable(getattr(spec, "run", None)):
        raise TypeError(f"sandbox must be 'local', 'docker' or a Sandbox (from sparring.sandboxes.make_sandbox), "
                        f"got {spec!r}")
    return spec
