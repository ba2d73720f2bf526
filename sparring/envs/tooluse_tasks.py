"""Tool-use tasks in Code-as-Task form (Self-Challenging): an instruction, a verification function over the final
world state, the answer and the calls, an example solution, and failure cases.

A `ToolTask` is plain JSON. Its verification is either built in (`checks`: trusted, declarative checks such
as "the answer equals 42" or "the final state hashes like the solution's", tau-bench style) or written by a
model (`verify_src`: the source of `def verify(state, answer, calls) -> bool`), or both, and then every one
must pass. Model-written source is never executed in this process: it runs in `sparring.sandboxes`, with
the state, answer and calls sent in as a JSON file and the boolean read back from its output.

`validate_task(task)` is the acceptance filter for proposed tasks: the task is well formed, its solution
replays without a tool error and passes, and every failure case fails, all without the verification
raising.

    >>> report = validate_task(task_dict)
    >>> report.valid, report.problems
    (True, [])
"""

from __future__ import annotations

import functools
import json
import re
import secrets
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from sparring.envs.tooluse_checks import ToolError
from sparring.envs.tooluse_state import state_diff, state_hash
from sparring.envs.tooluse_world import TOOL_NAMES, ToolWorld, check_arguments, unknown_tool_message
from sparring.errors import UnknownNameError

CHECK_KINDS = ("answer", "state_hash", "called")
MAX_CALLS = 60
MAX_FAILURE_CASES = 20
MAX_TEXT_CHARS = 4_000
MAX_VERIFY_CHARS = 20_000
VERIFY_TIMEOUT_S = 10.0


# ---- the record ----------------------------------------------------------------------------------------

def _check_call(call: Any, where: str) -> dict[str, Any]:
    if not isinstance(call, dict) or set(call) != {"name", "arguments"} or not isinstance(call["name"], str) \
            or not isinstance(call["arguments"], dict):
        raise ValueError(f"{where} must be a call {{'name': str, 'arguments': {{...}}}}, got {call!r:.120}")
    return {"name": call["name"], "arguments": call["arguments"]}


def _check_episode(data: Any, where: str) -> dict[str, Any]:
    """An example episode: `{"calls": [call, ...], "answer": str | None}`."""
    if not isinstance(data, dict) or set(data) - {"calls", "answer"} or "calls" not in data:
        raise ValueError(f"{where} must be {{'calls': [...], 'answer': str or null}}, got {data!r:.120}")
    calls, answer = data["calls"], data.get("answer")
    if not isinstance(calls, list) or len(calls) > MAX_CALLS:
        raise ValueError(f"{where}['calls'] must be a list of at most {MAX_CALLS} calls")
    if answer is not None and (not isinstance(answer, str) or len(answer) > MAX_TEXT_CHARS):
        raise ValueError(f"{where}['answer'] must be text (at most {MAX_TEXT_CHARS} characters) or null")
    return {"calls": [_check_call(c, f"{where}['calls'][{i}]") for i, c in enumerate(calls)], "answer": answer}


def _check_check(check: Any, where: str) -> dict[str, Any]:
    if not isinstance(check, dict) or not isinstance(check.get("kind"), str):
        raise ValueError(f"{where} must be a dict with a 'kind' in {list(CHECK_KINDS)}, got {check!r:.120}")
    kind = check["kind"]
    if kind not in CHECK_KINDS:
        raise UnknownNameError(f"check kind (in {where})", kind, CHECK_KINDS)
    fields = {"answer": {"equals", "unordered"}, "state_hash": set(), "called": {"name"}}[kind]
    if set(check) - fields - {"kind"}:
        raise ValueError(f"{where}: a {kind!r} check takes {sorted(fields) or 'no fields'}, got {sorted(set(check) - {'kind'})}")
    if kind == "answer" and (not isinstance(check.get("equals"), str) or not isinstance(check.get("unordered", False), bool)):
        raise ValueError(f"{where}: an 'answer' check needs 'equals' (text) and optionally 'unordered' (true/false)")
    if kind == "called" and check.get("name") not in TOOL_NAMES:
        raise UnknownNameError(f"tool (in {where})", check.get("name"), TOOL_NAMES)
    return dict(check)


@dataclass(frozen=True)
class ToolTask:
    """One task. `world` is the initial snapshot (see `sparring.envs.tooluse_world`); `compact` is the short
    instruction for small models; `tools` the tools offered; `template` names the built-in template ("" for a
    proposed task)."""

    instruction: str
    world: dict[str, Any]
    solution: dict[str, Any]
    failure_cases: tuple[dict[str, Any], ...]
    checks: tuple[dict[str, Any], ...] = ()
    verify_src: str | None = None
    compact: str = ""
    tools: tuple[str, ...] = TOOL_NAMES
    max_turns: int = 16
    template: str = ""
    level: int = 1

    def to_dict(self) -> dict[str, Any]:
        """The task as JSON (a fresh copy each time: changing it never changes the task)."""
        return json.loads(self._json)

    @functools.cached_property
    def _json(self) -> str:
        return json.dumps({
            "template": self.template, "level": self.level, "instruction": self.instruction, "compact": self.compact,
            "world": self.world, "tools": list(self.tools), "checks": list(self.checks), "verify_src": self.verify_src,
            "solution": self.solution, "failure_cases": list(self.failure_cases), "max_turns": self.max_turns})

    @classmethod
    def from_dict(cls, data: Any) -> ToolTask:
        """Check a task dict (from a user, a proposer or the generator); a `ValueError` says what is wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"a ToolUse task is a dict, got {type(data).__name__}")
        required = {"instruction", "world", "solution", "failure_cases"}
        accepted = required | {"checks", "verify_src", "compact", "tools", "max_turns", "template", "level"}
        if required - set(data):
            raise ValueError(f"a ToolUse task needs the keys {sorted(required)}; missing {sorted(required - set(data))}")
        for key in data:
            if key not in accepted:
                raise UnknownNameError("ToolUse task key", key, accepted)
        instruction, compact = data["instruction"], data.get("compact") or data["instruction"]
        for name, text in (("instruction", instruction), ("compact", compact)):
            if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT_CHARS:
                raise ValueError(f"task {name!r} must be non-empty text of at most {MAX_TEXT_CHARS} characters")
        ToolWorld.from_snapshot(data["world"], database=False).close()  # a ValueError on a malformed world
        world = json.loads(json.dumps(data["world"]))
        solution = _check_episode(data["solution"], "task['solution']")
        failures = data["failure_cases"]
        if not isinstance(failures, list) or len(failures) > MAX_FAILURE_CASES:
            raise ValueError(f"task 'failure_cases' must be a list of at most {MAX_FAILURE_CASES} episodes")
        failures = tuple(_check_episode(f, f"task['failure_cases'][{i}]") for i, f in enumerate(failures))
        checks = data.get("checks") or []
        if not isinstance(checks, list):
            raise ValueError("task 'checks' must be a list of checks")
        checks = tuple(_check_check(c, f"task['checks'][{i}]") for i, c in enumerate(checks))
        verify_src = data.get("verify_src")
        if verify_src is not None and (not isinstance(verify_src, str) or len(verify_src) > MAX_VERIFY_CHARS
                                       or "def verify" not in verify_src):
            raise ValueError(f"task 'verify_src' must be Python source (at most {MAX_VERIFY_CHARS} characters) "
                             "defining verify(state, answer, calls) -> bool")
        if not checks and verify_src is None:
            raise ValueError(f"a ToolUse task needs 'checks' (kinds {list(CHECK_KINDS)}) or 'verify_src', or both")
        tools = data.get("tools") or list(TOOL_NAMES)
        if not isinstance(tools, (list, tuple)) or not tools:
            raise ValueError("task 'tools' must be a non-empty list of tool names")
        for name in tools:
            if name not in TOOL_NAMES:
                raise UnknownNameError("tool (in task['tools'])", name, TOOL_NAMES)
        max_turns, level = data.get("max_turns", 16), data.get("level", 1)
        for name, value, high in (("max_turns", max_turns, 200), ("level", level, 3)):
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
                raise ValueError(f"task {name!r} must be an integer in 1..{high}, got {value!r}")
        template = data.get("template") or ""
        if not isinstance(template, str):
            raise ValueError(f"task 'template' must be text, got {template!r}")
        return cls(instruction=instruction, world=world, solution=solution, failure_cases=failures, checks=checks,
                   verify_src=verify_src, compact=compact, tools=tuple(dict.fromkeys(tools)), max_turns=max_turns,
                   template=template, level=level)


# ---- playing calls -------------------------------------------------------------------------------------

def run_call(world: ToolWorld, name: Any, arguments: Any, tools: tuple[str, ...] = TOOL_NAMES) -> tuple[str, str]:
    """Run one call on `world`: `("ok", result)`, `("invalid", why)` for an unknown tool or arguments that do not
    fit its schema, or `("error", why)` when the tool could not do it. Never raises on what a model writes."""
    if not isinstance(name, str) or name not in tools:
        if isinstance(name, str) and name in TOOL_NAMES:
            return "invalid", f"the tool {name} is not offered in this task; offered: {', '.join(tools)}"
        return "invalid", unknown_tool_message(name)
    problem = check_arguments(name, arguments)
    if problem:
        return "invalid", problem
    try:
        return "ok", world.call(name, arguments)
    except ToolError as error:
        return "error", str(error)
    except Exception as error:  # a tool that breaks on some input is a bug of ours: say so, never crash the env
        return "error", f"the tool {name} failed unexpectedly ({type(error).__name__}: {error}); this is a bug in sparring"


def replay(world_snapshot: dict[str, Any], calls: list[dict[str, Any]],
           tools: tuple[str, ...] = TOOL_NAMES) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Play `calls` on a fresh world: the final snapshot and the call records (`name`, `arguments`, `ok`, `result`)."""
    world = ToolWorld.from_snapshot(world_snapshot)
    try:
        records = []
        for call in calls:
            status, result = run_call(world, call["name"], call["arguments"], tools)
            records.append({"name": call["name"], "arguments": call["arguments"], "ok": status == "ok", "result": result})
        return world.snapshot(), records
    finally:
        world.close()


# ---- verification --------------------------------------------------------------------------------------

_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)(/\d+)?")


def normalise_answer(text: Any) -> str:
    """An answer as compared: trimmed, quotes and a final full stop dropped, spaces collapsed, case folded, and
    numbers in one canonical form (`42.0`, `+42` and `84/2` are all `42`)."""
    if text is None:
        return ""
    text = " ".join(str(text).split()).strip().rstrip(".").strip().strip("\"'`").strip().casefold()
    if _NUMBER.fullmatch(text) and len(text) < 40:
        try:
            value = Fraction(text)
            return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
        except (ValueError, ZeroDivisionError):
            return text
    return text


def answers_match(expected: str, given: Any, unordered: bool = False) -> bool:
    if unordered:
        def items(text: Any) -> list[str]:
            return sorted(normalise_answer(x) for x in re.split(r"[,\n;]", str(text or "")) if x.strip())
        return items(expected) == items(given)
    return normalise_answer(expected) == normalise_answer(given)


@dataclass
class Outcome:
    """What verification found: `passed` (None when the verification itself failed), and why."""

    passed: bool | None
    reasons: list[str] = field(default_factory=list)
    error: str | None = None


def expected_state(task: ToolTask) -> dict[str, Any]:
    """The final state of the task's own solution: what a `state_hash` check compares against."""
    return replay(task.world, task.solution["calls"], task.tools)[0]


ModelResult = tuple[bool | None, str | None]  # (what verify returned, or None and why it did not run)


def verify_outcome(task: ToolTask, state: dict[str, Any], answer: str | None, calls: list[dict[str, Any]], *,
                   expected: dict[str, Any] | None = None, sandbox: str = "local",
                   model_result: ModelResult | None = None) -> Outcome:
    """Run the task's verification on a final `state`, `answer` and `calls`. Built-in checks run here;
    `verify_src` runs in a sandbox (unless its `model_result` is given). Never raises: a verification that
    fails to run is an `Outcome` with `error`."""
    reasons: list[str] = []
    for check in task.checks:
        kind = check["kind"]
        if kind == "answer":
            if answer is None:
                reasons.append("no final answer was given")
            elif not answers_match(check["equals"], answer, check.get("unordered", False)):
                shown = answer if len(answer) <= 60 else answer[:57] + "..."
                reasons.append(f"the answer {shown!r} is not right")
        elif kind == "state_hash":
            target = expected if expected is not None else expected_state(task)
            if state_hash(target) != state_hash(state):
                differences = state_diff(target, state)
                reasons.append("the final state is not the one asked for: " + "; ".join(differences[:4])
                               + ("; ..." if len(differences) > 4 else ""))
        elif kind == "called":
            if not any(c["name"] == check["name"] and c.get("ok", True) for c in calls):
                reasons.append(f"the tool {check['name']} was never called successfully")
    if task.verify_src is not None:
        result, error = model_result or run_model_verifications(task.verify_src, [(state, answer, calls)],
                                                                sandbox=sandbox)[0]
        if error:
            return Outcome(None, reasons, f"the task's verify function did not run: {error}")
        if not result:
            reasons.append("the task's verify function returned False")
    return Outcome(not reasons, reasons)


# The harness: main.py, the same for every run (no secret in it). The marker comes on stdin; the result goes to
# a private copy of stdout, fd 1 going to /dev/null while verify runs, so what verify prints reaches nobody
# (its stderr stays: the reason when it raises). verify runs in this process and could still find the marker and the channel in memory; what it
# could then write is a result of its own choosing, which it can give anyway by returning it. So the reader
# below only makes sure such a line can never crash it: one result line, parsed and type-checked, or a reason.
_HARNESS = """\
import json, os, sys
marker = sys.stdin.readline().strip()
channel = os.dup(1)
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
with open("verify_input.json") as f:
    data = json.load(f)
from verification import verify
result = verify(data["state"], data["answer"], data["calls"])
text = json.dumps(result if type(result) is bool else "not a bool: " + type(result).__name__)
os.write(channel, ("\\n" + marker + text + "\\n").encode())
"""
RESULTS = {"true": True, "false": False}


def run_model_verifications(source: str, cases: list[tuple[dict[str, Any], str | None, list[dict[str, Any]]]], *,
                            sandbox: str = "local", timeout_s: float = VERIFY_TIMEOUT_S) -> list[ModelResult]:
    """Run model-written `def verify(state, answer, calls) -> bool` on each `(state, answer, calls)` in a sandbox,
    in parallel: `(result, None)`, or `(None, why it did not run)`, per case. The inputs go in as a JSON file; the
    result comes back on a private copy of stdout after a marker that is random per run and passed on stdin
    (never in a file the function can read), so what the function prints cannot pass for its result. Nothing
    of `source` runs in this process, and no output of it makes this raise."""
    try:
        from sparring.sandboxes import make_sandbox
    except ImportError as error:
        return [(None, f"no sandbox to run model-written code in ({error})")] * len(cases)
    marker = f"@@verdict-{secrets.token_hex(8)}@@"
    requests = [{"code": _HARNESS, "stdin": marker + "\n", "timeout_s": timeout_s,
                 "files": {"verification.py": source,
                           "verify_input.json": json.dumps({"state": s, "answer": a, "calls": c})}}
                for s, a, c in cases]
    try:
        with make_sandbox(sandbox, workers=max(1, min(4, len(cases)))) as box:
            results = box.run_many(requests)
    except Exception as error:  # the sandbox could not start: a reason, not a crash
        return [(None, f"the sandbox failed ({type(error).__name__}: {error})")] * len(cases)
    return [_read_result(result, marker) for result in results]


def _read_result(result: Any, marker: str) -> ModelResult:
    """(True or False, None) from the one result line of a run that ended on its own, else (None, why). Never raises."""
    if result.status != "ok":
        tail = (result.stderr or "").strip().splitlines()[-1:] or [""]
        return None, f"{result.status}: {tail[0][:300]}".rstrip(": ")
    lines = [line for line in (result.stdout or "").splitlines() if line.startswith(marker)]
    if not lines:
        return None, "it printed no result"
    if len(lines) > 1:
        return None, "its result line was written more than once (the verify function wrote one)"
    text = lines[0][len(marker):]
    if text in RESULTS:
        return RESULTS[text], None
    prefix = '"not a bool: '
    if text.startswith(prefix) and text.endswith('"') and text[len(prefix):-1].isidentifier():
        return None, f"verify returned {text[len(prefix):-1]}, not True or False"
    return None, f"its result line is malformed: {text[:80]!r}"


# ---- the acceptance filter -----------------------------------------------------------------------------

@dataclass
class TaskValidation:
    valid: bool
    problems: list[str]

    def __bool__(self) -> bool:
        return self.valid


def validate_task(task: ToolTask | dict[str, Any], *, sandbox: str = "local") -> TaskValidation:
    """Self-Challenging's filter: the task is well formed, its verification runs, its solution replays without a
    tool error and passes, and every failure case fails."""
    try:
        task = task if isinstance(task, ToolTask) else ToolTask.from_dict(task)
    except ValueError as error:
        return TaskValidation(False, [f"malformed task: {error}"])
    problems = []
    if not task.failure_cases:
        problems.append("a task needs at least one failure case")
    expected, records = replay(task.world, task.solution["calls"], task.tools)
    for i, record in enumerate(records):
        if not record["ok"]:
            problems.append(f"solution call {i} ({record['name']}) fails: {record['result']}")
    cases = [(expected, task.solution["answer"], records)]
    for case in task.failure_cases:
        state, case_records = replay(task.world, case["calls"], task.tools)
        cases.append((state, case["answer"], case_records))
    model_results: list[ModelResult | None] = [None] * len(cases)
    if task.verify_src is not None:  # one sandbox runs them all, in parallel
        model_results = list(run_model_verifications(task.verify_src, cases, sandbox=sandbox))
    for i, ((state, answer, calls), model_result) in enumerate(zip(cases, model_results)):
        outcome = verify_outcome(task, state, answer, calls, expected=expected, model_result=model_result)
        where = "the solution" if i == 0 else f"failure case {i - 1}"
        if outcome.error:
            problems.append(f"on {where}, {outcome.error}")
        elif i == 0 and not outcome.passed:
            problems.append("the solution does not pass: " + "; ".join(outcome.reasons))
        elif i > 0 and outcome.passed:
            problems.append(f"{where} passes the verification, so it does not tell right from wrong")
    return TaskValidation(not problems, problems)
