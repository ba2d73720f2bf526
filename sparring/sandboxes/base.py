"""What every sandbox backend shares: the result record, the limits and their checks, and the worker pool.

A backend subclasses `Sandbox` and fills in three things: `_open_slot(index)` (one worker: a uid and
cgroup locally, a warm container in Docker), `_run_in_slot(slot, request)` (one program, start to
finish, leaving nothing running behind) and `_close_slot(slot)`. `run` borrows a free slot for one
program; `run_many` spreads a batch over every slot and returns results in input order.
"""

from __future__ import annotations

import math
import posixpath
import queue
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sparring.errors import SparringError

RESERVED_NAMES = ("main.py", ".sparring-stdin")  # the program, and Docker's stdin file
STATUSES = ("ok", "error", "timeout", "memory", "output_limit", "killed", "sandbox_error")

# name: (lowest, highest, default). Every limit is checked against its range with a message naming it.
LIMIT_RANGES: dict[str, tuple[Any, Any, Any]] = {
    "workers": (1, 64, 1),
    "timeout_s": (0.05, 3600.0, 10.0),
    "memory_mb": (64, 65536, 512),
    "max_output_bytes": (1024, 1 << 30, 1_000_000),
    "max_processes": (1, 4096, 64),
    "max_file_mb": (1, 65536, 64),
}


class SandboxError(SparringError, RuntimeError):
    """The sandbox itself failed (not the program in it): a backend that cannot start or clean up."""


@dataclass(frozen=True)
class ExecResult:
    """What one program did: how it ended, what it printed (capped), and what confined it.

    `status` is one of "ok" (exit 0), "error" (nonzero exit), "timeout" (wall or CPU time), "memory"
    (out of memory), "output_limit" (stdout or stderr passed the cap; the program was stopped),
    "killed" (ended by a signal) or "sandbox_error" (the sandbox failed; `stderr` says why).
    `exit_code` is the exit status, or minus the signal number, or None when it never ran.
    Output is decoded as UTF-8 with replacement characters, so it never raises.
    """

    status: str
    exit_code: int | None
    stdout: str
    stderr: str
    truncated: bool
    wall_s: float
    backend: str
    isolation: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class Limits:
    """The limits of a sandbox; a run may lower (memory) or change (time) them for one program."""

    workers: int = 1
    timeout_s: float = 10.0
    memory_mb: int = 512
    max_output_bytes: int = 1_000_000
    max_processes: int = 64
    max_file_mb: int = 64

    def __post_init__(self) -> None:
        for name in LIMIT_RANGES:
            check_limit(name, getattr(self, name))


def check_limit(name: str, value: Any) -> None:
    low, high, _ = LIMIT_RANGES[name]
    integer = name != "timeout_s"
    kind = int if integer else (int, float)
    accepted = f"[{low}, {high}]" if integer else f"[{low:g}, {high:g}]"
    if isinstance(value, bool) or not isinstance(value, kind) or (not integer and not math.isfinite(value)):
        raise ValueError(f"{name} must be {'an integer' if integer else 'a number of seconds'} in {accepted}, "
                         f"got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in {accepted}, got {value!r}")


@dataclass(frozen=True)
class RunRequest:
    """One program to run: `python3 main.py` in a fresh work dir holding `files`, with `stdin`."""

    code: str
    stdin: bytes = b""
    files: dict[str, bytes] = field(default_factory=dict)
    timeout_s: float = 10.0
    memory_mb: int = 512

    def work_files(self) -> list[tuple[str, bytes]]:
        """What the work dir holds: main.py (the code) first, then the files."""
        return [("main.py", _as_bytes("code", self.code)), *self.files.items()]


def make_request(limits: Limits, code: Any, stdin: Any = "", files: Mapping[str, Any] | None = None,
                 timeout_s: float | None = None, memory_mb: int | None = None) -> RunRequest:
    """Check one run's arguments; bad ones raise TypeError/ValueError saying what is accepted."""
    if not isinstance(code, str):
        raise TypeError(f"code must be a str (the text of main.py), got {type(code).__name__}")
    stdin_bytes = _as_bytes("stdin", stdin)
    checked: dict[str, bytes] = {}
    for name, content in (files or {}).items():
        checked[check_file_name(name)] = _as_bytes(f"files[{name!r}]", content)
    for reserved in RESERVED_NAMES:
        if reserved in checked:
            raise ValueError(f"files may not hold {reserved!r}: the sandbox uses that name "
                             f"({'the program, `code`' if reserved == 'main.py' else 'stdin, in Docker'})")
    parts = [name.split("/") for name in checked]
    folders = {"/".join(path[:depth]) for path in parts for depth in range(1, len(path))}
    clash = sorted(folders & set(checked))
    if clash:
        raise ValueError(f"file name {clash[0]!r} is also used as a folder by another file name")
    timeout = limits.timeout_s if timeout_s is None else timeout_s
    check_limit("timeout_s", timeout)
    memory = limits.memory_mb if memory_mb is None else memory_mb
    check_limit("memory_mb", memory)
    if memory > limits.memory_mb:
        raise ValueError(f"memory_mb={memory} is above this sandbox's memory_mb={limits.memory_mb}; "
                         f"a run may only lower it (make the sandbox with a higher memory_mb)")
    return RunRequest(code, stdin_bytes, checked, float(timeout), int(memory))


def _as_bytes(what: str, value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8", errors="surrogatepass")  # any str, even a lone surrogate, goes through
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise TypeError(f"{what} must be str or bytes, got {type(value).__name__}")


def check_file_name(name: Any) -> str:
    """A relative path inside the work dir (`data.txt`, `pkg/util.py`); anything else is a ValueError."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"file names must be non-empty strings, got {name!r}")
    normal = posixpath.normpath(name)
    if (name.startswith("/") or normal.startswith("..") or normal in (".", "") or "\0" in name
            or any(part in ("", ".", "..") for part in name.split("/"))):
        raise ValueError(f"file name {name!r} must be a relative path inside the work dir, "
                         f"without '..', '.' or empty parts (e.g. 'data.txt', 'pkg/util.py')")
    return normal


def decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def memory_error_in(stderr: bytes) -> bool:
    """Python's own report of an allocation the address-space limit refused."""
    tail = stderr[-400:].decode("utf-8", errors="replace").rstrip().splitlines()
    return bool(tail) and tail[-1].startswith("MemoryError")


Slot = TypeVar("Slot")


class Sandbox(Generic[Slot]):
    """A pool of worker slots that run programs. Use as a context manager, or call `close()`."""

    backend = "?"

    def __init__(self, limits: Limits):
        self.limits = limits
        self._free: queue.Queue[Slot] = queue.Queue()
        self._slots: list[Slot] = []
        self._closed = False
        self._lock = threading.Lock()

    def _start_slots(self) -> None:
        try:
            for index in range(self.limits.workers):
                slot = self._open_slot(index)
                self._slots.append(slot)
                self._free.put(slot)
        except BaseException:
            self.close()
            raise

    # -- what a backend fills in ------------------------------------------------------------------
    @property
    def isolation(self) -> str:
        raise NotImplementedError

    def _open_slot(self, index: int) -> Slot:
        raise NotImplementedError

    def _run_in_slot(self, slot: Slot, request: RunRequest) -> ExecResult:
        raise NotImplementedError

    def _close_slot(self, slot: Slot) -> None:
        raise NotImplementedError

    # -- the public interface ---------------------------------------------------------------------
    def run(self, code: str, *, stdin: str | bytes = "", files: Mapping[str, str | bytes] | None = None,
            timeout_s: float | None = None, memory_mb: int | None = None) -> ExecResult:
        """Run `python3 main.py` (main.py = `code`) in a fresh private work dir holding `files`."""
        request = make_request(self.limits, code, stdin, files, timeout_s, memory_mb)
        if self._closed:
            raise SandboxError(f"this {self.backend} sandbox is closed")
        slot = self._free.get()
        try:
            return self._run_in_slot(slot, request)
        except (SandboxError, OSError) as error:  # the sandbox failed, not the program: data, never a raise
            return self.failure(f"{type(error).__name__}: {error}")
        finally:
            self._free.put(slot)

    def run_many(self, requests: Iterable[Mapping[str, Any]]) -> list[ExecResult]:
        """Run each request (`{"code": ..., "stdin": ..., "files": ..., "timeout_s": ..., "memory_mb": ...}`)
        in parallel over the worker slots; results come back in input order."""
        requests = list(requests)
        for position, request in enumerate(requests):
            if not isinstance(request, Mapping) or "code" not in request:
                raise TypeError(f"run_many request {position} must be a mapping with a 'code' key, got {request!r:.80}")
            unknown = set(request) - {"code", "stdin", "files", "timeout_s", "memory_mb"}
            if unknown:
                raise ValueError(f"run_many request {position} has unknown keys {sorted(unknown)}; "
                                 f"accepted: code, stdin, files, timeout_s, memory_mb")
        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=min(self.limits.workers, len(requests))) as pool:
            return list(pool.map(lambda request: self.run(**request), requests))

    def available(self) -> bool:
        """Whether what the sandbox runs on answers now (a Docker engine); a `sandbox_error` while it does not
        is the infrastructure's, not the program's. The local backend has nothing that can go away."""
        return not self._closed

    def failure(self, message: str, wall_s: float = 0.0) -> ExecResult:
        return ExecResult("sandbox_error", None, "", message, False, wall_s, self.backend, self.isolation)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        errors = []
        for slot in self._slots:
            try:
                self._close_slot(slot)
            except Exception as error:  # close every slot, then report
                errors.append(error)
        self._slots.clear()
        if errors:
            raise SandboxError(f"closing the {self.backend} sandbox failed: {errors[0]}") from errors[0]

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            try:
                self.close()
            except Exception:
                pass

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.isolation} workers={self.limits.workers}>"


class Deadline:
    """Seconds left until a moment fixed at creation."""

    def __init__(self, seconds: float):
        self.start = time.monotonic()
        self.end = self.start + seconds

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def elapsed(self) -> float:
        return time.monotonic() - self.start
