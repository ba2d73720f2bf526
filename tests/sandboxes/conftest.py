"""Sandboxes for the conformance and hostile suite: one per backend (and local tier) that works here.

`sandbox` is parametrized over "local" (the strongest tier: bwrap here), "local-unshare",
"local-rlimits" and "docker". Docker finds a running engine or starts `dockerd`, and builds the image
offline, once per session; it skips, saying why, only where no engine can start. CONFINES records what
each isolation tier claims, so a test marked `confines(guarantee)` runs on exactly the sandboxes whose tier
claims it: the others are deselected at collection (not skipped: nothing there could fail).
"""

from __future__ import annotations

import shutil

import pytest
from kit import docker_image_or_skip
from sandbox_kit import CONFINES, KINDS, open_sandbox, requires


def pytest_configure(config):
    config.addinivalue_line("markers", "confines(guarantee): runs only on sandboxes whose tier claims to confine "
                                       "it (sandbox_kit.CONFINES)")


def known_tier(kind: str) -> str | None:
    """The tier a sandbox of `kind` has, where that is known before it starts ("local" is bwrap where bwrap is
    installed: open_sandbox fails otherwise)."""
    return {"local": "bwrap" if shutil.which("bwrap") else None, "local-unshare": "unshare",
            "local-rlimits": "rlimits", "docker": "docker"}[kind]


def pytest_collection_modifyitems(config, items):
    kept, dropped = [], []
    for item in items:
        marker = item.get_closest_marker("confines")
        kind = getattr(item, "callspec", None) and item.callspec.params.get("kind")
        tier = known_tier(kind) if marker and kind else None
        (dropped if tier and marker.args[0] not in CONFINES[tier] else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
def docker_image():
    """A Docker engine (started here if none runs) with the sandbox image built offline; or a skip saying why."""
    return docker_image_or_skip()


@pytest.fixture(scope="session")
def sandboxes():
    """Sandboxes made on first use and shared by the whole session, closed at its end."""
    made: dict[str, object] = {}
    yield made
    for sandbox in made.values():
        sandbox.close()


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


@pytest.fixture
def sandbox(kind, sandboxes, request):
    if kind not in sandboxes:
        sandboxes[kind] = open_sandbox(kind, request)
    marker = request.node.get_closest_marker("confines")
    if marker:  # where the tier was not known at collection ("local" without bwrap): skip, saying why
        requires(sandboxes[kind], marker.args[0])
    return sandboxes[kind]
