"""Supervised fine-tuning on trajectories with TRL's SFTTrainer, loss on the actions (completions) only."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparring.policies.hf import render
from sparring.trajectories import Trajectory

SCHEDULERS = ("constant_with_warmup", "cosine", "linear")


@dataclass
class SFTSettings:
    steps: int = 100               # optimizer steps
    batch_size: int = 128          # examples per step
    learning_rate: float = 1e-3    # peak learning rate
    warmup_steps: int = 10         # linear warmup steps
    scheduler: str = "constant_with_warmup"  # learning-rate schedule (transformers' names, e.g. cosine)
    weight_decay: float = 0.0      # AdamW weight decay
    max_grad_norm: float = 1.0     # gradient clipping norm
    # steps between the trainer's own checkpoints (weights, optimizer, scheduler, RNG): a killed run resumes
    # from the last one, so a kill costs at most this many steps; 0: none (a kill restarts the training)
    save_steps: int = 200

    def __post_init__(self) -> None:
        from sparring.envs.base import check_choice

        for name in ("steps", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"sft.{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"sft.learning_rate must be > 0, got {self.learning_rate!r}")
        check_choice("sft.scheduler", self.scheduler, SCHEDULERS)
        if not isinstance(self.save_steps, int) or isinstance(self.save_steps, bool) or self.save_steps < 0:
            raise ValueError(f"sft.save_steps must be an integer >= 0 (0: no mid-training checkpoint), "
                             f"got {self.save_steps!r}")


def sft_examples(trajectories: list[Trajectory], tokenizer: Any) -> list[dict[str, str]]:
    """One prompt/completion pair per turn: the prompt is the conversation so far as the policy sees it."""
    examples = []
    for trajectory in trajectories:
        for i, turn in enumerate(trajectory.turns):
            conversation = trajectory.conversation(i) + [{"role": "user", "content": turn.observation}]
            examples.append({"prompt": render(tokenizer, conversation), "completion": turn.action})
    return examples


def fitting(examples: list[dict[str, str]], model: Any, tokenizer: Any) -> list[dict[str, str]]:
    """The examples whose prompt and completion fit in the context supervised fine-tuning keeps (a longer one would
    lose its completion)."""
    limit = _context_length(model, tokenizer)
    return [e for e in examples if len(tokenizer(e["prompt"] + e["completion"])["input_ids"]) < limit]


@contextmanager
def quiet_hf():
    """Silence transformers' and datasets' per-step chatter (we show our own progress)."""
    import datasets
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), datasets.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            datasets.enable_progress_bars()


def train_on_cpu() -> bool:
    """Whether the trainers train on the CPU: when no CUDA device is visible. With GPUs they train on the
    process's GPU, and under `accelerate launch` on all of them (configs/accelerate/, README: Cluster)."""
    import torch

    return not torch.cuda.is_available()


def last_checkpoint(output_dir: str | Path) -> Path | None:
    """The trainer's latest complete checkpoint in `output_dir` (`checkpoint-N` with its `trainer_state.json`,
    which transformers writes last), or None. Incomplete ones, from a kill in the middle of a save, are removed."""
    import json

    folders = sorted(Path(output_dir).glob("checkpoint-*"),
                     key=lambda p: int(p.name.split("-")[1]) if p.name.split("-")[1].isdigit() else -1, reverse=True)
    for folder in folders:
        try:
            json.loads((folder / "trainer_state.json").read_text())
        except (OSError, ValueError):
            shutil.rmtree(folder, ignore_errors=True)
            continue
        return folder
    return None


def mean_logged_loss(log_history: list[dict[str, Any]]) -> float:
    """The mean of the per-step losses the trainer logged: the same whether the training was resumed or not
    (the trainer's own `training_loss` averages only the steps since the resume)."""
    losses = [entry["loss"] for entry in log_history if "loss" in entry]
    return sum(losses) / len(losses) if losses else float("nan")


def supervised_finetune(model: Any, tokenizer: Any, examples: list[dict[str, str]], settings: SFTSettings,
                        output_dir: str | Path, *, seed: int = 0, callbacks: list[Any] | None = None,
                        lora: Any = None, adapter_dir: str | Path | None = None) -> dict[str, float]:
    """Train `model` in place on `examples` for `settings.steps` steps; returns the trainer's final metrics.
    With `lora` (a `LoRASettings` that is enabled) only an adapter trains; it is saved to `adapter_dir` (if
    given) and merged into `model`'s weights.

    Every `settings.save_steps` steps the trainer checkpoints into `output_dir`; a call with the same arguments
    and an `output_dir` that holds one continues from it (weights, optimizer, scheduler, RNG state and the
    position in the data), so the result is what an uninterrupted call gives."""
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback
    from trl.trainer.sft_config import SFTConfig
    from trl.trainer.sft_trainer import SFTTrainer

    from sparring.tracking import trainer_reporting
    from sparring.trainers.lora import merge_adapter, peft_config

    if not examples:
        raise ValueError("no examples to fine-tune on")
    reporting, tracker_callbacks = trainer_reporting("sft")  # the self-play run's logging.report_to, else none
    logging = {"logging_strategy": "steps", "logging_steps": 1}  # every step's loss: train/loss is their mean
    args = SFTConfig(
        output_dir=str(output_dir), max_steps=settings.steps, per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate, lr_scheduler_type=settings.scheduler, warmup_steps=settings.warmup_steps,
        weight_decay=settings.weight_decay, max_grad_norm=settings.max_grad_norm, adam_beta2=0.98,
        completion_only_loss=True, max_length=_context_length(model, tokenizer),
        save_strategy="steps" if settings.save_steps else "no", save_steps=settings.save_steps or 500,
        save_total_limit=1, use_cpu=train_on_cpu(), seed=seed, data_seed=seed, **reporting, **logging,
        disable_tqdm=True, dataloader_num_workers=0, eos_token=tokenizer.eos_token,
        bf16=False, gradient_checkpointing=False,  # TRL's defaults (bf16 autocast, recomputation) cost 2-3x on a CPU
    )
    with quiet_hf():
        trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(examples),
                             processing_class=tokenizer, callbacks=[*(callbacks or []), *tracker_callbacks],
                             peft_config=peft_config(lora))
        trainer.remove_callback(PrinterCallback)  # progress is the caller's to show
        resume = last_checkpoint(output_dir) if settings.save_steps else None
        output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        merge_adapter(trainer, adapter_dir)
    for folder in Path(output_dir).glob("checkpoint-*"):  # finished: a later call here starts afresh
        shutil.rmtree(folder, ignore_errors=True)
    model.eval()
    return {"train/loss": mean_logged_loss(trainer.state.log_history), "train/steps": int(output.global_step)}


def _context_length(model: Any, tokenizer: Any) -> int:
    """How many tokens a training example may hold: the tokenizer's limit, else the model's positions (a
    long multi-turn episode is cut here, not at TRL's default of 1024 or an unset tokenizer's 256)."""
    if tokenizer.model_max_length < 10**6:
        return int(tokenizer.model_max_length)
    return int(getattr(model.config, "max_position_embeddings", None) or 1024)
