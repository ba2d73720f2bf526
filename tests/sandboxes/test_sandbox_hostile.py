"""Hostile programs against every sandbox that claims to confine what they attack.

Resource attacks (loops, memory, fork and thread bombs, floods) run on every kind: each slot runs as an
unprivileged uid with RLIMIT_NPROC and a pids cgroup (locally), or under a pids limit (Docker), so the
bombs here are small, time-limited and can never reach the host. Escapes (host files and environment,
writes outside the work dir, network, processes that outlive the run, killing the parent) are marked
`confines(guarantee)` and run on exactly the sandboxes whose tier CONFINES the guarantee (see conftest.py).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid

import pytest
from sandbox_kit import leftover_processes

FORK_BOMB = """
import os, time
for _ in range(500):
    try:
        os.fork()
    except OSError:
        break
time.sleep(0.5)
print("done")
"""

THREAD_BOMB = """
import threading, time
threading.stack_size(64 * 1024)
started = 0
try:
    for _ in range(10_000):
        threading.Thread(target=time.sleep, args=(3,), daemon=True).start()
        started += 1
except (RuntimeError, MemoryError) as error:
    print("stopped at", started, type(error).__name__)
"""


def test_infinite_loop_times_out(sandbox):
    result = sandbox.run("while True:\n    pass", timeout_s=1.0)
    assert result.status == "timeout" and 1.0 <= result.wall_s < 5, result
    assert not leftover_processes(sandbox)


def test_memory_bombs(sandbox):
    big, creeping = sandbox.run_many([
        {"code": "data = bytearray(8 * 1024 ** 3)"},
        {"code": "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 ** 2))"},
    ])
    assert big.status == "memory", big
    assert creeping.status == "memory", creeping
    assert sandbox.run("print(len(bytearray(50 * 1024 ** 2)))").stdout == "52428800\n"


def test_fork_bomb_is_contained(sandbox):
    if sandbox.backend == "local":  # never without an unprivileged uid and a process limit in place
        assert all(slot.uid is not None or os.geteuid() != 0 for slot in sandbox._slots)
    result = sandbox.run(FORK_BOMB, timeout_s=3.0)
    assert result.status in ("ok", "timeout", "error", "killed"), result
    assert result.stdout.count("done") <= sandbox.limits.max_processes + 8  # not 2**500
    assert not leftover_processes(sandbox)
    assert sandbox.run("print('alive')").stdout == "alive\n"


def test_thread_bomb_is_contained(sandbox):
    result = sandbox.run(THREAD_BOMB, timeout_s=5.0)
    assert result.status == "ok", result
    started = int(result.stdout.split()[2])
    assert started <= sandbox.limits.max_processes + 8, result
    assert not leftover_processes(sandbox)


@pytest.mark.confines("processes")
def test_daemons_do_not_outlive_the_run(sandbox, tmp_path):
    marker = tmp_path / "late"
    os.chmod(tmp_path, 0o777)  # where the insecure tier could write: nothing may write it later
    code = f"""
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.close(1); os.close(2)
        for path in ({str(marker)!r}, "late.txt", "/tmp/late.txt"):
            time.sleep(0.3)
            try:
                open(path, "w").write("still here")
            except OSError:
                pass
        time.sleep(30)
    os._exit(0)
print("parent exits")
"""
    result = sandbox.run(code)
    assert (result.status, result.stdout) == ("ok", "parent exits\n"), result
    assert not leftover_processes(sandbox)
    time.sleep(1.2)
    assert not marker.exists()
    listings = sandbox.run_many([{"code": "import os\nprint(os.listdir('.'), os.path.exists('/tmp/late.txt'))"}] * 2)
    assert {r.stdout for r in listings} == {"['main.py'] False\n"}


@pytest.mark.confines("processes")  # without its own uid, the insecure tier could kill this test's process
def test_killing_the_parent_and_everyone(sandbox):
    bystander = "import time\ntime.sleep(0.8)\nprint('survived')"
    results = sandbox.run_many([
        {"code": "import os, time\nos.kill(os.getppid(), 9)\ntime.sleep(30)", "timeout_s": 1.5},
        {"code": bystander},
    ])
    assert results[0].status in ("killed", "ok", "error", "timeout"), results[0]
    assert results[1].stdout == "survived\n", results[1]
    results = sandbox.run_many([
        {"code": "import os, time\ntry:\n    os.kill(-1, 9)\nexcept OSError:\n    pass\ntime.sleep(30)", "timeout_s": 1.5},
        {"code": bystander},
    ])
    assert results[0].status in ("killed", "timeout"), results[0]
    assert results[1].stdout == "survived\n", results[1]
    assert not leftover_processes(sandbox)
    assert sandbox.run_many([{"code": "print(1)"}] * 2)[1].stdout == "1\n"


@pytest.mark.confines("environment")
def test_host_environment_is_invisible(sandbox, monkeypatch):
    secret = f"sparring-secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("SPARRING_TEST_SECRET", secret)
    code = """
import os
print(sorted(os.environ))
seen = []
for pid in os.listdir('/proc'):
    try:
        seen.append(open(f'/proc/{pid}/environ', 'rb').read().decode(errors='replace'))
    except (OSError, ValueError):
        pass
print('\\n'.join(seen))
"""
    result = sandbox.run(code)
    assert result.status == "ok", result
    assert secret not in result.stdout and "SPARRING_TEST_SECRET" not in result.stdout


@pytest.mark.confines("filesystem")
def test_host_files_are_out_of_reach(sandbox, tmp_path):
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("host secret")
    os.chmod(secret_file, 0o644)
    os.chmod(tmp_path, 0o755)
    code = f"""
import os
for path in ("/etc/shadow", {str(secret_file)!r}, "/root/.bashrc", "/work/notes/helper-brief.md", "/etc/hostname"):
    try:
        print(path, repr(open(path).read()[:40]))
    except OSError as error:
        print(path, "refused", type(error).__name__)
for folder in ("/root", "/work", "/home", "/var/lib/docker"):
    try:
        print(folder, os.listdir(folder))
    except OSError as error:
        print(folder, "refused", type(error).__name__)
"""
    result = sandbox.run(code)
    assert result.status == "ok", result
    assert "host secret" not in result.stdout
    for line in result.stdout.splitlines():
        path = line.split()[0]
        if path in ("/etc/shadow", str(secret_file), "/root/.bashrc", "/work/notes/helper-brief.md"):
            assert "refused" in line, line
        if path in ("/root", "/home", "/var/lib/docker"):
            assert "refused" in line or line.endswith("[]"), line
    work_listing = next(line for line in result.stdout.splitlines() if line.startswith("/work "))
    assert "notes" not in work_listing and "main" not in work_listing.replace("main.py", "")


@pytest.mark.confines("filesystem")
def test_writes_outside_the_work_dir_do_not_reach_the_host(sandbox, tmp_path):
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    os.chmod(tmp_path, 0o755)
    name = f"sparring-escape-{uuid.uuid4().hex}"
    targets = [f"/{name}", f"/usr/{name}", f"/etc/{name}", f"/tmp/{name}", f"/dev/shm/{name}", str(open_dir / name)]
    code = f"""
for path in {targets!r}:
    try:
        open(path, "w").write("escaped")
        print(path, "written")
    except OSError as error:
        print(path, "refused", type(error).__name__)
"""
    result = sandbox.run(code)
    assert result.status == "ok", result
    for target in targets:
        assert not os.path.exists(target), target
    for line in result.stdout.splitlines():  # the read-only system refuses; private scratch dirs may accept
        if line.startswith(("/usr/", "/etc/")):
            assert "refused" in line, line


@pytest.fixture
def host_server():
    """A TCP server on the host's 127.0.0.1 that counts the connections it accepts."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    accepted = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            accepted.append(connection)
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    server.close()


@pytest.mark.confines("network")
def test_no_network_egress(sandbox, host_server):
    port, accepted = host_server
    code = f"""
import socket
def attempt(what, fn):
    try:
        fn()
        print(what, "reached")
    except OSError as error:
        print(what, "refused", type(error).__name__)
attempt("loopback", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=1).close())
attempt("internet", lambda: socket.create_connection(("1.1.1.1", 53), timeout=1).close())
attempt("dns", lambda: socket.getaddrinfo("pypi.org", 443))
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"x", ("8.8.8.8", 53))
attempt("udp", udp)
print(sorted(name for _, name in socket.if_nameindex()))
"""
    result = sandbox.run(code)
    assert result.status == "ok", result
    lines = result.stdout.splitlines()
    assert all("refused" in line for line in lines[:4]), result.stdout
    assert lines[4] in ("['lo']", "[]"), lines[4]
    assert accepted == []


# A harmless canary of a takeover: for every process it can see, whether it could rewrite its memory
# (/proc/PID/mem opened for writing, PTRACE_SEIZE) or signal it (signal 0, which sends nothing). A
# process it can reach must die with the run, or a later run's program and results are at its mercy.
REACH = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
for name in os.listdir('/proc'):
    if not name.isdigit() or int(name) == os.getpid():
        continue
    pid = int(name)
    try:
        start = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[19]
    except (OSError, IndexError):
        continue
    ways = []
    try:
        with open(f'/proc/{pid}/mem', 'r+b'):
            ways.append('mem')
    except OSError:
        pass
    if libc.ptrace(0x4206, pid, None, None) == 0:  # PTRACE_SEIZE: attaches without stopping it
        ways.append('ptrace')
    try:
        os.kill(pid, 0)
        ways.append('signal')
    except OSError:
        pass
    if ways:
        print(pid, start, ','.join(ways))
"""
SEEN = """
import os
for name in os.listdir('/proc'):
    if name.isdigit():
        try:
            print(name, open(f'/proc/{name}/stat').read().rsplit(')', 1)[1].split()[19])
        except (OSError, IndexError):
            pass
"""


@pytest.mark.confines("processes")
def test_no_run_reaches_a_process_that_outlives_it(sandbox):
    slots = sandbox.limits.workers
    reached = set()
    for result in sandbox.run_many([{"code": REACH}] * slots):
        assert result.status == "ok", result
        reached |= {tuple(line.split()[:2]) for line in result.stdout.splitlines()}
    later = set()
    for result in sandbox.run_many([{"code": SEEN}] * slots):  # every slot, whichever ran the first batch
        assert result.status == "ok", result
        later |= {tuple(line.split()) for line in result.stdout.splitlines()}
    assert not reached & later, f"processes a run could take over outlive it: {sorted(reached & later)}"


# Things a run leaves for the next one: folders its owner set to mode 000 (so a plain `rm -rf` fails on
# them), a file in the POSIX message queue folder, SysV shared memory, message queues and semaphores,
# and a POSIX message queue. Harmless: each is a few bytes.
LEAVE_BEHIND = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
made = []
for folder in (os.getcwd(), "/tmp", "/dev/shm"):
    path = os.path.join(folder, "sparring-canary")
    try:
        os.mkdir(path)
        with open(os.path.join(path, "inside"), "w") as f:
            f.write("left behind")
        os.chmod(path, 0)
        made.append(path)
    except OSError:
        pass
try:
    open("/dev/mqueue/sparring-canary", "w").close()
    made.append("/dev/mqueue file")
except OSError:
    pass
for what, made_it in (("sysv shm", libc.shmget(0x5ca7, 4096, 0o1600)), ("sysv msg", libc.msgget(0x5ca7, 0o1600)),
                      ("sysv sem", libc.semget(0x5ca7, 1, 0o1600)),
                      ("posix mq", libc.mq_open(b"/sparring-canary", os.O_CREAT | os.O_RDWR, 0o600, None))):
    if made_it != -1:
        made.append(what)
print(made)
"""
LOOK = """
import os
found = []
for folder in (os.getcwd(), "/tmp", "/dev/shm", "/dev/mqueue"):
    try:
        found += [os.path.join(folder, name) for name in os.listdir(folder) if name != "main.py"]
    except OSError:
        pass
for kind in ("shm", "msg", "sem"):
    try:
        found += [f"sysv {kind}: {line}" for line in open(f"/proc/sysvipc/{kind}").read().splitlines()[1:]]
    except OSError:
        pass
print(found)
"""


@pytest.mark.confines("leftovers")
def test_a_run_leaves_nothing_for_the_next(sandbox):
    slots = sandbox.limits.workers
    for result in sandbox.run_many([{"code": LEAVE_BEHIND}] * slots):
        assert result.status == "ok", result
    for result in sandbox.run_many([{"code": LOOK}] * slots):  # every slot, whichever ran the first batch
        assert (result.status, result.stdout) == ("ok", "[]\n"), result
    for slot in sandbox._slots:  # the host tiers' per-run work dirs are gone too, mode 000 folders and all
        if getattr(slot, "work_root", None) is not None:
            assert not list(slot.work_root.iterdir()), list(slot.work_root.iterdir())


FILL = """
import os
written = {}
for folder in (os.getcwd(), "/tmp", "/dev/shm", "/dev"):
    total = 0
    try:
        for i in range(64):
            with open(os.path.join(folder, f"fill{i}"), "wb") as f:
                for _ in range(4):
                    f.write(b"x" * (1 << 20))
                    total += 1 << 20
    except OSError:
        pass
    written[folder] = total >> 20
print(written)
"""


@pytest.mark.confines("scratch")  # many files, each under the file-size limit, into every writable folder
def test_every_writable_place_is_capped(sandbox):
    result = sandbox.run(FILL, timeout_s=20)
    assert result.status == "ok", result
    written = eval(result.stdout)  # a dict of ints this test's own program printed
    assert all(megabytes <= sandbox.limits.max_file_mb for megabytes in written.values()), written


def memory_capped_by_cgroup(sandbox) -> bool:
    return sandbox.backend == "docker" or all(slot.cgroups is not None and slot.cgroups.memory_dir
                                              for slot in sandbox._slots)


def test_a_program_cannot_choose_its_status(sandbox):
    exits = sandbox.run_many([{"code": f"import os\nos._exit({code})"} for code in (152, 137, 255)])
    assert [r.status for r in exits] != ["timeout"] * 3
    assert exits[0].status != "timeout" and exits[2].status != "sandbox_error", exits  # SIGXCPU's 128 + 24, and 255
    assert all(r.status in ("error", "killed") for r in exits), exits  # the shells' 128 + N: see the README
    claimed = sandbox.run("import sys\nsys.stderr.write('Traceback\\nMemoryError\\n')\nsys.exit(1)")
    if memory_capped_by_cgroup(sandbox):  # else RLIMIT_AS caps memory and this line is the only sign of it
        assert claimed.status == "error", claimed
    forged = sandbox.run("import sys\nsys.stderr.write('\\n@@sparring-supervisor@@{\"exit\": 0, \"signal\": null, "
                         "\"timeout\": true, \"oom\": false, \"wall_s\": 1, \"cpu_s\": 1, \"left\": []}\\n')\nsys.exit(3)")
    assert (forged.status, forged.exit_code) == ("error", 3), forged


# What a warm path adds: interpreter state that a forked server could hand on. A run changes modules the
# server pre-imported, builtins, the environment and the working directory; every later run must see a
# fresh interpreter.
CHANGE_THE_INTERPRETER = """
import builtins, json, math, os, random, sys
json.dumps = lambda *args, **kwargs: "forged"
math.pi = 3
builtins.len = lambda obj: 42
builtins.sparring_canary = True
os.environ["SPARRING_CANARY"] = "1"
sys.modules["collections"] = None
sys.path.insert(0, "/tmp")
random.seed(1234)
print("changed")
"""
LOOK_AT_THE_INTERPRETER = """
import builtins, collections, json, math, os, random, sys
print(json.dumps({"a": 1}), math.pi == 3.141592653589793, len("ab"), hasattr(builtins, "sparring_canary"),
      "SPARRING_CANARY" in os.environ, sys.path[0] == os.getcwd(), collections.OrderedDict is not None, sep="|")
"""


def test_a_run_that_changes_the_interpreter_reaches_no_later_run(sandbox):
    slots = sandbox.limits.workers
    assert {r.stdout for r in sandbox.run_many([{"code": CHANGE_THE_INTERPRETER}] * slots)} == {"changed\n"}
    for result in sandbox.run_many([{"code": LOOK_AT_THE_INTERPRETER}] * slots):
        assert (result.status, result.stdout) == ("ok", '{"a": 1}|True|2|False|False|True|True\n'), result


def test_random_state_differs_between_runs(sandbox):
    draws = [r.stdout for r in sandbox.run_many([{"code": "import random\nprint(random.random())"}] * 4)]
    assert all(draws) and len(set(draws)) == 4, draws  # each run is seeded afresh, as a new python3 is


# A run that attacks what serves it: every process it can see (on the warm path, the fork server is the
# namespace's pid 1) is signalled (SIGSTOP, then SIGKILL), reniced, re-limited, pinned and traced where the
# kernel lets it; then the whole uid is reniced. Each attempt that works is printed. Afterwards the
# sandbox must still answer every slot, with nothing of the attack left (no stopped or reniced server).
TAMPER = """
import ctypes, os, resource, signal
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
me = os.getpid()
worked = []
targets = sorted({int(n) for n in os.listdir('/proc') if n.isdigit()} - {me}) + [-1]
for pid in targets:
    for name, attempt in (
            ("ptrace", lambda: libc.ptrace(0x4206, pid, None, None) == 0 or (_ for _ in ()).throw(OSError())),
            ("prlimit", lambda: resource.prlimit(pid, resource.RLIMIT_NPROC, (0, 0))),
            ("renice", lambda: os.setpriority(os.PRIO_PROCESS, pid, 19)),
            ("affinity", lambda: os.sched_setaffinity(pid, {0})),
            ("mem", lambda: open(f"/proc/{pid}/mem", "r+b").close()),
            ("fd", lambda: os.listdir(f"/proc/{pid}/fd")),
            ("stop", lambda: os.kill(pid, signal.SIGSTOP)),
            ("kill", lambda: os.kill(pid, signal.SIGKILL))):
        try:
            attempt()
            worked.append(f"{name} {pid}")
        except (OSError, ValueError):
            pass
try:
    os.setpriority(os.PRIO_USER, 0, 19)  # every process of this uid
    worked.append("renice uid")
except OSError:
    pass
print(worked)
"""
NICE = """
import os
print(sorted({open(f'/proc/{n}/stat').read().rsplit(')', 1)[1].split()[16] for n in os.listdir('/proc')
              if n.isdigit() and int(n) != os.getpid()} or {'0'}))
"""


@pytest.mark.confines("leftovers")  # the tiers whose runs see only their own sandbox's processes
def test_a_run_that_tampers_with_its_server_changes_nothing_later(sandbox):
    slots = sandbox.limits.workers
    for result in sandbox.run_many([{"code": TAMPER, "timeout_s": 3.0}] * slots):
        # a cold run's own sandbox processes (bwrap's init) are within its reach, and die with it
        assert result.status in ("ok", "killed", "timeout"), result
        if sandbox.backend == "local" and sandbox.warm:  # the fork server outlives runs: nothing of it is reachable
            assert (result.status, result.stdout) in (("ok", "[]\n"), ("ok", "['renice uid']\n")), result
    for result in sandbox.run_many([{"code": NICE}] * (2 * slots)):
        assert result.status == "ok" and "'19'" not in result.stdout, result  # no reniced process serves a run
    assert not leftover_processes(sandbox)


# A run that leaves threads: a daemon thread that would write and print after the main thread ends, and a
# thread that is still running; the next run sees neither, nor what they would have written.
LEAVE_A_THREAD = """
import os, threading, time
def late():
    time.sleep(0.5)
    for path in ("late.txt", "/tmp/late.txt"):
        open(path, "w").write("late")
    print("late thread ran")
threading.Thread(target=late, daemon=True).start()
print("main done", threading.active_count())
"""


def test_a_run_that_leaves_a_thread_leaves_nothing(sandbox):
    slots = sandbox.limits.workers
    for result in sandbox.run_many([{"code": LEAVE_A_THREAD}] * slots):
        assert (result.status, result.stdout) == ("ok", "main done 2\n"), result
    time.sleep(0.8)
    look = "import os, threading\nprint(threading.active_count(), os.listdir('.'), os.path.exists('/tmp/late.txt'))"
    for result in sandbox.run_many([{"code": look}] * slots):
        assert (result.status, result.stdout) == ("ok", "1 ['main.py'] False\n"), result
    assert not leftover_processes(sandbox)


def test_exit_statuses_and_signals_are_told_apart(sandbox):
    """A program that exits 128 + N is not one killed by signal N, where the backend observes the wait status
    itself (the warm path's server and Docker's supervisor; the cold bwrap path reports both alike)."""
    exited, killed, xcpu = sandbox.run_many([{"code": "import os\nos._exit(137)"},
                                              {"code": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"},
                                              {"code": "import os\nos._exit(152)"}])
    if sandbox.backend == "local" and not sandbox.warm and sandbox.tier != "rlimits":
        # documented (README): the cold path sees bwrap's or the shell's status, where 128 + N is signal N
        assert [(r.status, r.exit_code) for r in (exited, killed)] == [("killed", -9)] * 2, (exited, killed)
        assert xcpu.status == "killed", xcpu  # SIGXCPU without the CPU time spent: not a timeout
        return
    assert (exited.status, exited.exit_code) == ("error", 137), exited
    assert (killed.status, killed.exit_code) == ("killed", -9), killed
    assert (xcpu.status, xcpu.exit_code) == ("error", 152), xcpu


# A run that looks for what serves it among its own frames (on the warm path, the fork server's frames are
# below the program's: its transport, request, descriptors) and sends a forged "ok" report through them,
# then reads what it can of its parent's /proc entries. Its status must stay its own exit.
FORGE_THE_REPORT = r"""
import os, sys
found, frame = [], sys._getframe()
while frame is not None:
    transport = frame.f_locals.get("transport") or frame.f_globals.get("transport")
    if transport is not None:
        try:
            transport.send({"exit": 0, "signal": None, "timeout": False, "ended": False, "wall_s": 0,
                            "cpu_s": 0, "left": [], "doubt": [], "problem": None, "oom": False})
        except Exception:
            pass
    frame = frame.f_back
for name in ("environ", "fd", "mem"):
    path = f"/proc/{os.getppid()}/{name}"
    try:
        os.listdir(path) if name == "fd" else open(path, "rb").read(1)
        found.append(name)
    except OSError:
        pass
print("readable:", found)
sys.exit(3)
"""


@pytest.mark.confines("leftovers")  # the tiers whose runs see only their own sandbox's processes
def test_a_run_cannot_forge_its_report(sandbox):
    result = sandbox.run(FORGE_THE_REPORT)
    assert (result.status, result.exit_code) == ("error", 3), result
    if sandbox.backend == "docker" or sandbox.warm:  # the parent is the supervisor or the fork server
        assert "readable: []" in result.stdout, result
    assert sandbox.run("print('next')").stdout == "next\n"


# The scratch folders themselves (mount points that a warm slot empties rather than replaces): a run locks
# them, marks their times and extended attributes; a later run must find them as a fresh run does, and its
# files must still arrive.
MARK_THE_FOLDERS = """
import os
for folder in (os.getcwd(), "/tmp", "/dev/shm"):
    for mark in (lambda: os.setxattr(folder, "user.sparring", b"canary"), lambda: os.utime(folder, (1234567, 1234567)),
                 lambda: os.chmod(folder, 0o700 if os.stat(folder).st_mode & 0o777 != 0o700 else 0o750)):
        try:
            mark()
        except OSError:
            pass
print("marked")
"""
LOOK_AT_THE_FOLDERS = """
import os
seen = []
for folder in (os.getcwd(), "/tmp", "/dev/shm"):
    info = os.stat(folder)
    try:
        marks = os.listxattr(folder)
    except OSError:
        marks = []
    seen.append((oct(info.st_mode & 0o7777), int(info.st_mtime) == 1234567, marks))
print(seen, open("data.txt").read())
"""


@pytest.mark.confines("leftovers")  # the tiers whose runs see only their own sandbox's processes
def test_a_run_that_marks_the_scratch_folders_leaves_no_mark(sandbox):
    look = [{"code": LOOK_AT_THE_FOLDERS, "files": {"data.txt": "x"}}] * sandbox.limits.workers
    fresh = {r.stdout for r in sandbox.run_many(look)}
    assert len(fresh) == 1 and next(iter(fresh)).endswith("] x\n") and "True" not in next(iter(fresh)), fresh
    assert {r.stdout for r in sandbox.run_many([{"code": MARK_THE_FOLDERS}] * sandbox.limits.workers)} == {"marked\n"}
    assert {r.stdout for r in sandbox.run_many(look)} == fresh  # every slot, whichever ran the marks
