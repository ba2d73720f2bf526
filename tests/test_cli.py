import subprocess
import sys

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
