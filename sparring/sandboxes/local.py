"""The local backend: each program runs in bubblewrap (or `unshare`) as its worker slot's own uid, with limits.

The isolation tier ("bwrap", "unshare", or the insecure "rlimits") is the strongest that works on this
host, picked at start and recorded in every result (see tiers.py).

Every tier adds, when the sandbox runs as root: a host uid per worker slot (uids.py: leased machine-wide
with a lock file, so no two slots anywhere share one), rlimits (CPU, file size, open files, processes;
RLIMIT_NPROC only binds below root) and cgroup pids and memory limits per slot (cgroups.py: v1 or v2, where
the hierarchy is writable). Memory is capped by the cgroup where there is one (its OOM kills say
"memory"); only without one by RLIMIT_AS, which also counts every thread's stack reservation. The launch
chain is `sh` (joins the slot's cgroups, sets the rlimits) -> `setpriv` (drops to the slot's uid, no
capabilities, no new privileges, dies with this process) -> the tier's sandbox -> `python3 main.py`, so
nothing of the program runs before every limit is in place. When a run returns, the launch chain's process
group is killed and the slot's cgroup and uid are checked until no process of theirs is left.

That is the cold path (`warm=False`). The warm path (the default, bwrap tier only) starts that launch
chain once per slot with a fork server (`forkserver.py`) as the sandbox's program and pid 1: each run is a
fork of it, with the run's files written into the emptied /work, its stdin and the host's own output
pipes passed over a socketpair, its CPU limit, and seccomp filters; the server reports wait4's status and
cleans up (see forkserver.py). A server that did not report, left something, or that a run changed is
killed with its whole sandbox, and the slot's next run starts a fresh one.
"""

from __future__ import annotations

import array
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

from sparring.errors import UnknownNameError
from sparring.sandboxes import seccomp
from sparring.sandboxes.base import (
    Deadline,
    ExecResult,
    Limits,
    RunRequest,
    Sandbox,
    SandboxError,
    decode,
    memory_error_in,
)
from sparring.sandboxes.cgroups import SlotCgroups
from sparring.sandboxes.runio import capture, make_work_root, memory_file, remove_tree
from sparring.sandboxes.tiers import (
    LAUNCHER_FAILED,
    LAUNCHER_MESSAGE,
    TIERS,
    UNSHARE_SETUP,
    sandbox_python,
    strongest_tier,
    system_binds,
    tier_problem,
    tier_works,
)
from sparring.sandboxes.uids import UidLease, is_root, kill_until_gone, uid_processes
from sparring.sandboxes.warm import FORK_SERVER, WARM_MODULES, capture_warm, cpu_seconds, warm_status, work_frames

OPEN_FILES = 256
MEMORY_HEADROOM_MB = 32  # the cgroup's memory limit above the program's: bwrap and python3 themselves
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
WARM_ISOLATION = "+fork-server+seccomp"
WARM_GRACE_S = 5.0  # the server ends a run at its time limit; the host replaces the slot's sandbox if it does not
WARM_START_S = 30.0  # how long a fork server may take to start and answer its first run


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
        if (uid := slot.uid) is not None:
            kill_until_gone(lambda: uid_processes(uid), f"uid {slot.uid}")
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
            if root := getattr(self, "_root", None):
                shutil.rmtree(root, ignore_errors=True)

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
        cast(IO[bytes], process.stdout).close()  # read by `capture`; closed here so no pipe outlives the run
        cast(IO[bytes], process.stderr).close()
        if slot.cgroups:
            kill_until_gone(slot.cgroups.processes, f"slot {slot.index}'s cgroup")
        if (uid := slot.uid) is not None:  # also a namespace's init that is still exiting (no longer in the cgroup)
            kill_until_gone(lambda: uid_processes(uid), f"slot {slot.index}'s uid {slot.uid}")
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
        if (uid := slot.uid) is not None:
            kill_until_gone(lambda: uid_processes(uid), f"slot {slot.index}'s uid {slot.uid}")

    def _run_warm(self, slot: LocalSlot, request: RunRequest) -> ExecResult:
        """One run through the slot's fork server (started first if it is not running)."""
        server = slot.server
        if server is None or server.process.poll() is not None:
            self._stop_server(slot)
            server = self._start_server(slot)
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


def make_probe() -> RunRequest:
    return RunRequest("print(6 * 7)", timeout_s=WARM_START_S, memory_mb=64)


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
