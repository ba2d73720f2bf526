"""The one trajectory format every trainer reads, stored as a Hugging Face `datasets` dataset (Parquet).

A trajectory is an episode: the env id, the task, who played it (`role`), its turns (observation,
action, reward, and the action's token ids and log-probs where the backend gave them), the final
verdict, and where it came from (`source`: "policy", "expert", "refined", ...).

    >>> save_trajectories(trajectories, "runs/x/rounds/001/trajectories")
    >>> dataset = load_dataset("parquet", data_dir="runs/x/rounds/001/trajectories")["train"]
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sparring.io import atomic_dir


@dataclass
class Turn:
    observation: str
    action: str
    reward: float = 0.0
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None


@dataclass
class Trajectory:
    env_id: str
    task: dict[str, Any]
    turns: list[Turn] = field(default_factory=list)
    verdict: dict[str, Any] = field(default_factory=dict)  # {"reward", "success", "feedback", "details"}
    role: str = "solver"
    source: str = "policy"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)  # round, sample index, policy name, ...

    @property
    def success(self) -> bool:
        return bool(self.verdict.get("success"))

    @property
    def reward(self) -> float:
        return float(self.verdict.get("reward", 0.0))

    def conversation(self, upto: int | None = None) -> list[dict[str, str]]:
        """The chat messages of the first `upto` turns (all by default): observations as user, actions as assistant."""
        messages = []
        for turn in self.turns[:upto]:
            messages += [{"role": "user", "content": turn.observation}, {"role": "assistant", "content": turn.action}]
        return messages

    def to_row(self) -> dict[str, Any]:
        """A flat row; free-form dicts (task, details, kwargs, meta) as JSON text so every family shares one schema."""
        verdict = dict(self.verdict)
        return {
            "env_id": self.env_id, "task": json.dumps(self.task, sort_keys=True), "role": self.role,
            "source": self.source, "turns": [asdict(t) for t in self.turns],
            "reward": self.reward, "success": self.success, "feedback": verdict.get("feedback", ""),
            "details": json.dumps(verdict.get("details", {}), sort_keys=True),
            "env_kwargs": json.dumps(self.env_kwargs, sort_keys=True), "meta": json.dumps(self.meta, sort_keys=True),
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Trajectory:
        return cls(env_id=row["env_id"], task=json.loads(row["task"]), role=row["role"], source=row["source"],
                   turns=[Turn(**t) for t in row["turns"]],
                   verdict={"reward": row["reward"], "success": row["success"], "feedback": row["feedback"],
                            "details": json.loads(row["details"])},
                   env_kwargs=json.loads(row["env_kwargs"]), meta=json.loads(row["meta"]))


def to_dataset(trajectories: list[Trajectory]):
    """A `datasets.Dataset`, one row per trajectory."""
    from datasets import Dataset

    return Dataset.from_list([t.to_row() for t in trajectories])


def save_trajectories(trajectories: list[Trajectory], path: str | Path) -> Path:
    """Write the trajectories as Parquet into the folder `path`, atomically; a `path` ending in .parquet is
    written as that one file instead."""
    path = Path(path)
    if path.suffix == ".parquet":
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            to_dataset(trajectories).to_parquet(str(tmp))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path
    with atomic_dir(path) as tmp:
        to_dataset(trajectories).to_parquet(str(Path(tmp) / "data-00000.parquet"))
    return path


def load_trajectories(path: str | Path) -> list[Trajectory]:
    """The trajectories saved in the folder `path`, or in the Parquet file `path`."""
    import pyarrow.parquet as pq

    files = [Path(path)] if Path(path).is_file() else sorted(Path(path).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no trajectories (*.parquet) in {str(path)!r}")
    return [Trajectory.from_row(row) for file in files for row in pq.read_table(file).to_pylist()]
