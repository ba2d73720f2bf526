import os
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
    """The `sparring` command that `pip install` puts beside this Python runs the CLI (not `python -m`)."""
    from pathlib import Path

    script = Path(sys.executable).parent / "sparring"
    assert script.is_file(), f"no sparring command beside {sys.executable}: pip install -e . installs it"
    out = subprocess.run([str(script), "--width", "200", "envs"], capture_output=True, text=True, check=True).stdout
    assert "Countdown-v0" in out
    usage = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True).stdout
    assert usage.startswith("usage: sparring ")


def test_eval_prints_success_and_pass_at_k_with_intervals(tmp_path, monkeypatch, capsys):
    """A scripted policy that solves a known share of the 20 drawn tasks: greedily the first 5; sampling, 3 of 3 on
    the first 4 and 1 of 3 on the next 8. The command prints those shares and their Wilson intervals."""
    from kit import countdown_share_policy

    import sparring.policies.policy as policy_module
    from sparring.envs.catalog import draw_tasks

    tasks = draw_tasks("Countdown-v0", {"instruction": "compact", "difficulty": "easy"}, "test-seen", 0, 0, 20)
    keys = [(tuple(t["numbers"]), t["target"]) for t in tasks]
    policy = countdown_share_policy(set(keys[:5]), {key: 3 if i < 4 else 1 for i, key in enumerate(keys[:12])})
    asked = []
    monkeypatch.setattr(policy_module, "make_policy", lambda backend, **kwargs: asked.append((backend, kwargs)) or policy)
    assert main(["--width", "200", "eval", "--policy", str(tmp_path), "--env", "Countdown-v0", "--n", "20",
                 "--k", "3", "--max-tokens", "12", "--env-kwargs", "instruction=compact", "difficulty=easy"]) == 0
    out = capsys.readouterr().out
    assert asked == [("hf", {"path": str(tmp_path)})]
    assert "20 tasks" in out
    # 5/20 and 12/20 with the Wilson score interval (hand-computed; R's prop.test(x, n, correct = FALSE) agrees)
    assert "success (greedy): 0.250  95% CI [0.112, 0.469]" in out
    assert "pass@3 (temperature 1.0): 0.600  95% CI [0.387, 0.781]" in out


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
    from sparring.policies.hf import check_checkpoint

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


def test_envs_with_an_id_lists_every_argument_with_type_default_and_help(capsys):
    import inspect

    from sparring.envs.catalog import describe, env_class

    for env_id in env_ids():
        cls = env_class(env_id)
        arguments = {a["name"]: a for a in describe(env_id)["arguments"]}
        accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "knobs")]
        assert set(arguments) == set(accepted) | {f for f in describe(env_id)["knobs"]}
        assert all(a["help"] and a["type"] for a in arguments.values()), env_id  # nothing undocumented
    assert main(["envs", "Countdown-v0", "--width", "250"]) == 0
    out = capsys.readouterr().out
    for name in ("allow_subset", "format_reward", "answer_format", "num_numbers (knob)", "max_target (knob)"):
        assert name in out
    assert "│ instruction " in out and '"compact" (`8 3 2 -> 22`, for small models)' in out
    assert "int | tuple[int, int]" in out  # rich markup does not eat the brackets
    assert main(["envs", "Countdwn-v0"]) == 2
    assert "did you mean 'Countdown-v0'" in capsys.readouterr().err


def test_envs_fits_the_width_it_is_given(capsys):
    assert main(["envs", "TextNav-v0", "--width", "80"]) == 0
    assert max(map(len, capsys.readouterr().out.splitlines())) <= 80


def test_print_config_shows_the_resolved_config_with_help(capsys):
    import yaml

    from sparring.config import from_dict
    from sparring.selfplay import SelfPlayConfig, load_selfplay_config

    assert main(["selfplay", "--print-config", "rounds=2", "--seed", "5"]) == 0
    out = capsys.readouterr().out
    assert from_dict(SelfPlayConfig, yaml.safe_load(out)) == load_selfplay_config(None, ["rounds=2", "seed=5"])
    assert "  # the env id (sparring envs lists them) (str)\n  id: Countdown-v0\n" in out


@pytest.mark.parametrize("argv, message", [
    (["selfplay", "--config", "nowhere.yaml"], "config file 'nowhere.yaml' does not exist"),
    (["selfplay", "env.id=Countdwn-v0"], "unknown sparring env id 'Countdwn-v0'; did you mean 'Countdown-v0'?"),
    (["eval", "--policy", "x", "--env", "Countdwn-v0", "--n", "2"], "did you mean 'Countdown-v0'?"),
    (["eval", "--policy", "x", "--env", "Countdown-v0", "--n", "0"], "argument --n: must be at least 1, got 0"),
    (["eval", "--policy", "x", "--env", "Countdown-v0", "--k", "0"], "argument --k: must be at least 1, got 0"),
])
def test_mistakes_are_one_line_errors(argv, message, capsys):
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse's own errors
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert "demonstrations" not in err


def test_a_server_url_without_v1_gets_the_hint(capsys):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "Not Found"}}')

        do_POST = do_GET  # noqa: N815

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        assert main(["eval", "--policy", url, "--env", "Countdown-v0", "--n", "1"]) == 2
        assert f"Hint: add /v1 to the URL ({url}/v1)" in capsys.readouterr().err
        assert main(["eval", "--policy", url + "/v1", "--env", "Countdown-v0", "--n", "1"]) == 2
        assert "add /v1" not in capsys.readouterr().err
    finally:
        server.shutdown()


def test_resume_refuses_changes_the_checkpoints_depend_on(tmp_path, capsys):
    from sparring.config import dump_yaml
    from sparring.selfplay import load_selfplay_config

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(dump_yaml(load_selfplay_config(None, ["rounds=2"])))
    base = ["selfplay", "--run-dir", str(run), "--resume", "--print-config"]
    assert main([*base, "rounds=6", "threads=1", "executor.num_workers=3"]) == 0  # how it runs may change
    capsys.readouterr()
    for change in (["policy.tiny.hidden_size=64"], ["env.id=TextNav-v0", "bootstrap.demonstrations=optimal"], ["env.kwargs={difficulty: hard}"],
                   ["--seed", "3"]):
        assert main([*base, *change]) == 2
        err = capsys.readouterr().err
        assert "on resume only these may change: rounds, threads, executor" in err
        assert change[0].split("=")[0].lstrip("-") in err
    assert "hidden_size: 128" in (run / "config.yaml").read_text()  # the saved config is untouched


def test_ctrl_c_in_selfplay_says_how_to_resume(tmp_path, monkeypatch, capsys):
    from sparring.selfplay import SelfPlay

    def interrupted(self, resume=False):
        raise KeyboardInterrupt

    monkeypatch.setattr(SelfPlay, "run_rounds", interrupted)
    run = tmp_path / "run"
    assert main(["selfplay", "--run-dir", str(run), "env.eval_tasks=2", "env.extra_eval_splits=[]"]) == 130
    err = capsys.readouterr().err
    assert f"Continue with: sparring selfplay --run-dir {run} --resume" in err and "Traceback" not in err


def test_the_round_table_fits_80_columns_and_names_untrained_rounds():
    from rich.console import Console

    from sparring.report import round_table, warn_untrained

    columns = ["round", "eval/success", "eval/pass@4", "ei/pass@1", "ei/kept", "time/train_s", "time/eval_s",
               "time/round_s"]
    rows = [{"round": r, "eval/success": 0.5, "eval/pass@4": 0.75, "ei/pass@1": 0.25, "ei/kept": 100 * (r != 3),
             "ei/examples": 100 * (r != 3), "time/train_s": 1234.5, "time/eval_s": 12.25, "time/round_s": 1300.0}
            for r in range(9)]
    for width in (80, 250):
        console = Console(width=width, record=True)
        console.print(round_table(rows, columns, "Countdown-v0: held-out success", width))
        text = console.export_text()
        assert max(map(len, text.splitlines())) <= width
        assert "round 3 trained on nothing (ei/kept 0)" in text
        assert ("r8" in text and "eval/pass@4" in text) if width == 80 else "time/round_s" in text
    console = Console(width=120, record=True)
    warn_untrained(console, 3, rows[3])
    warn_untrained(console, 2, rows[2])
    assert console.export_text().count("trained on nothing") == 1


def test_resume_from_python_refuses_a_changed_model_before_touching_the_run(tmp_path):
    from sparring.config import dump_yaml
    from sparring.errors import SparringError
    from sparring.selfplay import load_selfplay_config, run

    folder = tmp_path / "run"
    folder.mkdir()
    saved = dump_yaml(load_selfplay_config(None, ["env.eval_tasks=2", "env.extra_eval_splits=[]"]))
    (folder / "config.yaml").write_text(saved)
    (folder / ".metrics.jsonl.tmp1").write_text("left by a killed writer")
    with pytest.raises(SparringError, match=r"policy.tiny.hidden_size 128 -> 64"):
        run(run_dir=folder, resume=True, overrides=["policy.tiny.hidden_size=64"])
    assert (folder / "config.yaml").read_text() == saved and (folder / ".metrics.jsonl.tmp1").exists()


def test_envs_with_arguments_lists_what_they_decide(capsys):
    pytest.importorskip("reasoning_gym", reason='reasoning-gym is not installed (pip install "sparring[reasoning-gym]")')
    assert main(["--width", "200", "envs", "ReasoningGym-v0", "dataset=basic_arithmetic"]) == 0
    out = capsys.readouterr().out
    assert "max_terms (knob)" in out and "level " in out


def test_a_model_id_that_cannot_be_downloaded_says_why(tmp_path):
    """Downloads allowed, but the Hub unreachable (a closed port stands in for it): one line naming the cause."""
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update(HF_ENDPOINT="http://127.0.0.1:9", HF_HUB_CACHE=str(tmp_path / "hub"))
    result = subprocess.run([sys.executable, "-m", "sparring.cli", "eval", "--policy", "acme/not-here", "--env",
                             "Countdown-v0", "--n", "1"], capture_output=True, text=True, env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "not in the local Hugging Face cache" in result.stderr and "downloading it failed" in result.stderr
    assert "Connection refused" in result.stderr and "hf download acme/not-here" in result.stderr


def test_eval_search_prints_the_search_success_and_its_cost(tmp_path, monkeypatch, capsys):
    """`eval --search`: tree search instead of greedy decoding. The printed success, interval and cost are those of
    `evaluate_search` on the same tasks and seed, and the search solves more than the same policy greedily."""
    from kit import random_moves_policy

    import sparring.policies.policy as policy_module
    from sparring.envs.catalog import draw_tasks
    from sparring.evaluation import evaluate, evaluate_search
    from sparring.search import SearchConfig

    monkeypatch.setattr(policy_module, "make_policy", lambda backend, **kwargs: random_moves_policy())
    settings = "{width: 6, beam: 4, rollouts: 2, node_budget: 40}"
    assert main(["--width", "200", "eval", "--policy", str(tmp_path), "--env", "CountdownSteps-v0", "--n", "12",
                 "--max-tokens", "16", "--search", settings]) == 0
    out = capsys.readouterr().out
    tasks = draw_tasks("CountdownSteps-v0", {}, "test-seen", 0, 0, 12)
    expected = evaluate_search(random_moves_policy(), "CountdownSteps-v0", {}, tasks,
                               SearchConfig(width=6, beam=4, rollouts=2, node_budget=40), max_tokens=16)
    greedy = evaluate(random_moves_policy(), "CountdownSteps-v0", {}, tasks, max_tokens=16)
    assert expected.success >= greedy.success + 3 / 12
    assert (f"success (tree search, width 6, beam 4, rollouts 2, node budget 40): {expected.success:.3f}  "
            f"95% CI [{expected.success_low:.3f}, {expected.success_high:.3f}]") in out
    assert f"states expanded per task: {expected.details['search/nodes']:.1f}" in out
    assert f"tokens generated per task: {expected.details['search/tokens']:.1f}" in out
    assert 1 <= expected.details["search/nodes"] <= 40
    assert all(t.meta["mode"] == "search" for t in expected.episodes)


@pytest.mark.parametrize("settings, message", [("{width: 0}", "search.width must be an integer >= 1"),
                                               ("{depth: 3}", "accepted keys: width, beam"),
                                               ("[1, 2]", "not a mapping")])
def test_eval_search_names_bad_settings(tmp_path, capsys, settings, message):
    with pytest.raises(SystemExit):
        main(["eval", "--policy", str(tmp_path), "--env", "CountdownSteps-v0", "--search", settings])
    assert message in capsys.readouterr().err


def test_eval_search_refuses_pass_at_k(tmp_path, capsys):
    assert main(["eval", "--policy", str(tmp_path), "--env", "CountdownSteps-v0", "--search", "--k", "4"]) == 2
    assert "--search" in capsys.readouterr().err
