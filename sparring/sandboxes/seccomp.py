"""The seccomp profile of the Docker backend's containers: an allowlist of the system calls Python programs
use, and nothing that reaches into another process or outlives a run.

Docker's default profile allows `ptrace`, `process_vm_readv` and `process_vm_writev` on kernels from 4.8
on; with them a program could attach to a process of its own uid that outlives its run and forge later
runs' output. This profile (written here, not copied: the engine does not export its built-in one) leaves
out, besides what the default leaves out:

- reaching into other processes: ptrace, process_vm_readv/writev, process_madvise, kcmp, pidfd_getfd;
- state that outlives a run: SysV IPC (shm*, msg*, sem*, ipc) and POSIX message queues (mq_*);
- large kernel attack surface Python does not need: io_uring, userfaultfd, AIO (io_*), vmsplice,
  memfd_secret, NUMA policy calls, modify_ldt, perf_event_open, bpf, keyrings;
- namespaces and mounts: unshare, setns, mount and friends, clone with a CLONE_NEW* flag; clone3 answers
  ENOSYS, so the C library falls back to clone, whose flags a filter can read.

Anything not listed fails with EPERM. Only the 64-bit x86 and ARM system call tables are allowed (no
32-bit compatibility calls).
"""

from __future__ import annotations

import errno
import json

# Grouped by what they do; each name is one system call (names a kernel lacks are skipped by the engine).
ALLOWED = """
read write readv writev pread64 pwrite64 preadv pwritev preadv2 pwritev2 lseek open openat openat2 creat close
close_range dup dup2 dup3 pipe pipe2 fcntl ioctl flock fsync fdatasync sync syncfs sync_file_range fallocate
ftruncate truncate sendfile splice tee copy_file_range readahead fadvise64
stat fstat lstat newfstatat statx statfs fstatfs access faccessat faccessat2 readlink readlinkat getdents getdents64
getcwd chdir fchdir mkdir mkdirat rmdir unlink unlinkat rename renameat renameat2 link linkat symlink symlinkat
chmod fchmod fchmodat fchmodat2 chown fchown fchownat lchown umask utime utimes utimensat futimesat mknod mknodat
getxattr lgetxattr fgetxattr listxattr llistxattr flistxattr setxattr lsetxattr fsetxattr removexattr
lremovexattr fremovexattr
mmap munmap mprotect mremap madvise brk msync mincore mlock mlock2 munlock mlockall munlockall membarrier
memfd_create pkey_alloc pkey_free pkey_mprotect map_shadow_stack
fork vfork execve execveat exit exit_group wait4 waitid kill tkill tgkill pidfd_open pidfd_send_signal
getpid getppid gettid getpgid getpgrp setpgid getsid setsid getuid geteuid getgid getegid getresuid getresgid
getgroups setuid setgid setreuid setregid setresuid setresgid setfsuid setfsgid setgroups capget capset
prctl arch_prctl set_tid_address set_robust_list get_robust_list rseq seccomp landlock_create_ruleset
landlock_add_rule landlock_restrict_self
getrlimit setrlimit prlimit64 getrusage times getpriority setpriority ioprio_get ioprio_set
sched_yield sched_getaffinity sched_setaffinity sched_getparam sched_setparam sched_getscheduler
sched_setscheduler sched_getattr sched_setattr sched_get_priority_max sched_get_priority_min
sched_rr_get_interval getcpu
rt_sigaction rt_sigprocmask rt_sigreturn rt_sigpending rt_sigsuspend rt_sigtimedwait rt_sigqueueinfo
rt_tgsigqueueinfo sigaltstack signalfd signalfd4 pause restart_syscall
futex futex_waitv
nanosleep clock_nanosleep clock_gettime clock_getres gettimeofday time alarm getitimer setitimer timer_create
timer_settime timer_gettime timer_getoverrun timer_delete timerfd_create timerfd_settime timerfd_gettime
select pselect6 poll ppoll epoll_create epoll_create1 epoll_ctl epoll_wait epoll_pwait epoll_pwait2 eventfd
eventfd2 inotify_init inotify_init1 inotify_add_watch inotify_rm_watch
socket socketpair bind listen accept accept4 connect shutdown getsockname getpeername getsockopt setsockopt
sendto recvfrom sendmsg recvmsg sendmmsg recvmmsg
uname sysinfo getrandom
""".split()

# clone(2) flags that make a namespace: a clone with any of them is refused.
CLONE_NEW_FLAGS = 0x7E020000  # NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
# personality(2) values Python and glibc use: query (0xffffffff), PER_LINUX, PER_LINUX32, UNAME26 variants.
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)


def profile() -> dict:
    """The profile as Docker takes it (`--security-opt seccomp=<this, as JSON>`)."""
    rules = [{"names": sorted(set(ALLOWED)), "action": "SCMP_ACT_ALLOW"},
             {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
              "args": [{"index": 0, "value": CLONE_NEW_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
             {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS}]
    rules += [{"names": ["personality"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}]} for value in PERSONALITIES]
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.EPERM,
            "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": []},
                        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": []}],
            "syscalls": rules}


def security_opt() -> str:
    return "seccomp=" + json.dumps(profile(), separators=(",", ":"))
