"""Docker specifics: the hardening flags the containers really run with, the seccomp profile, statuses from
the supervisor, the warm pool and its recycling (an engine that stops and comes back included), and
`sparring sandbox build-image`."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from sparring.cli import main
from sparring.envs.code_grading import Call, IOTestSuite, grade
from sparring.sandboxes import SandboxError, make_sandbox


@pytest.fixture(scope="module", params=[True, False], ids=["warm", "cold"])
def docker_sandbox(docker_image, request):
    with make_sandbox("docker", workers=1, memory_mb=200, max_processes=20, max_file_mb=16,
                      warm=request.param) as sandbox:
        assert sandbox.warm == request.param, sandbox.warm_problem
        yield sandbox


def test_containers_run_hardened(docker_sandbox):
    container = docker_sandbox._slots[0].container
    container.reload()
    host = container.attrs["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert any(opt.startswith("seccomp=") and '"ptrace"' not in opt for opt in host["SecurityOpt"])
    assert host["Memory"] == host["MemorySwap"] == (200 + 32) << 20
    assert host["PidsLimit"] == 20 + 8
    assert host["Privileged"] is False
    assert container.attrs["Config"]["User"] == "65533:65533"  # pid 1; programs run as 65534
    result = docker_sandbox.run("import os\nprint(os.getuid(), open('/proc/self/status').read().split('CapEff:')[1].split()[0])")
    assert result.stdout == "65534 0000000000000000\n"


# Each call the seccomp profile refuses, tried on the program's own child (whom a plain uid check allows).
REFUSED = """
import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
child = os.fork()
if child == 0:
    time.sleep(5)
    os._exit(0)
buffer = ctypes.create_string_buffer(8)
local = (ctypes.c_void_p * 2)(ctypes.addressof(buffer), 8)
calls = {
    "ptrace": lambda: libc.ptrace(0x4206, child, None, None),
    "process_vm_readv": lambda: libc.process_vm_readv(child, local, 1, local, 1, 0),
    "process_vm_writev": lambda: libc.process_vm_writev(child, local, 1, local, 1, 0),
    "shmget": lambda: libc.shmget(0x5ca7, 4096, 0o1600),
    "msgget": lambda: libc.msgget(0x5ca7, 0o1600),
    "mq_open": lambda: libc.mq_open(b"/sparring-canary", os.O_CREAT | os.O_RDWR, 0o600, None),
    "unshare": lambda: libc.unshare(0x10000000),
    "io_uring_setup": lambda: libc.syscall(425, 1, buffer),
}
for name, call in calls.items():
    print(name, call(), ctypes.get_errno())
os.kill(child, 9)
print("pid 1:", open("/proc/1/status").read().split("Uid:")[1].split()[0])
"""


def test_seccomp_refuses_reaching_into_processes_and_lasting_ipc(docker_sandbox):
    result = docker_sandbox.run(REFUSED)
    assert result.status == "ok", result
    lines = result.stdout.splitlines()
    assert all(line.split()[1:] == ["-1", "1"] for line in lines[:-1]), result.stdout  # -1, EPERM
    assert lines[-1] == "pid 1: 65533"
    ordinary = "import subprocess, threading, multiprocessing\nt = threading.Thread(target=print, args=('t',))\n" \
               "t.start(); t.join()\nprint(subprocess.run(['python3', '-c', 'print(5)'], capture_output=True).stdout)\n" \
               "q = multiprocessing.Queue(); q.put(3); print(q.get())"
    assert docker_sandbox.run(ordinary).stdout == "t\nb'5\\n'\n3\n"


def test_statuses_come_from_the_supervisor_not_the_program(docker_sandbox):
    fakes = [
        "import os\nos._exit(137)",  # what a SIGKILL looks like to a shell
        "import os\nos._exit(152)",  # SIGXCPU
        "import os\nos._exit(255)",  # the old wrapper's 'something survived the cleanup'
        "import sys\nsys.stderr.write('MemoryError\\n')\nsys.exit(1)",
        "import sys\nsys.stderr.write('\\n@@sparring-supervisor@@{\"exit\": 0, \"signal\": null, \"timeout\": true, "
        "\"oom\": false, \"wall_s\": 1, \"cpu_s\": 1, \"left\": []}\\n')\nsys.exit(1)",
    ]
    slot = docker_sandbox._slots[0]
    docker_sandbox.run("print(1)")
    first = slot.container.id
    results = [docker_sandbox.run(code) for code in fakes]
    assert [(r.status, r.exit_code) for r in results] == [("error", 137), ("error", 152), ("error", 255),
                                                         ("error", 1), ("error", 1)], results
    assert slot.container.id == first  # none of them costs a container
    killed = docker_sandbox.run("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    assert (killed.status, killed.exit_code) == ("killed", -9)
    supervisor = docker_sandbox.run("import os, time\nos.kill(os.getppid(), 9)\ntime.sleep(5)")
    if docker_sandbox.warm:  # the fork server is out of reach: no call can name it
        assert supervisor.status == "error" and "PermissionError" in supervisor.stderr, supervisor
        assert slot.container.id == first
    else:
        assert supervisor.status == "killed" and "supervisor" in supervisor.stderr, supervisor
        assert slot.container is None  # its cleanup never ran: the container went


def test_warm_containers_are_reused_and_recycled_after_failures(docker_sandbox):
    slot = docker_sandbox._slots[0]
    docker_sandbox.run("print(1)")
    first = slot.container.id
    assert docker_sandbox.run("raise SystemExit(2)").status == "error"
    assert slot.container.id == first  # an ordinary exit keeps the container
    assert docker_sandbox.run("while True: pass", timeout_s=0.5).status == "timeout"
    assert slot.container.id == first  # the supervisor ended it and cleaned up: the container stays
    assert docker_sandbox.run("while True: print('x' * 1000)").status == "output_limit"
    if docker_sandbox.warm:  # the fork server ended the run itself at the cap and cleaned up
        assert slot.container.id == first
        docker_sandbox._discard(slot)
    assert slot.container is None  # removed; the next run starts a fresh one
    assert docker_sandbox.run("print(2)").stdout == "2\n"
    assert slot.container.id != first


def test_cli_builds_the_image_offline(docker_image, capsys):
    from sparring.sandboxes.docker_image import connect

    tag = "sparring-sandbox:cli-test"
    try:
        assert main(["sandbox", "build-image", "--tag", tag]) == 0
        assert capsys.readouterr().out == f"built {tag}\n"
        with make_sandbox("docker", image=tag, memory_mb=128) as sandbox:
            assert sandbox.run("import json, sqlite3, sys\nprint(sys.version_info[0])").stdout == "3\n"
    finally:
        connect().images.remove(tag, force=True)


class EngineLink:
    """A unix socket that forwards to the real engine: `cut()` makes it look as if the engine stopped (open
    connections drop, new ones are refused), `restore()` as if it came back."""

    def __init__(self, path: str, engine: str = "/var/run/docker.sock"):
        self.path, self.engine = path, engine
        self.server, self.open = None, []
        self.restore()

    def restore(self) -> None:
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(self.path)
        self.server.listen(64)
        threading.Thread(target=self._accept, args=(self.server,), daemon=True).start()

    def cut(self) -> None:
        self.server.close()
        os.unlink(self.path)
        for connection in self.open:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            connection.close()
        self.open = []

    def _accept(self, server) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.engine)
            self.open += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source, target) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        for end in (source, target):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def test_the_pool_survives_an_engine_that_stops_and_comes_back(docker_image, monkeypatch, tmp_path):
    from sparring.sandboxes.docker_image import connect

    if not os.path.exists("/var/run/docker.sock"):
        pytest.skip("the engine does not listen on /var/run/docker.sock here")
    link = EngineLink(str(tmp_path / "engine.sock"))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{link.path}")
    sandbox = make_sandbox("docker", workers=1, memory_mb=128)
    try:
        assert sandbox.run("print(1)").stdout == "1\n"
        first = sandbox._slots[0].container.name
        results = []
        during = threading.Thread(target=lambda: results.append(sandbox.run("import time\ntime.sleep(3)\nprint(2)")))
        during.start()
        time.sleep(1)  # the run is under way (or not yet started: either way the engine is gone for it)
        link.cut()
        during.join()
        after = sandbox.run("print(3)")
        for result in results + [after]:
            assert result.status == "sandbox_error", result
            assert "the Docker engine stopped answering" in result.stderr, result.stderr
        assert not sandbox.available()
        suite = IOTestSuite("f", [Call([2])], [4])
        with pytest.raises(SandboxError, match="the docker sandbox is unavailable, so 1 program"):
            grade(sandbox, "def f(x):\n    return x * x\n", suite, memory_mb=128, use_cache=False)  # not a 0
        link.restore()
        assert sandbox.available()
        assert [sandbox.run(f"print({n})").stdout for n in (4, 5)] == ["4\n", "5\n"]  # the same sandbox object
        assert grade(sandbox, "def f(x):\n    return x * x\n", suite, memory_mb=128, use_cache=False).success
        assert not connect().containers.list(all=True, filters={"name": first})  # what it lost touch with is gone
    finally:
        sandbox.close()


def test_a_cleanup_that_leaves_something_replaces_the_container(docker_sandbox, monkeypatch):
    from sparring.sandboxes import docker as backend
    from sparring.sandboxes.docker_supervisor import SCRATCH

    # a scratch folder the supervisor cannot empty (the image's read-only /etc) stands for anything left over
    monkeypatch.setattr(backend, "SUPERVISOR", backend.SUPERVISOR.replace(repr(SCRATCH), repr(SCRATCH + ("/etc",))))
    monkeypatch.setattr(backend, "WARM_SCRATCH", backend.WARM_SCRATCH + ",/etc")
    slot = docker_sandbox._slots[0]
    docker_sandbox._discard(slot)  # a fresh container, whose fork server starts with the patched folders
    docker_sandbox.run("print(1)")
    result = docker_sandbox.run("print(2)")
    assert (result.status, result.stdout) == ("sandbox_error", "2\n"), result
    assert "the cleanup after this run left /etc: ['group'" in result.stderr and "container was replaced" in result.stderr
    assert slot.container is None
    monkeypatch.undo()
    assert docker_sandbox.run("print(3)").stdout == "3\n"
