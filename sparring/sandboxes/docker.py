"""The Docker backend: each worker slot is a warm, hardened container; each program is one `exec_run` in it.

Containers run with no network, memory and pids limits, a read-only root, tmpfs /work and /tmp, every
capability dropped, no-new-privileges and the seccomp profile of `sparring.sandboxes.seccomp` (no ptrace,
no process_vm_*, no SysV or POSIX message-queue IPC, no namespaces). The container's pid 1, an orphan
reaper, runs as its own uid (65533); programs run as 65534, so none can signal, trace or rewrite it.

A run copies main.py and its files into /work with `put_archive`, then `docker exec`s the supervisor of
docker_supervisor.py as 65534: it runs `python3 main.py` under its own clock, cleans up after it, and
reports what it observed as the last line of stderr. The status comes from that report, never from the
program's exit code or output. The memory limit is the container's cgroup (set per run), not RLIMIT_AS,
so threads start as they would anywhere. A run whose supervisor does not report (the program killed it),
that leaves anything behind, or that passes the host's watchdog or the output cap, gets its container
removed; the next run starts a fresh one.

That is the cold path (`warm=False`). The warm path (the default) keeps one `docker exec` open per
container running the fork server of `forkserver.py` as 65534 (non-dumpable, unnameable by the child's
seccomp filter): each run is a fork of it, with requests on its stdin and output and report relayed in
frames on its stdout (`ExecStream`); it ends runs by its own clock and at the output cap, cleans and checks
/work, /tmp, /dev/shm and /dev/mqueue as the supervisor does, and the container is replaced when it does
not report, leaves something, or a run changed it.

The image comes from `sparring sandbox build-image` (docker_image.py: made offline from this host's python3).
"""

from __future__ import annotations

import json
import os
import queue
import select
import socket
import struct
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from typing import Any

from sparring.sandboxes import seccomp
from sparring.sandboxes.base import Deadline, ExecResult, Limits, RunRequest, Sandbox, SandboxError, decode
from sparring.sandboxes.docker_image import IMAGE, IMAGE_VERSION, LABEL, USER, VERSION_LABEL, connect, docker_sdk
from sparring.sandboxes.docker_supervisor import REAPER, REAPER_USER, REPORT_ROOM, SUPERVISOR, split_report, work_tar
from sparring.sandboxes.local import OPEN_FILES
from sparring.sandboxes.warm import FORK_SERVER, WARM_MODULES, cpu_seconds, parse_report, warm_status, work_frames

WARM_GRACE_S = 5.0  # the fork server ends a run at its time limit; the host replaces the container if it does not
WARM_START_S = 30.0
WARM_SCRATCH = "/work,/tmp,/dev/shm,/dev/mqueue"
OWNER_LABEL = "sparring.sandbox.owner"  # host:pid of the process whose sandbox it is
MEMORY_HEADROOM_MB = 32  # the container's memory limit above the program's: pid 1 and the supervisor (about 12 MB)
WATCHDOG_GRACE_S = 5.0  # the supervisor ends a run at its time limit; the host removes the container if it does not


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
        docker = docker_sdk()
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
        docker = docker_sdk()
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
        docker, problems = docker_sdk(), []
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
    def _start_server(self, slot: DockerSlot, container: Any) -> ExecStream:
        """Start the fork server in the slot's container (one `docker exec` kept open) and wait until it is ready."""
        api = self.client.api
        command = ["python3", "-I", "-c", FORK_SERVER.read_text(), f"relay:{self.limits.max_output_bytes}", "",
                   ",".join(WARM_MODULES), WARM_SCRATCH]
        exec_id = api.exec_create(container.id, command, stdin=True, user=USER, workdir="/work",
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
            server = self._start_server(slot, slot.container) if slot.server is None else slot.server
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
            server.send(json.dumps(header).encode() + b"\n" + request.stdin + files)
            while report is None:
                frame = server.frame(watchdog)
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
            if not slot.container.put_archive("/work", work_tar(request)):
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
            stderr, report = split_report(stderr, exit_code)
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
