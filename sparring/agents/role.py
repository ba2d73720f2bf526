"""A role around the solver: the hooks the self-play loop calls at fixed points of a round.

A role (the proposer, the skill library, the verifiers, the reflector) is built from the run context and the env
(`Role(ctx, env)`), owns its state and its files, and is called by the loop through `sparring.agents.roles.Roles`
in a fixed order. Every hook has a default that does nothing, so a role overrides only the ones it needs:

    begin(r)                          its state as round r starts (round 0: fresh; else what round r - 1 saved)
    demonstrations(demos)             round 0: the expert's demonstrations before the solver learns from them
    bootstrap(groups, tokenizer)      round 0: its model learns its format from the bootstrapped solver's attempts
    tasks(r, records)                 the round's task records, changed (the proposer's share, skill chains)
    prompt(tasks, evaluation)         what the solver is shown with each task (a Solver prompt hook)
    rollout(...)                      the solver's attempts, when the role plays them itself (SAGE's chains)
    trainer_hooks(tasks)              what a trainer that samples while it trains (GRPO) is given
    after_collect(r, records, groups, tokenizer)   verify, measure, reflect on the round's attempts
    train(r)                          its own model trained on the round's data (`train_own_model`)
    finish(r)                         its files of round r saved
    save(folder) / load(folder, saved)   its state inside a round, for a resumed round

Each hook that measures something returns its metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from sparring.context import RunContext
from sparring.envs.base import TextEnv
from sparring.policies.policy import Policy, Prompt, SamplingParams
from sparring.trainers.sft import SFTSettings
from sparring.trajectories import Trajectory

PromptHook = Callable[[Trajectory, str], Prompt]
Groups = list[list[Trajectory]]
Record = dict[str, Any]   # a line of tasks.jsonl: {"task": {...}, "source": "generator", ...}
T = TypeVar("T")


@dataclass
class Collected:
    """What the roles add to a round's attempts after the solver played."""
    metrics: dict[str, float] = field(default_factory=dict)
    verified: list[bool] | None = None  # the flags of the verifier in use, one per attempt (None: the env's verdicts)
    extra: list[Trajectory] = field(default_factory=list)   # trajectories that train as they are
    kept: list[Trajectory] = field(default_factory=list)    # saved with the round's trajectories (refined attempts)

    def add(self, other: Collected) -> None:
        self.metrics.update(other.metrics)
        self.verified = other.verified if other.verified is not None else self.verified
        self.extra += other.extra
        self.kept += other.kept


class Damaged(Exception):
    """A role's saved file that cannot be read: `name` the file in the stage's folder, `detail` what is wrong
    (None: it is missing)."""

    def __init__(self, name: str, detail: str | None):
        super().__init__(f"{name}: {detail or 'missing'}")
        self.name, self.detail = name, detail


def read_saved(folder: Path, name: str, read: Callable[[Path], T]) -> T:
    """`read(folder / name)`, any failure a `Damaged` naming the file."""
    path = folder / name
    if not path.exists():
        raise Damaged(name, None)
    try:
        return read(path)
    except (OSError, ValueError, TypeError, KeyError) as error:  # pyarrow's errors are ValueErrors and OSErrors
        raise Damaged(name, " ".join(str(error).split())) from None


def expect(saved: dict[str, Any], **shapes: type) -> dict[str, Any]:
    """`saved` when each key has the type given, else a ValueError naming each one that does not."""
    wrong = [f"{key!r} must be a {kind.__name__}" for key, kind in shapes.items() if not isinstance(saved.get(key), kind)]
    if wrong:
        raise ValueError("not the state this role saves: " + ", ".join(wrong))
    return saved


class Role:
    """A role's hooks, each doing nothing by default. `name`: its key in a stage's saved state; `model`: the name
    of its own model's checkpoints (`checkpoints/<model>-NNN`), empty for a role without a model."""

    name: ClassVar[str] = ""
    model: ClassVar[str] = ""

    def __init__(self, ctx: RunContext, env: TextEnv):
        self.ctx, self.config, self.env = ctx, ctx.config, env
        self.examples: list[dict[str, str]] = []  # its own model's training data of the round

    @classmethod
    def wanted(cls, config: Any) -> bool:
        """Whether `config` (the run's `SelfPlayConfig`, a layer above the roles) turns this role on."""
        return False

    # ---- its own model --------------------------------------------------------------------------
    @property
    def own_model(self) -> bool:
        """True when the role plays with a model of its own, trained in the loop (else the solver's, prompted)."""
        return False

    @property
    def bootstrap_tasks(self) -> int:
        """Round 0: how many tasks' solver attempts its bootstrap reads (`bootstrap`'s groups)."""
        return 0

    def sft(self, r: int) -> SFTSettings:
        """How its own model trains in round `r` (0: its bootstrap)."""
        raise NotImplementedError(f"the {self.name} role has no model of its own")

    def checkpoint(self, r: int) -> Path:
        """The model the role plays with after round `r`: its own, or the solver's."""
        return self.ctx.run.checkpoint(f"{self.model}-{r:03d}" if self.own_model else f"round-{r:03d}")

    # ---- the hooks --------------------------------------------------------------------------------
    def begin(self, r: int) -> None:
        """The role's state as round `r` starts: round 0's, or what round r - 1 saved (`finish`)."""
        self.examples = []

    def demonstrations(self, demos: list[Trajectory]) -> list[Trajectory]:
        return demos

    def bootstrap(self, groups: Groups, tokenizer: Any) -> dict[str, float]:
        """Round 0, once the solver's round-000 checkpoint is saved: `groups`, the bootstrapped solver's attempts at
        the roles' bootstrap tasks (the first `bootstrap_tasks` of them are this role's)."""
        return {}

    def tasks(self, r: int, records: list[Record]) -> tuple[list[Record], dict[str, float]]:
        return records, {}

    def prompt(self, tasks: list[dict[str, Any]], evaluation: bool) -> PromptHook | None:
        return None

    def rollout(self, sampler: Policy, tasks: list[dict[str, Any]], k: int, params: SamplingParams, r: int,
                on_turn: Callable[[int, int], None] | None, folder: Path
                ) -> tuple[list[Trajectory], dict[str, float]] | None:
        """The solver's `k` attempts at every task of the round, when this role plays them (None: it does not)."""
        return None

    def trainer_hooks(self, tasks: list[dict[str, Any]]) -> dict[str, Any]:
        return {}

    def after_collect(self, r: int, records: list[Record], groups: Groups, tokenizer: Any) -> Collected:
        """After the solver's attempts (`groups`: k a task, in the order of `records`)."""
        return Collected()

    def train(self, r: int) -> dict[str, float]:
        """Its own model trained on the round's `examples` (nothing without one)."""
        if not self.own_model:
            return {}
        return train_own_model(self.ctx, self.model, r, self.examples, self.sft(r), self.checkpoint(r - 1))

    def finish(self, r: int) -> dict[str, float]:
        return {}

    def save(self, folder: Path) -> dict[str, Any]:
        """Its state inside a round: files written into `folder`, and the JSON part returned."""
        return {"examples": self.examples}

    def load(self, folder: Path, saved: dict[str, Any]) -> None:
        """Its state as `save` left it: a ValueError when `saved` is not what `save` returns, a `Damaged` when
        one of its files in `folder` is missing or damaged."""
        self.examples = expect(saved, examples=list)["examples"]


def train_own_model(ctx: RunContext, model_name: str, r: int, examples: list[dict[str, str]], settings: SFTSettings,
                    previous: Path) -> dict[str, float]:
    """Fine-tune the role model `model_name` of round r - 1 (`previous`; round 0: the bootstrapped solver) on
    `examples` and save it as `checkpoints/<model_name>-NNN`. A resumed stage keeps the models it finished."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sparring.context import save_checkpoint
    from sparring.trainers.sft import fitting, supervised_finetune

    records = ctx.records(r)
    done = records.get(f"{model_name}-training")
    if done is not None:
        return done
    start = ctx.run.checkpoint("round-000") if r == 0 else previous
    model, tokenizer = AutoModelForCausalLM.from_pretrained(start), AutoTokenizer.from_pretrained(start)
    examples = fitting(examples, model, tokenizer)  # a prompt with long reflections may not fit a small model
    metrics: dict[str, float] = {f"{model_name}/examples": len(examples)}
    if examples:
        out = supervised_finetune(model, tokenizer, examples, settings, ctx.trainer_dir(r, model_name),
                                  seed=ctx.seeds.round(r), callbacks=[ctx.bars.steps(f"{model_name}: training", settings.steps)])
        metrics[f"{model_name}/loss"] = out["train/loss"]
    save_checkpoint(model, tokenizer, ctx.run.checkpoint(f"{model_name}-{r:03d}"))
    records.record(f"{model_name}-training", metrics)
    return metrics
