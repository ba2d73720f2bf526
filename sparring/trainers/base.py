"""One interface for the self-play loop's trainers, and their registry by algorithm name.

A trainer is a `RoundTrainer`: built for round r of a run (`for_round(ctx, r)`: its settings are the run
config's section of the same name), it says what the sampling stage collects for it, may add searched
traces after the samples, and trains the round's model. The loop calls every trainer the same way:

    trainer = make_trainer(config.algorithm, ctx, r)
    if trainer.k:                                         # the sampling stage: k attempts per task
        attempts = solver.run(tasks, k=trainer.k, ...)    # with trainer.sampling_params()
        kept, more, metrics = trainer.searched(sampler, tasks, attempts)
    model, metrics = trainer.train(model, tokenizer, tasks, previous, state, lora)

A new trainer is one file with a `RoundTrainer` subclass and one line in `TRAINERS` (module:class, imported
on first use, as Gymnasium's entry points are); one outside the package needs no line: `algorithm: module:Class`.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from sparring.context import RunContext
from sparring.errors import SparringError, UnknownNameError
from sparring.policies.policy import Policy, SamplingParams
from sparring.trajectories import Trajectory

TRAINERS: dict[str, str] = {
    "expert_iteration": "sparring.trainers.expert_iteration:ExpertIterationTrainer",
    "grpo": "sparring.trainers.grpo:GRPORoundTrainer",
    "dpo": "sparring.trainers.dpo:DPORoundTrainer",
}


class RoundTrainer(ABC):
    """What the loop needs of a trainer. `ctx`: the run (config, directory, seeds, bars); `r`: the round."""

    def __init__(self, ctx: RunContext, r: int):
        self.ctx, self.r = ctx, r

    @classmethod
    def for_round(cls, ctx: RunContext, r: int) -> RoundTrainer:
        """The trainer of round `r` of the run `ctx` (the one call shape the loop knows)."""
        return cls(ctx, r)

    @property
    def k(self) -> int:
        """Attempts per task the sampling stage collects for this trainer (0: it samples while it trains)."""
        return self.ctx.config.expert_iteration.k

    def sampling_params(self) -> SamplingParams:
        """How the sampling stage samples (expert_iteration's temperature and top_p by default)."""
        ei = self.ctx.config.expert_iteration
        return SamplingParams(temperature=ei.temperature, top_p=ei.top_p, max_tokens=self.ctx.config.policy.max_tokens)

    def searched(self, sampler: Policy, tasks: list[dict[str, Any]], trajectories: list[Trajectory]
               ) -> tuple[list[Trajectory], list[Trajectory], dict[str, float]]:
        """After the samples: (traces that train as they are, every attempt to save with the round's, metrics).
        None by default."""
        return [], [], {}

    @abstractmethod
    def train(self, model: Any, tokenizer: Any, tasks: list[dict[str, Any]], previous: Path, state: dict[str, Any],
              lora: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """The round's training from `previous` (the checkpoint `model` was loaded from), on what the sampling stage
        left in the round's folder and in `state` (`verified`: the verifier's flags, `extra`: trajectories that
        train as they are); `lora`: the keyword arguments of an adapter's training. Returns the trained model and
        the metrics."""


def trainer_class(name: str) -> type[RoundTrainer]:
    """The trainer registered as `name`, or your own as `module:Class` (a `RoundTrainer` subclass in a module on
    the Python path); a clear error naming the registered ones otherwise."""
    if name not in TRAINERS and ":" not in name:
        raise UnknownNameError("algorithm", name, list(TRAINERS), "(your own trainer: `module:Class`)")
    module, _, attribute = TRAINERS.get(name, name).partition(":")
    try:
        found = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as error:
        raise SparringError(f"algorithm {name!r}: cannot load {attribute!r} from {module!r} ({error})") from None
    if not (isinstance(found, type) and issubclass(found, RoundTrainer)):
        raise SparringError(f"algorithm {name!r}: {found!r} is not a RoundTrainer (sparring.trainers.base)")
    return found


def make_trainer(name: str, ctx: RunContext, r: int) -> RoundTrainer:
    return trainer_class(name).for_round(ctx, r)
