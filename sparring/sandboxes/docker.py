"""The Docker backend: each worker slot is a warm, hardened container; each program is one `exec_run` in it.

Containers run with no network, memory and pids limits, a read-only root, tmpfs /work and /tmp, every
capability dropped, no-new-privileges and the seccomp profile of `sparring.sandboxes.seccomp` (no ptrace,
no process_vm_*, no SysV or POSIX message-queue IPC, no namespaces). The container's pid 1, an orphan
reaper, runs as its own uid (65533); programs run as 65534, so none can signal, trace or rewrite it.

A run copies main.py and its files into /work with `put_archive`, then `docker exec`s the SUPERVISOR
below as 65534: it runs `python3 main.py` under its own clock, then kills every other process of the
uid, empties /work, /tmp, /dev/shm and /dev/mqueue, checks that nothing is left, and reports what it
observed (exit status or signal from wait4, its own timeout, the cgroup's OOM kills) as the last line
of stderr, when nothing of the program is alive to write after it. The status comes from that report,
never from the program's exit code or output. The memory limit is the container's cgroup (set per run),
not RLIMIT_AS, so threads start as they would anywhere. A run whose supervisor does not report (the
program killed it), that leaves anything behind, or that passes the host's watchdog or the output cap,
gets its container removed; the next run starts a fresh one.

That is the cold path (`warm=False`). The warm path (the default) keeps one `docker exec` open per
container running the fork server of `forkserver.py` as 65534 (non-dumpable, unnameable by the child's
seccomp filter): each run is a fork of it, with requests on its stdin and output and report relayed in
frames on its stdout (`ExecStream`); it ends runs by its own clock and at the output cap, cleans and checks
/work, /tmp, /dev/shm and /dev/mqueue as the supervisor does, and the container is replaced when it does
not report, leaves something, or a run changed it.

No registry is reachable here, so the image is made offline: `sparring sandbox build-image` copies the
host's python3, its standard library, the shared libraries they load and a shell with `timeout` into a
tarball and `docker import`s it (`build_image` below).
"""

from __future__ import annotations

import glob
import io
import json
import os
import queue
import select
import shutil
import socket
import struct
import subprocess
import tarfile
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparring.sandboxes import seccomp
from sparring.sandboxes.base import (RESERVED_NAMES, Deadline, ExecResult, Limits, RunRequest, Sandbox, SandboxError,
                                     decode)
from sparring.sandboxes.local import OPEN_FILES
from sparring.sandboxes.tiers import sandbox_python
from sparring.sandboxes.warm import FORK_SERVER, WARM_MODULES, cpu_seconds, parse_report, warm_status, work_frames

IMAGE = "sparring-sandbox:latest"
IMAGE_VERSION = "2"  # 2: holds libseccomp, which the warm path's fork server loads
VERSION_LABEL = "sparring.sandbox.image"
WARM_GRACE_S = 5.0  # the fork server ends a run at its time limit; the host replaces the container if it does not
WARM_START_S = 30.0
WARM_SCRATCH = "/work,/tmp,/dev/shm,/dev/mqueue"
USER = "65534:65534"  # every program, and the supervisor that runs it
REAPER_USER = "65533:65533"  # the container's pid 1: another uid, so no program can signal, trace or rewrite it
LABEL = "sparring.sandbox"
OWNER_LABEL = "sparring.sandbox.owner"  # host:pid of the process whose sandbox it is
MEMORY_HEADROOM_MB = 32  # the container's memory limit above the program's: pid 1 and the supervisor (about 12 MB)
WATCHDOG_GRACE_S = 5.0  # the supervisor ends a run at its time limit; the host removes the container if it does not
DOCKER_MISSING = 'the docker backend needs the Docker SDK for Python: pip install "sparring[docker]"'
STDIN_FILE = RESERVED_NAMES[1]
# The container's pid 1, as REAPER_USER: reaps orphans (a killed daemon must not linger as a zombie
# counting against the pids limit), and is not dumpable.
REAPER = """import ctypes, os, signal
ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
while True:
    signal.sigwaitinfo({signal.SIGCHLD})
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass
"""

REPORT_MARK = "\n@@sparring-supervisor@@"  # the supervisor's report: the last line of stderr, once all else is dead
REPORT_ROOM = 4096  # bytes of stderr beyond the program's cap that the report may take
SCRATCH = ("/work", "/tmp", "/dev/shm", "/dev/mqueue")
# One run, as the sandbox user, started by `docker exec` as `python3 -I -S -c SUPERVISOR <timeout s> <file
# size bytes>`. It makes itself non-dumpable (no process of the same uid can read or write its memory; the
# seccomp profile refuses ptrace) and the subreaper of what it starts; forks `python3 main.py` with the
# stdin file, a file-size limit and the OOM killer's first preference; ends it at the time limit by its
# own clock; then SIGKILLs every other process of the uid until none is left, empties the scratch
# folders (opening up folders locked with mode 000 first), and checks that no process, file or SysV IPC
# object is left. Last, after everything else of the run is dead, it writes its report: how the program
# ended (exit code or signal, from wait4), whether its own timer ended it, whether the cgroup's OOM
# killer struck, and what was left. Nothing of the program can write after that report.
SUPERVISOR = f"""
import ctypes, json, os, resource, signal, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(4, 0, 0, 0, 0)
libc.prctl(36, 1, 0, 0, 0)
timeout_s, file_bytes = float(sys.argv[1]), int(sys.argv[2])
me = os.getpid()

def oom_kills():
    for path in ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events"):
        try:
            with open(path) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return None

def clear(folder):
    found, stack = [], [folder]
    while stack:
        path = stack.pop()
        try:
            entries = list(os.scandir(path))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    os.chmod(entry.path, 0o700)
                    stack.append(entry.path)
                    found.append(entry.path)
                else:
                    os.unlink(entry.path)
            except OSError:
                pass
    for path in reversed(found):
        try:
            os.rmdir(path)
        except OSError:
            pass

def folder_state(folder):
    info = os.stat(folder)
    return info.st_mode & 0o7777, info.st_atime_ns, info.st_mtime_ns

def restore(folder, saved):
    if os.stat(folder).st_uid != me_uid:
        return None  # only a folder of this uid can be marked by a run
    for step in (lambda: os.chmod(folder, saved[0]),
                 lambda: [os.removexattr(folder, name) for name in os.listxattr(folder)],
                 lambda: os.utime(folder, ns=saved[1:])):
        try:
            step()
        except OSError:
            pass
    try:
        marks = os.listxattr(folder)
    except OSError:
        marks = []
    now = folder_state(folder)
    if (now[0], now[2]) != (saved[0], saved[2]) or marks:
        return f"{{folder}}: its mode, modification time or extended attributes"
    return None

me_uid = os.getuid()
folders = {{}}
for folder in {SCRATCH!r}:
    try:
        folders[folder] = folder_state(folder)
    except OSError:
        pass
stdin = os.open({STDIN_FILE!r}, os.O_RDONLY)
os.unlink({STDIN_FILE!r})
oom_before = oom_kills()
signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGCHLD}})
started = time.monotonic()
pid = os.fork()
if pid == 0:
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {{signal.SIGCHLD}})
        os.dup2(stdin, 0)
        os.close(stdin)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
        libc.prctl(4, 1, 0, 0, 0)
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
        os.execvp("python3", ["python3", "main.py"])
    finally:
        os._exit(127)
os.close(stdin)
timed_out, status, usage = False, None, None
while status is None:
    done, wait_status, usage = os.wait4(pid, os.WNOHANG)
    if done:
        status = wait_status
        break
    left = timeout_s - (time.monotonic() - started)
    if left <= 0:
        timed_out = True
        os.kill(pid, signal.SIGKILL)
        _, status, usage = os.wait4(pid, 0)
        break
    signal.sigtimedwait({{signal.SIGCHLD}}, min(left, 0.5))
wall = time.monotonic() - started
left_behind = []
for attempt in range(500):
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        pass
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
    others = [name for name in os.listdir("/proc") if name.isdigit() and int(name) not in (1, me)]
    if not others:
        break
    time.sleep(0.01)
else:
    left_behind.append(f"processes {{others[:5]}}")
os.chdir("/")
for folder in {SCRATCH!r}:
    if folder in folders:
        restore(folder, folders[folder])
    clear(folder)
    if folder in folders and restore(folder, folders[folder]):
        left_behind.append(restore(folder, folders[folder]))
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        continue
    except OSError as error:
        names = [str(error)]
    if names:
        left_behind.append(f"{{folder}}: {{[name[:40] for name in sorted(names)[:5]]}}")
for kind in ("shm", "msg", "sem"):
    try:
        with open(f"/proc/sysvipc/{{kind}}") as f:
            if len(f.read().splitlines()) > 1:
                left_behind.append(f"SysV {{kind}} objects")
    except FileNotFoundError:
        pass
oom_after = oom_kills()
report = {{"exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
          "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None, "timeout": timed_out,
          "oom": oom_before is not None and oom_after is not None and oom_after > oom_before,
          "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "left": left_behind}}
data = ({REPORT_MARK!r} + json.dumps(report) + "\\n").encode()
while data:
    data = data[os.write(2, data):]
"""


def _docker():
    try:
        import docker
    except ImportError as error:
        raise SandboxError(DOCKER_MISSING) from error
    return docker


# -- the engine and the image ------------------------------------------------------------------------
def connect(timeout_s: float = 10.0):
    """A client of the engine at DOCKER_HOST (or the default socket); SandboxError saying why if none answers."""
    docker = _docker()
    try:
        client = docker.from_env(timeout=max(int(timeout_s), 1))
        client.ping()
        return client
    except Exception as error:
        raise SandboxError(f"no Docker engine answers ({error}). Start one: dockerd & (Debian: apt-get install "
                           f"docker.io), or set DOCKER_HOST") from error


def start_engine(wait_s: float = 60.0, log: str | Path | None = None):
    """Connect to a running engine, or start `dockerd` in the background (as root) and wait until it answers."""
    try:
        return connect()
    except SandboxError as error:
        first = error
    if shutil.which("dockerd") is None:
        raise SandboxError(f"{first}; and dockerd is not installed (apt-get install docker.io)")
    if os.geteuid() != 0:
        raise SandboxError(f"{first}; and starting dockerd needs root")
    log = Path(log or Path("/tmp") / "sparring-dockerd.log")
    with open(log, "ab") as out:
        subprocess.Popen(["dockerd"], stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        time.sleep(0.5)
        try:
            return connect()
        except SandboxError:
            continue
    tail = log.read_text(errors="replace")[-1500:]
    raise SandboxError(f"dockerd did not answer within {wait_s:.0f}s; the end of {log}:\n{tail}")


def _run_python(python: str, code: str) -> str:
    return subprocess.run([python, "-S", "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def _shared_libraries(paths: list[str]) -> set[str]:
    """Every shared library (and the dynamic loader) that `paths` load, as ldd names them."""
    found = set()
    for path in paths:
        done = subprocess.run(["ldd", path], capture_output=True, text=True)
        for line in done.stdout.splitlines():
            parts = line.split()
            for part in parts:
                if part.startswith("/"):
                    found.add(part)
                    break
    return found


def rootfs_tarball(destination: str | Path) -> Path:
    """A minimal root filesystem from this host: its python3 (with the standard library), sh, timeout, rm,
    the libraries they load, and /etc/passwd naming the sandbox user; written as a tar to `destination`."""
    python = sandbox_python()
    stdlib = _run_python(python, "import sysconfig; print(sysconfig.get_paths()['stdlib'])")
    dynload = _run_python(python, "import sysconfig; print(sysconfig.get_config_var('DESTSHARED') or '')")
    tools = [shutil.which(name, path="/usr/bin:/bin") for name in ("sh", "timeout", "rm", "sleep")]
    if None in tools:
        raise SandboxError("building the image needs sh, timeout, rm and sleep on this host (coreutils, dash)")
    extensions = [str(p) for p in Path(dynload or stdlib).rglob("*.so")] if Path(dynload or stdlib).exists() else []
    seccomp_library = sorted(glob.glob("/usr/lib/*/libseccomp.so.2") + glob.glob("/lib/*/libseccomp.so.2")
                             + glob.glob("/usr/lib*/libseccomp.so.2"))
    if not seccomp_library:
        raise SandboxError("building the image needs libseccomp on this host (Debian: apt-get install libseccomp2)")
    wanted = [python, *tools, seccomp_library[0]]
    destination = Path(destination)
    with tarfile.open(destination, "w") as tar:
        added: set[str] = set()

        def add(path: str) -> None:
            """`path` as on the host: its parent dirs, a symlink (and what it points to), or the file."""
            path = os.path.normpath(path)
            if path in added or path == "/":
                return
            parent = os.path.dirname(path)
            add(parent)
            added.add(path)
            info = tar.gettarinfo(path, arcname=path.lstrip("/"))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if info.issym():
                tar.addfile(info)
                add(os.path.join(parent, os.readlink(path)))
            elif info.isdir():
                info.mode |= 0o755  # the sandbox user must reach everything (say, a python under /root)
                tar.addfile(info)
            elif info.isfile():
                with open(path, "rb") as f:
                    tar.addfile(info, f)

        for path in wanted + sorted(_shared_libraries(wanted + extensions)):
            add(path)
        for path in sorted(Path(stdlib).rglob("*")):
            if any(part in ("test", "idlelib", "tkinter", "turtledemo", "ensurepip") for part in path.parts):
                continue
            add(str(path))
        add(os.path.dirname(python) + "/python3") if os.path.exists(os.path.dirname(python) + "/python3") else None
        for name in ("bin", "sbin", "lib", "lib64"):
            if os.path.islink(f"/{name}"):
                add(f"/{name}")
        for name, mode in (("work", 0o1777), ("tmp", 0o1777), ("proc", 0o755), ("dev", 0o755), ("sys", 0o755),
                           ("etc", 0o755)):
            if f"/{name}" not in added:
                info = tarfile.TarInfo(name)
                info.type, info.mode = tarfile.DIRTYPE, mode
                tar.addfile(info)
        for name, text in (("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:sandbox:/work:/bin/sh\n"),
                           ("etc/group", "root:x:0:\nnogroup:x:65534:\n")):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return destination


def build_image(tag: str = IMAGE, client=None) -> str:
    """Make the sandbox image offline (`docker import` of `rootfs_tarball`) and check it runs python3."""
    client = client or connect()
    repository, _, version = tag.rpartition(":") if ":" in tag.split("/")[-1] else (tag, "", "latest")
    work = Path(subprocess.run(["mktemp", "-d"], capture_output=True, text=True, check=True).stdout.strip())
    try:
        tarball = rootfs_tarball(work / "rootfs.tar")
        changes = ["WORKDIR /work", f"USER {USER}", "ENV PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8",
                   f"LABEL {LABEL}=1", f"LABEL {VERSION_LABEL}={IMAGE_VERSION}", 'CMD ["sleep", "infinity"]']
        client.api.import_image(src=str(tarball), repository=repository, tag=version, changes=changes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    output = client.containers.run(tag, ["python3", "-c", "import sys, json, sqlite3; print(sys.version_info[0])"],
                                   remove=True, network_mode="none")
    if output.strip() != b"3":
        raise SandboxError(f"the image {tag} was built but its python3 printed {output!r}")
    return tag


# -- the sandbox -------------------------------------------------------------------------------------
@dataclass
class DockerSlot:
    index: int
    container: Any | None  # None after a failure: the next run starts a fresh one
    memory_mb: int  # the program's memory limit the container's cgroup is set to now
    server: ExecStream | None = None  # the warm path's fork server in the container, when it runs


class ExecStream:
    """The attached socket of a long-lived `docker exec` (the fork server): what is written goes to its stdin;
    what it writes to stdout comes back demultiplexed from Docker's frames (8-byte headers), its stderr is
    kept apart (`log`), and the fork server's own frames (kind, length, bytes) are read from the stdout."""

    def __init__(self, exec_id: str, sock):
        self.exec_id = exec_id
        self.sock = sock
        self.raw = getattr(sock, "_sock", sock)
        self.host_pid = 0  # the server's pid on the host (what `docker top` shows)
        self.pending = bytearray()  # bytes from the socket, not yet split into Docker's frames
        self.stdout = bytearray()
        self.log = bytearray()

    def send(self, data: bytes) -> None:
        self.raw.sendall(data)

    def _fill(self, deadline: Deadline) -> bool:
        """Read more from the socket (False at its end); TimeoutError past the deadline."""
        left = deadline.left()
        if left <= 0 or not select.select([self.raw], [], [], left)[0]:
            raise TimeoutError
        data = self.raw.recv(1 << 16)
        if not data:
            return False
        self.pending += data
        while len(self.pending) >= 8:
            kind, size = self.pending[0], struct.unpack(">I", self.pending[4:8])[0]
            if len(self.pending) < 8 + size:
                break
            (self.stdout if kind == 1 else self.log).extend(self.pending[8:8 + size])
            del self.pending[:8 + size]
        return True

    def _take(self, size: int, deadline: Deadline) -> bytes | None:
        while len(self.stdout) < size:
            if not self._fill(deadline):
                return None
        data = bytes(self.stdout[:size])
        del self.stdout[:size]
        return data

    def frame(self, deadline: Deadline) -> tuple[bytes, bytes] | None:
        """The fork server's next frame: (b"o" stdout | b"e" stderr | b"r" report, bytes); None at the end."""
        head = self._take(5, deadline)
        if head is None:
            return None
        body = self._take(struct.unpack("<I", head[1:])[0], deadline)
        return None if body is None else (head[:1], body)

    def close(self) -> None:
        try:
            self.sock.close()
        except Exception:
            pass


class DockerSandbox(Sandbox[DockerSlot]):
    """Programs run in warm hardened containers, one per worker slot (see the module docstring)."""

    backend = "docker"

    def __init__(self, limits: Limits, image: str = IMAGE, warm: bool = True):
        super().__init__(limits)
        if not isinstance(warm, bool):
            raise TypeError(f"warm must be True (a fork server per container) or False (a docker exec per run), "
                            f"got {warm!r}")
        docker = _docker()
        self.client = connect()
        self.image = image
        try:
            found = self.client.images.get(image)
        except docker.errors.ImageNotFound as error:
            raise SandboxError(f"the Docker image {image!r} is not there: make it with `sparring sandbox "
                               f"build-image` (offline, from this host's python3)") from error
        self.warm, self.warm_problem = warm, "" if warm else "warm=False"
        if warm and (found.labels or {}).get(VERSION_LABEL) != IMAGE_VERSION:
            self.warm, self.warm_problem = False, (f"the image {image!r} predates the warm path (no libseccomp); "
                                                   f"rebuild it: sparring sandbox build-image")
            warnings.warn(f"the docker sandbox runs cold (a docker exec per run): {self.warm_problem}", stacklevel=3)
        self._labels = {LABEL: "1", OWNER_LABEL: f"{socket.gethostname()}:{os.getpid()}"}
        self._abandoned: set[str] = set()  # discarded containers the engine could not remove yet
        self._abandoned_lock = threading.Lock()
        remove_stale(self.client)
        self._start_slots()

    @property
    def isolation(self) -> str:
        """"docker", plus "+fork-server" on the warm path (a fork of a warm Python per run)."""
        return "docker+fork-server" if getattr(self, "warm", False) else "docker"

    def _open_slot(self, index: int) -> DockerSlot:
        return DockerSlot(index, self._new_container(index), self.limits.memory_mb)

    def _new_container(self, index: int):
        docker = _docker()
        scratch = f"rw,nosuid,nodev,size={self.limits.max_file_mb}m,mode=1777"
        memory = f"{self.limits.memory_mb + MEMORY_HEADROOM_MB}m"
        name = f"sparring-sandbox-{os.getpid()}-{index}-{uuid.uuid4().hex[:8]}"
        uid = USER.split(":")[0]
        try:  # /work: a size-capped tmpfs that put_archive can fill (a read-only root refuses it anywhere else)
            volume = self.client.volumes.create(name, driver="local", labels=self._labels, driver_opts={
                "type": "tmpfs", "device": "tmpfs", "o": f"size={self.limits.max_file_mb}m,uid={uid},gid={uid},mode=0700"})
        except Exception as error:
            raise SandboxError(f"cannot create the work volume {name}: {error}") from error
        try:
            return self.client.containers.run(
                self.image, ["python3", "-I", "-S", "-c", REAPER], detach=True,
                name=name, labels=self._labels, volumes={name: {"bind": "/work", "mode": "rw"}},
                nano_cpus=1_000_000_000,
                network_mode="none", read_only=True, tmpfs={"/tmp": scratch},
                mem_limit=memory, memswap_limit=memory, pids_limit=self.limits.max_processes + 8,
                cap_drop=["ALL"], security_opt=["no-new-privileges", seccomp.security_opt()], user=REAPER_USER,
                working_dir="/work",
                ulimits=[docker.types.Ulimit(name="nofile", soft=OPEN_FILES, hard=OPEN_FILES),
                         docker.types.Ulimit(name="core", soft=0, hard=0)],
                environment={}, hostname="sandbox", shm_size=f"{self.limits.max_file_mb}m", ipc_mode="private")
        except Exception as error:
            volume.remove(force=True)
            raise SandboxError(f"cannot start a container from {self.image!r}: {error}") from error

    def _close_slot(self, slot: DockerSlot) -> None:
        self._discard(slot)

    def close(self) -> None:
        try:
            super().close()
        finally:
            left = self._remove_abandoned() if hasattr(self, "_abandoned") else []
        if left:
            raise SandboxError(f"cannot remove {len(left)} sandbox container(s) or their volumes: {left[0]}")

    def _discard(self, slot: DockerSlot) -> None:
        """Take the slot's container away (every process in it dies); the next run starts a fresh one. Where
        the engine cannot remove it now (it stopped answering), it is removed when it answers again."""
        if slot.server is not None:
            slot.server.close()
            slot.server = None
        container, slot.container = slot.container, None
        slot.memory_mb = self.limits.memory_mb
        if container is not None:
            with self._abandoned_lock:
                self._abandoned.add(container.name)
            self._remove_abandoned()

    def _remove_abandoned(self) -> list[str]:
        """Remove the discarded containers and their work volumes (same name); returns why for those left."""
        docker, problems = _docker(), []
        with self._abandoned_lock:
            names = sorted(self._abandoned)
        for name in names:
            try:
                for remove in (self.client.api.remove_container, self.client.api.remove_volume):
                    try:
                        remove(name, force=True)
                    except docker.errors.NotFound:
                        pass
                with self._abandoned_lock:
                    self._abandoned.discard(name)
            except Exception as error:
                if "is already in progress" in str(error):
                    continue
                problems.append(f"{name}: {error}")
        return problems

    def available(self) -> bool:
        return not self._closed and self._engine_answers()

    def _engine_answers(self) -> bool:
        try:
            return bool(self.client.ping())
        except Exception:
            return False

    def _engine_failure(self, what: str, error: Exception) -> SandboxError:
        """The error of a failed API call, saying so plainly when the engine itself stopped answering."""
        if not self._engine_answers():
            return SandboxError(f"the Docker engine stopped answering ({what}: {error}); this run did not happen. "
                                f"The sandbox starts fresh containers once the engine answers again")
        return SandboxError(f"{what} failed: {error}")

    # -- the warm path ----------------------------------------------------------------------------
    def _start_server(self, slot: DockerSlot) -> ExecStream:
        """Start the fork server in the slot's container (one `docker exec` kept open) and wait until it is ready."""
        api = self.client.api
        command = ["python3", "-I", "-c", FORK_SERVER.read_text(), f"relay:{self.limits.max_output_bytes}", "",
                   ",".join(WARM_MODULES), WARM_SCRATCH]
        exec_id = api.exec_create(slot.container.id, command, stdin=True, user=USER, workdir="/work",
                                  environment={"HOME": "/work", "TMPDIR": "/tmp"})["Id"]
        stream = ExecStream(exec_id, api.exec_start(exec_id, socket=True))
        try:
            ready = stream.frame(Deadline(WARM_START_S))
        except TimeoutError:
            ready = None
        if ready is None or ready[0] != b"r":
            stream.close()
            raise SandboxError(f"the fork server did not start in the container: {decode(bytes(stream.log))[-1500:]}")
        stream.host_pid = api.exec_inspect(exec_id)["Pid"]
        slot.server = stream
        return stream

    def _run_warm(self, slot: DockerSlot, request: RunRequest) -> ExecResult:
        started = time.monotonic()
        try:
            if slot.container is None:
                self._remove_abandoned()
                slot.container = self._new_container(slot.index)
            if slot.memory_mb != request.memory_mb:
                limit = f"{request.memory_mb + MEMORY_HEADROOM_MB}m"
                slot.container.update(mem_limit=limit, memswap_limit=limit)
                slot.memory_mb = request.memory_mb
            if slot.server is None:
                self._start_server(slot)
        except SandboxError as error:
            self._discard(slot)
            raise self._engine_failure("starting the fork server", error) from error
        except Exception as error:
            self._discard(slot)
            raise self._engine_failure("docker exec", error) from error

        files = work_frames(request)
        header = {"timeout_s": request.timeout_s, "cpu_s": cpu_seconds(request.timeout_s), "memory_bytes": 0,
                  "stdin_size": len(request.stdin), "files_size": len(files)}
        watchdog = Deadline(request.timeout_s + WARM_GRACE_S)
        out, err, report, stopped = bytearray(), bytearray(), None, None
        cap = self.limits.max_output_bytes
        try:
            slot.server.send(json.dumps(header).encode() + b"\n" + request.stdin + files)
            while report is None:
                frame = slot.server.frame(watchdog)
                if frame is None:
                    break
                kind, body = frame
                if kind == b"r":
                    report = parse_report(body)
                    if report is None:
                        break
                else:
                    (out if kind == b"o" else err).extend(body)
        except TimeoutError:
            stopped = "timeout"
        except OSError:
            report = None
        wall = time.monotonic() - started
        if report is None and stopped is None and not self._engine_answers():
            self._discard(slot)
            raise self._engine_failure("the fork server's stream", ConnectionError("it ended"))
        if len(out) > cap or len(err) > cap:
            stopped = stopped or "output_limit"
        if report is None or report["left"] or report["doubt"] or report["problem"]:
            self._discard(slot)  # what is in the container is unknown: the next run gets a fresh one
        if report is not None and report["problem"]:
            return self.failure(f"the fork server could not start the run: {report['problem']}", wall)
        status, code, stderr = warm_status(report, bytes(out[:cap]), bytes(err[:cap]), stopped, False, True,
                                           cpu_seconds(request.timeout_s), "container")
        return ExecResult(status, code, decode(bytes(out[:cap])), decode(stderr), status == "output_limit", wall,
                          self.backend, self.isolation)

    # -- one run ----------------------------------------------------------------------------------
    def _run_in_slot(self, slot: DockerSlot, request: RunRequest) -> ExecResult:
        if self.warm:
            return self._run_warm(slot, request)
        return self._run_cold(slot, request)

    def _run_cold(self, slot: DockerSlot, request: RunRequest) -> ExecResult:
        started = time.monotonic()
        api = self.client.api
        try:
            if slot.container is None:
                self._remove_abandoned()
                slot.container = self._new_container(slot.index)
            if slot.memory_mb != request.memory_mb:  # the cgroup is the memory limit (no RLIMIT_AS: threads work)
                limit = f"{request.memory_mb + MEMORY_HEADROOM_MB}m"
                slot.container.update(mem_limit=limit, memswap_limit=limit)
                slot.memory_mb = request.memory_mb
            if not slot.container.put_archive("/work", _work_tar(request)):
                raise SandboxError("put_archive into /work failed")
            command = ["python3", "-I", "-S", "-c", SUPERVISOR, f"{request.timeout_s:.3f}",
                       str(self.limits.max_file_mb << 20)]
            exec_id = api.exec_create(slot.container.id, command, user=USER, workdir="/work",
                                      environment={"HOME": "/work", "TMPDIR": "/tmp"})["Id"]
            deadline = Deadline(request.timeout_s + WATCHDOG_GRACE_S)
            stream = api.exec_start(exec_id, stream=True, demux=True)
        except SandboxError as error:
            self._discard(slot)
            raise self._engine_failure("starting the run", error) from error
        except Exception as error:
            self._discard(slot)
            raise self._engine_failure("docker exec", error) from error
        stdout, stderr, stopped = self._capture(slot, stream, deadline)
        wall = time.monotonic() - started
        exit_code = None
        if stopped is None:
            try:
                exit_code = api.exec_inspect(exec_id)["ExitCode"]
            except Exception as error:
                self._discard(slot)
                return self.failure(str(self._engine_failure("docker exec_inspect", error)), wall)
        return self._result(slot, exit_code, stdout, stderr, stopped, wall)

    def _capture(self, slot: DockerSlot, stream, deadline: Deadline) -> tuple[bytes, bytes, str | None]:
        """Read the exec's output until it ends, the watchdog fires, or a stream passes the cap (stderr: the
        cap and room for the supervisor's report); in the last two cases the container is removed (which
        ends the stream and every process)."""
        chunks: queue.Queue = queue.Queue()

        def read() -> None:
            try:
                for pair in stream:
                    chunks.put(pair)
            except Exception:
                pass  # the container was removed under the stream
            finally:
                chunks.put(None)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        out, err = bytearray(), bytearray()
        stopped = None
        cap = self.limits.max_output_bytes
        while True:
            try:
                pair = chunks.get(timeout=max(deadline.left(), 0.001))
            except queue.Empty:
                stopped = "timeout"
                break
            if pair is None:
                break
            out += pair[0] or b""
            err += pair[1] or b""
            if len(out) > cap or len(err) > cap + REPORT_ROOM:
                stopped = "output_limit"
                break
        if stopped:
            self._discard(slot)
            reader.join(timeout=10)
            return bytes(out[:cap]), bytes(err[:cap]), stopped
        return bytes(out), bytes(err), None

    def _result(self, slot: DockerSlot, exit_code: int | None, stdout: bytes, stderr: bytes, stopped: str | None,
                wall: float) -> ExecResult:
        """The status from what the supervisor observed (its report is believed only when it ran to its end:
        exit 0 and the report last on stderr); never from the program's exit code or output."""
        cap = self.limits.max_output_bytes
        report = None
        if stopped is None:
            stderr, report = _split_report(stderr, exit_code)
        code = None
        if stopped:
            status = stopped
        elif report is None:
            status = "killed"
            stderr += (f"\n[sparring: the run's supervisor was ended (exit status {exit_code}) before it could "
                       f"report; its container was replaced]").encode()
        else:
            code = -report["signal"] if report["signal"] is not None else report["exit"]
            if report["left"]:
                status = "sandbox_error"
                stderr += (f"\n[sparring: the cleanup after this run left {'; '.join(report['left'])}; "
                           f"its container was replaced]").encode()
            elif report["timeout"]:
                status = "timeout"
            elif code == 0:
                status = "ok"
            elif report["oom"]:
                status = "memory"
            elif code < 0:
                status = "killed"
            else:
                status = "error"
            if len(stderr) > cap:
                status, stopped, stderr = "output_limit", "output_limit", stderr[:cap]
        if report is None or status == "sandbox_error":
            self._discard(slot)  # what is in the container is unknown: the next run gets a fresh one
        return ExecResult(status, code, decode(stdout), decode(stderr), stopped == "output_limit", wall,
                          self.backend, self.isolation)


def _split_report(stderr: bytes, exit_code: int | None) -> tuple[bytes, dict | None]:
    """(the program's stderr, the supervisor's report), or (stderr, None) when the supervisor did not finish."""
    mark = REPORT_MARK.encode()
    at = stderr.rfind(mark)
    if exit_code != 0 or at < 0:
        return stderr, None
    try:
        report = json.loads(stderr[at + len(mark):])
    except ValueError:
        return stderr, None
    if type(report) is not dict or set(report) != {"exit", "signal", "timeout", "oom", "wall_s", "cpu_s", "left"}:
        return stderr, None
    return stderr[:at], report


def remove_stale(client) -> None:
    """Remove the sandbox containers and volumes that a process of this host which no longer exists left."""
    host = socket.gethostname()
    containers = [(c, c.labels) for c in client.containers.list(all=True, filters={"label": LABEL})]
    volumes = [(v, v.attrs.get("Labels") or {}) for v in client.volumes.list(filters={"label": LABEL})]
    for item, labels in containers + volumes:  # containers first: a volume in use cannot be removed
        owner_host, _, pid = labels.get(OWNER_LABEL, "").partition(":")
        if owner_host == host and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            try:
                item.remove(force=True)
            except Exception:
                pass  # another process is removing it


def _work_tar(request: RunRequest) -> bytes:
    """main.py, the files and the stdin file as a tar owned by the sandbox user."""
    buffer = io.BytesIO()
    uid = int(USER.split(":")[0])
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        made = set()
        for name, content in [*request.work_files(), (STDIN_FILE, request.stdin)]:
            parts = name.split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(parts[:depth])
                if folder not in made:
                    made.add(folder)
                    info = tarfile.TarInfo(folder)
                    info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, uid, uid
                    tar.addfile(info)
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid, info.mtime = len(content), 0o644, uid, uid, int(time.time())
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()
