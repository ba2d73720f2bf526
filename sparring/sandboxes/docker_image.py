"""The Docker backend's engine and image: connecting to the engine (or starting it), and making the image.

No registry is reachable here, so the image is made offline: `sparring sandbox build-image` copies the
host's python3, its standard library, the shared libraries they load and a shell with `timeout` into a
tarball and `docker import`s it (`build_image` below). The image runs as the sandbox user (`USER`) and
carries its version (`VERSION_LABEL`): an image older than IMAGE_VERSION 2 lacks libseccomp, which the warm
path's fork server loads.
"""

from __future__ import annotations

import glob
import io
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

from sparring.sandboxes.base import SandboxError
from sparring.sandboxes.tiers import sandbox_python

IMAGE = "sparring-sandbox:latest"
IMAGE_VERSION = "2"  # 2: holds libseccomp, which the warm path's fork server loads
VERSION_LABEL = "sparring.sandbox.image"
USER = "65534:65534"  # every program, and the supervisor that runs it
LABEL = "sparring.sandbox"
DOCKER_MISSING = 'the docker backend needs the Docker SDK for Python: pip install "sparring[docker]"'


def docker_sdk():
    try:
        import docker
        import docker.errors  # noqa: F401  (loaded by docker itself; named so type checkers see docker.errors)
        import docker.types  # noqa: F401
    except ImportError as error:
        raise SandboxError(DOCKER_MISSING) from error
    return docker


# -- the engine and the image ------------------------------------------------------------------------
def connect(timeout_s: float = 10.0):
    """A client of the engine at DOCKER_HOST (or the default socket); SandboxError saying why if none answers."""
    docker = docker_sdk()
    try:
        client = docker.from_env(timeout=max(int(timeout_s), 1))
        client.ping()
        return client
    except Exception as error:
        raise SandboxError(f"no Docker engine answers ({error}). Start one: dockerd & (Debian: apt-get install "
                           f"docker.io), or set DOCKER_HOST") from error


def start_engine(wait_s: float = 60.0, log: str | Path | None = None):
    """Connect to a running engine, or start `dockerd` in the background (as root) and wait until it answers."""
    try:
        return connect()
    except SandboxError as error:
        first = error
    if shutil.which("dockerd") is None:
        raise SandboxError(f"{first}; and dockerd is not installed (apt-get install docker.io)")
    if os.geteuid() != 0:
        raise SandboxError(f"{first}; and starting dockerd needs root")
    log = Path(log or Path("/tmp") / "sparring-dockerd.log")
    with open(log, "ab") as out:
        subprocess.Popen(["dockerd"], stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        time.sleep(0.5)
        try:
            return connect()
        except SandboxError:
            continue
    tail = log.read_text(errors="replace")[-1500:]
    raise SandboxError(f"dockerd did not answer within {wait_s:.0f}s; the end of {log}:\n{tail}")


def _run_python(python: str, code: str) -> str:
    return subprocess.run([python, "-S", "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def _shared_libraries(paths: list[str]) -> set[str]:
    """Every shared library (and the dynamic loader) that `paths` load, as ldd names them."""
    found = set()
    for path in paths:
        done = subprocess.run(["ldd", path], capture_output=True, text=True)
        for line in done.stdout.splitlines():
            parts = line.split()
            for part in parts:
                if part.startswith("/"):
                    found.add(part)
                    break
    return found


def rootfs_tarball(destination: str | Path) -> Path:
    """A minimal root filesystem from this host: its python3 (with the standard library), sh, timeout, rm,
    the libraries they load, and /etc/passwd naming the sandbox user; written as a tar to `destination`."""
    python = sandbox_python()
    stdlib = _run_python(python, "import sysconfig; print(sysconfig.get_paths()['stdlib'])")
    dynload = _run_python(python, "import sysconfig; print(sysconfig.get_config_var('DESTSHARED') or '')")
    tools = [shutil.which(name, path="/usr/bin:/bin") for name in ("sh", "timeout", "rm", "sleep")]
    if None in tools:
        raise SandboxError("building the image needs sh, timeout, rm and sleep on this host (coreutils, dash)")
    extensions = [str(p) for p in Path(dynload or stdlib).rglob("*.so")] if Path(dynload or stdlib).exists() else []
    seccomp_library = sorted(glob.glob("/usr/lib/*/libseccomp.so.2") + glob.glob("/lib/*/libseccomp.so.2")
                             + glob.glob("/usr/lib*/libseccomp.so.2"))
    if not seccomp_library:
        raise SandboxError("building the image needs libseccomp on this host (Debian: apt-get install libseccomp2)")
    wanted = [python, *tools, seccomp_library[0]]
    destination = Path(destination)
    with tarfile.open(destination, "w") as tar:
        added: set[str] = set()

        def add(path: str) -> None:
            """`path` as on the host: its parent dirs, a symlink (and what it points to), or the file."""
            path = os.path.normpath(path)
            if path in added or path == "/":
                return
            parent = os.path.dirname(path)
            add(parent)
            added.add(path)
            info = tar.gettarinfo(path, arcname=path.lstrip("/"))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if info.issym():
                tar.addfile(info)
                add(os.path.join(parent, os.readlink(path)))
            elif info.isdir():
                info.mode |= 0o755  # the sandbox user must reach everything (say, a python under /root)
                tar.addfile(info)
            elif info.isfile():
                with open(path, "rb") as f:
                    tar.addfile(info, f)

        for path in wanted + sorted(_shared_libraries(wanted + extensions)):
            add(path)
        for path in sorted(Path(stdlib).rglob("*")):
            if any(part in ("test", "idlelib", "tkinter", "turtledemo", "ensurepip") for part in path.parts):
                continue
            add(str(path))
        add(os.path.dirname(python) + "/python3") if os.path.exists(os.path.dirname(python) + "/python3") else None
        for name in ("bin", "sbin", "lib", "lib64"):
            if os.path.islink(f"/{name}"):
                add(f"/{name}")
        for name, mode in (("work", 0o1777), ("tmp", 0o1777), ("proc", 0o755), ("dev", 0o755), ("sys", 0o755),
                           ("etc", 0o755)):
            if f"/{name}" not in added:
                info = tarfile.TarInfo(name)
                info.type, info.mode = tarfile.DIRTYPE, mode
                tar.addfile(info)
        for name, text in (("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:sandbox:/work:/bin/sh\n"),
                           ("etc/group", "root:x:0:\nnogroup:x:65534:\n")):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return destination


def build_image(tag: str = IMAGE, client=None) -> str:
    """Make the sandbox image offline (`docker import` of `rootfs_tarball`) and check it runs python3."""
    client = client or connect()
    repository, _, version = tag.rpartition(":") if ":" in tag.split("/")[-1] else (tag, "", "latest")
    work = Path(subprocess.run(["mktemp", "-d"], capture_output=True, text=True, check=True).stdout.strip())
    try:
        tarball = rootfs_tarball(work / "rootfs.tar")
        changes = ["WORKDIR /work", f"USER {USER}", "ENV PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8",
                   f"LABEL {LABEL}=1", f"LABEL {VERSION_LABEL}={IMAGE_VERSION}", 'CMD ["sleep", "infinity"]']
        client.api.import_image(src=str(tarball), repository=repository, tag=version, changes=changes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    output = client.containers.run(tag, ["python3", "-c", "import sys, json, sqlite3; print(sys.version_info[0])"],
                                   remove=True, network_mode="none")
    if output.strip() != b"3":
        raise SandboxError(f"the image {tag} was built but its python3 printed {output!r}")
    return tag

