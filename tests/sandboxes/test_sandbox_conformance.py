"""What every sandbox must do for honest programs: round trips, statuses, limits, order, fresh work dirs."""

from __future__ import annotations

import os
import uuid

import pytest
from sandbox_kit import leftover_processes

from sparring.sandboxes import STATUSES


def test_stdin_files_and_output_round_trip(sandbox):
    code = (
        "import sys\n"
        "data = sys.stdin.read()\n"
        "print(data[::-1], end='')\n"
        "print(open('data.txt').read(), open('pkg/util.py').read(), open('blob.bin', 'rb').read().hex())\n"
        "print('to stderr', file=sys.stderr)\n"
        "sys.exit(0)\n"
    )
    result = sandbox.run(code, stdin="abc\ndef", files={"data.txt": "hello", "pkg/util.py": "X = 1\n",
                                                       "blob.bin": bytes([0, 255, 10])})
    assert result.status == "ok", result
    assert result.exit_code == 0
    assert result.stdout == "fed\ncba" + "hello X = 1\n 00ff0a\n"
    assert result.stderr == "to stderr\n"
    assert not result.truncated
    assert result.backend == sandbox.backend and result.isolation == sandbox.isolation
    assert result.wall_s > 0


def test_imports_from_the_work_dir_and_large_stdin(sandbox):
    result = sandbox.run("import helper, sys\nprint(helper.twice(len(sys.stdin.read())))",
                         stdin="x" * 300_000, files={"helper.py": "def twice(n):\n    return 2 * n\n"})
    assert (result.status, result.stdout) == ("ok", "600000\n"), result


def test_statuses(sandbox):
    cases = {
        "ok": "print('fine')",
        "error": "raise SystemExit(3)",
        "timeout": "while True:\n    pass",
        "memory": "data = bytearray(2 * 1024 ** 3)",
        "killed": "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)",
        "output_limit": "while True:\n    print('spam' * 1000)",
    }
    results = sandbox.run_many([{"code": code, "timeout_s": 1.5} for code in cases.values()])
    for expected, result in zip(cases, results):
        assert result.status == expected, (expected, result)
        assert result.status in STATUSES
    ok, error, timeout, memory, killed, flood = results
    assert (ok.exit_code, ok.stdout) == (0, "fine\n")
    assert error.exit_code == 3
    assert 1.5 <= timeout.wall_s < 6
    assert killed.exit_code == -15
    assert flood.truncated and len(flood.stdout) <= sandbox.limits.max_output_bytes
    assert not leftover_processes(sandbox)


def test_exit_zero_is_only_an_exit_code(sandbox):
    """A program that claims success and exits 0 early is reported as exactly that: grading is outside."""
    result = sandbox.run("import os\nprint('ALL TESTS PASSED', flush=True)\nos._exit(0)\nassert False")
    assert (result.status, result.stdout) == ("ok", "ALL TESTS PASSED\n")


def test_run_many_keeps_input_order(sandbox):
    requests = [{"code": f"import time\ntime.sleep({(7 - i) % 4} * 0.05)\nprint({i})"} for i in range(8)]
    results = sandbox.run_many(requests)
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(8)]
    assert sandbox.run_many([]) == []


def test_each_run_gets_a_fresh_private_work_dir(sandbox):
    private_tmp = getattr(sandbox, "tier", "") != "rlimits"  # the insecure tier shares the host's /tmp
    name = f"/tmp/sparring-left-{uuid.uuid4().hex}"
    writer = sandbox.run(f"open('left.txt', 'w').write('x')\nopen({name!r}, 'w').write('x') if {private_tmp} else 0")
    assert writer.status == "ok", writer
    listings = sandbox.run_many([{"code": f"import os\nprint(sorted(os.listdir('.')), os.path.exists({name!r}))"}] * 4)
    assert {r.stdout for r in listings} == {"['main.py'] False\n"}, listings
    assert not os.path.exists(name)  # nor on the host


def test_invalid_utf8_is_decoded_with_replacement(sandbox):
    code = "import sys\nsys.stdout.buffer.write(b'ok \\xff\\xfe\\x80 end')\nsys.stderr.buffer.write(b'\\xc3(')"
    result = sandbox.run(code)
    assert result.status == "ok"
    assert result.stdout == "ok \ufffd\ufffd\ufffd end"
    assert result.stderr == "\ufffd("
    unencodable = sandbox.run("print('\udcff')", stdin="\ud800", files={"x.txt": "\udfff"})  # lone surrogates
    assert unencodable.status == "error" and "SyntaxError" in unencodable.stderr, unencodable


def test_output_floods_are_capped_on_both_streams(sandbox):
    cap = sandbox.limits.max_output_bytes
    out, err = sandbox.run_many([
        {"code": "import sys\nsys.stdout.write('a' * 10_000_000)", "timeout_s": 3},
        {"code": "import sys\nwhile True:\n    sys.stderr.write('b' * 65536)", "timeout_s": 3},
    ])
    assert (out.status, out.truncated, out.stdout) == ("output_limit", True, "a" * cap)
    assert (err.status, err.truncated, err.stderr) == ("output_limit", True, "b" * cap)
    small = sandbox.run("print('a' * 100)")
    assert (small.status, small.truncated) == ("ok", False)


def test_a_run_may_lower_memory_and_change_the_timeout(sandbox):
    allocate = "data = bytearray(150 * 1024 ** 2)\nprint('allocated')"
    assert sandbox.run(allocate).status == "ok"
    assert sandbox.run(allocate, memory_mb=100).status == "memory"
    assert sandbox.run("import time\ntime.sleep(0.6)\nprint(1)", timeout_s=0.3).status == "timeout"


def test_threads_start_within_the_memory_limit(sandbox):
    # 24 threads with Linux's default 8 MB stack reservation each: RLIMIT_AS at 256 MB let about 6 start
    if not (sandbox.backend == "docker" or all(slot.cgroups and slot.cgroups.memory_dir for slot in sandbox._slots)):
        pytest.skip("no memory cgroup here: RLIMIT_AS caps memory and counts every thread's stack reservation")
    code = ("import threading\nbarrier = threading.Barrier(25)\nthreads = [threading.Thread(target=barrier.wait) "
            "for _ in range(24)]\nfor t in threads:\n    t.start()\nbarrier.wait()\nprint(len(threads))")
    result = sandbox.run(code, memory_mb=256)
    assert (result.status, result.stdout) == ("ok", "24\n"), result


def test_the_sandbox_keeps_working_after_failures(sandbox):
    sandbox.run_many([{"code": "import os\nos.kill(os.getpid(), 9)"}, {"code": "while True: pass", "timeout_s": 0.5}])
    assert [r.stdout for r in sandbox.run_many([{"code": "print(1)"}] * 4)] == ["1\n"] * 4
    assert not leftover_processes(sandbox)


@pytest.mark.parametrize("kind", ["local"])
def test_closed_sandbox_refuses_runs(kind, request):
    from sandbox_kit import open_sandbox

    from sparring.sandboxes import SandboxError

    sandbox = open_sandbox(kind, request, workers=1)
    with sandbox:
        assert sandbox.run("print(1)").ok
    with pytest.raises(SandboxError, match="closed"):
        sandbox.run("print(1)")
    sandbox.close()  # twice is fine
