"""reasoning-gym's scorers, run in a child process that cannot be made to run a model's code.

Some of reasoning-gym's `score_answer` methods hand the answer to Python's `eval` (string_insertion,
spiral_matrix, binary_matrix, n_queens; number_sorting and bitwise_arithmetic evaluate strings of the
entry, which a proposed task controls) or to sympy's `parse_expr`, which is `eval` too (countdown,
puzzle24, simple_integration, intermediate_integration, polynomial_multiplication). A model that reads
our source would answer `__import__('os').system(...)`. So:

- in the child, those names are replaced, module by module, with guarded versions: `ast.literal_eval`
  where a list literal is expected, and for arithmetic and sympy a token check (Python's own
  tokenizer: numbers, operators, brackets and a fixed list of math names; no strings, no attribute
  access, no other names) before the original runs;
- the child has an address-space limit and every score a wall-clock limit: a scorer that hangs or
  blows up on `9**9**9**9` is killed, restarted, and the answer gets 0.

The protocol is one line of JSON each way per score (parent -> child: dataset, config (pickled: configs hold
enums), entry, answer; child -> parent: the score or the error), so nothing the child writes is ever unpickled.
Hand-written because no library offers a killable, restartable worker that also runs inside
Gymnasium's daemonic vector-env workers (multiprocessing cannot start children there).
"""

from __future__ import annotations

import ast
import base64
import io
import json
import math
import os
import pickle
import select
import subprocess
import sys
import threading
import tokenize
from typing import IO, Any, cast

SCORE_TIMEOUT_S = 10.0
START_TIMEOUT_S = 120.0  # importing reasoning-gym and sympy, on a busy machine
MEMORY_LIMIT_BYTES = 4 << 30
MAX_EVAL_CHARS = 2_000

ARITHMETIC_OPS = {"+", "-", "*", "/", "//", "%", "**", "<<", ">>", "&", "|", "^", "~", "(", ")"}
GRID_DATASETS = {"arc_agi", "rearc"}
MATH_NAMES = {"sin", "cos", "tan", "cot", "sec", "csc", "asin", "acos", "atan", "sinh", "cosh", "tanh", "exp", "log",
              "ln", "sqrt", "pi", "E", "I", "oo", "Abs"}


class UnsafeExpression(ValueError):
    """Text that a guarded `eval` or `parse_expr` refused to evaluate."""


def check_tokens(text: Any, *, names: set[str] | frozenset[str] = frozenset(),
                 extra_ops: set[str] | frozenset[str] = frozenset()) -> str:
    """`text` if Python's tokenizer finds only numbers, arithmetic operators, brackets, and `names` (or one-letter
    variables when names are allowed); else `UnsafeExpression`."""
    if not isinstance(text, str) or len(text) > MAX_EVAL_CHARS:
        raise UnsafeExpression("not a string of at most 2000 characters")
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError) as error:
        raise UnsafeExpression(f"does not tokenize: {error}") from None
    for token in tokens:
        if token.type in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT):
            continue
        if token.type == tokenize.NUMBER:
            continue
        if token.type == tokenize.OP and token.string in ARITHMETIC_OPS | extra_ops:
            continue
        if token.type == tokenize.NAME and names and (token.string in names or
                                                      (len(token.string) == 1 and token.string.isascii())):
            continue
        raise UnsafeExpression(f"token {token.string!r} is not allowed")
    return text


def literal_eval(text: Any, *_: Any) -> Any:
    """`eval` where the scorer expects a Python literal (a list of characters or numbers)."""
    if not isinstance(text, str) or len(text) > 100_000:
        raise UnsafeExpression("not a literal")
    return ast.literal_eval(text)


def arithmetic_eval(text: Any, *_: Any) -> Any:
    """`eval` of integer arithmetic (bitwise_arithmetic's problems): numbers and operators only."""
    return eval(check_tokens(text), {"__builtins__": {}}, {})  # noqa: S307  only numbers and operators get here


def guard_parse_expr(original: Any) -> Any:
    def parse_expr(text: Any, *args: Any, **kwargs: Any) -> Any:
        return original(check_tokens(text, names=MATH_NAMES, extra_ops={","}), *args, **kwargs)
    return parse_expr


def install_guards() -> None:
    """Replace every `eval` and `parse_expr` that reasoning-gym's scorers reach (see the module docstring)."""
    import importlib

    import sympy

    for module in ("algorithmic.string_insertion", "algorithmic.spiral_matrix", "algorithmic.binary_matrix",
                   "games.n_queens", "algorithmic.number_sorting"):
        setattr(importlib.import_module(f"reasoning_gym.{module}"), "eval", literal_eval)  # the module's global
    setattr(importlib.import_module("reasoning_gym.arithmetic.bitwise_arithmetic"), "eval", arithmetic_eval)
    for module in ("games.countdown", "games.puzzle24"):
        loaded = importlib.import_module(f"reasoning_gym.{module}")
        setattr(loaded, "parse_expr", guard_parse_expr(loaded.parse_expr))
    sympy.parse_expr = guard_parse_expr(sympy.parse_expr)  # simple/intermediate_integration, polynomial_multiplication


def serve() -> None:
    """The child: read one JSON request per line, write one JSON reply per line."""
    import resource

    replies, sys.stdout = sys.stdout, sys.stderr  # what an import or a scorer prints must not pass for a reply
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    import reasoning_gym  # noqa: F401  (registers the datasets)
    from reasoning_gym.factory import DATASETS

    install_guards()
    datasets: dict[tuple[str, str], Any] = {}
    replies.write(json.dumps({"ready": True}) + "\n")
    replies.flush()
    for line in sys.stdin:
        try:
            request = json.loads(line)
            key = (request["dataset"], request["config"])
            if key not in datasets:
                dataset_class, _ = DATASETS[request["dataset"]]
                datasets[key] = dataset_class(config=pickle.loads(base64.b64decode(request["config"])))
            entry = request["entry"]
            if request["dataset"] in GRID_DATASETS:  # their scorers compare tuples of tuples; JSON made them lists
                entry["metadata"]["output"] = tuple(tuple(row) for row in entry["metadata"]["output"])
            score = datasets[key].score_answer(request["answer"], entry)
            score = float(score)
            reply = {"score": score if math.isfinite(score) else 0.0}
        except BaseException as error:  # noqa: BLE001  a scorer's failure is a 0, reported
            reply = {"error": f"{type(error).__name__}: {str(error)[:300]}"}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


class Scorer:
    """The parent's end: `score(dataset, config, entry, answer) -> (score, error or None)`, one child per Scorer
    (started at the first score, restarted after a timeout; it exits when this process does)."""

    def __init__(self, timeout_s: float = SCORE_TIMEOUT_S):
        self.timeout_s = timeout_s
        self._child: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._owner = os.getpid()

    def _start(self) -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        child = subprocess.Popen([sys.executable, "-m", "sparring.envs.rgym_scorer"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        if self._read(child, START_TIMEOUT_S) != {"ready": True}:
            child.kill()
            child.wait()
            raise RuntimeError(f"reasoning-gym's scorer process did not start within {START_TIMEOUT_S:g} s; try "
                               f"`{sys.executable} -m sparring.envs.rgym_scorer` to see why")
        return child

    @staticmethod
    def _read(child: subprocess.Popen, timeout_s: float) -> dict[str, Any] | None:
        """The child's next reply, or None when it gives none within `timeout_s`."""
        stdout = cast(IO[str], child.stdout)  # (the child is started with PIPEs)
        try:
            ready, _, _ = select.select([stdout], [], [], timeout_s)
            line = stdout.readline() if ready else ""
            return json.loads(line) if line else None
        except (OSError, ValueError):
            return None

    def score(self, dataset: str, config: Any, entry: dict[str, Any], answer: str) -> tuple[float, str | None]:
        """reasoning-gym's score of `answer` to `entry`, and the scorer's error if it raised, hung or died (score 0)."""
        with self._lock:
            return self._score(dataset, config, entry, answer)

    def _score(self, dataset: str, config: Any, entry: dict[str, Any], answer: str) -> tuple[float, str | None]:
        if self._owner != os.getpid():  # a forked copy (a vector env's worker): the child is the parent's
            self._child, self._owner = None, os.getpid()
        if self._child is None or self._child.poll() is not None:
            self._child = self._start()
        try:
            config = base64.b64encode(pickle.dumps(config)).decode()
            stdin = cast(IO[str], self._child.stdin)
            stdin.write(json.dumps({"dataset": dataset, "config": config, "entry": entry, "answer": answer}) + "\n")
            stdin.flush()
        except OSError:
            pass
        reply = self._read(self._child, self.timeout_s)
        if reply is None:
            self.close()
            return 0.0, f"the scorer gave no score within {self.timeout_s:g} s (or died); it was restarted"
        if "error" in reply:
            return 0.0, str(reply["error"])[:300]
        try:
            return float(reply["score"]), None
        except (KeyError, TypeError, ValueError):
            return 0.0, f"the scorer's reply is not a score: {str(reply)[:100]}"

    def close(self) -> None:
        if self._child is not None and self._owner == os.getpid():
            self._child.kill()
            self._child.wait()
            for stream in (self._child.stdin, self._child.stdout):
                cast(IO[str], stream).close()
        self._child = None  # a forked copy forgets the parent's child without touching it

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001  interpreter shutdown
            pass


_shared: Scorer | None = None


def shared_scorer() -> Scorer:
    """The scorer every ReasoningGym-v0 env of this process shares (one child process, not one per env)."""
    global _shared
    if _shared is None:
        _shared = Scorer()
    return _shared


if __name__ == "__main__":
    serve()
