"""`sparring play`: a person's session scripted through the input and output streams."""

import io
import json

import pytest

from sparring.cli import main
from sparring.play import play


def house():
    """A hand-made house (as tests/envs/test_textnav.py's): hall -e-> kitchen -n-> den, hall -n-> study behind a
    closed oak door; the goal is the route hall, kitchen, den."""
    return {
        "rooms": [{"name": "hall", "floor": 0, "x": 0, "y": 0}, {"name": "study", "floor": 0, "x": 0, "y": 1},
                  {"name": "kitchen", "floor": 0, "x": 1, "y": 0}, {"name": "den", "floor": 0, "x": 1, "y": 1}],
        "edges": [{"a": 0, "direction": "north", "b": 1, "door": 0}, {"a": 0, "direction": "east", "b": 2},
                  {"a": 2, "direction": "north", "b": 3}],
        "doors": [{"name": "oak door", "state": "closed"}],
        "receptacles": [{"name": "table", "room": 0, "kind": "on"}],
        "objects": [{"kind": "mug", "colour": "blue", "material": "ceramic", "receptacle": 0}],
        "start": 0,
        "goal": {"type": "route", "text": "Go east to the kitchen, then north to the den. Stop in the den.",
                 "compact": "e kitchen, n den", "room": 3, "path": [0, 2, 3]},
    }


def session(lines, env_id="TextNav-v0", **kwargs):
    out = io.StringIO()
    code = play(env_id, stdin=io.StringIO("".join(f"{line}\n" for line in lines)), stdout=out, **kwargs)
    return code, out.getvalue()


def test_a_textnav_episode_from_first_observation_to_verdict():
    code, out = session(["help", "Go East", "n", "stop"], task=house())
    assert code == 0
    assert "Your task: Go east to the kitchen, then north to the den." in out and "-= Hall =-" in out
    assert "Commands that work now:\n  go east\n  open oak door\n" in out and "Also: help, quit." in out
    assert "-= Kitchen =-" in out and "-= Den =-" in out
    assert "=== SUCCESS (reward 1) ===" in out and "success: you stopped in the den after 2 moves" in out
    assert "  spl: 1.000" in out and "  ndtw: 1.000" in out and "  path: hall > kitchen > den" in out


def test_invalid_commands_and_a_failed_verdict():
    code, out = session(["dance", "stop"], task=house(), env_kwargs={"instruction": "compact"})
    assert code == 0 and "> invalid\n" in out
    assert "=== FAILED (reward 0) ===" in out and "invalid_actions: 1" in out and "nav_error: 2" in out


def test_quit_and_end_of_input_leave_without_a_verdict():
    code, out = session(["look", "quit"], task=house())
    assert code == 0 and "Bye" in out and "===" not in out
    code, out = session(["look"], task=house())
    assert code == 0 and "end of input" in out and "===" not in out


def test_the_same_seed_and_difficulty_play_the_same_house():
    _, first = session(["quit"], seed=4, difficulty="hard")
    _, again = session(["quit"], seed=4, difficulty="hard")
    _, other = session(["quit"], seed=5, difficulty="hard")
    assert first == again != other and "floor" in first


def test_countdown_plays_too_with_help_from_its_action_space():
    code, out = session(["help", "<answer>8*3-2</answer>"], env_id="Countdown-v0",
                        task={"numbers": [8, 3, 2], "target": 22})
    assert code == 0 and "What you type is the action: Any text" in out
    assert "=== SUCCESS (reward 1) ===" in out and "correct: 8*3-2 = 22" in out


def test_the_cli_verb_takes_seed_difficulty_task_and_env_arguments(monkeypatch, capsys, tmp_path):
    import sparring.envs.catalog as catalog

    made, make = [], catalog.make
    monkeypatch.setattr(catalog, "make", lambda *args, **kwargs: made.append(make(*args, **kwargs)) or made[-1])
    monkeypatch.setattr("sys.stdin", io.StringIO("e\nn\nstop\n"))
    assert main(["play", "TextNav-v0", "--task", json.dumps(house()), "instruction=compact"]) == 0
    out = capsys.readouterr().out
    assert "e kitchen, n den\nhall: n=(closed) e=kitchen" in out and "SUCCESS" in out
    path = tmp_path / "task.json"
    path.write_text(json.dumps(house()))
    monkeypatch.setattr("sys.stdin", io.StringIO("quit\n"))
    assert main(["play", "TextNav-v0", "--seed", "3", "--task", f"@{path}", "step_limit_factor=2"]) == 0
    assert "Your task: Go east to the kitchen, then north to the den." in capsys.readouterr().out  # the file's task
    assert made[-1].unwrapped.config.step_limit_factor == 2 != made[0].unwrapped.config.step_limit_factor
    monkeypatch.setattr("sys.stdin", io.StringIO("quit\n"))
    assert main(["play", "TextNav-v0", "--seed", "3", "--difficulty", "easy", "n_rooms=5", "goal_types=[fetch]"]) == 0
    out = capsys.readouterr().out
    expected = make("TextNav-v0", difficulty="easy", n_rooms=5, goal_types=["fetch"]).reset(seed=3)
    assert f"\n{expected[0]}\n" in out  # the seed's house under those arguments, and no other
    assert len(expected[1]["task"]["rooms"]) == 5 and expected[1]["task"]["goal"]["type"] == "fetch"
    default = make("TextNav-v0", difficulty="easy").reset(seed=3)[1]["task"]
    assert (len(default["rooms"]), default["goal"]["type"]) != (5, "fetch")  # the arguments change the house


@pytest.mark.parametrize("argv, message", [
    (["play", "TextNv-v0"], "did you mean 'TextNav-v0'"),
    (["play", "TextNav-v0", "--difficulty", "medum"], "did you mean 'medium'"),
    (["play", "TextNav-v0", "--task", "{not json"], "--task must be a JSON object"),
    (["play", "TextNav-v0", "n_room=3"], "did you mean 'n_rooms'"),
    (["play", "Countdown-v0", "--task", "@/nonexistent/task.json"], "cannot read '/nonexistent/task.json'"),
])
def test_bad_arguments_are_clear_errors(argv, message, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_countdown_takes_a_bare_expression_and_shows_the_verdict_once():
    code, out = session(["8*3-2"], env_id="Countdown-v0", task={"numbers": [8, 3, 2], "target": 22})
    assert code == 0 and "a bare expression such as 8*3-2 is your answer" in out
    assert "=== SUCCESS (reward 1) ===" in out and out.count("correct: 8*3-2 = 22") == 1
    code, out = session(["<answer>8+3+2</answer>"], env_id="Countdown-v0", task={"numbers": [8, 3, 2], "target": 22})
    assert "=== FAILED" in out and out.count("equals 13, the target is 22") == 1  # tagged: graded as typed
    _, out = session(["quit"], env_id="Countdown-v0", env_kwargs={"answer_format": "steps"})
    assert "bare expression" not in out  # step answers are not wrapped


def test_ctrl_c_leaves_quietly():
    class Interrupted(io.StringIO):
        def readline(self, *args):
            raise KeyboardInterrupt

    out = io.StringIO()
    assert play("Countdown-v0", stdin=Interrupted(), stdout=out) == 130
    assert "Traceback" not in out.getvalue() and out.getvalue().endswith("> \n")
