"""A round's stages and the record each leaves, so that `--resume` continues at the first unfinished one.

A stage that finishes writes `rounds/NNN/stages/<stage>.json` (atomically, after everything it made is in
place): its metrics and when it finished. On resume a stage with a record is not run again; its metrics are
read back. A round is finished when its line is in `metrics.jsonl`, which is made of its stages' records.

    round 0:  bootstrap -> agents_bootstrap -> eval
    round r:  tasks -> sampling -> training -> eval -> control -> agents

Inside a stage, long work resumes from its own files: sampling from `rounds/NNN/sampling/part-*` (episodes of
`PART_TASKS` tasks each), training from the trainer's checkpoints (`tmp-trainer/<round>-<stage>/checkpoint-N`,
see `sparring.trainers.sft.last_checkpoint`).
"""

from __future__ import annotations

import json
import shutil
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
        """Forget `stage` and every later stage of the round: they run again."""
        order = stage_order(self.r)
        for later in order[order.index(stage):]:
            self.path(later).unlink(missing_ok=True)

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def metrics(self) -> dict[str, Any]:
        """The round's metrics: every finished stage's, in stage order."""
        out: dict[str, Any] = {}
        for stage in stage_order(self.r):
            out.update(self.get(stage) or {})
        return out
