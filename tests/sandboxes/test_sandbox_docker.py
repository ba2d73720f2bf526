"""Docker specifics: the hardening flags the containers really run with, the warm pool and its recycling,
and `sparring sandbox build-image`."""

from __future__ import annotations

import pytest

from sparring.cli import main
from sparring.sandboxes import make_sandbox


@pytest.fixture(scope="module")
def docker_sandbox(docker_image):
    with make_sandbox("docker", workers=1, memory_mb=200, max_processes=20, max_file_mb=16) as sandbox:
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
    assert slot.container is None  # removed; the next run starts a fresh one
    assert docker_sandbox.run("print(2)").stdout == "2\n"
    assert slot.container.id != first


def test_cli_builds_the_image_offline(docker_image, capsys):
    from sparring.sandboxes.docker import connect

    tag = "sparring-sandbox:cli-test"
    try:
        assert main(["sandbox", "build-image", "--tag", tag]) == 0
        assert capsys.readouterr().out == f"built {tag}\n"
        with make_sandbox("docker", image=tag, memory_mb=128) as sandbox:
            assert sandbox.run("import json, sqlite3, sys\nprint(sys.version_info[0])").stdout == "3\n"
    finally:
        connect().images.remove(tag, force=True)
