"""Sandboxes for the conformance and hostile suite: one per backend (and local tier) that works here.

`sandbox` is parametrized over "local" (the strongest tier: bwrap here), "local-unshare",
"local-rlimits", "docker" (warm) and "docker-cold". Docker finds a running engine or starts `dockerd`, and builds the image
offline, once per session; it skips, saying why, only where no engine can start. CONFINES records what
each isolation tier claims, so a test of a guarantee runs on exactly the sandboxes whose tier claims it.
"""

from __future__ import annotations

import pytest
from kit import docker_image_or_skip
from sandbox_kit import KINDS, open_sandbox


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
    return sandboxes[kind]
