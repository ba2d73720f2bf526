"""Preference training on self-judged pairs with TRL's DPOTrainer (Self-Rewarding LMs, ScPO, West-of-N).

    >>> pairs, stats = preference_pairs(trajectories, k=8, scores=[t.reward for t in trajectories])
    >>> metrics = train_dpo(model, tokenizer, reference, pairs, DPOSettings(steps=40), "runs/x/dpo")

A pair comes from the `k` attempts at one task: the attempt its source scores highest is chosen, the one
it scores lowest is rejected (never two attempts of equal score, never the same actions). The source is
anything that scores an attempt: the env's verdict (its reward), a majority vote with no labels (ScPO:
the share of the k attempts that gave the same answer), or a judge. Multi-turn attempts are compared
where they part: the prompt is the conversation up to the first turn whose actions differ (the same
history on both sides), and chosen/rejected are the two actions there, so DPO never trains on two
different pasts. Pairs are stored as trajectories (`meta["pair"]`, `meta["preference"]`).
"""

# What this file relies on in TRL 1.16 (trl/trainer/dpo_trainer.py, trl/trainer/dpo_config.py):
# - a dataset of "prompt", "chosen", "rejected" strings (standard, not conversational: we render prompts
#   ourselves, as the SFT and GRPO trainers here do);
# - DPOConfig(beta=, loss_type=[...]) and DPOTrainer(model=, ref_model=, args=, train_dataset=, processing_class=);
# - logged metrics "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies" in
#   trainer.state.log_history.

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparring.envs.base import check_at_least, check_choice
from sparring.policies.hf import render
from sparring.trainers.base import RoundTrainer
from sparring.trainers.sft import _context_length, last_checkpoint, mean_logged_loss, quiet_hf, train_on_cpu
from sparring.trajectories import Trajectory

PAIR_SOURCES = ("verdict", "majority", "judge")
LOSS_TYPES = ("sigmoid", "hinge", "ipo", "robust", "bco_pair", "sppo_hard", "apo_zero", "apo_down", "sigmoid_norm")


@dataclass
class DPOSettings:
    pairs_from: str = "verdict"    # what ranks a task's attempts: verdict (the env), majority (ScPO, no labels), judge
    steps: int = 40                # optimizer steps per round
    batch_size: int = 32           # pairs per step
    learning_rate: float = 5e-5    # peak learning rate
    warmup_steps: int = 5          # linear warmup steps
    scheduler: str = "constant_with_warmup"  # learning-rate schedule (transformers' names)
    beta: float = 0.1              # DPO's beta: how far the policy may move from the reference
    loss_type: str = "sigmoid"     # TRL's DPO loss: sigmoid (DPO), ipo, hinge, robust, apo_zero, ...
    max_pairs_per_task: int = 1    # pairs kept per task (best against worst, then the next ones)
    save_steps: int = 20           # steps between the trainer's own checkpoints (a kill costs at most these); 0: none

    def __post_init__(self) -> None:
        check_choice("dpo.pairs_from", self.pairs_from, PAIR_SOURCES)
        check_choice("dpo.loss_type", self.loss_type, LOSS_TYPES)
        check_at_least("dpo", self, {"steps": 1, "batch_size": 1, "max_pairs_per_task": 1})
        if not isinstance(self.save_steps, int) or isinstance(self.save_steps, bool) or self.save_steps < 0:
            raise ValueError(f"dpo.save_steps must be an integer >= 0 (0: no mid-training checkpoint), got "
                             f"{self.save_steps!r}")
        if not self.learning_rate > 0 or not self.beta > 0:
            raise ValueError(f"dpo.learning_rate and dpo.beta must be > 0, got {self.learning_rate!r}, {self.beta!r}")


def _actions(trajectory: Trajectory) -> tuple[str, ...]:
    return tuple(turn.action for turn in trajectory.turns)


def preference_pairs(trajectories: list[Trajectory], k: int, scores: list[float], *,
                     max_pairs_per_task: int = 1) -> tuple[list[tuple[Trajectory, Trajectory]], dict[str, float]]:
    """(chosen, rejected) pairs from each task's `k` consecutive attempts, ranked by `scores` (one per
    trajectory, higher is better): best against worst, then second best against second worst, ... up to
    `max_pairs_per_task`, skipping equal scores and equal actions. Metrics: pairs, tasks with a pair, and
    how often the pair agrees with the env's verdicts (chosen's reward above rejected's; 1.0 for pairs
    from the verdict itself, the check for majority and judge pairs)."""
    if len(scores) != len(trajectories) or len(trajectories) % k:
        raise ValueError(f"{len(trajectories)} trajectories and {len(scores)} scores do not make groups of k={k}")
    pairs: list[tuple[Trajectory, Trajectory]] = []
    paired = 0
    for start in range(0, len(trajectories), k):
        first = {}  # the first attempt of each distinct action sequence
        for i in range(start, start + k):
            first.setdefault(_actions(trajectories[i]), i)
        distinct = list(first.values())
        best = sorted(distinct, key=lambda i: (-scores[i], i))  # ties: the earlier sample first, on both sides
        worst = sorted(distinct, key=lambda i: (scores[i], i))
        for chosen, rejected in list(zip(best, worst))[:max_pairs_per_task]:
            if scores[chosen] <= scores[rejected]:
                break
            pairs.append((trajectories[chosen], trajectories[rejected]))
            paired += chosen == best[0]
    agree = sum(c.reward > r.reward for c, r in pairs)
    return pairs, {"dpo/pairs": len(pairs), "dpo/tasks_paired": paired / max(1, len(trajectories) // k),
                   "dpo/verdict_agreement": agree / len(pairs) if pairs else 0.0}


def pair_example(chosen: Trajectory, rejected: Trajectory, tokenizer: Any) -> dict[str, str]:
    """The DPO example of a pair: the conversation up to the first turn whose action differs, and the two actions
    there (the observations before it are the same on both sides: envs are deterministic given the task and the
    actions)."""
    turn = next((i for i, (a, b) in enumerate(zip(chosen.turns, rejected.turns)) if a.action != b.action),
                min(len(chosen.turns), len(rejected.turns)) - 1)
    turn = max(turn, 0)
    conversation = chosen.conversation(turn) + [{"role": "user", "content": chosen.turns[turn].observation}]
    return {"prompt": render(tokenizer, conversation), "chosen": chosen.turns[turn].action,
            "rejected": rejected.turns[turn].action if turn < len(rejected.turns) else ""}


def mark_pairs(pairs: list[tuple[Trajectory, Trajectory]]) -> list[Trajectory]:
    """The pairs as trajectories to save with the round's: `meta["pair"]` numbers them, `meta["preference"]` says
    which side each is."""
    out = []
    for i, (chosen, rejected) in enumerate(pairs):
        for side, trajectory in (("chosen", chosen), ("rejected", rejected)):
            copy = Trajectory.from_row(trajectory.to_row())
            copy.meta.update(pair=i, preference=side)
            copy.source = "pair"
            out.append(copy)
    return out


def train_dpo(model: Any, tokenizer: Any, reference: Any, pairs: list[tuple[Trajectory, Trajectory]],
              settings: DPOSettings, output_dir: str | Path, *, seed: int = 0,
              callbacks: list[Any] | None = None, lora: Any = None,
              adapter_dir: str | Path | None = None) -> dict[str, float]:
    """Train `model` in place with TRL's DPOTrainer on `pairs` against `reference` (a frozen copy of the round's
    starting weights; with `lora`, an adapter trains, is saved to `adapter_dir` and merged). Returns the loss and
    TRL's reward metrics averaged over the logged steps."""
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback
    from trl.trainer.dpo_config import DPOConfig
    from trl.trainer.dpo_trainer import DPOTrainer

    from sparring.tracking import trainer_reporting
    from sparring.trainers.lora import merge_adapter, peft_config

    examples = [e for e in (pair_example(c, r, tokenizer) for c, r in pairs) if e["chosen"] != e["rejected"]]
    if not examples:
        raise ValueError("no preference pairs to train on")
    reporting, tracker_callbacks = trainer_reporting("dpo")  # the self-play run's logging.report_to, else none
    args = DPOConfig(
        output_dir=str(output_dir), max_steps=settings.steps, per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate, lr_scheduler_type=settings.scheduler, warmup_steps=settings.warmup_steps,
        beta=settings.beta, loss_type=[settings.loss_type], max_length=_context_length(model, tokenizer),
        save_strategy="steps" if settings.save_steps else "no", save_steps=settings.save_steps or 500,
        save_total_limit=1, use_cpu=train_on_cpu(), seed=seed, data_seed=seed, **reporting,
        logging_strategy="steps", logging_steps=1,  # every step: the loss and reward metrics are read from the log
        disable_tqdm=True, dataloader_num_workers=0, bf16=False, gradient_checkpointing=False,
    )
    reference.eval()
    with quiet_hf():
        trainer = DPOTrainer(model=model, ref_model=reference, args=args, train_dataset=Dataset.from_list(examples),
                             processing_class=tokenizer, callbacks=[*(callbacks or []), *tracker_callbacks],
                             peft_config=peft_config(lora))
        trainer.remove_callback(PrinterCallback)
        resume = last_checkpoint(output_dir) if settings.save_steps else None  # a killed call's: continue from it
        output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        merge_adapter(trainer, adapter_dir)
    for folder in Path(output_dir).glob("checkpoint-*"):  # finished: a later call here starts afresh
        shutil.rmtree(folder, ignore_errors=True)
    model.eval()
    logged = [row for row in trainer.state.log_history if "rewards/margins" in row]
    metrics = {"train/loss": mean_logged_loss(trainer.state.log_history), "train/steps": int(output.global_step),
               "dpo/examples": len(examples)}
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"):
        values = [row[key] for row in logged if key in row]
        if values:
            metrics[f"dpo/{key.split('/')[1]}" if key != "rewards/margins" else "dpo/reward_margin"] = sum(values) / len(values)
    return metrics


class DPORoundTrainer(RoundTrainer):
    """DPO as the self-play loop's trainer: the sampling stage collects `expert_iteration.k` attempts per task;
    pairs of them ranked by `dpo.pairs_from` (the env's reward, the share of attempts that gave the same answer,
    or the judge's verdicts in `state["verified"]`) are saved to rounds/NNN/pairs and trained on, against the
    previous round's weights as the reference."""

    def train(self, model: Any, tokenizer: Any, tasks: list[dict[str, Any]], previous: Path, state: dict[str, Any],
              lora: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        from transformers import AutoModelForCausalLM

        from sparring.trajectories import load_trajectories, save_trajectories

        ctx, r, cfg = self.ctx, self.r, self.ctx.config
        k, round_dir = self.k, ctx.run.round_dir(r)
        trajectories = [t for t in load_trajectories(round_dir / "trajectories") if t.source == "policy"]
        if cfg.dpo.pairs_from == "verdict":
            scores = [t.reward for t in trajectories]
        elif cfg.dpo.pairs_from == "majority":  # ScPO: how many of the task's k attempts gave the same answer
            from sparring.envs.grading import answer_key

            keys = [answer_key(t) for t in trajectories]
            scores = [0.0 if key is None else keys[i - i % k:i - i % k + k].count(key) / k for i, key in enumerate(keys)]
        else:  # the judge's verdicts from the sampling stage (verifier.use=judge), or from its saved agents' state
            scores = [float(flag) for flag in state["verified"]]
        pairs, metrics = preference_pairs(trajectories, k, scores, max_pairs_per_task=cfg.dpo.max_pairs_per_task)
        save_trajectories(mark_pairs(pairs), round_dir / "pairs")
        if pairs:
            reference = AutoModelForCausalLM.from_pretrained(previous)
            metrics.update(train_dpo(model, tokenizer, reference, pairs, cfg.dpo, ctx.trainer_dir(r, "training"),
                                     seed=ctx.seeds.round(r), callbacks=[ctx.bars.steps("DPO", cfg.dpo.steps)],
                                     **lora))
        metrics["ei/pass@1"] = sum(t.success for t in trajectories) / max(1, len(trajectories))
        return model, metrics
