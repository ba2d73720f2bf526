"""The local warm path: a fork server per bubblewrap slot, on by default where bubblewrap works; what it
keeps between runs (the server, after an ordinary run or one ended at the output cap) and what makes it
start afresh (a server that died, or one whose state a run changed)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from sparring.sandboxes import make_sandbox
from sparring.sandboxes.local import WARM_ISOLATION
from sparring.sandboxes.tiers import available_tiers
from sparring.sandboxes.uids import uid_processes


@pytest.fixture(scope="module")
def warm():
    if "bwrap" not in available_tiers():
        pytest.skip("bubblewrap does not work on this host: the local backend is cold only")
    with make_sandbox("local", workers=1, memory_mb=256, max_output_bytes=4096) as sandbox:
        yield sandbox


def test_warm_is_the_default_and_cold_can_be_asked_for(warm):
    assert warm.warm, warm.warm_problem  # where bubblewrap works, so does the warm path
    assert warm.isolation.endswith(WARM_ISOLATION) and warm.run("print(1)").isolation == warm.isolation
    with make_sandbox("local", warm=False) as cold:
        result = cold.run("print(1)")
        assert (result.stdout, result.isolation) == ("1\n", cold.isolation)
        assert not cold.warm and "fork-server" not in cold.isolation
    with pytest.raises(TypeError, match="warm must be True"):
        make_sandbox("local", warm="yes")


def server_pid(sandbox) -> int:
    return max(sandbox._slots[0].server.host_pids)  # bwrap, then (a newer pid) the server it started


def test_the_server_stays_through_ordinary_runs_and_the_output_cap(warm):
    warm.run("pass")
    first = server_pid(warm)
    assert warm.run("raise SystemExit(3)").exit_code == 3
    flood = warm.run("while True:\n    print('x' * 100)")
    assert flood.status == "output_limit" and len(flood.stdout) <= 4096, flood
    assert warm.run("while True:\n    pass", timeout_s=0.5).status == "timeout"
    assert server_pid(warm) == first


def test_a_server_that_dies_is_replaced(warm):
    warm.run("pass")
    first = server_pid(warm)
    results = []
    during = threading.Thread(target=lambda: results.append(warm.run("import time\ntime.sleep(5)\nprint('late')")))
    during.start()
    slot = warm._slots[0]
    for _ in range(500):  # until the run's child is forked (a process of the slot beyond the server's chain)
        if slot.uid is None or uid_processes(slot.uid) - slot.server.host_pids:
            break
        time.sleep(0.01)
    os.kill(first, signal.SIGKILL)  # from outside: no run can name it
    during.join()
    assert results[0].status == "killed" and "fork server ended before it could report" in results[0].stderr, results
    assert warm.run("print('fresh')").stdout == "fresh\n"
    assert server_pid(warm) != first


def test_a_run_that_changes_the_server_gets_it_replaced(warm):
    warm.run("pass")
    first = server_pid(warm)
    result = warm.run("import os\nos.setpriority(os.PRIO_USER, 0, 19)\nprint('reniced')")  # every process of the uid
    assert (result.status, result.stdout) == ("ok", "reniced\n"), result
    assert warm.run("print(2)").stdout == "2\n"
    assert server_pid(warm) != first  # the reniced server was in doubt: a fresh one serves
    assert os.getpriority(os.PRIO_PROCESS, server_pid(warm)) == os.getpriority(os.PRIO_PROCESS, 0)


def test_a_server_that_cannot_start_leaves_the_cold_path(monkeypatch, tmp_path):
    if "bwrap" not in available_tiers():
        pytest.skip("bubblewrap does not work on this host: the local backend is cold only")
    from sparring.sandboxes import local

    broken = tmp_path / "forkserver.py"
    broken.write_text("import sys\nsys.exit('sparring test: no fork server here')\n")
    monkeypatch.setattr(local, "FORK_SERVER", broken)
    with pytest.warns(UserWarning, match="runs cold.*no fork server here"):
        sandbox = make_sandbox("local", workers=2)
    with sandbox:
        assert not sandbox.warm and "no fork server here" in sandbox.warm_problem
        result = sandbox.run("print(1)")
        assert (result.status, result.stdout, result.isolation) == ("ok", "1\n", sandbox.isolation)
        assert "fork-server" not in result.isolation
        assert all(slot.server is None for slot in sandbox._slots)
