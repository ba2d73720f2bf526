"""The local backend: each program runs in bubblewrap (or `unshare`) as its worker slot's own uid, with limits.

Tiers, strongest first (the strongest that works is picked at start and recorded in every result):

- "bwrap": bubblewrap with every namespace unshared (no network, own pids, ipc, uts, cgroup, user),
  a read-only root holding only /usr (read-only), private tmpfs /tmp, /dev/shm and work dir (/work),
  each of max_file_mb, and a minimal read-only /dev and /proc, a cleared environment, a new session,
  no capabilities, no nested user namespaces, and it dies with its parent.
- "unshare": util-linux `unshare` (user, net, pid, ipc, uts, mount namespaces) with private tmpfs /tmp,
  /var/tmp, /dev/shm and /run/lock and no capabilities: no network and no process outlives the run, but
  the host's files stay readable (and other world-writable places writable, where a later run could
  read what a run left) as far as the slot uid's permissions allow.
- "rlimits": limits only, no namespaces. Insecure (network, host files, sibling processes are all
  reachable); it must be asked for by name and warns.

Every tier adds, when the sandbox runs as root: a host uid per worker slot (leased machine-wide with
a lock file, so no two slots anywhere share one), rlimits (CPU, file size, open files, processes;
RLIMIT_NPROC only binds below root) and cgroup pids and memory limits per slot (v1 or v2, where the
hierarchy is writable). Memory is capped by the cgroup where there is one (its OOM kills say
"memory"); only without one by RLIMIT_AS, which also counts every thread's stack reservation. The launch chain is `sh` (joins the slot's cgroups, sets the
rlimits) -> `setpriv` (drops to the slot's uid, no capabilities, no new privileges, dies with this
process) -> the tier's
sandbox -> `python3 main.py`, so nothing of the program runs before every limit is in place. When a
run returns, the launch chain's process group is killed and the slot's cgroup and uid are checked
until no process of theirs is left.

That is the cold path (`warm=False`). The warm path (the default, bwrap tier only) starts that launch
chain once per slot with a fork server (`forkserver.py`) as the sandbox's program and pid 1: each run is a
fork of it, with the run's files written into the emptied /work, its stdin and the host's own output
pipes passed over a socketpair, its CPU limit, and seccomp filters; the server reports wait4's status and
cleans up (see forkserver.py). A server that did not report, left something, or that a run changed is
killed with its whole sandbox, and the slot's next run starts a fresh one.
"""

from __future__ import annotations

import array
import fcntl
import functools
import json
import math
import os
import re
import selectors
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sparring.errors import UnknownNameError
from sparring.sandboxes import seccomp
from sparring.sandboxes.base import (Deadline, ExecResult, Limits, RunRequest, Sandbox, SandboxError, decode,
                                     memory_error_in)

TIERS = ("bwrap", "unshare", "rlimits")
SLOT_UID_BASE = 1_500_000_000  # far above any login or subordinate (subuid) range
SLOT_UID_SPAN = 4096
UID_LOCK_DIR = Path(tempfile.gettempdir()) / "sparring-sandbox-uids"
OPEN_FILES = 256
MEMORY_HEADROOM_MB = 32  # the cgroup's memory limit above the program's: bwrap and python3 themselves
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
LAUNCHER_FAILED = 125  # the launcher's own exit status when a cgroup or rlimit cannot be set, with:
LAUNCHER_MESSAGE = b"sparring-sandbox:"
WARM_ISOLATION = "+fork-server+seccomp"
FORK_SERVER = Path(__file__).with_name("forkserver.py")
# What the warm path's server imports before its first fork (the standard library only: no module that
# starts threads at import). A program's own imports of these cost nothing.
WARM_MODULES = ("abc", "array", "base64", "bisect", "collections", "contextlib", "copy", "dataclasses", "datetime",
                "decimal", "enum", "fractions", "functools", "hashlib", "heapq", "io", "itertools", "json", "math",
                "numbers", "operator", "queue", "random", "re", "statistics", "string", "struct", "tempfile",
                "textwrap", "threading", "traceback", "types", "typing", "unittest")
WARM_GRACE_S = 5.0  # the server ends a run at its time limit; the host replaces the slot's sandbox if it does not
WARM_START_S = 30.0  # how long a fork server may take to start and answer its first run


def is_root() -> bool:
    return os.geteuid() == 0


# -- slot uids ---------------------------------------------------------------------------------------
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


# -- cgroups -----------------------------------------------------------------------------------------
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


# -- the sandbox -------------------------------------------------------------------------------------
@dataclass
class LocalSlot:
    index: int
    uid: int | None  # the slot's host uid (root only), else None: programs run as the caller
    lease: UidLease | None
    cgroups: SlotCgroups | None
    work_root: Path | None  # per-run work dirs of the unshare and rlimits tiers live here
    server: WarmServer | None = None  # the warm path's fork server, when it runs


@dataclass
class WarmServer:
    """A fork server running in a slot's bubblewrap sandbox (see forkserver.py), and how to reach it."""

    process: subprocess.Popen  # the launch chain: sh -> setpriv -> bwrap
    control: socket.socket  # the host's end of its control socket
    log: int  # a memfd holding its stderr
    host_pids: frozenset[int]  # bwrap, bwrap's init and the server: what is always alive in a warm slot


class LocalSandbox(Sandbox[LocalSlot]):
    """Programs run locally under the strongest isolation this host allows (see the module docstring)."""

    backend = "local"

    def __init__(self, limits: Limits, isolation: str | None = None, warm: bool = True):
        super().__init__(limits)
        if not isinstance(warm, bool):
            raise TypeError(f"warm must be True (a fork server per slot) or False (a fresh sandbox per run), got {warm!r}")
        if isolation is not None and isolation not in TIERS:
            raise UnknownNameError("local sandbox isolation", isolation, TIERS,
                                   "Leave it out for the strongest this host allows.")
        if isolation == "rlimits":
            warnings.warn("isolation='rlimits' is insecure: programs can reach the network, read host files and "
                          "signal other processes; use it only for trusted code", stacklevel=3)
        self.python = sandbox_python()
        self.tier = isolation or strongest_tier()
        if not tier_works(self.tier):
            raise SandboxError(f"isolation={isolation!r} does not work on this host: {tier_problem(self.tier)}")
        self._root = None if self.tier == "bwrap" else make_work_root()
        self.warm = warm and self.tier == "bwrap"  # the host tiers have no sandbox to keep warm
        self.warm_problem = "" if self.warm else ("warm=False" if not warm else f"the {self.tier} tier is cold only")
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sparring-fork-servers")
        self._start_slots()
        parts = ([] if self.tier == "rlimits" else [self.tier]) + (["uid"] if is_root() else []) + ["rlimits"]
        cgroups = self._slots[0].cgroups.applied if self._slots[0].cgroups else ""
        self._cold_isolation = "+".join(parts + ([cgroups] if cgroups else []))
        if self.tier == "rlimits":
            self._cold_isolation += " (insecure)"
        if self.warm:
            try:
                for slot in self._slots:
                    self._start_server(slot)
            except SandboxError as error:  # the cold path still works: say why the warm one does not
                for slot in self._slots:
                    self._stop_server(slot)
                self.warm, self.warm_problem = False, str(error)
                warnings.warn(f"the local sandbox runs cold (a fresh bubblewrap per run): {error}", stacklevel=3)

    @property
    def isolation(self) -> str:
        """What confines a run of this sandbox: the cold tiers' string, plus "+fork-server+seccomp" on the warm path."""
        cold = getattr(self, "_cold_isolation", "local")
        return cold + WARM_ISOLATION if getattr(self, "warm", False) else cold

    def _open_slot(self, index: int) -> LocalSlot:
        if not is_root():
            return LocalSlot(index, None, None, None, self._root)
        lease = UidLease()
        try:
            cgroups = SlotCgroups(f"sparring-{os.getpid()}-{index}-{uuid.uuid4().hex[:8]}",
                                  self.limits.max_processes + 4)
        except BaseException:
            lease.release()
            raise
        return LocalSlot(index, lease.uid, lease, cgroups if cgroups.applied else None, self._root)

    def _close_slot(self, slot: LocalSlot) -> None:
        self._stop_server(slot)
        if slot.uid is not None:
            kill_until_gone(lambda: uid_processes(slot.uid), f"uid {slot.uid}")
        if slot.cgroups:
            slot.cgroups.remove()
        if slot.lease:
            slot.lease.release()

    def close(self) -> None:
        try:
            super().close()
        finally:
            if getattr(self, "_spawner", None):
                self._spawner.shutdown(wait=False)
            if getattr(self, "_root", None):
                shutil.rmtree(self._root, ignore_errors=True)

    # -- one run ----------------------------------------------------------------------------------
    def _run_in_slot(self, slot: LocalSlot, request: RunRequest) -> ExecResult:
        if self.warm:
            return self._run_warm(slot, request)
        return self._run_cold(slot, request)

    def _run_cold(self, slot: LocalSlot, request: RunRequest) -> ExecResult:
        deadline = Deadline(request.timeout_s)
        fds: list[int] = []
        work_dir = None
        try:
            if self.tier == "bwrap":
                command = self._bwrap_command(request, fds)
            else:
                work_dir = self._host_work_dir(slot, request)
                command = self._host_command(work_dir)
            status_read, status_write = os.pipe()
            fds += [status_read, status_write]
            if self.tier == "bwrap":
                command[1:1] = ["--json-status-fd", str(status_write)]
            stdin = memory_file("stdin", request.stdin)
            fds.append(stdin)
            if slot.cgroups:
                slot.cgroups.set_memory((request.memory_mb + MEMORY_HEADROOM_MB) << 20)
            oom_before = slot.cgroups.oom_kills() if slot.cgroups else 0
            argv = self._launcher(slot, cpu_seconds(request.timeout_s), request.memory_mb) + self._drop_privileges(slot) + command
            try:
                process = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                           pass_fds=[fd for fd in fds if fd not in (stdin, status_read)],
                                           start_new_session=True, cwd=work_dir or "/", env=self._environment(work_dir))
            except OSError as error:
                raise SandboxError(f"cannot start the sandbox ({argv[0]}): {error}") from error
            os.close(status_write)
            fds.remove(status_write)
            cpu_s = 0.0
            try:
                stdout, stderr, stopped = capture(process, deadline, self.limits.max_output_bytes)
            finally:
                cpu_s = self._end(slot, process)
            wall = deadline.elapsed()
            with os.fdopen(status_read, "rb") as f:
                fds.remove(status_read)
                launch_status = f.read()
            launcher_failed = process.returncode == LAUNCHER_FAILED and stderr.startswith(LAUNCHER_MESSAGE)
            launched = b"child-pid" in launch_status if self.tier == "bwrap" else not launcher_failed
            if not launched and stopped is None:
                return self.failure(f"the {self.tier} sandbox failed to start: {decode(stderr[-2000:])}", wall)
            oom = slot.cgroups is not None and slot.cgroups.oom_kills() > oom_before
            capped = "cgroup" if slot.cgroups is not None and slot.cgroups.memory_dir else "rlimit"
            cpu_limit = cpu_seconds(request.timeout_s)
            return self._result(process.returncode, stdout, stderr, stopped, oom, capped, cpu_s >= cpu_limit - 0.1, wall)
        finally:
            for fd in fds:
                os.close(fd)
            if work_dir:
                remove_tree(work_dir)

    def _result(self, returncode: int, stdout: bytes, stderr: bytes, stopped: str | None, oom: bool,
                capped: str, used_cpu_limit: bool, wall: float) -> ExecResult:
        """The status from what this process observed: its own clock (`stopped`), the cgroup's OOM kills,
        the CPU time wait4 reports; never from the program's output alone. Two things the program can
        claim: through bwrap (or unshare's shell) a death by signal N and an exit with 128 + N look alike
        ("killed"), and where no memory cgroup exists, RLIMIT_AS caps memory and Python's MemoryError on
        stderr is the only sign of it ("memory"). Either only fails the program's own run."""
        exit_code = returncode
        if self.tier != "rlimits" and returncode > 128:  # bwrap and sh report death by signal N as 128 + N
            exit_code = -(returncode - 128)
        truncated = stopped == "output_limit"
        if stopped:
            status = stopped
        elif exit_code == 0:
            status = "ok"
        elif oom or (capped == "rlimit" and memory_error_in(stderr)):
            status = "memory"
        elif exit_code == -signal.SIGXCPU and used_cpu_limit:
            status = "timeout"  # the CPU-time rlimit, and the CPU time to show for it
        elif exit_code < 0:
            status = "killed"
        else:
            status = "error"
        return ExecResult(status, exit_code, decode(stdout), decode(stderr), truncated, wall, self.backend,
                          self.isolation)

    def _end(self, slot: LocalSlot, process: subprocess.Popen) -> float:
        """Kill the launch chain's process group, reap it, then everything left in the slot. Returns the
        CPU seconds the chain used (its reaped descendants included), as wait4 reports them."""
        try:
            os.killpg(process.pid, signal.SIGKILL)  # the leader is not reaped yet: its pid cannot be reused
        except (ProcessLookupError, PermissionError):
            pass
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        process.stdout.close()  # read by `capture`; closed here so no pipe outlives the run
        process.stderr.close()
        if slot.cgroups:
            kill_until_gone(slot.cgroups.processes, f"slot {slot.index}'s cgroup")
        if slot.uid is not None:  # also a namespace's init that is still exiting (no longer in the cgroup)
            kill_until_gone(lambda: uid_processes(slot.uid), f"slot {slot.index}'s uid {slot.uid}")
        return usage.ru_utime + usage.ru_stime

    # -- the warm path ----------------------------------------------------------------------------
    def _start_server(self, slot: LocalSlot) -> WarmServer:
        """Start the slot's fork server in bubblewrap and check it runs a program; SandboxError saying why not."""
        host_end, server_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        log = memory_file("fork-server-log", b"")
        program = ["python3", "-I", "-c", FORK_SERVER.read_text(), f"fd:{server_end.fileno()}",
                   json.dumps(seccomp.profile(), separators=(",", ":")), ",".join(WARM_MODULES), "/work,/tmp,/dev/shm"]
        argv = (self._launcher(slot, None, None) + self._drop_privileges(slot)
                + self._bwrap_command(None, [], program))
        try:  # from one long-lived thread: the launch chain dies with the thread that started it (PDEATHSIG)
            process = self._spawner.submit(
                subprocess.Popen, argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                pass_fds=[server_end.fileno()], start_new_session=True, cwd="/", env=self._environment(None)).result()
        except OSError as error:
            host_end.close()
            os.close(log)
            raise SandboxError(f"cannot start the fork server ({argv[0]}): {error}") from error
        finally:
            server_end.close()
        slot.server = WarmServer(process, host_end, log, frozenset())
        try:
            host_end.settimeout(WARM_START_S)
            try:
                ready = host_end.recv(4096)
            except OSError:
                ready = b""
            host_end.settimeout(None)
            if not ready:
                os.lseek(log, 0, os.SEEK_SET)
                raise SandboxError(f"the fork server did not start: {decode(os.read(log, 4000)).strip()[-1500:]}")
            slot.server.host_pids = frozenset(server_chain(process.pid))
            check = self._run_warm(slot, make_probe())
            if (check.status, check.stdout) != ("ok", "42\n"):
                raise SandboxError(f"the fork server's first run failed: {check.status} {check.stderr.strip()[-1500:]}")
        except BaseException:
            self._stop_server(slot)
            raise
        return slot.server

    def _stop_server(self, slot: LocalSlot) -> None:
        """End the slot's fork server and everything in its sandbox; the next warm run starts a fresh one."""
        server, slot.server = slot.server, None
        if server is None:
            return
        server.control.close()
        try:
            os.killpg(server.process.pid, signal.SIGKILL)  # bwrap dies; its sandbox dies with it (--die-with-parent)
        except (ProcessLookupError, PermissionError):
            pass
        server.process.wait()
        os.close(server.log)
        if slot.cgroups:
            kill_until_gone(slot.cgroups.processes, f"slot {slot.index}'s cgroup")
        if slot.uid is not None:
            kill_until_gone(lambda: uid_processes(slot.uid), f"slot {slot.index}'s uid {slot.uid}")

    def _run_warm(self, slot: LocalSlot, request: RunRequest) -> ExecResult:
        """One run through the slot's fork server (started first if it is not running)."""
        if slot.server is None or slot.server.process.poll() is not None:
            self._stop_server(slot)
            self._start_server(slot)
        server = slot.server
        deadline = Deadline(request.timeout_s)
        fds: list[int] = []
        try:
            out_read, out_write = os.pipe()
            err_read, err_write = os.pipe()
            fds += [out_read, out_write, err_read, err_write]
            sent = [memory_file("stdin", request.stdin), out_write, err_write,
                    memory_file("files", work_frames(request))]
            fds += [sent[0], sent[3]]
            memory_capped = slot.cgroups is not None and slot.cgroups.memory_dir is not None
            if slot.cgroups:
                slot.cgroups.set_memory((request.memory_mb + MEMORY_HEADROOM_MB) << 20)
            oom_before = slot.cgroups.oom_kills() if slot.cgroups else 0
            header = {"timeout_s": request.timeout_s, "cpu_s": cpu_seconds(request.timeout_s),
                      "memory_bytes": 0 if memory_capped else request.memory_mb << 20}
            for attempt in range(2):  # a server that died between runs (say, the OOM killer's) is replaced once
                try:
                    server.control.sendmsg([json.dumps(header).encode()],
                                           [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", sent))])
                    break
                except OSError as error:
                    self._stop_server(slot)
                    if attempt:
                        raise SandboxError(f"the fork server does not answer: {error}") from error
                    server = self._start_server(slot)
            for fd in sent:
                os.close(fd)
                fds.remove(fd)
            watchdog = Deadline(request.timeout_s + WARM_GRACE_S)
            stdout, stderr, report, stopped = capture_warm(out_read, err_read, server.control, watchdog,
                                                           self.limits.max_output_bytes)
            wall = deadline.elapsed()
            oom = slot.cgroups is not None and slot.cgroups.oom_kills() > oom_before
            return self._warm_result(slot, report, stdout, stderr, stopped, oom, memory_capped, request, wall)
        finally:
            for fd in fds:
                os.close(fd)

    def _warm_result(self, slot: LocalSlot, report: dict | None, stdout: bytes, stderr: bytes, stopped: str | None,
                     oom: bool, memory_capped: bool, request: RunRequest, wall: float) -> ExecResult:
        """The status from what the server observed (wait4's status, its own timer) and this process (the
        output cap, the cgroup's OOM kills); a slot whose server did not report, left anything, or is in doubt
        is replaced. Exit 137 and death by SIGKILL are told apart here (the cold path cannot)."""
        if report is None or report["left"] or report["doubt"] or report["problem"]:
            self._stop_server(slot)  # what is in the slot's sandbox is unknown: the next run starts a fresh one
        if report is not None and report["problem"]:
            return self.failure(f"the fork server could not start the run: {report['problem']}", wall)
        status, code, stderr = warm_status(report, stdout, stderr, stopped, oom, memory_capped,
                                           cpu_seconds(request.timeout_s), "sandbox")
        return ExecResult(status, code, decode(stdout), decode(stderr), status == "output_limit", wall,
                          self.backend, self.isolation)

    # -- command lines ----------------------------------------------------------------------------
    def _launcher(self, slot: LocalSlot, cpu_s: int | None, memory_mb: int | None) -> list[str]:
        """`sh -c`: join the slot's cgroups, set the rlimits, then exec the rest of the command line. The
        warm path's server sets the CPU and address-space limits per child (None here)."""
        lines = [f"echo $$ > {shlex.quote(str(path))}" for path in (slot.cgroups.procs_files if slot.cgroups else [])]
        processes = self.limits.max_processes + 4  # + the sandbox's own processes (bwrap, its init, a fork server)
        if slot.uid is None:  # RLIMIT_NPROC counts every process of the caller's uid
            processes += len(uid_processes(os.getuid()))
        limits = {"c": 0, "f": self.limits.max_file_mb * 2048, "n": OPEN_FILES, "p": processes}
        if cpu_s is not None:
            limits["t"] = cpu_s
        if memory_mb is not None and not (slot.cgroups and slot.cgroups.memory_dir):  # the fallback: RLIMIT_AS
            limits["v"] = memory_mb * 1024  # also counts thread stacks
        lines += [f"ulimit -{flag} {value}" for flag, value in limits.items()]
        checked = [f"{line} || {{ echo {shlex.quote(f'{LAUNCHER_MESSAGE.decode()} failed: {line}')} >&2; "
                   f"exit {LAUNCHER_FAILED}; }}" for line in lines]
        return ["/bin/sh", "-c", "\n".join(checked + ['exec "$@"']), "sparring-sandbox"]

    def _drop_privileges(self, slot: LocalSlot) -> list[str]:
        """setpriv: the slot's uid, no capabilities, no new privileges, and killed if this process dies."""
        if slot.uid is None:
            return ["setpriv", "--pdeathsig=KILL", "--no-new-privs", "--"]
        return ["setpriv", f"--reuid={slot.uid}", f"--regid={slot.uid}", "--clear-groups", "--no-new-privs",
                "--inh-caps=-all", "--bounding-set=-all", "--pdeathsig=KILL", "--"]

    def _bwrap_command(self, request: RunRequest | None, fds: list[int], program: list[str] | None = None) -> list[str]:
        """bubblewrap for one run (`python3 main.py` with the request's files), or for `program` (a fork server)."""
        size = str(self.limits.max_file_mb << 20)
        command = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
                   "--new-session", "--cap-drop", "ALL", "--clearenv", "--hostname", "sandbox",
                   "--uid", "1000", "--gid", "1000"]
        for name, value in self._environment("/work").items():
            command += ["--setenv", name, value]
        command += system_binds(self.python)
        command += ["--proc", "/proc", "--dev", "/dev", "--size", size, "--tmpfs", "/dev/shm",  # --dev's own is unsized
                    "--size", size, "--tmpfs", "/tmp", "--size", size, "--tmpfs", "/work", "--chdir", "/work"]
        made_dirs = set()
        for name, content in (request.work_files() if request else []):
            parts = name.split("/")
            for depth in range(1, len(parts)):
                folder = "/work/" + "/".join(parts[:depth])
                if folder not in made_dirs:
                    made_dirs.add(folder)
                    command += ["--dir", folder]
            fd = memory_file(name, content)
            fds.append(fd)
            command += ["--perms", "0644", "--file", str(fd), f"/work/{name}"]
        # only /work, /tmp and /dev/shm are writable (--dev's own tmpfs has no size: read-only)
        if program:  # the fork server is the namespace's pid 1 (non-dumpable): no bwrap init a run could rewrite
            command.append("--as-pid-1")
        return command + ["--remount-ro", "/dev", "--remount-ro", "/", "--", *(program or ["python3", "main.py"])]

    def _host_work_dir(self, slot: LocalSlot, request: RunRequest) -> Path:
        work_dir = Path(tempfile.mkdtemp(dir=slot.work_root, prefix=f"slot{slot.index}-"))
        for name, content in request.work_files():
            path = work_dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        if slot.uid is not None:
            for path in [work_dir, *work_dir.rglob("*")]:
                os.chown(path, slot.uid, slot.uid)
        return work_dir

    def _host_command(self, work_dir: Path) -> list[str]:
        program = [self.python, "main.py"]
        if self.tier == "unshare":
            return ["unshare", "--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child",
                    "--mount-proc", "--ipc", "--uts", "--", "/bin/sh", "-c", UNSHARE_SETUP,
                    f"{self.limits.max_file_mb}m"] + program
        return program

    def _environment(self, home) -> dict[str, str]:
        path = SANDBOX_PATH
        python_bin = str(Path(self.python).parent)
        if python_bin not in path.split(":"):
            path = f"{python_bin}:{path}"
        return {"PATH": path, "HOME": str(home or "/"), "LANG": "C.UTF-8", "TMPDIR": "/tmp"}


# Inside `unshare` (root of a new user namespace): private tmpfs scratch dirs (the usual world-writable ones), then every capability
# dropped for good, then sh as the namespace's pid 1 so that the program gets ordinary signals.
UNSHARE_SETUP = f"""size=$0
for dir in /tmp /var/tmp /dev/shm /run/lock; do
    if [ -d "$dir" ]; then mount -t tmpfs -o "size=$size,mode=1777" sparring "$dir" || exit {LAUNCHER_FAILED}; fi
done
exec setpriv --no-new-privs --inh-caps=-all --bounding-set=-all -- /bin/sh -c '"$@"; exit $?' sh "$@"
"""


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


def make_probe() -> RunRequest:
    return RunRequest("print(6 * 7)", timeout_s=WARM_START_S, memory_mb=64)


def work_frames(request: RunRequest) -> bytes:
    """The work files for the fork server: (name length, name, content length, content) each."""
    parts = []
    for name, content in request.work_files():
        raw = name.encode("utf-8", errors="surrogatepass")
        parts += [struct.pack("<I", len(raw)), raw, struct.pack("<Q", len(content)), content]
    return b"".join(parts)


def server_chain(pid: int) -> list[int]:
    """`pid` (bwrap) and its descendants down to the fork server (pid 1 of the slot's namespaces)."""
    chain = [pid]
    for _ in range(2):
        try:
            children = Path(f"/proc/{chain[-1]}/task/{chain[-1]}/children").read_text().split()
        except OSError:
            break
        if len(children) != 1:
            break
        chain.append(int(children[0]))
    return chain


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
        reported_at = None
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
    streams = {process.stdout.fileno(): bytearray(), process.stderr.fileno(): bytearray()}
    with selectors.DefaultSelector() as selector:
        for fd in streams:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        exited_at = None
        while selector.get_map():
            left = deadline.left()
            if left <= 0:
                return bytes(streams[process.stdout.fileno()]), bytes(streams[process.stderr.fileno()]), "timeout"
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
                    return bytes(streams[process.stdout.fileno()]), bytes(streams[process.stderr.fileno()]), "output_limit"
    stdout, stderr = bytes(streams[process.stdout.fileno()]), bytes(streams[process.stderr.fileno()])
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


# -- what the host offers ----------------------------------------------------------------------------
@functools.cache
def sandbox_python() -> str:
    """The python3 programs run with: the system's (under /usr), else the one running sparring."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate
    return str(Path(sys.base_prefix) / "bin" / "python3")


def system_binds(python: str) -> list[str]:
    """bwrap arguments for a read-only system: /usr, the /bin, /lib... links (or dirs), the linker cache."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    if Path("/etc/ld.so.cache").exists():
        args += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    prefix = str(Path(python).resolve().parent.parent)
    if not prefix.startswith("/usr"):
        args += ["--ro-bind", prefix, prefix]
    return args


def _probe_command(tier: str, uid: int | None) -> list[str]:
    drop = ([] if uid is None else ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"])
    if tier == "bwrap":
        return drop + ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
                       "--new-session", "--cap-drop", "ALL", "--clearenv", *system_binds(sandbox_python()),
                       "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--", sandbox_python(), "-c", "pass"]
    return drop + ["unshare", "--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child", "--mount-proc",
                   "--ipc", "--uts", "--", "/bin/sh", "-c", UNSHARE_SETUP, "1m", sandbox_python(), "-c", "pass"]


@functools.cache
def _probe(tier: str, uid: int | None) -> str:
    """"" when `tier` runs a program here (as `uid`), else why not."""
    command = _probe_command(tier, uid)
    if shutil.which(command[0]) is None or shutil.which(tier) is None:
        return f"`{tier}` is not installed" + (" (Debian: apt-get install bubblewrap)" if tier == "bwrap" else "")
    try:
        done = subprocess.run(command, capture_output=True, timeout=20, cwd="/")
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"{' '.join(command[:3])} ...: {error}"
    if done.returncode != 0:
        return f"{tier} exited {done.returncode}: {decode(done.stderr).strip()[-500:]}"
    return ""


def tier_works(tier: str) -> bool:
    return tier == "rlimits" or not tier_problem(tier)


def tier_problem(tier: str) -> str:
    """"" when `tier` runs a program on this host (as an unprivileged uid when root), else why not."""
    return "" if tier == "rlimits" else _probe(tier, 65534 if is_root() else None)


def strongest_tier() -> str:
    """The strongest tier that runs a program on this host; SandboxError if none but "rlimits" does."""
    for tier in ("bwrap", "unshare"):
        if tier_works(tier):
            return tier
    raise SandboxError("no isolating tier works on this host: "
                       + "; ".join(f"{tier}: {tier_problem(tier)}" for tier in ("bwrap", "unshare"))
                       + ". Install bubblewrap (apt-get install bubblewrap), or ask for the insecure "
                         "make_sandbox('local', isolation='rlimits') for trusted code only")


def available_tiers() -> list[str]:
    """The local tiers that work here, strongest first ("rlimits" always does)."""
    return [tier for tier in TIERS if tier_works(tier)]
