"""The host side of the fork server (forkserver.py), shared by the local and docker backends' warm paths.

What a server is started with (`FORK_SERVER`, `WARM_MODULES`), how a run's files are framed for it
(`work_frames`), a run's CPU-time limit (`cpu_seconds`, the cold paths' too), how its report is checked
(`parse_report`) and read beside the run's output on the local backend (`capture_warm`), and how a run's
status follows from that report and what the host saw (`warm_status`).
"""

from __future__ import annotations

import json
import math
import os
import selectors
import signal
import socket
import struct
import time
from pathlib import Path

from sparring.sandboxes.base import Deadline, RunRequest, memory_error_in

FORK_SERVER = Path(__file__).with_name("forkserver.py")
# What the warm path's server imports before its first fork (the standard library only: no module that
# starts threads at import). A program's own imports of these cost nothing.
WARM_MODULES = ("abc", "array", "base64", "bisect", "collections", "contextlib", "copy", "dataclasses", "datetime",
                "decimal", "enum", "fractions", "functools", "hashlib", "heapq", "io", "itertools", "json", "math",
                "numbers", "operator", "queue", "random", "re", "statistics", "string", "struct", "tempfile",
                "textwrap", "threading", "traceback", "types", "typing", "unittest")


def work_frames(request: RunRequest) -> bytes:
    """The work files for the fork server: (name length, name, content length, content) each."""
    parts = []
    for name, content in request.work_files():
        raw = name.encode("utf-8", errors="surrogatepass")
        parts += [struct.pack("<I", len(raw)), raw, struct.pack("<Q", len(content)), content]
    return b"".join(parts)


def capture_warm(out_fd: int, err_fd: int, control: socket.socket, watchdog: Deadline,
                 cap: int) -> tuple[bytes, bytes, dict | None, str | None]:
    """Read a warm run's stdout and stderr (at most `cap` bytes of each) and the server's report. Returns
    (stdout, stderr, report or None, stopped): stopped is "output_limit" (the server was asked to end the
    run) or "timeout" (the watchdog: the server did not report in time). The report comes when every
    process of the run is dead, so the pipes close right after it."""
    streams = {out_fd: bytearray(), err_fd: bytearray()}
    report, stopped = None, None
    with selectors.DefaultSelector() as selector:
        for fd in streams:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        selector.register(control, selectors.EVENT_READ)
        reported_at = 0.0  # when the report came (read only once it has)
        while report is None or any(fd in selector.get_map() for fd in streams):
            left = watchdog.left()
            if report is not None:
                left = min(left, 1.0 - (time.monotonic() - reported_at))  # a pipe something else still holds
            if left <= 0:
                if report is None:
                    stopped = "timeout"
                break
            for key, _ in selector.select(timeout=left):
                if key.fileobj is control:
                    try:
                        message = control.recv(65536)
                    except OSError:
                        message = b""
                    selector.unregister(control)
                    report = parse_report(message)
                    reported_at = time.monotonic()
                    if report is None:
                        return bytes(streams[out_fd]), bytes(streams[err_fd]), None, stopped
                    continue
                try:
                    chunk = os.read(key.fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                buffer = streams[key.fd]
                if len(buffer) <= cap:
                    buffer += chunk
                if len(buffer) > cap:
                    del buffer[cap:]
                    buffer += b"!"  # one byte past the cap marks it passed; dropped below
                    if stopped is None:
                        stopped = "output_limit"
                        try:
                            control.send(b"K")
                        except OSError:
                            pass
    return bytes(streams[out_fd][:cap]), bytes(streams[err_fd][:cap]), report, stopped


def warm_status(report: dict | None, stdout: bytes, stderr: bytes, stopped: str | None, oom: bool,
                memory_capped: bool, cpu_limit: int, place: str) -> tuple[str, int | None, bytes]:
    """(status, exit code, stderr) of a warm run, from the fork server's report (None: it did not report)
    and what the host saw (`stopped`: its output cap or watchdog; `oom`: the cgroup's OOM kills)."""
    if report is None:
        status = stopped or ("memory" if oom else "killed")
        if status == "killed":
            stderr += f"\n[sparring: the run's fork server ended before it could report; its {place} was replaced]".encode()
        return status, None, stderr
    code = -report["signal"] if report["signal"] is not None else report["exit"]
    if report["left"]:
        status = "sandbox_error"
        stderr += (f"\n[sparring: the cleanup after this run left {'; '.join(report['left'])}; "
                   f"its {place} was replaced]").encode()
    elif stopped or report["ended"]:
        status = stopped or "output_limit"
    elif report["timeout"]:
        status = "timeout"
    elif code == 0:
        status = "ok"
    elif oom or report["oom"] or (not memory_capped and memory_error_in(stderr)):
        status = "memory"
    elif code == -signal.SIGXCPU and report["cpu_s"] >= cpu_limit - 0.1:
        status = "timeout"
    elif code < 0:
        status = "killed"
    else:
        status = "error"
    return status, code, stderr


REPORT_KEYS = {"exit", "signal", "timeout", "ended", "wall_s", "cpu_s", "left", "doubt", "problem", "oom"}


def parse_report(message: bytes) -> dict | None:
    try:
        report = json.loads(message)
    except ValueError:
        return None
    return report if type(report) is dict and set(report) == REPORT_KEYS else None


def cpu_seconds(timeout_s: float) -> int:
    """The CPU-time rlimit of a run: a second past its wall-clock limit (a backstop for multithreaded spins)."""
    return math.ceil(timeout_s) + 1
