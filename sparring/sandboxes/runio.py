"""The host end of a local run: its input as in-memory files, its output read with a cap, its work dir.

The cold path reads a run's stdout and stderr with `capture` (at most `cap` bytes of each, ending the
run at its deadline or the cap); the host tiers (unshare, rlimits) write each run's files into a fresh
work dir under `make_work_root()` and remove it with `remove_tree`.
"""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, cast

from sparring.sandboxes.base import Deadline
from sparring.sandboxes.uids import is_root


def make_work_root() -> Path:
    """A private folder for the per-run work dirs of the host tiers, outside /tmp (which they replace),
    named after this process; folders of processes that no longer exist are removed."""
    parent = Path("/run") if is_root() and os.access("/run", os.W_OK) else Path.home() / ".cache" / "sparring"
    parent.mkdir(parents=True, exist_ok=True)
    for stale in parent.glob("sparring-sandbox-*-*"):
        pid = stale.name.split("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(stale, ignore_errors=True)
    root = Path(tempfile.mkdtemp(dir=parent, prefix=f"sparring-sandbox-{os.getpid()}-"))
    os.chmod(root, 0o711)  # slot uids reach their own work dirs, list nothing
    return root


def remove_tree(path: Path) -> None:
    """Remove a run's work dir, folders its program locked (mode 000) included: they are opened up first
    (root needs no such step; the caller's own uid, without per-slot uids, does)."""
    for folder, subfolders, _ in os.walk(path):
        for name in subfolders:
            sub = os.path.join(folder, name)
            try:
                if not os.path.islink(sub):  # every process of the run is dead: nothing swaps it for a link now
                    os.chmod(sub, 0o700)
            except OSError:
                pass
    shutil.rmtree(path, ignore_errors=True)


def memory_file(name: str, content: bytes) -> int:
    """An anonymous in-memory file holding `content`, read from its start (no host disk involved)."""
    fd = os.memfd_create(f"sparring-{name}"[:200])
    os.write(fd, content) if len(content) < 65536 else _write_all(fd, content)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _write_all(fd: int, content: bytes) -> None:
    view = memoryview(content)
    while view:
        view = view[os.write(fd, view):]


def capture(process: subprocess.Popen, deadline: Deadline, cap: int) -> tuple[bytes, bytes, str | None]:
    """Read stdout and stderr until both close (or `process` exits and they stay open briefly), keeping at
    most `cap` bytes of each. Returns (stdout, stderr, stopped): stopped is "timeout" or "output_limit"
    when the run must be ended for that reason, else None. (subprocess.communicate neither caps output nor
    notices a finished program whose pipes a leftover child still holds, hence this loop.)"""
    out_fd, err_fd = cast(IO[bytes], process.stdout).fileno(), cast(IO[bytes], process.stderr).fileno()  # both PIPEs
    streams = {out_fd: bytearray(), err_fd: bytearray()}
    with selectors.DefaultSelector() as selector:
        for fd in streams:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        exited_at = None
        while selector.get_map():
            left = deadline.left()
            if left <= 0:
                return bytes(streams[out_fd]), bytes(streams[err_fd]), "timeout"
            if exited_at is None and exited(process):
                exited_at = time.monotonic()
            elif exited_at is not None and time.monotonic() - exited_at > 0.2:
                break  # the program is done; what still holds its pipes is killed next
            for key, _ in selector.select(timeout=min(left, 0.05)):
                try:
                    chunk = os.read(key.fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                buffer = streams[key.fd]
                buffer += chunk
                if len(buffer) > cap:
                    del buffer[cap:]
                    return bytes(streams[out_fd]), bytes(streams[err_fd]), "output_limit"
    stdout, stderr = bytes(streams[out_fd]), bytes(streams[err_fd])
    while not exited(process):
        if deadline.left() <= 0:
            return stdout, stderr, "timeout"
        time.sleep(min(deadline.left(), 0.002))
    return stdout, stderr, None


def exited(process: subprocess.Popen) -> bool:
    """Whether `process` has ended, without reaping it (its pid stays reserved for the group kill)."""
    try:
        return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True
