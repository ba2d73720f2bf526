"""Slot cgroups of the local backend: the pids and memory limits of one worker slot (cgroup v1 or v2).

When the sandbox runs as root and the hierarchy is writable, each slot gets pids and memory cgroups made
under this process's own. Memory is capped by the cgroup where there is one (its OOM kills say "memory");
only without one by RLIMIT_AS (see local.py). When a run returns, every process left in them is killed.
"""

from __future__ import annotations

from pathlib import Path

from sparring.sandboxes.base import SandboxError
from sparring.sandboxes.uids import kill_until_gone

CGROUP_ROOT = Path("/sys/fs/cgroup")


def own_cgroup(controller: str) -> str | None:
    """This process's cgroup path in the v1 hierarchy of `controller` ("" for v2), or None."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(",") or (controller == "" and controllers == ""):
            return path
    return None


class SlotCgroups:
    """The pids and memory cgroups of one slot, made under this process's own (v1 or v2)."""

    def __init__(self, name: str, max_tasks: int):
        self.dirs: list[Path] = []
        self.kind = ""
        try:
            if (CGROUP_ROOT / "pids" / "cgroup.procs").exists() or (CGROUP_ROOT / "memory" / "cgroup.procs").exists():
                self._make_v1(name)
            elif (CGROUP_ROOT / "cgroup.controllers").exists():
                self._make_v2(name)
        except OSError:
            self.remove()
        if self.pids_dir:
            (self.pids_dir / "pids.max").write_text(str(max_tasks))

    @staticmethod
    def remove_stale(parent: Path) -> None:
        """Remove the slot cgroups that a process which no longer exists left under `parent`."""
        for path in parent.glob("sparring-*-*"):
            pid = path.name.split("-")[1]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                procs = path / "cgroup.procs"
                try:
                    kill_until_gone(lambda: {int(p) for p in procs.read_text().split()}, f"cgroup {path}")
                    path.rmdir()
                except (OSError, SandboxError):
                    pass

    def _make_v1(self, name: str) -> None:
        self.pids_dir = self.memory_dir = None
        for controller in ("pids", "memory"):
            parent = own_cgroup(controller)
            if parent is None or not (CGROUP_ROOT / controller / "cgroup.procs").exists():
                continue
            path = CGROUP_ROOT / controller / parent.lstrip("/") / name
            self.remove_stale(path.parent)
            path.mkdir()
            self.dirs.append(path)
            setattr(self, f"{controller}_dir", path)
        self.kind = "v1"

    def _make_v2(self, name: str) -> None:
        self.pids_dir = self.memory_dir = None
        parent = CGROUP_ROOT / (own_cgroup("") or "/").lstrip("/")
        enabled = set((parent / "cgroup.subtree_control").read_text().split())
        if not {"pids", "memory"} <= enabled:
            (parent / "cgroup.subtree_control").write_text("+pids +memory")  # fails where the parent holds processes
        path = parent / name
        self.remove_stale(parent)
        path.mkdir()
        self.dirs.append(path)
        self.pids_dir = self.memory_dir = path
        self.kind = "v2"

    pids_dir: Path | None = None
    memory_dir: Path | None = None

    @property
    def applied(self) -> str:
        """"cgroup" (pids and memory), "cgroup-pids", "cgroup-memory", or "" (none)."""
        if self.pids_dir and self.memory_dir:
            return "cgroup"
        return "cgroup-pids" if self.pids_dir else "cgroup-memory" if self.memory_dir else ""

    @property
    def procs_files(self) -> list[Path]:
        return [path / "cgroup.procs" for path in dict.fromkeys(self.dirs)]

    memory_limit = 0  # bytes, as last set

    def set_memory(self, limit_bytes: int) -> None:
        if not self.memory_dir or limit_bytes == self.memory_limit:
            return
        self.memory_limit = limit_bytes
        if self.kind == "v2":
            (self.memory_dir / "memory.max").write_text(str(limit_bytes))
            swap = self.memory_dir / "memory.swap.max"
            if swap.exists():
                swap.write_text("0")
            return
        names = ["memory.limit_in_bytes"]
        if (self.memory_dir / "memory.memsw.limit_in_bytes").exists():
            names.append("memory.memsw.limit_in_bytes")  # memory + swap: no swapping past the limit
        for order in (names, names[::-1]):  # memsw must stay >= limit at every step
            try:
                for file in order:
                    (self.memory_dir / file).write_text(str(limit_bytes))
                return
            except OSError:
                continue
        raise SandboxError(f"cannot set the memory limit of cgroup {self.memory_dir}")

    def oom_kills(self) -> int:
        if not self.memory_dir:
            return 0
        file = self.memory_dir / ("memory.events" if self.kind == "v2" else "memory.oom_control")
        for line in file.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def processes(self) -> set[int]:
        found = set()
        for file in self.procs_files:
            found.update(int(pid) for pid in file.read_text().split())
        return found

    def remove(self) -> None:
        if all(file.exists() for file in self.procs_files):
            kill_until_gone(self.processes, f"cgroups {self.dirs}")
        for path in self.dirs:
            if path.exists():
                path.rmdir()
        self.dirs.clear()
        self.pids_dir = self.memory_dir = None

