"""The self-play loop: tasks -> solve -> verify -> train -> evaluate, round after round, resumable.

    sparring selfplay                                   # the embedded default (configs/countdown-ei.yaml)
    sparring selfplay --config configs/countdown-grpo.yaml expert_iteration.k=8 --run-dir runs/x
    sparring selfplay --run-dir runs/x --resume         # after a crash or a kill -9
    sparring selfplay executor.kind=ray                 # episodes on Ray workers (sparring.executors)

Round 0 bootstraps the policy (for the tiny model: supervised training on the expert's
demonstrations until more steps stop helping). Each later round draws fresh training tasks, runs the
trainer (expert iteration or GRPO) and evaluates greedy success on a held-out split. A round is a row
of stages (sparring/stages.py), each recorded in rounds/NNN/stages/ when it finishes; a round is finished
when its line is in `metrics.jsonl`. Everything is written atomically, so `--resume` continues at the
first unfinished stage and never reads a half-written file.

Run directory:
    config.yaml                     the resolved config
    rounds/NNN/tasks.jsonl          {"task": {...}, "source": "generator"} per line ("proposer", "curriculum", "chain"
                                    for the agents' tasks, see sparring/agents/team.py)
    rounds/NNN/proposals.jsonl      every proposal of the policy proposer: text, label, verdict, pass rate
    rounds/NNN/skills.jsonl         the skill library after round NNN (skills.jsonl: the latest)
    rounds/NNN/reflections.jsonl    the reflection memory after round NNN
    rounds/NNN/trajectories/        the round's trajectories (Parquet, a `datasets` dataset)
    rounds/NNN/stages/STAGE.json    a finished stage's record: its metrics (README: the run directory, stage by stage)
    rounds/NNN/sampling/            the sampling stage's parts and search-kept/, until the training is recorded
                                    (with skills: skills-position-P, the chains' last position played)
    rounds/NNN/agents/STAGE/        with the agents on: their state as STAGE left it, for a resumed round
                                    (skills.jsonl, reflections.jsonl, state.json, extra/; sparring/agents/team.py)
    tmp-trainer/NNN-NAME/           a training's own checkpoints while it runs
    rounds/NNN/eval-trajectories/   the round's held-out evaluation episodes (meta "eval": the eval set)
    checkpoints/round-NNN/          the policy after round NNN (control-NNN: the control's; proposer-NNN,
                                    reflector-NNN, judge-NNN: the agents' own models)
    metrics.jsonl                   one JSON object per round: "round", "eval/success", the mean of each numeric
                                    verdict detail ("eval/details/spl" for TextNav), timings, trainer and agent metrics
    curves.png                      held-out success per round, redrawn every round
    report.html                     the run's page (sparring/report.py): metrics, plots, trajectories, config
    tensorboard/, wandb/            with logging.report_to (sparring/tracking.py)
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gymnasium

import sparring.envs  # noqa: F401  (registers the environments)
from sparring.agents.proposer import ProposerConfig
from sparring.agents.reflector import ReflectorConfig
from sparring.agents.skills import SkillsConfig
from sparring.policies.tiny import TinyModelConfig
from sparring.agents.verifiers import VerifierConfig
from sparring.config import dump_yaml, load_config
from sparring.envs.base import check_choice
from sparring.envs.catalog import draw_tasks
from sparring.errors import SparringError
from sparring.executors import ExecutorConfig, make_executor
from sparring.seeds import Seeds, Stream
from sparring.io import append_jsonl, atomic_dir, atomic_write_text, read_jsonl
from sparring.stages import PART_TASKS, RoundRecords
from sparring.tracking import LoggingConfig, Tracker
from sparring.trainers.bootstrap import BootstrapConfig
from sparring.trainers.expert_iteration import ExpertIterationConfig
from sparring.trainers.dpo import DPOSettings
from sparring.trainers.grpo import GRPOSettings
from sparring.trainers.lora import LoRASettings

ALGORITHMS = ("expert_iteration", "grpo", "dpo")


@dataclass
class EnvConfig:
    id: str = "Countdown-v0"       # the env id (sparring envs lists them)
    # env arguments (sparring envs ENV_ID lists them) for training and the held-out evaluation
    kwargs: dict[str, Any] = field(default_factory=lambda: {"difficulty": "easy", "max_number": 20, "min_target": 1,
                                                            "instruction": "compact"})
    eval_split: str = "test-seen"  # the held-out split: tasks never in training
    # more splits evaluated every round (greedy), reported as eval/<split>/success
    extra_eval_splits: list[str] = field(default_factory=lambda: ["test-unseen"])
    eval_tasks: int = 500          # held-out tasks per evaluated split
    max_turns: int = 32            # turn cap of a multi-turn episode
    # easy-to-hard runs: what the expert demonstrates (bootstrap, its development set, the control) and what
    # each round trains on can differ from `kwargs`, which the held-out evaluation uses; each is a dict of
    # overrides of `kwargs`. `curriculum[i]` sets round i + 1's training tasks (the last one repeats).
    bootstrap_kwargs: dict[str, Any] = field(default_factory=dict)
    curriculum: list[dict[str, Any]] = field(default_factory=list)  # round i + 1's training tasks: curriculum[i]
    # more held-out evaluations every round: name -> overrides of `kwargs` (greedy, on `eval_split`),
    # reported as eval/<name>/success with its 95% interval
    eval_sets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from sparring.envs.catalog import env_class

        env_class(self.id)  # a mistyped id is named first, with the closest one
        for name, value in [("env.bootstrap_kwargs", self.bootstrap_kwargs), *[
                (f"env.curriculum[{i}]", c) for i, c in enumerate(self.curriculum)], *[
                (f"env.eval_sets.{k}", v) for k, v in self.eval_sets.items()]]:
            if not isinstance(value, dict):
                raise ValueError(f"{name} must be a mapping of env kwargs overrides (e.g. {{num_numbers: 3}}), "
                                 f"got {value!r}")


GENERATION = ("hf", "vllm", "openai")


@dataclass
class PolicyConfig:
    backend: str = "tiny"  # tiny (created in the run directory), or hf: the checkpoint at `path`
    path: str | None = None  # hf: a checkpoint folder, or a Hugging Face model id (the local cache, downloaded where allowed)
    generation: str = "hf"  # what samples and evaluates: hf, vllm (offline engine), openai (a vLLM server we start)
    max_tokens: int = 40           # tokens per completion (per action in multi-turn envs)
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)  # backend tiny: the model's shape
    server_host: str = "127.0.0.1"  # openai: where the server listens; 0.0.0.0 lets Ray workers on other machines in
    server_args: list[str] = field(default_factory=list)  # openai: more `vllm serve` arguments (they win)
    # the rounds' trainers (expert iteration, GRPO, DPO) train a LoRA adapter, saved in checkpoints/round-NNN/adapter
    # and merged into the checkpoint's weights (the bootstrap trains every weight)
    lora: LoRASettings = field(default_factory=LoRASettings)

    def __post_init__(self) -> None:
        check_choice("policy.backend for self-play training", self.backend, ("tiny", "hf"))
        check_choice("policy.generation", self.generation, GENERATION)
        if self.backend == "hf" and not self.path:
            raise ValueError("policy.backend 'hf' needs policy.path: a checkpoint folder or a Hugging Face model id")
        if self.generation != "openai" and (self.server_host != "127.0.0.1" or self.server_args):
            raise ValueError(f"policy.server_host and policy.server_args set the vLLM server of policy.generation="
                             f"'openai', but policy.generation is {self.generation!r}: set it to 'openai' or drop them")
        if not all(isinstance(a, str) for a in self.server_args):
            raise ValueError("policy.server_args must be a list of strings (vllm serve arguments), got "
                             f"{self.server_args!r}")


@dataclass
class EvalConfig:
    k: int = 4  # pass@k from k samples per held-out task
    temperature: float = 1.0       # sampling temperature of the pass@k samples (greedy success is at 0)


@dataclass
class SelfPlayConfig:
    seed: int = 0                  # seeds the tasks, the tiny model's weights, sampling and training
    threads: int = 2               # torch CPU threads
    rounds: int = 4                # self-play rounds after round 0 (the bootstrap)
    tasks_per_round: int = 3000    # fresh training tasks each round
    algorithm: str = "expert_iteration"  # the trainer: expert_iteration, grpo or dpo
    control: bool = False  # also spend each round's training steps on fresh expert demonstrations, from round 0
    env: EnvConfig = field(default_factory=EnvConfig)  # the env, its held-out evaluation and (easy-to-hard) curriculum
    policy: PolicyConfig = field(default_factory=PolicyConfig)  # the model that is trained, and what generates with it
    # round 0: supervised training on the expert's demonstrations until a plateau
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    # sample k per task, keep what verifies, fine-tune (ReST-EM / STaR)
    expert_iteration: ExpertIterationConfig = field(default_factory=ExpertIterationConfig)
    # GRPO on TRL's GRPOTrainer with the env's verdicts as rewards
    grpo: GRPOSettings = field(default_factory=GRPOSettings)
    # DPO on TRL's DPOTrainer, on pairs of the round's own attempts (sampled as expert_iteration.k, temperature say)
    dpo: DPOSettings = field(default_factory=DPOSettings)
    eval: EvalConfig = field(default_factory=EvalConfig)  # held-out evaluation every round
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)  # where solver episodes run: local or ray
    # the agents around the solver (sparring/agents/team.py); all off by default
    proposer: ProposerConfig = field(default_factory=ProposerConfig)  # tasks written at the solver's frontier
    # what decides which attempts count as correct (env, majority vote, judge model)
    verifier: VerifierConfig = field(default_factory=VerifierConfig)
    # reflections on failed attempts and revised attempts kept when they verify
    reflector: ReflectorConfig = field(default_factory=ReflectorConfig)
    skills: SkillsConfig = field(default_factory=SkillsConfig)  # a library of verified skills shown with the tasks
    logging: LoggingConfig = field(default_factory=LoggingConfig)  # experiment trackers (TensorBoard, Trackio, W&B)

    def __post_init__(self) -> None:
        check_choice("algorithm", self.algorithm, ALGORITHMS)
        if self.executor.kind == "ray" and self.policy.generation == "vllm":
            raise ValueError("executor.kind=ray with policy.generation=vllm would start one vLLM engine per Ray "
                             "worker; set policy.generation=openai: the loop then starts one vLLM server per "
                             "checkpoint and every worker shares it")
        if (self.executor.kind == "ray" and self.executor.address is not None and self.policy.generation == "openai"
                and self.policy.server_host.startswith("127.")):
            raise ValueError(f"executor.address={self.executor.address!r} runs workers on other machines, which cannot "
                             f"reach a vLLM server on loopback (policy.server_host={self.policy.server_host!r}); set "
                             "policy.server_host=0.0.0.0")
        if self.algorithm == "grpo" and self.verifier.use != "programmatic":
            raise ValueError(f"verifier.use {self.verifier.use!r} decides what expert iteration keeps; GRPO's rewards "
                             "are the env's verdicts: use algorithm=expert_iteration, or list it in verifier.measure")
        if self.algorithm == "grpo" and self.reflector.enabled:
            raise ValueError("reflector.enabled adds refined attempts to supervised training data: it needs "
                             "algorithm=expert_iteration")
        if self.algorithm == "dpo":
            if self.reflector.enabled or self.expert_iteration.search or self.expert_iteration.tree_search:
                raise ValueError("reflector.enabled, expert_iteration.search and expert_iteration.tree_search add "
                                 "supervised examples: they need algorithm=expert_iteration, not dpo")
            if (self.dpo.pairs_from == "judge") != (self.verifier.use == "judge"):
                raise ValueError(f"dpo.pairs_from={self.dpo.pairs_from!r} with verifier.use={self.verifier.use!r}: "
                                 "pairs from the judge need verifier.use=judge, and the judge's verdicts are only "
                                 "used as dpo.pairs_from=judge (verdict and majority need no verifier)")
        if self.expert_iteration.guided != "none":
            from sparring.trainers.expert_iteration import check_guidance

            if self.algorithm != "expert_iteration":
                raise ValueError(f"expert_iteration.guided={self.expert_iteration.guided!r} adds guided traces to "
                                 f"expert iteration's training data: it needs algorithm=expert_iteration, not "
                                 f"{self.algorithm}")
            check_guidance(gymnasium.make(self.env.id, **self.env.kwargs).unwrapped, self.env.id,
                           self.expert_iteration.guided)
            if self.expert_iteration.guided == "prefix" and self.policy.generation == "openai":
                raise ValueError("expert_iteration.guided=prefix writes the start of the answer into the rendered "
                                 "prompt, which needs the tokenizer in this process: use policy.generation hf or vllm")
        trained = [self.env.kwargs, {**self.env.kwargs, **self.env.bootstrap_kwargs},
                   *[{**self.env.kwargs, **c} for c in self.env.curriculum]]
        if self.env.id == "CodeRepair-v0" and any(
                gymnasium.make(self.env.id, **kwargs).unwrapped.config.source == "HumanEval-v0" for kwargs in trained):
            raise ValueError("CodeRepair-v0 with source HumanEval-v0 has no training tasks: HumanEval's 164 problems "
                             "are one held-out set, and every split repairs the same ones (so training tasks would be "
                             "the held-out tasks, and guided hints come from their reference solutions). Train on "
                             "source CodeSynth-v0 and evaluate HumanEval through env.eval_sets, e.g. "
                             "{humaneval: {source: HumanEval-v0}}")
        if self.bootstrap.demonstrations != "optimal" and self.env.id != "Countdown-v0":
            raise ValueError(f"bootstrap.demonstrations {self.bootstrap.demonstrations!r} exist for Countdown-v0 only, "
                             f"not {self.env.id}: set bootstrap.demonstrations=optimal")
        for name in ("rounds", "tasks_per_round", "threads"):
            if getattr(self, name) < (0 if name == "rounds" else 1):
                raise ValueError(f"{name} must be >= {0 if name == 'rounds' else 1}, got {getattr(self, name)}")


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

    def __init__(self, console: Any):
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


class SelfPlay:
    """One run of the loop over a run directory."""

    def __init__(self, config: SelfPlayConfig, run_dir: str | Path, *, console: Any = None):
        from rich.console import Console

        self.config, self.run, self.seeds = config, RunDir(run_dir), Seeds(config.seed)
        self.console = console or Console()
        self.bars = Bars(self.console)
        self.executor = None  # run_rounds opens config.executor; None plays episodes here
        self.tracker: Tracker | None = None  # run_rounds opens config.logging's trackers
        self.eval_episodes: list[Any] = []  # the round's held-out episodes, saved with the round
        cfg = config
        self.env_id, self.env_kwargs = cfg.env.id, dict(cfg.env.kwargs)
        self.expert_kwargs = {**self.env_kwargs, **cfg.env.bootstrap_kwargs}  # what expert demonstrations cover
        # key prefix -> (env kwargs, tasks, main): the held-out split, the extra splits, the named eval sets
        self.eval_sets: dict[str, tuple[dict[str, Any], list[dict[str, Any]], bool]] = {}
        for split in [cfg.env.eval_split, *cfg.env.extra_eval_splits]:
            main = split == cfg.env.eval_split
            self.eval_sets["" if main else split] = (
                self.env_kwargs, draw_tasks(self.env_id, self.env_kwargs, split, *self.seeds.eval_tasks(), cfg.env.eval_tasks), main)
        for name, overrides in cfg.env.eval_sets.items():
            kwargs = {**self.env_kwargs, **overrides}
            self.eval_sets[name] = (kwargs, draw_tasks(self.env_id, kwargs, cfg.env.eval_split, *self.seeds.eval_tasks(),
                                                       cfg.env.eval_tasks), False)
        from sparring.agents.team import AgentTeam

        self.team = AgentTeam(self) if AgentTeam.wanted(cfg) else None

    # ---- bookkeeping ------------------------------------------------------------------------------
    def finished_rounds(self) -> list[dict[str, Any]]:
        return read_jsonl(self.run.metrics)

    def start(self, resume: bool) -> None:
        done = self.run.metrics.read_text().split("\n") if self.run.metrics.exists() else []
        if any(line.strip() for line in done) and not resume:
            raise SparringError(f"{self.run.root} already holds {sum(bool(line.strip()) for line in done)} finished "
                                "round(s): pass --resume to continue it, or choose a new --run-dir")
        if not resume and next(self.run.root.glob("rounds/*/stages/*.json"), None):
            raise SparringError(f"{self.run.root} holds a run that was stopped inside round 0 (rounds/000/stages): "
                                "pass --resume to continue it, or choose a new --run-dir")
        if resume and self.run.config.exists():
            check_resume(self.run.config, self.config)
        for old in self.run.root.rglob(".*.old"):  # killed between atomic_dir's two renames: the folder is here
            if not old.with_name(old.name[1:-4]).exists():
                os.replace(old, old.with_name(old.name[1:-4]))
        leftovers = [*self.run.root.rglob(".*.tmp*"), *self.run.root.rglob(".*.old")]  # from a writer that was killed
        for leftover in sorted(leftovers, reverse=True):
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        if resume:
            self.check_run_dir()
        atomic_write_text(self.run.config, dump_yaml(self.config))

    def check_run_dir(self) -> None:
        """Before a resume: what the finished rounds left must be whole, else stop and say what to delete; the
        unfinished round's stages are checked against their files, and redone from the first one whose files
        are damaged. A cut-short last line of metrics.jsonl is dropped (the round is rebuilt from its records)."""
        from sparring.stages import checkpoint_problem, repair_metrics, stage_order

        rows, note = repair_metrics(self.run.metrics)
        if note:
            self.console.print(f"[bold yellow]repaired:[/bold yellow] {note}")
        n, roles = len(rows), [role for role in ("proposer", "reflector", "judge") if self.team and self.team.own_model(role)]

        def outputs(r: int, stage: str) -> list[Path]:
            """The checkpoints stage `stage` of round `r` leaves."""
            names = {"bootstrap": ["round-000"], "training": [f"round-{r:03d}"], "control": [f"control-{r:03d}"],
                     "agents_bootstrap": [f"{role}-000" for role in roles], "agents": [f"{role}-{r:03d}" for role in roles]}
            return [self.run.checkpoint(name) for name in names.get(stage, [])]

        if n and n <= self.config.rounds:  # the next round starts from the last finished one's checkpoints
            last, problems = n - 1, []
            stages = [s for s in stage_order(last) if s != "control" or self.config.control]
            for path in ([self.run.checkpoint("round-000")] if last else []) + [p for s in stages for p in outputs(last, s)]:
                problem = checkpoint_problem(path)
                if problem:
                    problems.append(f"{path.relative_to(self.run.root)}: {problem}")
            if problems:
                raise SparringError(f"{self.run.root} cannot continue: {'; '.join(problems)}. Round {n} starts from "
                                    f"these. Restore them, or redo the round that saved them: delete its line and every "
                                    f"later one from metrics.jsonl and those rounds' rounds/NNN/stages folders")
        for r in range(1, n):
            tasks = self.run.round_dir(r) / "tasks.jsonl"
            if tasks.exists():
                continue
            if self.team:
                raise SparringError(f"{tasks.relative_to(self.run.root)} is missing, but round {r} finished: its "
                                    "tasks came from the agents and cannot be drawn again. Restore it, or delete the "
                                    f"lines of round {r} and later from metrics.jsonl and their rounds/NNN/stages "
                                    "folders to redo those rounds")
            drawn = draw_tasks(self.env_id, self.round_kwargs(r), "train", *self.seeds.train_tasks(r),
                               self.config.tasks_per_round)
            atomic_write_text(tasks, "".join(json.dumps({"task": t, "source": "generator"}) + "\n" for t in drawn))
            self.console.print(f"[bold yellow]repaired:[/bold yellow] {tasks.relative_to(self.run.root)} was missing; "
                               "drawn again from the generator (the same seed gives the same tasks)")
        records = self.records(n)
        for stage in records.finished():
            bad = [f"{p.relative_to(self.run.root)}: {problem}" for p in outputs(n, stage)
                   if (problem := checkpoint_problem(p))]
            if stage == "tasks" and not (self.run.round_dir(n) / "tasks.jsonl").exists():
                bad.append(f"rounds/{n:03d}/tasks.jsonl is missing")
            if stage == "sampling" and self.config.algorithm == "expert_iteration" and not any(
                    (self.run.round_dir(n) / "trajectories").glob("*.parquet")):
                bad.append(f"rounds/{n:03d}/trajectories holds no episodes")
            if self.team and (problem := self.team.stage_problem(n, stage)):
                bad.append(problem)  # the agents' state this stage left (a run of an older version has none)
            if bad:
                records.drop_from(stage)
                self.console.print(f"[bold yellow]repaired:[/bold yellow] round {n}'s stage {stage!r} finished but "
                                   f"{'; '.join(bad)}: it runs again, and the stages after it")
                break

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

    # ---- phases -----------------------------------------------------------------------------------
    def base_checkpoint(self) -> Path:
        cfg = self.config.policy
        if cfg.backend == "hf":
            from sparring.policies.hf import check_checkpoint

            return check_checkpoint(cfg.path)
        path = self.run.checkpoint("base")
        if not (path / "config.json").exists():
            from sparring.policies.tiny import save_tiny_model

            save_tiny_model(path, TinyModelConfig(**{**cfg.tiny.__dict__, "seed": self.seeds.bootstrap()}))
        return path

    def evaluate(self, policy: Any, prefix: str = "eval") -> dict[str, float]:
        from sparring.evaluation import evaluate

        cfg, out = self.config, {}
        for name, (kwargs, tasks, main) in self.eval_sets.items():
            k = cfg.eval.k if main else 1
            result = evaluate(policy, self.env_id, kwargs, tasks, k=k, executor=self.executor,
                              temperature=cfg.eval.temperature, max_tokens=cfg.policy.max_tokens,
                              max_turns=cfg.env.max_turns, seed=self.seeds.evaluation(),
                              prompt=self.team.eval_prompt(tasks) if self.team else None,
                              on_turn=self.bars.episodes(f"{prefix} on {name or cfg.env.eval_split}",
                                                         len(tasks) * (1 + (k > 1) * k)))
            key = prefix if main else f"{prefix}/{name}"
            self.eval_episodes += [replace(t, meta={**t.meta, "eval": key}) for t in result.episodes]
            out[f"{key}/success"] = result.success
            out.update({f"{key}/details/{detail}": value for detail, value in result.details.items()})  # e.g. SPL
            if main or name in cfg.env.eval_sets:
                out[f"{key}/success_low"], out[f"{key}/success_high"] = result.success_low, result.success_high
            if main and result.pass_at_k is not None:
                out[f"{key}/pass@{result.k}"] = result.pass_at_k
        return out

    def round_kwargs(self, r: int) -> dict[str, Any]:
        """The env kwargs of round `r`'s training tasks: `env.kwargs` under the curriculum's entry for `r`."""
        curriculum = self.config.env.curriculum
        return {**self.env_kwargs, **curriculum[min(r, len(curriculum)) - 1]} if curriculum and r > 0 else self.env_kwargs

    def expert_examples(self, tokenizer: Any, stream: Stream, n: int) -> list[dict[str, str]]:
        from sparring.trainers.bootstrap import expert_demonstrations
        from sparring.trainers.sft import sft_examples

        tasks = draw_tasks(self.env_id, self.expert_kwargs, "train", *stream, n)
        demos = expert_demonstrations(self.env_id, self.expert_kwargs, tasks, self.config.bootstrap.demonstrations)
        if self.team:  # with skills: demonstrations show the skills retrieved for their tasks
            demos = self.team.decorate_demonstrations(demos)
        return sft_examples(demos, tokenizer)

    def bootstrap(self, base: Path) -> tuple[Any, Any, dict[str, Any]]:
        """Round 0: supervised training on expert demonstrations until a plateau on a development set."""
        from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

        from sparring.policies.hf import HFPolicy
        from sparring.evaluation import evaluate
        from sparring.trainers.sft import supervised_finetune

        cfg, boot = self.config, self.config.bootstrap
        model, tokenizer = AutoModelForCausalLM.from_pretrained(base), AutoTokenizer.from_pretrained(base)
        if not boot.enabled:
            return model, tokenizer, {}
        n = min(boot.sft.steps * boot.sft.batch_size, 200_000)
        examples = self.expert_examples(tokenizer, self.seeds.train_tasks(0), n)
        dev = draw_tasks(self.env_id, self.expert_kwargs, "train", *self.seeds.dev_tasks(boot.dev_tasks), boot.dev_tasks)
        curve: list[tuple[int, float]] = []
        loop, output_dir = self, self.trainer_dir(0, "bootstrap")
        saved_curve = output_dir / "curve.json"  # the development curve so far, for a resumed bootstrap

        class Plateau(TrainerCallback):
            def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                if state.global_step and saved_curve.exists():  # resumed: the curve up to the trainer's checkpoint
                    curve[:] = [(step, s) for step, s in json.loads(saved_curve.read_text()) if step <= state.global_step]

            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                if state.global_step % boot.eval_every:
                    return
                policy = HFPolicy(model=kwargs["model"], tokenizer=tokenizer)
                success = evaluate(policy, loop.env_id, loop.expert_kwargs, dev, max_tokens=cfg.policy.max_tokens,
                                   max_turns=cfg.env.max_turns,
                                   prompt=loop.team.eval_prompt(dev) if loop.team else None).success
                kwargs["model"].train()
                curve.append((state.global_step, success))
                atomic_write_text(saved_curve, json.dumps(curve))
                loop.console.print(f"  bootstrap step {state.global_step}: development success {success:.3f}")
                best_before = max((s for _, s in curve[:-boot.patience]), default=-1.0)
                if len(curve) > boot.patience and max(s for _, s in curve[-boot.patience:]) < best_before + boot.min_delta:
                    control.should_training_stop = True

        metrics = supervised_finetune(model, tokenizer, examples, boot.sft, output_dir, seed=self.seeds.bootstrap(),
                                      callbacks=[Plateau(), self.bars.steps("bootstrap: training on expert demonstrations",
                                                                            boot.sft.steps)])
        return model, tokenizer, {**metrics, "bootstrap/curve": curve, "bootstrap/examples": len(examples)}

    def control_round(self, r: int, tokenizer: Any, steps_settings: Any) -> dict[str, float]:
        """The control: the round's training steps spent on fresh expert demonstrations instead of self-play."""
        from transformers import AutoModelForCausalLM

        from sparring.trainers.sft import supervised_finetune

        start = time.perf_counter()
        previous = self.run.checkpoint(f"control-{r - 1:03d}" if r > 1 else "round-000")
        model = AutoModelForCausalLM.from_pretrained(previous)
        n = steps_settings.steps * steps_settings.batch_size
        examples = self.expert_examples(tokenizer, self.seeds.control_tasks(r), n)
        supervised_finetune(model, tokenizer, examples, steps_settings, self.trainer_dir(r, "control"),
                            seed=self.seeds.control(r), callbacks=[self.bars.steps("control: expert demonstrations",
                                                                                  steps_settings.steps)])
        checkpoint = self.run.checkpoint(f"control-{r:03d}")
        save_checkpoint(model, tokenizer, checkpoint)
        metrics = self.evaluate_checkpoint(r, checkpoint, prefix="control/eval")
        metrics["time/control_s"] = time.perf_counter() - start
        return metrics

    # ---- stages -----------------------------------------------------------------------------------
    def records(self, r: int) -> RoundRecords:
        return RoundRecords(self.run.round_dir(r), r)

    def trainer_dir(self, r: int, name: str) -> Path:
        """Where one training of round `r` keeps the trainer's checkpoints until it finishes; a training that was
        killed continues from them (sparring.trainers.sft.last_checkpoint)."""
        return self.run.root / "tmp-trainer" / f"{r:03d}-{name}"

    def stage(self, r: int, name: str, work: Callable[[], dict[str, Any]],
              state: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run stage `name` of round `r` unless its record says it finished; record its metrics when it does (with
        the agents on, after the team's state that later stages read: `AgentTeam.save_stage`; `state`: what the
        round passes between its stages)."""
        records = self.records(r)
        done = records.get(name)
        if done is not None:
            return done
        self.seed_everything(r)  # the same random state whether the round got here in one go or resumed
        metrics = work()
        if self.team:
            from sparring.agents.team import STATEFUL

            if name in STATEFUL:
                self.team.save_stage(r, name, state if state is not None else {})
        records.record(name, metrics)
        return metrics

    def round_zero(self) -> dict[str, Any]:
        """Round 0: bootstrap -> the agents' bootstrap -> evaluation, each stage recorded."""
        from transformers import AutoTokenizer

        checkpoint = self.run.checkpoint("round-000")
        if self.team:  # resumed: the team as the last finished stage left it
            self.team.resume(0, self.records(0).finished(), {})

        def bootstrap() -> dict[str, Any]:
            start = time.perf_counter()
            model, tokenizer, metrics = self.bootstrap(self.base_checkpoint())
            metrics["time/train_s"] = time.perf_counter() - start
            save_checkpoint(model, tokenizer, checkpoint)
            return metrics

        metrics = self.stage(0, "bootstrap", bootstrap)
        if self.team:  # the agents' models learn their formats; the skill library is saved
            def agents() -> dict[str, Any]:
                start = time.perf_counter()
                out = self.team.bootstrap(AutoTokenizer.from_pretrained(checkpoint))
                out["time/agents_bootstrap_s"] = time.perf_counter() - start
                return out
            metrics.update(self.stage(0, "agents_bootstrap", agents))
        metrics.update(self.stage(0, "eval", lambda: self.evaluate_checkpoint(0, checkpoint)))
        return metrics

    def evaluate_checkpoint(self, r: int, checkpoint: Path, prefix: str = "eval") -> dict[str, Any]:
        start = time.perf_counter()
        with self.generating(checkpoint) as policy:  # the saved weights, whether this process trained them or not
            metrics = self.evaluate(policy, prefix)
        if prefix == "eval":
            self.save_eval_episodes(r)  # with the stage: a resumed round does not evaluate again
        metrics[f"time/{'eval' if prefix == 'eval' else 'control'}_s"] = time.perf_counter() - start
        return metrics

    def train_round(self, r: int) -> dict[str, Any]:
        """Round r: tasks -> sampling -> training -> evaluation -> control -> the agents' training, each stage
        recorded (sparring/stages.py). With the agents on, the stages that change the team's state leave it in
        rounds/NNN/agents/<stage>/ (`AgentTeam.save_stage`): a resumed round loads it instead of running them again."""
        from transformers import AutoTokenizer

        cfg, team = self.config, self.team
        round_kwargs, round_dir = self.round_kwargs(r), self.run.round_dir(r)
        previous, checkpoint = self.run.checkpoint(f"round-{r - 1:03d}"), self.run.checkpoint(f"round-{r:03d}")
        tokenizer = AutoTokenizer.from_pretrained(previous)
        state: dict[str, Any] = {}  # what the agents pass between stages: the verifier's flags, extra trajectories
        if team:  # resumed: the team (and `state`) as the last finished stage left them
            team.resume(r, self.records(r).finished(), state)

        def draw() -> dict[str, Any]:
            tasks = draw_tasks(self.env_id, round_kwargs, "train", *self.seeds.train_tasks(r), cfg.tasks_per_round)
            records, metrics, start = [{"task": t, "source": "generator"} for t in tasks], {}, time.perf_counter()
            if team:  # the proposer's tasks first, the generator's in chains of similar tasks with skills
                tasks, records, metrics = team.round_tasks(r, tasks)
                metrics["time/propose_s"] = time.perf_counter() - start
            state["tasks"] = tasks
            atomic_write_text(round_dir / "tasks.jsonl", "".join(json.dumps(record) + "\n" for record in records))
            return metrics

        metrics = dict(self.stage(r, "tasks", draw, state))
        tasks = state.get("tasks") or [record["task"] for record in read_jsonl(round_dir / "tasks.jsonl")]
        metrics.update(self.stage(r, "sampling", lambda: self.sample(r, tasks, previous, tokenizer, state), state))
        metrics.update(self.stage(r, "training", lambda: self.train(r, tasks, previous, tokenizer, state)))
        # the parts are in trajectories/ now; search-kept/ trained. Only once the training's record is written:
        # a training that runs again after a kill reads search-kept/ (the search's and guided traces) again
        shutil.rmtree(round_dir / "sampling", ignore_errors=True)
        metrics.update(self.stage(r, "eval", lambda: self.evaluate_checkpoint(r, checkpoint)))
        if cfg.control and cfg.algorithm == "expert_iteration":
            metrics.update(self.stage(r, "control", lambda: self.control_round(r, tokenizer, cfg.expert_iteration.sft)))
        if team:
            def agents() -> dict[str, Any]:
                start = time.perf_counter()
                out = {**team.train_roles(r), **team.finish_round(r)}
                out["time/agents_train_s"] = time.perf_counter() - start
                return out
            metrics.update(self.stage(r, "agents", agents))
        return metrics

    def sample(self, r: int, tasks: list[dict[str, Any]], previous: Path, tokenizer: Any,
               state: dict[str, Any]) -> dict[str, Any]:
        """The sampling stage: k attempts per task from the previous round's policy, written part by part to
        rounds/NNN/sampling/ (a resumed stage keeps the parts already written), then rounds/NNN/trajectories/.
        Expert iteration's search, and the agents' verification and reflection, run here too."""
        from sparring.policies.policy import SamplingParams
        from sparring.trajectories import save_trajectories

        cfg, team, start = self.config, self.team, time.perf_counter()
        round_dir, metrics = self.run.round_dir(r), {}
        if cfg.algorithm == "grpo":
            if team:  # a probe of k attempts per task: pass rates, verifier agreement, skills admitted
                with self.generating(previous) as sampler:
                    params = SamplingParams(temperature=cfg.grpo.temperature, max_tokens=cfg.policy.max_tokens)
                    trajectories, collected = self.team_collect(r, sampler, tasks, team.k, params,
                                                                self.bars.episodes("probe", len(tasks) * team.k))
                metrics.update(collected)
                metrics.update(team.after_collect(r, trajectories, team.k, tokenizer)[2])
            return metrics
        ei, trainer = cfg.expert_iteration, self.ei_trainer(r)
        parts = round_dir / "sampling"
        on_turn = self.bars.episodes("sampling", len(tasks) * ei.k)
        searched: list[Any] = []
        search_attempts: list[Any] = []
        with self.generating(previous) as sampler:
            if team:
                params = SamplingParams(temperature=ei.temperature, top_p=ei.top_p, max_tokens=cfg.policy.max_tokens)
                trajectories, collected = self.team_collect(r, sampler, tasks, ei.k, params, on_turn)
                metrics.update(collected)
            else:
                trajectories = self.collect_parts(r, tasks, lambda part, a: trainer.collect(
                    sampler, part, seed=self.seeds.round(r), on_turn=on_turn, first_task=a))
            if ei.search:  # first moves tried, the policy finishing each smaller task
                searched, search_attempts, search_metrics = trainer.search(
                    sampler, tasks, seed=self.seeds.round(r),
                    on_turn=self.bars.episodes("search: finishing after first moves", len(tasks) * ei.search),
                    parts=lambda smaller, play: self.collect_parts(r, smaller, play, "search-part"))
                metrics.update(search_metrics)
            if ei.tree_search:  # tree search on the tasks no sample solved (ReST-MCTS*): verified traces train too
                found, tree_attempts, tree_metrics = trainer.tree_search(sampler, tasks, trajectories,
                                                                         seed=self.seeds.round(r))
                searched, search_attempts = searched + found, search_attempts + tree_attempts
                metrics.update(tree_metrics)
            if ei.guided != "none":  # guided traces on the tasks no sample solved; trained without the guidance
                found, guided_attempts, guided_metrics = trainer.guided(
                    sampler, tasks, trajectories, seed=self.seeds.round(r),
                    on_turn=self.bars.episodes(f"guided ({ei.guided})", len(tasks) * ei.guided_samples))
                searched, search_attempts = searched + found, search_attempts + guided_attempts
                metrics.update(guided_metrics)
            if searched:
                save_trajectories(searched, parts / "search-kept")
        if team:  # verifiers, the proposer's pass rates, the reflector's refined attempts
            state["verified"], state["extra"], after = team.after_collect(r, trajectories, ei.k, tokenizer)
            metrics.update(after)
        save_trajectories(trajectories + search_attempts + (team.refined if team else []), round_dir / "trajectories")
        metrics["time/sample_s"] = time.perf_counter() - start
        return metrics

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

    def team_collect(self, r: int, sampler: Any, tasks: list[dict[str, Any]], k: int, params: Any, on_turn: Any
                     ) -> tuple[list[Any], dict[str, float]]:
        """The solver's attempts with the agents on: part by part (`collect_parts`), or with skills SAGE's chain
        rollout, position by position (the library grows over every chain at each, so parts of the tasks are not
        independent): each position's end is saved to rounds/NNN/sampling/skills-position-P, and a kill inside the
        rollout plays again only the position it cut."""
        team = self.team
        if team.library is not None:
            return team.collect(sampler, tasks, k, params, r, on_turn, folder=self.run.round_dir(r) / "sampling")
        return self.collect_parts(r, tasks, lambda part, a: team.collect(sampler, part, k, params, r, on_turn, a)[0]), {}

    def ei_trainer(self, r: int) -> Any:
        from sparring.trainers.expert_iteration import ExpertIterationTrainer

        cfg = self.config
        return ExpertIterationTrainer(cfg.expert_iteration, self.env_id, self.round_kwargs(r),
                                      max_tokens=cfg.policy.max_tokens, max_turns=cfg.env.max_turns,
                                      executor=self.executor)

    def train(self, r: int, tasks: list[dict[str, Any]], previous: Path, tokenizer: Any,
              state: dict[str, Any]) -> dict[str, Any]:
        """The training stage: the trainer on what the sampling stage wrote (expert iteration) or on the tasks
        (GRPO), resumed from the trainer's own checkpoints; ends with checkpoints/round-NNN saved."""
        from transformers import AutoModelForCausalLM

        from sparring.trajectories import load_trajectories

        cfg, team, start = self.config, self.team, time.perf_counter()
        round_dir = self.run.round_dir(r)
        model = AutoModelForCausalLM.from_pretrained(previous)
        adapter = self.trainer_dir(r, "adapter") if cfg.policy.lora.enabled else None
        lora = {"lora": cfg.policy.lora, "adapter_dir": adapter}
        if cfg.algorithm == "dpo":
            metrics = self.train_dpo(r, model, tokenizer, previous, state, lora)
        elif cfg.algorithm == "expert_iteration":
            ei = cfg.expert_iteration
            trajectories = [t for t in load_trajectories(round_dir / "trajectories") if t.source == "policy"]
            kept = round_dir / "sampling" / "search-kept"
            extra = load_trajectories(kept) if kept.exists() else []
            if ei.replay:  # the bootstrap's kind of demonstrations, fresh tasks each round
                from sparring.trainers.bootstrap import expert_demonstrations

                replayed = draw_tasks(self.env_id, self.expert_kwargs, "train", *self.seeds.replay_tasks(r),
                                      ei.replay)
                extra += expert_demonstrations(self.env_id, self.expert_kwargs, replayed, cfg.bootstrap.demonstrations)
            model, metrics = self.ei_trainer(r).fit(
                model, tokenizer, self.run.checkpoint("round-000"), trajectories, self.trainer_dir(r, "training"),
                seed=self.seeds.round(r), verified=state.get("verified"), extra=extra + state.get("extra", []),
                callbacks=[self.bars.steps("training on verified samples", ei.sft.steps)], **lora)
        else:
            from sparring.trainers.grpo import train_grpo

            prompt_hook, rewards = team.grpo_hooks(tasks) if team else (None, [])
            model.name_or_path = str(previous)  # TRL's colocated vLLM loads the weights from this folder
            metrics = train_grpo(model, tokenizer, self.env_id, self.round_kwargs(r), tasks, cfg.grpo,
                                 self.trainer_dir(r, "training"), seed=self.seeds.round(r),
                                 callbacks=[self.bars.steps("GRPO", cfg.grpo.steps)],
                                 prompt_hook=prompt_hook, extra_rewards=rewards, **lora)
        save_checkpoint(model, tokenizer, self.run.checkpoint(f"round-{r:03d}"), adapter)
        if adapter is not None:
            shutil.rmtree(adapter, ignore_errors=True)
        metrics["time/train_s"] = time.perf_counter() - start
        return metrics

    def train_dpo(self, r: int, model: Any, tokenizer: Any, previous: Path, state: dict[str, Any],
                  lora: dict[str, Any]) -> dict[str, Any]:
        """DPO's training: pairs from each task's k attempts, ranked by `dpo.pairs_from` (the env's reward, the
        share of attempts that gave the same answer, or the judge's verdict), saved to rounds/NNN/pairs."""
        from transformers import AutoModelForCausalLM

        from sparring.trainers.dpo import mark_pairs, preference_pairs, train_dpo
        from sparring.trajectories import load_trajectories, save_trajectories

        cfg, k, round_dir = self.config, self.config.expert_iteration.k, self.run.round_dir(r)
        trajectories = [t for t in load_trajectories(round_dir / "trajectories") if t.source == "policy"]
        if cfg.dpo.pairs_from == "verdict":
            scores = [t.reward for t in trajectories]
        elif cfg.dpo.pairs_from == "majority":  # ScPO: how many of the task's k attempts gave the same answer
            from sparring.agents.verifiers import answer_key

            keys = [answer_key(t) for t in trajectories]
            scores = [0.0 if key is None else keys[i - i % k:i - i % k + k].count(key) / k for i, key in enumerate(keys)]
        else:  # the judge's verdicts from the sampling stage (verifier.use=judge), or from its saved agents' state
            scores = [float(flag) for flag in state["verified"]]
        pairs, metrics = preference_pairs(trajectories, k, scores, max_pairs_per_task=cfg.dpo.max_pairs_per_task)
        save_trajectories(mark_pairs(pairs), round_dir / "pairs")
        if pairs:
            reference = AutoModelForCausalLM.from_pretrained(previous)
            metrics.update(train_dpo(model, tokenizer, reference, pairs, cfg.dpo, self.trainer_dir(r, "training"),
                                     seed=self.seeds.round(r), callbacks=[self.bars.steps("DPO", cfg.dpo.steps)],
                                     **lora))
        metrics["ei/pass@1"] = sum(t.success for t in trajectories) / max(1, len(trajectories))
        return metrics

    def run_rounds(self, resume: bool = False) -> list[dict[str, Any]]:
        import torch

        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise SparringError(f"the self-play loop runs in one process, but this is one of WORLD_SIZE="
                                f"{os.environ['WORLD_SIZE']} processes (accelerate launch, torchrun): they would all "
                                "write the same run directory. Run `sparring selfplay` plainly (executor.kind=ray "
                                "spreads its episodes); multi-GPU training runs the trainers under accelerate "
                                "(README: Cluster)")
        self.start(resume)
        torch.set_num_threads(self.config.threads)
        with make_executor(self.config.executor) as self.executor, self.bars.progress, \
                Tracker(self.config.logging, self.run.root, len(self.finished_rounds())) as self.tracker:
            try:
                self._run_rounds()
            except OSError as error:
                if error.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                raise SparringError(f"the disk is full ({error.strerror}: {error.filename}); every finished stage and "
                                    "checkpoint is kept. Free some space and continue with --resume") from error
            finally:
                self.executor = None
        return self.finished_rounds()

    def _run_rounds(self) -> None:
        for r in range(len(self.finished_rounds()), self.config.rounds + 1):
            self.seed_everything(r)
            start = time.perf_counter()
            self.console.rule(f"round {r}" + (" (bootstrap)" if r == 0 else ""))
            metrics = self.round_zero() if r == 0 else self.train_round(r)
            metrics.update({"round": r, "time/round_s": time.perf_counter() - start})
            warn_untrained(self.console, r, metrics)
            self.save_eval_episodes(r)
            append_jsonl(self.run.metrics, metrics)
            shutil.rmtree(self.run.root / "tmp-trainer", ignore_errors=True)
            self.tracker.log(metrics)
            self.report()
            self.write_html_report()

    # ---- output -----------------------------------------------------------------------------------
    def save_eval_episodes(self, r: int) -> None:
        """The round's held-out episodes (greedy and pass@k samples of every eval set, `meta["eval"]` naming the
        set) in rounds/NNN/eval-trajectories, for the report; control episodes are not kept."""
        from sparring.trajectories import save_trajectories

        kept = [t for t in self.eval_episodes if not t.meta["eval"].startswith("control/")]
        self.eval_episodes = []
        if kept:
            save_trajectories(kept, self.run.round_dir(r) / "eval-trajectories")

    def write_html_report(self) -> None:
        """RUN/report.html (sparring/report.py), rebuilt every round; a failure warns, the run goes on."""
        from sparring.report import write_report

        try:
            write_report(self.run.root)
        except Exception as error:  # noqa: BLE001 - the round is saved; the page can be rebuilt later
            self.console.print(f"[bold yellow]warning:[/bold yellow] report.html not written ({type(error).__name__}: "
                               f"{error}); `sparring report {self.run.root}` tries again")

    def report(self) -> None:
        """The round table in the terminal, and curves.png redrawn."""
        from rich.table import Table

        rows = self.finished_rounds()
        k = self.config.eval.k
        table = Table(title=f"{self.env_id}: held-out success ({self.config.env.eval_split}, {self.config.env.eval_tasks} tasks)")
        named = [f"eval/{name}/success" for name in self.config.env.eval_sets]
        columns = ["round", "eval/success", "eval/details/spl", f"eval/pass@{k}", *named, "control/eval/success",
                   "ei/pass@1", "ei/kept", "ei/search_solved", "ei/tree_recovered", "ei/guided_recovered", "dpo/pairs",
                   "grpo/reward", "proposer/valid_rate", "proposer/solve_rate", "proposer/learnability", "verifier/agreement",
                   "reflector/accepted", "skills/size", "skills/reuse_rate", "time/train_s", "time/eval_s", "time/round_s"]
        columns = [c for c in columns if any(c in row for row in rows)]
        self.console.print(round_table(rows, columns, table.title, self.console.width))
        plot_curves(rows, self.run.curves, k, list(self.config.env.eval_sets))


def round_table(rows: list[dict[str, Any]], columns: list[str], title: str, width: int) -> Any:
    """The metrics of each round as a table that fits `width` columns: one row per round when that fits, else
    one row per metric and a column per round (the latest rounds that fit). Rounds that trained on nothing
    (`ei/examples` 0) are named in the caption."""
    from rich.table import Table

    cells = [[_fmt(row.get(c)) for c in columns] for row in rows]
    wide = sum(max(len(c), *(len(r[i]) for r in cells)) + 3 for i, c in enumerate(columns)) + 1
    untrained = [str(row["round"]) for row in rows if row.get("round", 0) > 0 and trained_on_nothing(row)]
    caption = f"round {', '.join(untrained)} trained on nothing (ei/kept 0)" if untrained else None
    if wide <= width:
        table = Table(title=title, caption=caption)
        for column in columns:
            table.add_column(column, justify="right")
        for row in cells:
            table.add_row(*row)
        return table
    metrics = [c for c in columns if c != "round"]
    label = max(map(len, metrics)) + 3
    per_round = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    fit = max(1, (width - label - 1) // (max(per_round + [5]) + 3))
    shown = rows[-fit:]
    if len(shown) < len(rows):
        caption = "; ".join(filter(None, [caption, f"rounds 0-{shown[0]['round'] - 1}: metrics.jsonl"]))
    table = Table(title=title, caption=caption)
    table.add_column("metric")
    for row in shown:
        table.add_column(f"r{row['round']}", justify="right")
    for metric in metrics:
        table.add_row(metric, *[_fmt(row.get(metric)) for row in shown])
    return table


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def plot_curves(rows: list[dict[str, Any]], path: Path, k: int, eval_sets: list[str] = ()) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [row["round"] for row in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(rounds, [row["eval/success"] for row in rows], "o-", label="held-out success (greedy)")
    ax.fill_between(rounds, [row["eval/success_low"] for row in rows], [row["eval/success_high"] for row in rows], alpha=0.2)
    if all(f"eval/pass@{k}" in row for row in rows):
        ax.plot(rounds, [row[f"eval/pass@{k}"] for row in rows], "s--", label=f"held-out pass@{k}")
    for name in eval_sets:  # the named held-out sets (easy-to-hard: 5 numbers, the bootstrap's 3), with intervals
        key = f"eval/{name}/success"
        if all(key in row for row in rows):
            line, = ax.plot(rounds, [row[key] for row in rows], "o-", label=f"held-out success: {name}")
            ax.fill_between(rounds, [row[f"eval/{name}/success_low"] for row in rows],
                            [row[f"eval/{name}/success_high"] for row in rows], alpha=0.15, color=line.get_color())
    control = [(row["round"], row["control/eval/success"]) for row in rows if "control/eval/success" in row]
    if control:
        ax.plot([0] + [r for r, _ in control], [rows[0]["eval/success"]] + [s for _, s in control], "^:",
                label="control: more expert demonstrations")
    ax.set_xlabel("round (0 = bootstrap)")
    ax.set_ylabel("success")
    ax.set_xticks(rounds)
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)


def load_selfplay_config(path: str | Path | None, overrides: list[str], *, seed: int | None = None) -> SelfPlayConfig:
    """The embedded default, then the YAML at `path`, then `overrides`, then `seed` (the CLI's --seed)."""
    return load_config(SelfPlayConfig, path, [*overrides, *([f"seed={seed}"] if seed is not None else [])])


def run(config: SelfPlayConfig | str | Path | None = None, run_dir: str | Path | None = None, *,
        overrides: list[str] = (), resume: bool = False, console: Any = None) -> list[dict[str, Any]]:
    """Run the self-play loop from Python, as `sparring selfplay` does; returns the rows of `metrics.jsonl`.

        from sparring.selfplay import run
        rows = run("configs/countdown-ei.yaml", "runs/mine", overrides=["rounds=2"])
        rows = run(SelfPlayConfig(rounds=2), "runs/mine2")
        rows = run(run_dir="runs/mine", resume=True, overrides=["rounds=4"])   # continue it for 2 more rounds

    `config`: a `SelfPlayConfig`, a YAML file, or None (with `resume`: the run's own config.yaml, else the
    embedded default); `overrides` are `key=value` strings applied on top of a file (`policy.backend=hf
    policy.path=Qwen/Qwen2.5-0.5B-Instruct`). `run_dir` defaults to runs/<config name>-seed<seed>.
    """
    if isinstance(config, SelfPlayConfig):
        if overrides:
            raise ValueError("overrides apply to a config file or the default; with a SelfPlayConfig, set its fields "
                             "(dataclasses.replace) instead")
    else:
        if config is None and resume:
            if run_dir is None:
                raise ValueError("resume=True needs run_dir: the run to continue")
            config = Path(run_dir) / "config.yaml"
            if not config.exists():
                raise SparringError(f"{config} does not exist: there is no run to continue in {run_dir}")
        config_name = Path(config).stem if config is not None and not resume else "countdown-ei"
        config = load_selfplay_config(config, list(overrides))
        run_dir = run_dir or default_run_dir(config_name, config.seed)
    return SelfPlay(config, run_dir or default_run_dir("countdown-ei", config.seed),
                    console=console).run_rounds(resume=resume)


def default_run_dir(config_name: str, seed: int) -> str:
    return f"runs/{config_name}-seed{seed}"


# keys that may change when a run is resumed: how it runs, not what its checkpoints and metrics depend on
RESUMABLE = ("rounds", "threads", "executor", "policy.generation", "policy.server_host", "policy.server_args",
             "logging")


def check_resume(saved_path: Path, config: SelfPlayConfig) -> None:
    """Refuse to continue a run with a config that differs from its saved config.yaml outside `RESUMABLE`: its
    checkpoints, tasks and metrics were made under the saved one."""
    saved = load_config(SelfPlayConfig, saved_path)
    before, after = _flat(saved), _flat(config)
    changed = [key for key in sorted(before.keys() | after.keys()) if before.get(key) != after.get(key)
               and not any(key == r or key.startswith(r + ".") for r in RESUMABLE)]
    if changed:
        shown = ", ".join(f"{key} {before.get(key)!r} -> {after.get(key)!r}" for key in changed)
        raise SparringError(f"--resume continues {saved_path.parent} as it was configured, but this changes {shown}; "
                            f"on resume only these may change: {', '.join(RESUMABLE)}. Start a new --run-dir to "
                            "change the rest")


def _flat(config: Any, prefix: str = "") -> dict[str, Any]:
    """A config's values by dotted key, nested sections walked (dicts such as env.kwargs stay whole)."""
    import dataclasses

    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        out.update(_flat(value, f"{prefix}{f.name}.") if dataclasses.is_dataclass(value) else {f"{prefix}{f.name}": value})
    return out


def warn_untrained(console: Any, r: int, metrics: dict[str, Any]) -> None:
    """A round whose trainer had no example (no sampled answer verified, nothing replayed or searched) looks like
    any other in the table: say so."""
    if r > 0 and trained_on_nothing(metrics):
        what = "no pair of its attempts differed in score (dpo/pairs 0)" if "dpo/pairs" in metrics else \
            "none of its sampled answers verified (ei/kept 0)"
        console.print(f"[bold yellow]warning:[/bold yellow] round {r} trained on nothing: {what} and no training "
                      "step ran. More samples per task (expert_iteration.k), easier tasks (env.curriculum) or "
                      "expert_iteration.replay help")


def trained_on_nothing(metrics: dict[str, Any]) -> bool:
    """Whether a round's trainer had nothing to train on: no example (expert iteration) or no pair (DPO)."""
    return metrics.get("ei/examples") == 0 or metrics.get("dpo/pairs") == 0
