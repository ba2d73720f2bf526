"""The test harness that runs INSIDE the sandbox, and the value codec both sides share.

This file is shipped verbatim into the sandbox as `main.py` (it needs the standard library only).
It reads its instructions as JSON on stdin: the candidate's entry point, the test inputs (never the
expected outputs), the time limit per call and a random marker. It loads `solution.py` as a module,
calls the entry point on each input under a per-call CPU-time limit, and writes one line per call to a
private copy of stdout: `<marker>{"i": 3, "value": <encoded>}` or `<marker>{"i": 3, "error": "..."}`.
The candidate's own stdout and stderr go to /dev/null, so its prints can neither flood nor fake the
results channel by accident.

Nothing here decides whether a test passed: the grader (`sparring.envs.code_grading`) decodes the
values outside the sandbox and compares them there with expected values it never sent in. The
encoder accepts exact builtin types only (`type(x) is int`, never a subclass), so an object with a
rigged `__eq__` cannot even be described; and since the outside decoder builds fresh builtin values
from JSON, whatever happens in here, a forged line must carry the right answer to earn anything.

Encoding: None, bool, int, float (including inf and nan) and str are JSON scalars; list is a JSON
array; tuple, set, frozenset and dict are one-key objects `{"tuple": [...]}`, `{"set": [...]}`,
`{"frozenset": [...]}`, `{"dict": [[key, value], ...]}`.
"""

from __future__ import annotations

import json
import math

TYPE_CHECKING = False  # type checkers read it as True; the harness itself imports no more than it needs
if TYPE_CHECKING:
    from typing import Any

MAX_DEPTH = 64
TAGS = ("tuple", "set", "frozenset", "dict")


def encode_value(value, depth=0):
    """`value` as JSON-ready data; TypeError for anything but exact builtin types, ValueError past MAX_DEPTH."""
    if depth > MAX_DEPTH:
        raise ValueError(f"the value is nested more than {MAX_DEPTH} levels deep")
    kind = type(value)
    if value is None or kind is bool or kind is int or kind is str or kind is float:
        return value
    if kind is list:
        return [encode_value(v, depth + 1) for v in value]
    if kind is tuple:
        return {"tuple": [encode_value(v, depth + 1) for v in value]}
    if kind is set or kind is frozenset:
        return {kind.__name__: [encode_value(v, depth + 1) for v in value]}
    if kind is dict:
        return {"dict": [[encode_value(k, depth + 1), encode_value(v, depth + 1)] for k, v in value.items()]}
    raise TypeError(f"returned a value of type {_type_name(kind)}; only exact builtin types "
                    "(None, bool, int, float, str, list, tuple, set, frozenset, dict) can be checked")


def decode_value(data, depth=0) -> Any:
    """The Python value that `data` (parsed JSON from `encode_value`) describes; ValueError when it is malformed."""
    if depth > MAX_DEPTH:
        raise ValueError(f"the value is nested more than {MAX_DEPTH} levels deep")
    kind = type(data)
    if data is None or kind is bool or kind is int or kind is str or kind is float:
        return data
    if kind is list:
        return [decode_value(v, depth + 1) for v in data]
    if kind is dict and len(data) == 1:
        (tag, items), = data.items()
        if tag in TAGS and type(items) is list:
            if tag == "dict":
                if not all(type(pair) is list and len(pair) == 2 for pair in items):
                    raise ValueError("a dict is encoded as a list of [key, value] pairs")
                try:
                    return {decode_value(k, depth + 1): decode_value(v, depth + 1) for k, v in items}
                except TypeError as error:  # an unhashable key
                    raise ValueError(f"a dict key is not hashable: {error}") from None
            values = [decode_value(v, depth + 1) for v in items]
            try:
                return {"tuple": tuple, "set": set, "frozenset": frozenset}[tag](values)
            except TypeError as error:
                raise ValueError(f"a {tag} element is not hashable: {error}") from None
    raise ValueError(f"not an encoded value: {str(data)[:80]}")


def _type_name(kind):
    try:
        name = type.__getattribute__(kind, "__qualname__")
        return name if type(name) is str else "?"
    except BaseException:
        return "?"


def same_value(a, b):
    """Strict equality: the same exact types all the way down, set elements and dict keys included (True is
    not 1, 1.0 is not 1, a tuple is not a list, -0.0 is not 0.0; nan is nan). The judge of input-output tests
    (CodeSynth, CodeRepair on CodeSynth); HumanEval replays its own check instead, with the check's `==`."""
    if type(a) is not type(b):
        return False
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if type(a) in (set, frozenset):
        # equal sets pair each element of `a` with the one element of `b` it equals, found by hash
        partner = {y: y for y in b}
        return len(a) == len(b) and all(x in partner and same_value(x, partner[x]) for x in a)
    if type(a) is dict:
        partner = {k: k for k in b}
        return len(a) == len(b) and all(k in partner and same_value(k, partner[k]) and same_value(a[k], b[k])
                                        for k in a)
    if type(a) is float:
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return a == b


# ---- the part that runs in the sandbox -----------------------------------------------------------

class CallTimeout(BaseException):
    """Raised by the per-call timer (a BaseException, so `except Exception` in the candidate cannot swallow it)."""


def main():
    import os
    import signal
    import sys
    import types

    config = json.loads(sys.stdin.read())
    marker, entry_point = config["marker"], config["entry_point"]
    call_timeout, max_chars = float(config["call_timeout_s"]), int(config["max_result_chars"])
    timeouts_left = int(config["max_timeouts"])  # after this many timed-out calls, the rest are not run
    channel = os.dup(1)  # the private results channel; fds 1 and 2 now go to /dev/null
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    # the per-call timer counts CPU time (ITIMER_PROF), so a busy machine does not fail a fast program;
    # a program that sleeps or blocks is stopped by the sandbox's wall-clock limit on the whole run
    write, dumps, setitimer, cpu = os.write, json.dumps, signal.setitimer, signal.ITIMER_PROF

    def emit(record):
        data = (marker + dumps(record) + "\n").encode("utf-8", "replace")
        while data:
            data = data[write(channel, data):]

    def on_alarm(signum, frame):
        raise CallTimeout()

    def disarm():
        while True:
            try:
                setitimer(cpu, 0)
                return
            except CallTimeout:
                continue

    def guarded(thunk) -> tuple[str, Any]:
        """("value", result) or ("timeout", None) or ("error", text): `thunk()` under the per-call timer."""
        try:
            try:
                setitimer(cpu, call_timeout, 0.05)  # re-fires every 50 ms of CPU until disarmed, past a swallowed alarm
                return "value", thunk()
            finally:
                disarm()
        except CallTimeout:
            return "timeout", None
        except BaseException as error:
            disarm()
            try:
                text = f"{_type_name(type(error))}: {error}"
            except BaseException:
                text = _type_name(type(error))
            return "error", text if len(text) <= 300 else text[:297] + "..."

    signal.signal(signal.SIGPROF, on_alarm)
    solution = types.ModuleType("solution")
    solution.__file__ = "solution.py"
    sys.modules["solution"] = solution
    with open("solution.py", encoding="utf-8") as f:
        source = f.read()
    outcome, error = guarded(lambda: exec(compile(source, "solution.py", "exec"), solution.__dict__))
    if outcome != "value":
        emit({"load_error": error or f"loading the program took more than {call_timeout:g} s of CPU time"})
        return
    function = solution.__dict__.get(entry_point)
    if not callable(function):
        emit({"load_error": f"the program does not define a function {entry_point!r}"})
        return
    for index, call in enumerate(config["calls"]):
        if timeouts_left <= 0:
            emit({"i": index, "error": "not run: earlier calls timed out", "timeout": True})
            continue
        args, kwargs = decode_value(call["args"]), decode_value(call["kwargs"])
        outcome, result = guarded(lambda: dumps(encode_value(function(*args, **kwargs))))
        if outcome == "timeout":
            emit({"i": index, "error": f"timed out after {call_timeout:g} s of CPU time", "timeout": True})
            timeouts_left -= 1
        elif outcome == "error":
            emit({"i": index, "error": result})
        elif len(result) > max_chars:
            emit({"i": index, "error": f"the return value is too large (over {max_chars} characters)"})
        else:
            data = (marker + '{"i": ' + str(index) + ', "value": ' + result + "}\n").encode("utf-8", "replace")
            while data:
                data = data[write(channel, data):]


if __name__ == "__main__":
    main()
