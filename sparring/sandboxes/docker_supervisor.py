"""What the Docker backend's containers run besides the fork server: their pid 1 and the cold path's supervisor.

The container's pid 1 (`REAPER`), an orphan reaper, runs as its own uid (65533); programs run as 65534,
so none can signal, trace or rewrite it.

A cold run copies main.py, its files and its stdin file into /work (`work_tar`, with `put_archive`), then
`docker exec`s the SUPERVISOR below as 65534: it runs `python3 main.py` under its own clock, then kills
every other process of the uid, empties /work, /tmp, /dev/shm and /dev/mqueue, checks that nothing is
left, and reports what it observed (exit status or signal from wait4, its own timeout, the cgroup's OOM
kills) as the last line of stderr, when nothing of the program is alive to write after it
(`split_report` takes it back out).
"""

from __future__ import annotations

import io
import json
import tarfile
import time

from sparring.sandboxes.base import RESERVED_NAMES, RunRequest
from sparring.sandboxes.docker_image import USER

REAPER_USER = "65533:65533"  # the container's pid 1: another uid, so no program can signal, trace or rewrite it
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


def split_report(stderr: bytes, exit_code: int | None) -> tuple[bytes, dict | None]:
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


def work_tar(request: RunRequest) -> bytes:
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
