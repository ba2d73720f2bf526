import subprocess
import sys

import pytest

from sparring.cli import main
from sparring.envs.catalog import env_ids


def test_envs_lists_every_id_with_family_and_knobs(capsys):
    assert main(["--width", "250", "envs"]) == 0
    out = capsys.readouterr().out
    for env_id in env_ids():
        assert env_id in out
    assert "countdown" in out and "num_numbers=4" in out and "easy, medium, hard" in out


def test_demo_grades_expert_and_wrong_answers(capsys):
    assert main(["--width", "200", "demo", "--episodes", "2", "--difficulty", "easy"]) == 0
    out = capsys.readouterr().out
    assert "The expert solved 2/2 tasks." in out and "no <answer> tag" in out


def test_bad_arguments_are_clear_errors(capsys):
    assert main(["demo", "--difficulty", "medum"]) == 2
    assert "did you mean 'medium'" in capsys.readouterr().err


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "sparring.cli", "--width", "200", "envs"], capture_output=True,
                         text=True, check=True).stdout
    assert "Countdown-v0" in out


def test_eval_prints_success_and_pass_at_k_with_intervals(tiny_checkpoint, capsys):
    assert main(["--width", "200", "eval", "--policy", str(tiny_checkpoint), "--env", "Countdown-v0", "--n", "20",
                 "--k", "3", "--max-tokens", "12", "--env-kwargs", "instruction=compact", "difficulty=easy"]) == 0
    out = capsys.readouterr().out
    assert "20 tasks" in out and "success (greedy): 0.000  95% CI [0.000, 0.161]" in out
    assert "pass@3 (temperature 1.0): " in out


def test_eval_names_a_bad_policy_path(tmp_path, capsys):
    assert main(["eval", "--policy", str(tmp_path / "none"), "--env", "Countdown-v0", "--n", "2"]) == 2
    assert "not a checkpoint folder" in capsys.readouterr().err


def fake_hub_cache(root, checkpoint, model_id="acme/tiny-countdown"):
    """A Hugging Face cache holding `checkpoint` as model `model_id`, laid out as huggingface_hub writes it."""
    import shutil

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = root / f"models--{model_id.replace('/', '--')}"
    shutil.copytree(checkpoint, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return repo / "snapshots" / commit


def test_a_hugging_face_model_id_resolves_through_the_local_cache(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    from sparring.agents.hf import check_checkpoint

    snapshot = fake_hub_cache(tmp_path / "hub", tiny_checkpoint)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert check_checkpoint("acme/tiny-countdown") == snapshot
    assert main(["--width", "200", "eval", "--policy", "acme/tiny-countdown", "--env", "Countdown-v0", "--n", "3",
                 "--max-tokens", "4", "--env-kwargs", "instruction=compact"]) == 0
    assert "3 tasks, policy acme/tiny-countdown" in capsys.readouterr().out


def test_a_model_id_missing_offline_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["eval", "--policy", "acme/not-here", "--env", "Countdown-v0", "--n", "2"]) == 2
    err = capsys.readouterr().err
    assert "'acme/not-here' is not a local folder" in err and "not in the local cache" in err
    assert "downloads are off (HF_HUB_OFFLINE=1)" in err and "hf download acme/not-here" in err


def test_the_loop_runs_from_python_on_a_hugging_face_model_id(tiny_checkpoint, tmp_path, monkeypatch):
    import sparring
    from sparring.selfplay import run

    fake_hub_cache(tmp_path / "hub", tiny_checkpoint)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert sparring.run is run and sparring.SelfPlay.__name__ == "SelfPlay"
    config = sparring.SelfPlayConfig(rounds=0, threads=1)
    overrides = ["rounds=0", "threads=1", "bootstrap.enabled=false", "env.eval_tasks=4", "env.extra_eval_splits=[]",
                 "eval.k=1", "policy.max_tokens=4", "policy.backend=hf", "policy.path=acme/tiny-countdown"]
    rows = run(None, tmp_path / "run", overrides=overrides)
    assert [row["round"] for row in rows] == [0] and rows[0]["eval/success"] == 0.0  # an untrained model
    assert (tmp_path / "run/checkpoints/round-000/config.json").exists()
    with pytest.raises(ValueError, match="set its fields"):
        run(config, tmp_path / "other", overrides=["rounds=1"])
