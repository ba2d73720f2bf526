"""Slot uids of the local backend: a host uid leased per worker slot, and killing every process of one.

When the sandbox runs as root, each worker slot runs its programs as a host uid of its own, leased
machine-wide with a lock file (so no two slots anywhere share one). `kill_until_gone` is how a slot's
uid and its cgroups (cgroups.py) are emptied when a run returns.
"""

from __future__ import annotations

import fcntl
import os
import re
import signal
import tempfile
import time
from pathlib import Path

from sparring.sandboxes.base import SandboxError

SLOT_UID_BASE = 1_500_000_000  # far above any login or subordinate (subuid) range
SLOT_UID_SPAN = 4096
UID_LOCK_DIR = Path(tempfile.gettempdir()) / "sparring-sandbox-uids"


def is_root() -> bool:
    return os.geteuid() == 0


class UidLease:
    """A host uid held for this process alone, through an exclusive lock on a file named after it."""

    def __init__(self) -> None:
        UID_LOCK_DIR.mkdir(mode=0o700, exist_ok=True)
        info = UID_LOCK_DIR.stat()
        if info.st_uid != 0 or info.st_mode & 0o077:
            raise SandboxError(f"{UID_LOCK_DIR} must be owned by root with mode 0700 (it is uid {info.st_uid}, "
                               f"mode {info.st_mode & 0o777:o}); remove it and retry")
        for uid in range(SLOT_UID_BASE, SLOT_UID_BASE + SLOT_UID_SPAN):
            fd = os.open(UID_LOCK_DIR / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.uid, self._fd = uid, fd
            kill_until_gone(lambda: uid_processes(uid), f"uid {uid}")  # leftovers of a crashed owner
            return
        raise SandboxError(f"all {SLOT_UID_SPAN} sandbox uids from {SLOT_UID_BASE} are in use")

    def release(self) -> None:
        os.close(self._fd)


def uid_processes(uid: int) -> set[int]:
    """Live (not zombie) processes whose real uid is `uid`, read from /proc/<pid>/status."""
    found = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", "rb") as f:
                status = f.read(1024)
        except OSError:
            continue  # gone meanwhile
        match = _UID_LINE.search(status)
        if match and int(match[1]) == uid and not _ZOMBIE_LINE.search(status):
            found.add(int(name))
    return found


_UID_LINE = re.compile(rb"^Uid:\s+(\d+)", re.MULTILINE)
_ZOMBIE_LINE = re.compile(rb"^State:\s+Z", re.MULTILINE)


def kill_until_gone(list_processes, what: str, seconds: float = 5.0) -> None:
    """SIGKILL every process `list_processes()` names until it names none; SandboxError if that fails."""
    deadline = time.monotonic() + seconds
    pause = 0.0005
    while pids := list_processes():
        if time.monotonic() > deadline:
            raise SandboxError(f"processes of {what} survive SIGKILL: {sorted(pids)[:10]}")
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
