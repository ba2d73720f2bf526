"""Docker specifics: the hardening flags the containers really run with, the warm pool and its recycling,
and `sparring sandbox build-image`."""

from __future__ import annotations

import pytest

from sparring.cli import main
from sparring.sandboxes import make_sandbox


@pytest.fixture(scope="module")
def docker_sandbox(docker_image):
    with make_sandbox("docker", workers=1, memory_mb=200, max_processes=20, max_file_mb=16) as sandbox:
        yield sandbox


def test_containers_run_hardened(docker_sandbox):
    container = docker_sandbox._slots[0].container
    container.reload()
    host = container.attrs["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["Memory"] == host["MemorySwap"] == (200 + 64) << 20
    assert host["PidsLimit"] == 20 + 8
    assert host["Privileged"] is False
    assert container.attrs["Config"]["User"] == "65534:65534"
    result = docker_sandbox.run("import os\nprint(os.getuid(), open('/proc/self/status').read().split('CapEff:')[1].split()[0])")
    assert result.stdout == "65534 0000000000000000\n"


def test_warm_containers_are_reused_and_recycled_after_failures(docker_sandbox):
    slot = docker_sandbox._slots[0]
    docker_sandbox.run("print(1)")
    first = slot.container.id
    assert docker_sandbox.run("raise SystemExit(2)").status == "error"
    assert slot.container.id == first  # an ordinary exit keeps the container
    assert docker_sandbox.run("while True: pass", timeout_s=0.5).status == "timeout"
    assert slot.container is None  # removed; the next run starts a fresh one
    assert docker_sandbox.run("print(2)").stdout == "2\n"
    assert slot.container.id != first


def test_cli_builds_the_image_offline(docker_image, capsys):
    from sparring.sandboxes.docker import connect

    tag = "sparring-sandbox:cli-test"
    try:
        assert main(["sandbox", "build-image", "--tag", tag]) == 0
        assert capsys.readouterr().out == f"built {tag}\n"
        with make_sandbox("docker", image=tag, memory_mb=128) as sandbox:
            assert sandbox.run("import json, sqlite3, sys\nprint(sys.version_info[0])").stdout == "3\n"
    finally:
        connect().images.remove(tag, force=True)
