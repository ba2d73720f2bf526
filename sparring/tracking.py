"""Experiment tracking: the loop's per-round metrics and the trainers' steps in TensorBoard, Trackio or W&B.

    sparring selfplay logging.report_to=[tensorboard]      # tensorboard --logdir RUN/tensorboard
    sparring selfplay logging.report_to=[trackio,wandb] logging.project=countdown

One tracker run per self-play run: every finished round logs the numbers of its metrics.jsonl line under
`round/<metric>` with the round as the step (TensorBoard: RUN/tensorboard/selfplay; Trackio and W&B: a run
named after the run directory, or `logging.name`). The TRL trainers of the loop (bootstrap, expert iteration,
GRPO, the agents' models) report their steps to the same trackers: TensorBoard under RUN/tensorboard/
round-NNN-<trainer>-<n>, Trackio as one run per trainer call named `<name>/round-NNN-<trainer>-<n>` in the same
project, W&B into the loop's own run (transformers' callback continues an active run), as `train/*` against
`train/global_step`. W&B writes its files under RUN/wandb; WANDB_MODE=offline keeps them there (`wandb sync`
uploads them later). Trackio writes to its local database (TRACKIO_DIR, default ~/.cache/huggingface/trackio).
"""

from __future__ import annotations

import importlib.util
import math
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparring.errors import SparringError

TRACKERS = {"tensorboard": "tensorboard", "trackio": "trackio", "wandb": "wandb"}  # name -> the package it needs


@dataclass
class LoggingConfig:
    # experiment trackers for the per-round metrics and the trainers' steps: tensorboard, trackio, wandb (none: [])
    report_to: list[str] = field(default_factory=list)
    project: str = "sparring"  # the Trackio / W&B project the run is logged to
    name: str | None = None    # the tracker run's name (default: the run directory's name)

    def __post_init__(self) -> None:
        if isinstance(self.report_to, str):  # logging.report_to=tensorboard
            self.report_to = [] if self.report_to == "none" else [self.report_to]
        for tracker in self.report_to:
            if tracker not in TRACKERS:
                raise ValueError(f"logging.report_to {tracker!r} is not a tracker sparring reports to; choose from "
                                 f"{', '.join(TRACKERS)} (a list: logging.report_to=[tensorboard,wandb]; [] for none)")
        if len(set(self.report_to)) != len(self.report_to):
            raise ValueError(f"logging.report_to lists a tracker twice: {self.report_to}")

    def check_installed(self) -> None:
        missing = [TRACKERS[t] for t in self.report_to if importlib.util.find_spec(TRACKERS[t]) is None]
        if missing:
            raise SparringError(f"logging.report_to={self.report_to} needs {', '.join(missing)}: pip install "
                              f"\"sparring[tracking]\" (or pip install {' '.join(missing)})")


_active: ContextVar[Tracker | None] = ContextVar("sparring_tracker", default=None)


class Tracker:
    """The trackers of one self-play run, open while the loop runs (a context manager)."""

    def __init__(self, config: LoggingConfig, run_dir: str | Path, first_round: int = 0):
        self.config, self.root = config, Path(run_dir)
        self.name = config.name or self.root.resolve().name
        self.round, self.trainer_calls = first_round, 0
        self.writer = self.trackio_run = self.wandb_run = None
        self._token: Any = None

    def __enter__(self) -> Tracker:
        self.config.check_installed()
        wanted = self.config.report_to
        if "tensorboard" in wanted:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.root / "tensorboard" / "selfplay"))
        if "trackio" in wanted:
            import trackio

            self.trackio_run = trackio.init(project=self.config.project, name=self.name, resume="allow")
        if "wandb" in wanted:
            import wandb

            self.wandb_run = wandb.init(project=self.config.project, name=self.name, dir=str(self.root),
                                        id=_wandb_id(self.root), resume="allow")
            self.wandb_run.define_metric("round")
            self.wandb_run.define_metric("round/*", step_metric="round")
        if wanted:
            self._token = _active.set(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._token is not None:
            _active.reset(self._token)
        if self.writer is not None:
            self.writer.close()
        if self.trackio_run is not None:
            self.trackio_run.finish()
        if self.wandb_run is not None:
            self.wandb_run.finish(exit_code=1 if exc[0] is not None else 0)

    def log(self, metrics: dict[str, Any]) -> None:
        """One finished round's metrics: every finite number, as round/<name>, the round as the step."""
        r = int(metrics["round"])
        numbers = {f"round/{key}": float(value) for key, value in metrics.items()
                   if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                   and key != "round"}
        if self.writer is not None:
            for key, value in numbers.items():
                self.writer.add_scalar(key, value, global_step=r)
            self.writer.flush()
        if self.trackio_run is not None:
            self.trackio_run.log(numbers, step=r)
        if self.wandb_run is not None:
            self.wandb_run.log({**numbers, "round": r})  # W&B's own step moves with the trainers' logs too
        self.round = r + 1

    def trainer_arguments(self, kind: str) -> tuple[dict[str, Any], list[Any]]:
        """TRL trainer arguments and callbacks that report one trainer call (`kind`: sft, grpo) to the trackers."""
        self.trainer_calls += 1
        label = f"round-{self.round:03d}-{kind}-{self.trainer_calls}"
        report_to = [t for t in self.config.report_to if t != "tensorboard"]
        callbacks = []
        if self.writer is not None:  # transformers 5 has no logging_dir: the callback gets its own writer
            from torch.utils.tensorboard import SummaryWriter

            # from its own module: transformers' lazy re-export is invisible to type checkers
            from transformers.integrations.integration_utils import TensorBoardCallback

            callbacks.append(TensorBoardCallback(SummaryWriter(str(self.root / "tensorboard" / label))))
        return {"report_to": report_to or "none", "run_name": f"{self.name}/{label}",
                "project": self.config.project}, callbacks


def trainer_reporting(kind: str) -> tuple[dict[str, Any], list[Any]]:
    """What a trainer reports to: the open self-play run's trackers, else nothing (`report_to="none"`)."""
    tracker = _active.get()
    if tracker is None:
        return {"report_to": "none"}, []
    return tracker.trainer_arguments(kind)


def _wandb_id(root: Path) -> str:
    """A stable W&B run id from the run directory: a resumed self-play run continues its W&B run."""
    import hashlib

    return hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
