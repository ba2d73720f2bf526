"""The local backend's isolation tiers, and what the host offers them.

Tiers, strongest first (the strongest that works is picked at start and recorded in every result):

- "bwrap": bubblewrap with every namespace unshared (no network, own pids, ipc, uts, cgroup, user),
  a read-only root holding only /usr (read-only), private tmpfs /tmp, /dev/shm and work dir (/work),
  each of max_file_mb, and a minimal read-only /dev and /proc, a cleared environment, a new session,
  no capabilities, no nested user namespaces, and it dies with its parent.
- "unshare": util-linux `unshare` (user, net, pid, ipc, uts, mount namespaces) with private tmpfs /tmp,
  /var/tmp, /dev/shm and /run/lock and no capabilities: no network and no process outlives the run, but
  the host's files stay readable (and other world-writable places writable, where a later run could
  read what a run left) as far as the slot uid's permissions allow.
- "rlimits": limits only, no namespaces. Insecure (network, host files, sibling processes are all
  reachable); it must be asked for by name and warns.

"bwrap" and "unshare" are each probed once per process by running a program (as an unprivileged uid when
root). Here too: the setup script that `unshare` runs (UNSHARE_SETUP), and the launcher's own exit status
and message (LAUNCHER_FAILED, LAUNCHER_MESSAGE) that tell its failure from the program's.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from sparring.sandboxes.base import SandboxError, decode
from sparring.sandboxes.uids import is_root

TIERS = ("bwrap", "unshare", "rlimits")
LAUNCHER_FAILED = 125  # the launcher's own exit status when a cgroup or rlimit cannot be set, with:
LAUNCHER_MESSAGE = b"sparring-sandbox:"

# Inside `unshare` (root of a new user namespace): private tmpfs scratch dirs (the usual world-writable ones), then every capability
# dropped for good, then sh as the namespace's pid 1 so that the program gets ordinary signals.
UNSHARE_SETUP = f"""size=$0
for dir in /tmp /var/tmp /dev/shm /run/lock; do
    if [ -d "$dir" ]; then mount -t tmpfs -o "size=$size,mode=1777" sparring "$dir" || exit {LAUNCHER_FAILED}; fi
done
exec setpriv --no-new-privs --inh-caps=-all --bounding-set=-all -- /bin/sh -c '"$@"; exit $?' sh "$@"
"""


@functools.cache
def sandbox_python() -> str:
    """The python3 programs run with: the system's (under /usr), else the one running sparring."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate
    return str(Path(sys.base_prefix) / "bin" / "python3")


def system_binds(python: str) -> list[str]:
    """bwrap arguments for a read-only system: /usr, the /bin, /lib... links (or dirs), the linker cache."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    if Path("/etc/ld.so.cache").exists():
        args += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    prefix = str(Path(python).resolve().parent.parent)
    if not prefix.startswith("/usr"):
        args += ["--ro-bind", prefix, prefix]
    return args


def _probe_command(tier: str, uid: int | None) -> list[str]:
    drop = ([] if uid is None else ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"])
    if tier == "bwrap":
        return drop + ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
                       "--new-session", "--cap-drop", "ALL", "--clearenv", *system_binds(sandbox_python()),
                       "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--", sandbox_python(), "-c", "pass"]
    return drop + ["unshare", "--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child", "--mount-proc",
                   "--ipc", "--uts", "--", "/bin/sh", "-c", UNSHARE_SETUP, "1m", sandbox_python(), "-c", "pass"]


@functools.cache
def _probe(tier: str, uid: int | None) -> str:
    """"" when `tier` runs a program here (as `uid`), else why not."""
    command = _probe_command(tier, uid)
    if shutil.which(command[0]) is None or shutil.which(tier) is None:
        return f"`{tier}` is not installed" + (" (Debian: apt-get install bubblewrap)" if tier == "bwrap" else "")
    try:
        done = subprocess.run(command, capture_output=True, timeout=20, cwd="/")
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"{' '.join(command[:3])} ...: {error}"
    if done.returncode != 0:
        return f"{tier} exited {done.returncode}: {decode(done.stderr).strip()[-500:]}"
    return ""


def tier_works(tier: str) -> bool:
    return tier == "rlimits" or not tier_problem(tier)


def tier_problem(tier: str) -> str:
    """"" when `tier` runs a program on this host (as an unprivileged uid when root), else why not."""
    return "" if tier == "rlimits" else _probe(tier, 65534 if is_root() else None)


def strongest_tier() -> str:
    """The strongest tier that runs a program on this host; SandboxError if none but "rlimits" does."""
    for tier in ("bwrap", "unshare"):
        if tier_works(tier):
            return tier
    raise SandboxError("no isolating tier works on this host: "
                       + "; ".join(f"{tier}: {tier_problem(tier)}" for tier in ("bwrap", "unshare"))
                       + ". Install bubblewrap (apt-get install bubblewrap), or ask for the insecure "
                         "make_sandbox('local', isolation='rlimits') for trusted code only")


def available_tiers() -> list[str]:
    """The local tiers that work here, strongest first ("rlimits" always does)."""
    return [tier for tier in TIERS if tier_works(tier)]
