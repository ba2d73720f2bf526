"""What the sandbox tests share: limits, backends, each tier's claims, and helpers (a module of its
own, not conftest: every folder's conftest.py is named `conftest`)."""

from __future__ import annotations

import os
import shutil
import warnings

import pytest
from kit import skip_or_fail

from sparring.sandboxes import SandboxError, make_sandbox
from sparring.sandboxes.tiers import available_tiers
from sparring.sandboxes.uids import uid_processes

LIMITS = dict(workers=2, timeout_s=5.0, memory_mb=256, max_output_bytes=65536, max_processes=32, max_file_mb=16)
KINDS = ("local", "local-cold", "local-unshare", "local-rlimits", "docker", "docker-cold")  # local, docker: warm
# What each isolation tier promises to confine (the rlimits tier as root still has per-slot uids and cgroups).
# "leftovers": a run leaves nothing (files, IPC objects, processes) that a later run can see; "scratch": every
# place a program can write is a tmpfs of at most max_file_mb.
CONFINES = {
    "bwrap": {"filesystem", "network", "processes", "environment", "leftovers", "scratch"},
    "unshare": {"network", "processes", "environment"},  # other world-writable host folders persist
    "rlimits": {"environment"} | ({"processes"} if os.geteuid() == 0 else set()),
    "docker": {"filesystem", "network", "processes", "environment", "leftovers", "scratch"},
}


def open_sandbox(kind: str, request, **limits):
    """A fresh sandbox of `kind` (or a skip saying why this host has none). Where bwrap is installed (or CI is
    set) a local tier that does not work is a failure, and "local" (the strongest tier) must be bwrap: a silent
    fall back to unshare would skip the filesystem tests."""
    limits = {**LIMITS, **limits}
    if kind.startswith("docker"):
        request.getfixturevalue("docker_image")
        return make_sandbox("docker", warm=kind == "docker", **limits)
    tier = {"local": None, "local-cold": None, "local-unshare": "unshare", "local-rlimits": "rlimits"}[kind]
    if tier and tier not in available_tiers():
        skip_or_fail(f"the {tier} tier does not work on this host")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rlimits warns that it is insecure: known, it is tested on its own
        try:
            sandbox = make_sandbox("local", isolation=tier, warm=kind != "local-cold", **limits)
        except SandboxError as error:
            skip_or_fail(f"no local sandbox here: {error}")
    if kind in ("local", "local-cold") and shutil.which("bwrap") and sandbox.tier != "bwrap":
        sandbox.close()
        pytest.fail(f"bwrap is installed but the strongest local tier is {sandbox.tier!r}: bwrap does not work here "
                    f"(tiers that work: {available_tiers()})")
    if kind == "local" and sandbox.tier == "bwrap" and not sandbox.warm:  # where bwrap works, the warm path must
        sandbox.close()
        pytest.fail(f"the local warm path does not work here: {sandbox.warm_problem}")
    return sandbox


def requires(sandbox, guarantee: str) -> None:
    tier = getattr(sandbox, "tier", sandbox.backend)
    if guarantee not in CONFINES[tier]:
        pytest.skip(f"the {tier} tier does not claim to confine {guarantee}")


def leftover_processes(sandbox) -> set:
    """Processes still running for the sandbox's programs (its slots' uids and cgroups, or its containers
    beyond their pid 1 reaper): empty after every run."""
    found = set()
    if sandbox.backend == "local":
        for slot in sandbox._slots:
            if slot.uid is not None:
                found |= uid_processes(slot.uid)
            if slot.cgroups:
                found |= slot.cgroups.processes()
            if slot.server is not None:  # the warm path's bwrap, its init and the fork server stay between runs
                found -= slot.server.host_pids
        return found
    for slot in sandbox._slots:
        if slot.container is not None:
            slot.container.reload()
            reaper = str(slot.container.attrs["State"]["Pid"])
            top = slot.container.top()
            pid = top["Titles"].index("PID")
            server = str(slot.server.host_pid) if getattr(slot, "server", None) is not None else None
            found |= {tuple(row) for row in top["Processes"] if row[pid] not in (reaper, server)}
    return found
