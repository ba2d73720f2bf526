"""The warm path's fork server: a Python that has already imported what programs commonly use, started once
inside a sandbox slot (bubblewrap, as the slot's uid, under its limits), that forks one child per run.

This file is a program, not a module of sparring: the backends run its source with `python3 -I -c <this
file> <transport> <seccomp profile as JSON, or ""> <modules> <scratch folders>` in the slot's sandbox (see
`main`), with the standard library only. Locally it speaks over a control socket (a SOCK_SEQPACKET
socketpair whose other end the host holds; no path names it); in Docker over the exec's stdin and stdout
(`RelayTransport`: the same requests and reports, with the output relayed in frames):

- the host sends one request: a JSON header `{"timeout_s", "cpu_s", "memory_bytes"}` with four file
  descriptors (stdin, the write ends of the host's stdout and stderr pipes, and a memfd of the work files);
  a later packet `K` asks it to end the run (the host saw the output cap passed);
- it writes the files into /work, forks the child, waits for it by its own clock, then kills every other
  process in the slot's pid namespace, empties /work, /tmp and /dev/shm, checks that nothing is left and
  that nothing about itself changed, and sends its report: how the child ended (from wait4), whether its
  own timer or the host's request ended it, the CPU seconds, what was left and what is in doubt.

The child: a new session, the run's stdin/stdout/stderr and nothing else open, /work as cwd, the run's
CPU-time (and, without a memory cgroup, address-space) limit, dumpable like a fresh process, OOM killer's
first choice, then two seccomp filters (the Docker backend's allowlist, which Docker already applies to
its containers, and one that refuses every call naming the server, its group, pid 1 or every process at
once: kill, tgkill, prlimit, sched_set*, ...),
then `python3 main.py` semantics: a fresh `__main__` with `__file__ = "/work/main.py"`, `sys.argv ==
["main.py"]`, `sys.path[0] == "/work"`, tracebacks without the server's frame, and the interpreter's own
exit (atexit, non-daemon threads, flushing). Interpreter state a run changes (modules, builtins,
environment) lives in the child's copy and dies with it; the server never runs program code.

The server is out of the child's reach: non-dumpable (no ptrace, no /proc/<pid>/mem, fd or environ for
its uid), no signal or scheduling call can name it (the second filter), and its control socket is closed
in the child. Anything odd (its priority, rlimits or affinity changed, a process or file it could not
remove) is reported as doubt, and the host replaces the whole slot sandbox.
"""

import ctypes
import errno
import json
import os
import resource
import select
import signal
import socket
import struct
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP = 4, 36, 38, 22
SECCOMP_MODE_FILTER = 2
ALLOW, ERRNO = 0x7FFF0000, 0x00050000
OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
       "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
# (system call, index of its pid argument): refused in the child when that argument names the server (the
# namespace's pid 1), its process group or every process (-1).
PID_CALLS = (("kill", 0), ("tkill", 0), ("tgkill", 0), ("rt_sigqueueinfo", 0), ("rt_tgsigqueueinfo", 0),
             ("pidfd_open", 0), ("prlimit64", 0), ("sched_setaffinity", 0), ("sched_setparam", 0),
             ("sched_setscheduler", 0), ("sched_setattr", 0), ("setpgid", 0), ("get_robust_list", 0),
             ("setpriority", 1))
DENIED = ("ioprio_set",)  # names a process or a whole uid; programs do not need it


class Cmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def compile_filters(profile, me):
    """Both filters as BPF bytes (through libseccomp, once, before any fork)."""
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(Cmp)]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]

    def export(ctx):
        fd = os.memfd_create("sparring-seccomp")
        if lib.seccomp_export_bpf(ctx, fd) != 0:
            raise OSError("seccomp_export_bpf failed")
        lib.seccomp_release(ctx)
        os.lseek(fd, 0, os.SEEK_SET)
        data = b""
        while chunk := os.read(fd, 65536):
            data += chunk
        os.close(fd)
        return data

    def add(ctx, action, name, conditions):
        number = lib.seccomp_syscall_resolve_name(name.encode())
        if number < 0:
            return  # not a system call of this kernel's table
        array = (Cmp * max(len(conditions), 1))(*conditions)
        result = lib.seccomp_rule_add_array(ctx, action, number, len(conditions), array)
        if result != 0:
            raise OSError(-result, f"seccomp rule for {name}: {os.strerror(-result)}")

    programs = []
    if profile is not None:  # the allowlist (Docker applies it to the whole container itself)
        allow = lib.seccomp_init(ERRNO | profile["defaultErrnoRet"])
        for rule in profile["syscalls"]:
            action = ALLOW if rule["action"] == "SCMP_ACT_ALLOW" else ERRNO | rule["errnoRet"]
            conditions = [Cmp(arg["index"], OPS[arg["op"]], arg["value"], arg.get("valueTwo", 0))
                          for arg in rule.get("args", [])]
            for name in rule["names"]:
                add(allow, action, name, conditions)
        programs.append(export(allow))
    protect = lib.seccomp_init(ALLOW)
    for name, index in PID_CALLS:
        for pid in sorted({me, -me, 1, -1}):
            add(protect, ERRNO | errno.EPERM, name, [Cmp(index, OPS["SCMP_CMP_MASKED_EQ"], 0xFFFFFFFF,
                                                         pid & 0xFFFFFFFF)])
    for name in DENIED:
        add(protect, ERRNO | errno.EPERM, name, [])
    return programs + [export(protect)]


def load_filter(program):
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "loading a seccomp filter")


def write_files(data):
    """The work files: (name length, name, content length, content) frames."""
    at = 0
    while at < len(data):
        (size,) = struct.unpack_from("<I", data, at)
        name = data[at + 4:at + 4 + size].decode("utf-8", "surrogatepass")
        at += 4 + size
        (length,) = struct.unpack_from("<Q", data, at)
        at += 8
        path = os.path.join("/work", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as out:
            out.write(data[at:at + length])
        at += length


def clear(folder):
    """Empty `folder`, folders a program locked (mode 000) included: each is opened up first."""
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


def folder_state(folders):
    """What a run could change about the scratch folders themselves (they are mount points: emptied, not
    replaced): mode, times and extended attributes, to restore after each run."""
    found = {}
    for folder in folders:
        try:
            info = os.stat(folder)
        except FileNotFoundError:
            continue
        found[folder] = (stat_mode(info), info.st_atime_ns, info.st_mtime_ns)
    return found


def stat_mode(info):
    return info.st_mode & 0o7777


def restore(folder, saved):
    """Give `folder` back its mode, times and (no) extended attributes; what could not be restored, or None.
    Only a folder of the server's own uid can be marked by a run (of the same uid): others are left as they are."""
    mode, atime, mtime = saved
    if os.stat(folder).st_uid != os.getuid():
        return None
    for step in (lambda: os.chmod(folder, mode),
                 lambda: [os.removexattr(folder, name) for name in os.listxattr(folder)],
                 lambda: os.utime(folder, ns=(atime, mtime))):
        try:
            step()
        except OSError:
            pass
    info = os.stat(folder)
    try:
        marks = os.listxattr(folder)
    except OSError:
        marks = []
    if stat_mode(info) != mode or info.st_mtime_ns != mtime or marks:
        return f"{folder}: its mode, modification time or extended attributes"
    return None


def state():
    """What a run must not be able to change about the server."""
    return (os.getpriority(os.PRIO_PROCESS, 0), os.sched_getaffinity(0),
            [resource.getrlimit(limit) for limit in (resource.RLIMIT_NPROC, resource.RLIMIT_NOFILE,
                                                     resource.RLIMIT_FSIZE, resource.RLIMIT_AS,
                                                     resource.RLIMIT_CPU, resource.RLIMIT_CORE)],
            os.getuid(), os.getgid(), libc.prctl(3, 0, 0, 0, 0))  # PR_GET_DUMPABLE


def run_child(request, fds, filters):
    """In the forked child: become the program (never returns)."""
    stdin, stdout, stderr = fds
    try:
        os.setsid()
        for target, fd in ((0, stdin), (1, stdout), (2, stderr)):
            os.dup2(fd, target)
        os.closerange(3, 1 << 16)
        os.chdir("/work")
        cpu = request["cpu_s"]
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        if request["memory_bytes"]:
            resource.setrlimit(resource.RLIMIT_AS, (request["memory_bytes"],) * 2)
        libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # like a fresh process (its /proc/self is its own again)
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        for program in filters:
            load_filter(program)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        for number in range(1, signal.NSIG):
            if number not in (signal.SIGKILL, signal.SIGSTOP):  # as a fresh python3 sets them
                handler = (signal.SIG_IGN if number in (signal.SIGPIPE, signal.SIGXFSZ) else
                           signal.default_int_handler if number == signal.SIGINT else signal.SIG_DFL)
                try:
                    signal.signal(number, handler)
                except (OSError, ValueError):
                    pass
        with open("/work/main.py", "rb") as f:
            source = f.read()
    except BaseException as error:  # the sandbox failed to set up the run
        os.write(2, f"sparring fork server: {type(error).__name__}: {error}\n".encode())
        os._exit(125)
    import types

    module = types.ModuleType("__main__")
    module.__file__ = "/work/main.py"
    module.__dict__["__cached__"] = None  # (through __dict__: ModuleType declares neither of these two)
    module.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = module
    sys.argv[:] = ["main.py"]
    sys.orig_argv = ["python3", "main.py"]
    sys.path[0:0] = ["/work"]
    try:
        code = compile(source, "/work/main.py", "exec")
    except BaseException as error:  # a SyntaxError, reported as `python3 main.py` reports it
        finish(report_uncaught(error.with_traceback(None)))
    try:
        exec(code, module.__dict__)
    except SystemExit as error:
        finish(exit_status(error))
    except BaseException as error:
        frames = error.__traceback__
        finish(report_uncaught(error.with_traceback(frames.tb_next if frames else None)))  # without the server's frame
    finish(0)


def report_uncaught(error):
    try:
        sys.excepthook(type(error), error, error.__traceback__)
    except BaseException:
        pass
    return 1


def exit_status(error):
    """The exit status `python3` gives SystemExit(code): 0 for None, the int, else code printed and 1."""
    code = error.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        print(code, file=sys.stderr)
    except BaseException:
        pass
    return 1


def finish(status):
    """The interpreter's own exit, without tearing down the server's modules (the process ends anyway):
    wait for non-daemon threads, run atexit callbacks, flush stdout and stderr, exit."""
    import atexit
    import threading

    try:
        getattr(threading, "_shutdown")()  # private (the interpreter's own call at exit), so not in typeshed
    except SystemExit as error:
        status = exit_status(error)
    except BaseException as error:
        report_uncaught(error)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except BaseException:
            status = 120 if status == 0 else status  # what python3 returns when stdout cannot be flushed
    os._exit(status)


def end_everything(me):
    """SIGKILL every other process of the namespace but pid 1 (the server itself locally, Docker's reaper of
    another uid) until /proc shows none; reap."""
    for _ in range(500):
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
            return []
        time.sleep(0.002)
    return [f"processes {others[:5]}"]


class FdTransport:
    """The local backend: requests on a SOCK_SEQPACKET socket with the run's file descriptors; the host reads
    the program's output from its own pipes and may ask (`K`) to end the run."""

    def __init__(self, fd):
        self.control = socket.socket(fileno=fd)

    def send(self, message):
        self.control.send(json.dumps(message).encode())

    def receive(self):
        message, ancillary, _, _ = self.control.recvmsg(65536, socket.CMSG_SPACE(4 * 4))
        if not message:
            return None
        fds = []
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += list(struct.unpack(f"{len(data) // 4}i", data[:len(data) - len(data) % 4]))
        with os.fdopen(fds[3], "rb") as f:
            files = f.read()
        return json.loads(message), fds[:3], files

    def close_in_child(self):
        self.control.close()

    def watch(self, pidfd, left):
        """Wait for the child's end, the time limit or the host's `K`: "exited", "timeout", "ended" or "gone"."""
        while True:
            remaining = left()
            if remaining <= 0:
                return "timeout"
            ready, _, _ = select.select([pidfd, self.control], [], [], remaining)
            if pidfd in ready:
                return "exited"
            if self.control in ready:
                return "ended" if self.control.recv(16) == b"K" else "gone"

    def drain(self):
        pass


class RelayTransport:
    """The Docker backend: requests (a JSON header line, then stdin and the files) on stdin; the program's
    output relayed, capped, with the report, as frames (kind, length, bytes) on stdout."""

    def __init__(self, cap):
        self.cap = cap
        self.pipes = {}

    def send(self, message, kind=b"r"):
        data = json.dumps(message).encode() if kind == b"r" else message
        data = kind + struct.pack("<I", len(data)) + data
        while data:
            data = data[os.write(1, data):]

    def read_exact(self, size):
        data = b""
        while len(data) < size:
            chunk = os.read(0, min(size - len(data), 1 << 20))
            if not chunk:
                return None
            data += chunk
        return data

    def receive(self):
        line = b""
        while not line.endswith(b"\n"):
            chunk = os.read(0, 1)
            if not chunk:
                return None
            line += chunk
        request = json.loads(line)
        stdin, files = self.read_exact(request["stdin_size"]), self.read_exact(request["files_size"])
        if stdin is None or files is None:
            return None
        stdin_fd = os.memfd_create("stdin")
        view = memoryview(stdin)
        while view:
            view = view[os.write(stdin_fd, view):]
        os.lseek(stdin_fd, 0, os.SEEK_SET)
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        self.pipes = {out_read: [b"o", 0], err_read: [b"e", 0]}
        self.over = False
        return request, [stdin_fd, out_write, err_write], files

    def close_in_child(self):
        for fd in self.pipes:
            os.close(fd)
        os.close(0)
        os.close(1)  # fd 1 is the run's stdout again right after, by dup2

    def forward(self, fd):
        """Relay one chunk of `fd`; False at its end. Past the cap: "over" (the run is ended)."""
        chunk = os.read(fd, 65536)
        if not chunk:
            os.close(fd)
            del self.pipes[fd]
            return
        kind, sent = self.pipes[fd]
        keep = chunk[:max(0, self.cap + 1 - sent)]
        if keep:
            self.send(keep, kind)
            self.pipes[fd][1] = sent + len(keep)
        if sent + len(chunk) > self.cap:
            self.over = True

    def watch(self, pidfd, left):
        while True:
            remaining = left()
            if remaining <= 0:
                return "timeout"
            ready, _, _ = select.select([pidfd, *self.pipes], [], [], remaining)
            for fd in ready:
                if fd in self.pipes:
                    self.forward(fd)
            if self.over:
                return "ended"
            if pidfd in ready:
                return "exited"

    def drain(self):
        """The rest of the output, once every process of the run is dead (the pipes then end)."""
        while self.pipes:
            ready, _, _ = select.select(list(self.pipes), [], [], 1.0)
            if not ready:
                for fd in list(self.pipes):
                    os.close(fd)
                self.pipes.clear()
            for fd in ready:
                self.forward(fd)


def oom_kills():
    """The OOM kills of this cgroup (Docker: the container's), or None where it cannot be read (bubblewrap
    mounts no /sys: the host reads the slot's cgroup itself)."""
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            with open(path) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return None


def serve(transport, filters, scratch):
    me = os.getpid()
    before = state()
    folders = folder_state(scratch)
    while True:
        received = transport.receive()
        if received is None:
            return  # the host went away
        request, fds, files = received
        problem = None
        try:
            write_files(files)
        except (OSError, ValueError, struct.error) as error:
            problem = f"writing the work files: {error}"
        oom_before = oom_kills()
        started = time.monotonic()
        pid = os.fork() if problem is None else -1
        if pid == 0:
            transport.close_in_child()
            run_child(request, fds, filters)
        for fd in fds:
            os.close(fd)
        timed_out = ended = False
        status, cpu = None, 0.0
        if pid > 0:
            pidfd = os.pidfd_open(pid)
            how = transport.watch(pidfd, lambda: request["timeout_s"] - (time.monotonic() - started))
            timed_out, ended = how == "timeout", how == "ended"
            if how != "exited":
                os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            os.close(pidfd)
            cpu = usage.ru_utime + usage.ru_stime
            if how == "gone":
                return
        wall = time.monotonic() - started
        left_behind = end_everything(me)
        transport.drain()
        os.chdir("/")
        for folder, saved in folders.items():
            problem_here = restore(folder, saved)  # a locked or marked folder first: then it can be emptied
            clear(folder)
            try:
                names = os.listdir(folder)
            except OSError as error:
                names = [str(error)]
            problem_here = problem_here or restore(folder, saved)  # emptying it changed its times again
            if names:
                left_behind.append(f"{folder}: {[name[:40] for name in sorted(names)[:5]]}")
            if problem_here:
                left_behind.append(problem_here)
        for kind in ("shm", "msg", "sem"):
            try:
                with open(f"/proc/sysvipc/{kind}") as f:
                    if len(f.read().splitlines()) > 1:
                        left_behind.append(f"SysV {kind} objects")
            except FileNotFoundError:
                pass
        doubt = [] if state() == before else ["the server's own priority, affinity, rlimits or ids changed"]
        oom_after = oom_kills()
        transport.send({"exit": os.WEXITSTATUS(status) if status is not None and os.WIFEXITED(status) else None,
                        "signal": os.WTERMSIG(status) if status is not None and os.WIFSIGNALED(status) else None,
                        "timeout": timed_out, "ended": ended, "wall_s": wall, "cpu_s": cpu, "left": left_behind,
                        "doubt": doubt, "problem": problem,
                        "oom": oom_before is not None and oom_after is not None and oom_after > oom_before})
        if left_behind or doubt:
            return  # the host replaces this slot's sandbox


def main():
    """argv: "fd:N" (the local backend's control socket) or "relay:CAP" (Docker: stdin and stdout, output
    capped at CAP bytes a stream), the seccomp profile for the child (JSON, or "" where the container's own
    profile already applies), the modules to import, the scratch folders to empty after each run."""
    mode, _, value = sys.argv[1].partition(":")
    transport = FdTransport(int(value)) if mode == "fd" else RelayTransport(int(value))
    profile = json.loads(sys.argv[2]) if sys.argv[2] else None
    for name in sys.argv[3].split(","):
        try:
            __import__(name)
        except Exception:
            pass
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    for number in range(1, signal.NSIG):  # only SIGKILL and SIGSTOP reach it (and no run can name it)
        if number not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD):
            try:
                signal.signal(number, signal.SIG_IGN)
            except (OSError, ValueError):
                pass
    filters = compile_filters(profile, os.getpid())
    transport.send({"ready": os.getpid()})
    serve(transport, filters, sys.argv[4].split(","))


if __name__ == "__main__":
    main()
