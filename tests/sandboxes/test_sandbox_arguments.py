"""Bad names and limits get errors that say what is accepted; the insecure tier must be asked for and warns."""

from __future__ import annotations

import shutil

import pytest
from kit import skip_or_fail

from sparring.cli import main
from sparring.errors import UnknownNameError
from sparring.sandboxes import ExecResult, make_sandbox
from sparring.sandboxes.base import LIMIT_RANGES, check_file_name


def test_unknown_backend_and_isolation_names():
    with pytest.raises(UnknownNameError, match="did you mean 'docker'.*Accepted: docker, local"):
        make_sandbox("dokcer")
    with pytest.raises(UnknownNameError, match="did you mean 'bwrap'.*Accepted: bwrap, rlimits, unshare"):
        make_sandbox("local", isolation="bwarp")
    with pytest.raises(ValueError, match="isolation='bwrap' is for the local backend"):
        make_sandbox("docker", isolation="bwrap")
    with pytest.raises(ValueError, match="image= is for the docker backend"):
        make_sandbox("local", image="x")


@pytest.mark.parametrize("name, bad", [("workers", 0), ("workers", 65), ("workers", 1.5), ("timeout_s", 0),
                                       ("timeout_s", float("nan")), ("timeout_s", "5"), ("memory_mb", 8),
                                       ("max_output_bytes", 10), ("max_processes", 0), ("max_file_mb", True)])
def test_bad_limits_name_the_accepted_range(name, bad):
    low, high, _ = (f"{v:g}" if isinstance(v, float) else str(v) for v in LIMIT_RANGES[name])
    with pytest.raises(ValueError, match=rf"{name} must be .*\[{low}, {high}\], got"):
        make_sandbox("local", **{name: bad})


@pytest.fixture(scope="module")
def local():
    with make_sandbox("local", workers=1, memory_mb=256) as sandbox:
        yield sandbox


def test_bad_run_arguments(local):
    with pytest.raises(TypeError, match="code must be a str"):
        local.run(b"print(1)")
    with pytest.raises(TypeError, match="stdin must be str or bytes"):
        local.run("pass", stdin=3)
    with pytest.raises(ValueError, match="above this sandbox's memory_mb=256"):
        local.run("pass", memory_mb=512)
    with pytest.raises(ValueError, match="timeout_s must be in"):
        local.run("pass", timeout_s=-1)
    with pytest.raises(ValueError, match="files may not hold 'main.py'"):
        local.run("pass", files={"main.py": "x"})
    with pytest.raises(ValueError, match="files may not hold '.sparring-stdin'"):
        local.run("pass", files={".sparring-stdin": "x"})
    with pytest.raises(ValueError, match="unknown keys \\['stdn'\\]"):
        local.run_many([{"code": "pass", "stdn": ""}])
    with pytest.raises(TypeError, match="must be a mapping with a 'code' key"):
        local.run_many(["print(1)"])
    with pytest.raises(ValueError, match="file name 'a/b' is also used as a folder"):
        local.run("pass", files={"a/b": "x", "a/b/c.txt": "y"})


@pytest.mark.parametrize("tier", ["bwrap", "unshare", "rlimits"])
def test_a_launcher_that_fails_is_a_sandbox_error(tier, monkeypatch):
    """The sandbox's own failure (here: an open-files limit the kernel refuses) is "sandbox_error" saying why,
    never a verdict on the program."""
    import warnings

    import sparring.sandboxes.local as local_backend
    from sparring.sandboxes.tiers import available_tiers

    if tier not in available_tiers():
        skip_or_fail(f"the {tier} tier does not work on this host")
    monkeypatch.setattr(local_backend, "OPEN_FILES", 10 ** 12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with make_sandbox("local", isolation=tier, memory_mb=128) as sandbox:
            result = sandbox.run("print(1)")
    assert (result.status, result.exit_code, result.stdout) == ("sandbox_error", None, "")
    assert "failed: ulimit -n" in result.stderr


@pytest.mark.parametrize("name", ["/etc/passwd", "../x", "a/../../x", "", ".", "a//b", "./a", "a\0b", 3])
def test_file_names_must_stay_in_the_work_dir(name):
    with pytest.raises(ValueError, match="file name|non-empty strings"):
        check_file_name(name)


def test_good_file_names():
    assert check_file_name("pkg/util.py") == "pkg/util.py"
    assert check_file_name("data.txt") == "data.txt"


def test_rlimits_must_be_asked_for_and_warns():
    with pytest.warns(UserWarning, match="insecure"):
        with make_sandbox("local", isolation="rlimits", memory_mb=128) as sandbox:
            result = sandbox.run("print(1)")
    assert result.status == "ok" and result.isolation.endswith("(insecure)")
    with make_sandbox("local", memory_mb=128) as sandbox:
        assert "rlimits" in sandbox.isolation and "insecure" not in sandbox.isolation


def test_result_record(local):
    result = local.run("print(1)")
    assert isinstance(result, ExecResult) and result.ok
    # where bwrap is installed the strongest tier must be it, not a silent fall back to unshare
    assert result.isolation.startswith("bwrap" if shutil.which("bwrap") else ("bwrap", "unshare")), result.isolation


def test_cli_sandbox_info(capsys):
    code = main(["sandbox", "info"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("local    ok: ") and "\ndocker   " in out
