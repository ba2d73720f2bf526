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
