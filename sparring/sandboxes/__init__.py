"""Sandboxes: isolated execution of model-written code, locally (bubblewrap) and in Docker.

    from sparring.sandboxes import make_sandbox

    with make_sandbox("local", workers=2, timeout_s=10.0, memory_mb=512) as sandbox:
        result = sandbox.run("print(input()[::-1])", stdin="abc")
        result.status, result.stdout      # ('ok', 'cba\\n')
        results = sandbox.run_many([{"code": "print(1)"}, {"code": "print(2)"}])   # in parallel, in order

Each run is `python3 main.py` (main.py = the code) in a fresh private work dir holding `files`. The
result says how it ended (`status`), what it printed (capped) and what confined it (`isolation`).
Grading happens outside: a program's exit code and output are data, never a verdict.
"""

from __future__ import annotations

from typing import Any

from sparring.errors import UnknownNameError
from sparring.sandboxes.base import STATUSES, ExecResult, Limits, Sandbox, SandboxError

BACKENDS = ("local", "docker")

__all__ = ["BACKENDS", "STATUSES", "ExecResult", "Limits", "Sandbox", "SandboxError", "make_sandbox", "probe_backends"]


def make_sandbox(backend: str = "local", *, workers: int = 1, timeout_s: float = 10.0, memory_mb: int = 512,
                 max_output_bytes: int = 1_000_000, max_processes: int = 64, max_file_mb: int = 64,
                 isolation: str | None = None, image: str | None = None, warm: bool = True) -> Sandbox:
    """A sandbox with `workers` slots that run programs in parallel.

    backend: "local" (bubblewrap, or `unshare`; `isolation="rlimits"` must be asked for and is insecure)
    or "docker" (hardened containers from the image `sparring sandbox build-image` makes).
    Limits are per program: wall seconds, memory (MB), bytes of stdout and of stderr, processes and
    threads, and the size of any file it writes (MB). A run may pass its own `timeout_s` and a lower
    `memory_mb`.
    warm: run each program as a fork of a warm Python server kept in each slot (the default: the local
    bubblewrap tier and Docker; the local host tiers are cold only), or start a fresh sandbox (`docker exec`)
    and python3 per run (`warm=False`). The result's `isolation` says which ran ("...+fork-server...").
    """
    if backend not in BACKENDS:
        raise UnknownNameError("sandbox backend", backend, BACKENDS)
    limits = Limits(workers=workers, timeout_s=timeout_s, memory_mb=memory_mb, max_output_bytes=max_output_bytes,
                    max_processes=max_processes, max_file_mb=max_file_mb)
    if backend == "local":
        if image is not None:
            raise ValueError("image= is for the docker backend; the local backend runs the host's python3")
        from sparring.sandboxes.local import LocalSandbox

        return LocalSandbox(limits, isolation=isolation, warm=warm)
    if isolation is not None:
        raise ValueError(f"isolation={isolation!r} is for the local backend; docker always runs hardened containers")
    from sparring.sandboxes.docker import DockerSandbox

    kwargs: dict[str, Any] = {"warm": warm} if image is None else {"image": image, "warm": warm}
    return DockerSandbox(limits, **kwargs)


def probe_backends() -> dict[str, tuple[bool, str]]:
    """For each backend: (works here, its isolation string or why it does not), by running one program."""
    found = {}
    for backend in BACKENDS:
        try:
            with make_sandbox(backend) as sandbox:
                result = sandbox.run("print(6 * 7)")
            works = result.status == "ok" and result.stdout == "42\n"
            found[backend] = (works, result.isolation if works else f"{result.status}: {result.stderr.strip()[-300:]}")
        except (SandboxError, OSError) as error:
            found[backend] = (False, str(error))
    return found
