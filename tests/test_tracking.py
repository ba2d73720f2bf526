"""logging.report_to: the loop's per-round metrics and the TRL trainers' steps, offline and read back with each
tracker's own reader (TensorBoard's EventAccumulator, Trackio's local database, W&B's offline run file)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kit import small_run

from sparring.selfplay import load_selfplay_config
from sparring.tracking import LoggingConfig


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    root = tmp_path_factory.mktemp("tracked")
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "TRACKIO_DIR": str(root / "trackio")}
    rows = small_run(root / "run", "logging.report_to=[tensorboard,trackio,wandb]", "logging.project=tests", env=env)
    return root, rows


def test_tensorboard_event_files_hold_every_round_and_every_trainer_step(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root, rows = tracked
    loop = EventAccumulator(str(root / "run/tensorboard/selfplay"))
    loop.Reload()
    for key in ("eval/success", "eval/pass@2", "time/round_s"):
        events = loop.Scalars(f"round/{key}")
        assert [e.step for e in events] == [0, 1]
        assert [e.value for e in events] == pytest.approx([row[key] for row in rows])
    assert [e.value for e in loop.Scalars("round/train/loss")] == pytest.approx([row["train/loss"] for row in rows])
    trainers = sorted(p.name for p in (root / "run/tensorboard").iterdir() if p.name != "selfplay")
    assert trainers == ["round-000-sft-1", "round-001-sft-2"]  # the bootstrap, then round 1's expert iteration
    for name, steps in zip(trainers, (rows[0]["train/steps"], rows[1]["train/steps"])):
        trainer = EventAccumulator(str(root / "run/tensorboard" / name))
        trainer.Reload()
        assert [e.step for e in trainer.Scalars("train/loss")] == list(range(1, steps + 1))


def test_trackio_logs_the_run_locally(tracked):
    root, rows = tracked
    reader = ("import json\nfrom trackio.sqlite_storage import SQLiteStorage as S\n"
              "print(json.dumps({run: S.get_logs('tests', run) for run in S.get_runs('tests')}))")
    done = subprocess.run([sys.executable, "-c", reader], capture_output=True, text=True, check=True,
                          env={**os.environ, "TRACKIO_DIR": str(root / "trackio")})
    logs = json.loads(done.stdout)
    assert sorted(logs) == ["run", "run/round-000-sft-1", "run/round-001-sft-2"]
    assert [entry["step"] for entry in logs["run"]] == [0, 1]
    assert [entry["round/eval/success"] for entry in logs["run"]] == pytest.approx([row["eval/success"] for row in rows])
    assert any("train/loss" in entry for entry in logs["run/round-001-sft-2"])


def wandb_history(path: Path) -> list[dict]:
    """The history rows of a W&B run file (run-ID.wandb): a ":W&B" header, then LevelDB-log records (32 KiB
    blocks, 7-byte record headers: crc, length, type) of protobuf `Record`s. wandb 0.31 ships no Python reader
    (its Go core reads them), so this one is written out here."""
    from wandb.proto import wandb_internal_pb2

    data, rows, chunks, pos = path.read_bytes(), [], b"", 7
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        chunks += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunks)
            chunks = b""
            if record.HasField("history"):
                rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                             for item in record.history.item})
    return rows


def test_wandb_offline_run_holds_the_rounds_and_the_trainers(tracked):
    root, rows = tracked
    files = list((root / "run/wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1  # one W&B run per self-play run; the trainers log into it
    history = wandb_history(files[0])
    rounds = [entry for entry in history if "round" in entry]
    assert [entry["round"] for entry in rounds] == [0, 1]
    assert [entry["round/eval/success"] for entry in rounds] == pytest.approx([row["eval/success"] for row in rows])
    steps = [entry for entry in history if "train/loss" in entry]
    assert len(steps) == rows[0]["train/steps"] + rows[1]["train/steps"]


def test_report_to_is_checked():
    assert LoggingConfig(report_to="tensorboard").report_to == ["tensorboard"]
    assert LoggingConfig(report_to="none").report_to == []
    with pytest.raises(ValueError, match="'tensorbord' is not a tracker.*tensorboard, trackio, wandb"):
        load_selfplay_config(None, ["logging.report_to=[tensorbord]"])
    assert load_selfplay_config(None, []).logging.report_to == []  # none by default


def test_grpo_reports_its_steps_to_the_open_tracker(tiny_checkpoint, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sparring.tracking import Tracker
    from sparring.trainers.grpo import GRPOSettings, train_grpo

    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    settings = GRPOSettings(steps=2, num_generations=2, batch_size=4, max_completion_length=8)
    with Tracker(LoggingConfig(report_to=["tensorboard"]), tmp_path / "run", first_round=3) as tracker:
        train_grpo(model, tokenizer, "Countdown-v0", {"instruction": "compact", "difficulty": "easy"},
                   [{"numbers": [8, 3, 2], "target": 22}], settings, tmp_path / "out")
        tracker.log({"round": 3, "grpo/reward": 0.5})
    trainer = EventAccumulator(str(tmp_path / "run/tensorboard/round-003-grpo-1"))
    trainer.Reload()
    assert [e.step for e in trainer.Scalars("train/reward")] == [1, 2]
    loop = EventAccumulator(str(tmp_path / "run/tensorboard/selfplay"))
    loop.Reload()
    assert [(e.step, e.value) for e in loop.Scalars("round/grpo/reward")] == [(3, 0.5)]
    # without an open tracker a trainer reports nowhere
    train_grpo(model, tokenizer, "Countdown-v0", {"instruction": "compact", "difficulty": "easy"},
               [{"numbers": [8, 3, 2], "target": 22}], settings, tmp_path / "out2")
    assert sorted(p.name for p in (tmp_path / "run/tensorboard").iterdir()) == ["round-003-grpo-1", "selfplay"]
    assert not (tmp_path / "out2" / "runs").exists()


def test_a_tracker_that_is_not_installed_is_named(monkeypatch, tmp_path):
    import importlib.util

    from sparring.errors import SparringError
    from sparring.tracking import Tracker

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(SparringError, match=r'needs wandb: pip install "sparring\[tracking\]"'):
        with Tracker(LoggingConfig(report_to=["tensorboard", "wandb"]), tmp_path):
            pass
