"""A round's stages and the record each leaves, so that `--resume` continues at the first unfinished one.

A stage that finishes writes `rounds/NNN/stages/<stage>.json` (atomically, after everything it made is in
place): its metrics and when it finished. On resume a stage with a record is not run again; its metrics are
read back. A round is finished when its line is in `metrics.jsonl`, which is made of its stages' records.

    round 0:  bootstrap -> agents_bootstrap -> eval
    round r:  tasks -> sampling -> training -> eval -> control -> agents

Inside a stage, long work resumes from its own files: sampling from `rounds/NNN/sampling/part-*` (episodes of
`PART_TASKS` tasks each; `search-part-*`: expert iteration's search), training from the trainer's checkpoints
(`tmp-trainer/<round>-<stage>/checkpoint-N`, see `sparring.trainers.sft.last_checkpoint`). With the agents on,
a stage that changes their state leaves it in `rounds/NNN/agents/<stage>/` before its record
(`sparring.agents.roles.STATEFUL`); a resumed round loads the latest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sparring.io import atomic_write_json

ROUND_0 = ("bootstrap", "agents_bootstrap", "eval")
ROUND_N = ("tasks", "sampling", "training", "eval", "control", "agents")
PART_TASKS = 256  # tasks per sampling part: a kill while sampling loses at most one part's episodes


def stage_order(r: int) -> tuple[str, ...]:
    return ROUND_0 if r == 0 else ROUND_N


class RoundRecords:
    """The stage records of one round, in `rounds/NNN/stages/`."""

    def __init__(self, round_dir: Path, r: int):
        self.folder, self.r = Path(round_dir) / "stages", r

    def path(self, stage: str) -> Path:
        return self.folder / f"{stage}.json"

    def get(self, stage: str) -> dict[str, Any] | None:
        """The metrics `stage` recorded, or None when it has not finished. A record that does not parse (damaged
        from outside: records are written atomically) counts as not finished: the stage runs again."""
        path = self.path(stage)
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            return None
        if not isinstance(record, dict) or not isinstance(record.get("metrics"), dict):
            path.unlink(missing_ok=True)
            return None
        return record["metrics"]

    def record(self, stage: str, metrics: dict[str, Any]) -> None:
        atomic_write_json(self.path(stage), {"round": self.r, "stage": stage, "metrics": metrics})

    def finished(self) -> list[str]:
        return [s for s in stage_order(self.r) if self.path(s).exists()]

    def drop_from(self, stage: str) -> None:
        """Forget `stage` and every later stage of the round: they run again (the agents' stage with every role
        it trained: their records `<role>-training`)."""
        order = stage_order(self.r)
        for later in order[order.index(stage):]:
            self.path(later).unlink(missing_ok=True)
        if {"agents", "agents_bootstrap"} & set(order[order.index(stage):]):
            for role in self.folder.glob("*-training.json"):
                role.unlink()

    def metrics(self) -> dict[str, Any]:
        """The round's metrics: every finished stage's, in stage order."""
        out: dict[str, Any] = {}
        for stage in stage_order(self.r):
            out.update(self.get(stage) or {})
        return out


# ---- a run directory damaged from outside (a crash of the machine, a full disk, a hand that deleted a file) --

def checkpoint_problem(path: Path) -> str | None:
    """What is wrong with the saved model folder `path` (one line), or None when it is whole: its config, its
    tokenizer, and weights whose every byte the safetensors header accounts for (a cut-short file fails)."""
    from safetensors import safe_open

    if not path.is_dir():
        return "it is missing"
    for name in ("config.json", "tokenizer_config.json"):
        try:
            json.loads((path / name).read_text())
        except FileNotFoundError:
            return f"{name} is missing"
        except (OSError, ValueError) as error:
            return f"{name} is damaged ({error})"
    weights = sorted(path.glob("*.safetensors"))
    index = path / "model.safetensors.index.json"
    if index.exists():
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError, AttributeError) as error:
            return f"{index.name} is damaged ({error})"
        missing = sorted(shards - {w.name for w in weights})
        if missing:
            return f"the weight file {missing[0]} is missing"
    if not weights:
        return "it holds no weights (*.safetensors)"
    for file in weights:
        try:
            with safe_open(str(file), "pt") as f:
                f.keys()
        except Exception as error:  # safetensors raises its own error types for a damaged file
            return f"{file.name} is damaged ({str(error).splitlines()[0][:120]})"
    return None


def repair_metrics(path: Path) -> tuple[list[dict[str, Any]], str | None]:
    """The rows of `metrics.jsonl`, and a note when its last line was cut short (and is dropped: that round is
    finished again from its stage records). A damaged line before the last, or rounds out of order, stop the run
    with what to do."""
    from sparring.errors import SparringError
    from sparring.io import atomic_write_text

    if not path.exists():
        return [], None
    lines = path.read_text(errors="replace").split("\n")
    rows, note = [], None
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
        except ValueError as error:
            if any(rest.strip() for rest in lines[i + 1:]):
                raise SparringError(
                    f"{path} line {i + 1} is not a JSON object ({line[:60]!r}: {error}) and lines follow it, so "
                    f"this is not a write cut short by a crash. Restore the file, or delete line {i + 1} and every "
                    f"line after it (and the folders rounds/NNN/stages of those rounds) to redo them") from None
            note = (f"the last line of {path.name} was cut short ({line[:40]!r}); it is dropped and round {len(rows)} "
                    "is finished again from its stage records")
            atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
            break
        rows.append(row)
    found = [row.get("round") for row in rows]
    if found != list(range(len(rows))):
        raise SparringError(f"{path} holds the rounds {found}, not 0, 1, 2, ... in order: restore the file, or delete "
                            "the lines from the first one out of place on (and those rounds' rounds/NNN/stages) "
                            "to redo them")
    return rows, note
