"""A process killed mid-run (SIGKILL, no cleanup) leaves nothing running, and the next sandbox removes its
leftovers: cgroups and work dirs locally, containers and volumes in Docker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sandbox_kit import open_sandbox

OWNER = """
import sys, threading
from sparring.sandboxes import make_sandbox
sandbox = make_sandbox(sys.argv[1], workers=2, memory_mb=128, **({{"isolation": sys.argv[2]}} if sys.argv[2] != "-" else {{}}))
threading.Thread(target=sandbox.run, args=("import time\\nprint('running', flush=True)\\ntime.sleep(60)",),
                 kwargs={{"timeout_s": 60}}).start()
print("ready", flush=True)
threading.Event().wait()
"""


@pytest.mark.parametrize("kind", ["local", "local-unshare", "docker"])
def test_a_killed_owner_leaves_nothing_behind(kind, request):
    sandbox = open_sandbox(kind, request, workers=1)  # skips where this kind does not work; also builds the image
    sandbox.close()
    backend, _, tier = kind.partition("-")
    owner = subprocess.Popen([sys.executable, "-c", OWNER.format(), backend, tier or "-"], stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert owner.stdout.readline() == "ready\n"
    time.sleep(1.0)  # the program is running in a slot
    before = leftovers(backend, owner.pid)
    assert before, "the owner's sandbox is not visible"
    if backend == "local":
        assert any(kind_ == "process" for kind_, _ in before), before  # the running program is seen
    os.kill(owner.pid, signal.SIGKILL)
    owner.wait()
    time.sleep(0.5)
    if backend == "local":  # bwrap and unshare die with their parent: no program keeps running
        assert not any(kind_ == "process" for kind_, _ in leftovers(backend, owner.pid)), leftovers(backend, owner.pid)
    open_sandbox(kind, request, workers=1).close()  # a new sandbox removes what the dead one left
    assert not leftovers(backend, owner.pid)


def leftovers(backend: str, pid: int) -> set[tuple[str, str]]:
    """What a sandbox owned by process `pid` holds: processes in its slots' cgroups (not other sandboxes'
    on the same machine), cgroups, work dirs, containers."""
    found = set()
    if backend == "local":
        for name in os.listdir("/proc"):
            try:
                with open(f"/proc/{name}/status") as f:
                    status = f.read()
                with open(f"/proc/{name}/cgroup") as f:
                    cgroups = f.read()
            except OSError:
                continue
            if f"/sparring-{pid}-" in cgroups and "State:\tZ" not in status:
                found.add(("process", f"{name} ({status.splitlines()[0]})"))
        for root in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup/memory", "/sys/fs/cgroup"):
            for dirpath, dirnames, _ in os.walk(root):
                found |= {("cgroup", os.path.join(dirpath, d)) for d in dirnames if d.startswith(f"sparring-{pid}-")}
        for parent in ("/run", os.path.expanduser("~/.cache/sparring")):
            if os.path.isdir(parent):
                found |= {("work dir", d) for d in os.listdir(parent) if d.startswith(f"sparring-sandbox-{pid}-")}
        return found
    from sparring.sandboxes.docker_image import LABEL, connect

    client = connect()
    found |= {("container", c.name) for c in client.containers.list(all=True, filters={"label": LABEL})
              if c.name.startswith(f"sparring-sandbox-{pid}-")}
    found |= {("volume", v.name) for v in client.volumes.list(filters={"label": LABEL})
              if v.name.startswith(f"sparring-sandbox-{pid}-")}
    return found
