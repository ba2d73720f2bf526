"""A run's context: its directory, seeds, progress bars and the helpers every part of a round uses.

`RunContext` is what the loop (`sparring.selfplay.SelfPlay`) and the roles around the solver (`sparring.agents`)
share, so the roles never import the loop: where the run's files are (`RunDir`), the named seed streams
(`sparring.seeds`), progress bars, the stage records of a round (`sparring.stages`), a trainer's own checkpoint
folder, the policy that generates from a checkpoint, and sampling part by part so that a killed stage resumes.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparring.envs.catalog import draw_tasks
from sparring.errors import SparringError
from sparring.executors import Executor
from sparring.io import atomic_dir, read_jsonl
from sparring.seeds import Seeds
from sparring.stages import PART_TASKS, RoundRecords

if TYPE_CHECKING:
    from rich.console import Console


class RunDir:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.config, self.metrics, self.curves = self.root / "config.yaml", self.root / "metrics.jsonl", self.root / "curves.png"

    def round_dir(self, r: int) -> Path:
        return self.root / "rounds" / f"{r:03d}"

    def checkpoint(self, name: str) -> Path:
        return self.root / "checkpoints" / name


def save_checkpoint(model: Any, tokenizer: Any, path: Path, adapter: Path | None = None) -> None:
    """Save into a temporary sibling, then rename: a kill or a full disk leaves the previous checkpoint as it was.
    `adapter`: a LoRA adapter's folder, copied in as `adapter/`."""
    try:
        with atomic_dir(path) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            if adapter is not None and adapter.exists():
                shutil.copytree(adapter, Path(tmp) / "adapter")
    except OSError as error:
        raise SparringError(f"could not save the checkpoint {path} ({error.strerror or error}); nothing was replaced, "
                            "every earlier checkpoint is intact. Free some space and continue with --resume") from error


class Bars:
    """Progress bars for the long steps of a round: sampling turns, training steps, evaluation."""

    def __init__(self, console: Console):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, transient=True)

    def episodes(self, description: str, total: int) -> Any:
        """An `on_turn(turn, active)` callback for the solver: finished episodes out of `total`."""
        task = self.progress.add_task(description, total=total)

        def on_turn(turn: int, active: int) -> None:
            self.progress.update(task, completed=total - active, description=f"{description} (turn {turn + 1})")
        return on_turn

    def steps(self, description: str, total: int) -> Any:
        """A TrainerCallback that advances a bar with the optimizer steps."""
        from transformers import TrainerCallback

        task, progress = self.progress.add_task(description, total=total), self.progress

        class Steps(TrainerCallback):
            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                progress.update(task, completed=state.global_step)
        return Steps()


class RunContext:
    """What every part of a run shares: the config, the run directory, the seeds, the console and its bars, the
    executor of episodes, and the env the run trains on (`config`: the run's `SelfPlayConfig`)."""

    def __init__(self, config: Any, run_dir: str | Path, *, console: Console | None = None):
        from rich.console import Console

        self.config, self.run, self.seeds = config, RunDir(run_dir), Seeds(config.seed)
        self.console = console or Console()
        self.bars = Bars(self.console)
        self.executor: Executor | None = None  # the loop opens config.executor; None plays episodes here
        self.env_id, self.env_kwargs = config.env.id, dict(config.env.kwargs)
        self.expert_kwargs = {**self.env_kwargs, **config.env.bootstrap_kwargs}  # what expert demonstrations cover
        # key prefix -> (env kwargs, tasks, main): the held-out split, the extra splits, the named eval sets
        self.eval_sets: dict[str, tuple[dict[str, Any], list[dict[str, Any]], bool]] = {}
        for split in [config.env.eval_split, *config.env.extra_eval_splits]:
            main = split == config.env.eval_split
            tasks = draw_tasks(self.env_id, self.env_kwargs, split, *self.seeds.eval_tasks(), config.env.eval_tasks)
            self.eval_sets["" if main else split] = (self.env_kwargs, tasks, main)
        for name, overrides in config.env.eval_sets.items():
            kwargs = {**self.env_kwargs, **overrides}
            tasks = draw_tasks(self.env_id, kwargs, config.env.eval_split, *self.seeds.eval_tasks(), config.env.eval_tasks)
            self.eval_sets[name] = (kwargs, tasks, False)

    def finished_rounds(self) -> list[dict[str, Any]]:
        return read_jsonl(self.run.metrics)

    def previous(self, key: str) -> Any:
        """`key` of the last finished round's metrics (None before round 0 finished)."""
        rows = self.finished_rounds()
        return rows[-1].get(key) if rows else None

    def seed_everything(self, r: int) -> None:
        import numpy as np
        import torch

        seed = self.seeds.rngs(r)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    @contextmanager
    def generating(self, checkpoint: Path, model: Any = None, tokenizer: Any = None) -> Iterator[Any]:
        """The policy that samples and evaluates the weights saved at `checkpoint` (and held in `model`)."""
        from sparring.policies.hf import HFPolicy

        generation = self.config.policy.generation
        if generation == "hf":
            if model is None:
                yield HFPolicy(checkpoint)
                return
            policy = HFPolicy(model=model, tokenizer=tokenizer)
            # the same weights for Ray workers, from the checkpoint they were saved to
            policy.spec = {"backend": "hf", "path": str(checkpoint), "batch_size": policy.batch_size}
            yield policy
        elif generation == "vllm":
            from sparring.policies.vllm_engine import VLLMPolicy

            policy = VLLMPolicy(checkpoint)
            try:
                yield policy
            finally:
                policy.close()
        else:
            from sparring.policies.openai_server import OpenAIPolicy
            from sparring.policies.vllm_server import VLLMServer

            cfg = self.config.policy
            with VLLMServer(checkpoint, host=cfg.server_host, extra_args=tuple(cfg.server_args)) as server:
                yield OpenAIPolicy(server.base_url)  # one server: every Ray worker shares it

    def round_kwargs(self, r: int) -> dict[str, Any]:
        """The env kwargs of round `r`'s training tasks: `env.kwargs` under the curriculum's entry for `r`."""
        curriculum = self.config.env.curriculum
        return {**self.env_kwargs, **curriculum[min(r, len(curriculum)) - 1]} if curriculum and r > 0 else self.env_kwargs

    def records(self, r: int) -> RoundRecords:
        return RoundRecords(self.run.round_dir(r), r)

    def trainer_dir(self, r: int, name: str) -> Path:
        """Where one training of round `r` keeps the trainer's checkpoints until it finishes; a training that was
        killed continues from them (sparring.trainers.sft.last_checkpoint)."""
        return self.run.root / "tmp-trainer" / f"{r:03d}-{name}"

    def collect_parts(self, r: int, tasks: list[dict[str, Any]], collect: Callable[[list[dict[str, Any]], int], list[Any]],
                      name: str = "part") -> list[Any]:
        """`collect(part, first_task)` over the round's tasks, `PART_TASKS` at a time, each part saved to
        rounds/NNN/sampling/<name>-A-B as it is played: a resumed stage plays only the parts not yet written. Every
        part is read back from its file, so a resumed and an uninterrupted stage go on with the same episodes.
        (`name` search-part: the smaller tasks of expert iteration's search.)"""
        from sparring.trajectories import load_trajectories, save_trajectories

        trajectories = []
        for a in range(0, len(tasks), PART_TASKS):
            b = min(a + PART_TASKS, len(tasks))
            part = self.run.round_dir(r) / "sampling" / f"{name}-{a:07d}-{b:07d}"
            if not part.exists():  # written atomically: there means whole
                save_trajectories(collect(tasks[a:b], a), part)
            trajectories += load_trajectories(part)
        return trajectories
