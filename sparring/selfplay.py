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
                                    for the agents' tasks, see sparring/agents/roles.py)
    rounds/NNN/proposals.jsonl      every proposal of the policy proposer: text, label, verdict, pass rate
    rounds/NNN/skills.jsonl         the skill library after round NNN (skills.jsonl: the latest)
    rounds/NNN/reflections.jsonl    the reflection memory after round NNN
    rounds/NNN/trajectories/        the round's trajectories (Parquet, a `datasets` dataset)
    rounds/NNN/stages/STAGE.json    a finished stage's record: its metrics (README: the run directory, stage by stage)
    rounds/NNN/sampling/            the sampling stage's parts and search-kept/, until the training is recorded
                                    (with skills: skills-position-P, the chains' last position played)
    rounds/NNN/agents/STAGE/        with the agents on: their state as STAGE left it, for a resumed round
                                    (skills.jsonl, reflections.jsonl, state.json, extra/; sparring/agents/roles.py)
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
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import sparring.envs  # noqa: F401  (registers the environments)
from sparring.config import dump_yaml
from sparring.context import RunContext, save_checkpoint
from sparring.envs.catalog import draw_tasks
from sparring.errors import SparringError
from sparring.executors import make_executor
from sparring.io import append_jsonl, atomic_write_text, read_jsonl
from sparring.report import plot_curves, round_table, warn_untrained
from sparring.seeds import Stream
from sparring.selfplay_config import SelfPlayConfig, check_resume, default_run_dir, load_selfplay_config
from sparring.tracking import Tracker
from sparring.trainers.base import RoundTrainer, make_trainer

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["SelfPlay", "SelfPlayConfig", "load_selfplay_config", "run"]


class SelfPlay:
    """One run of the loop over a run directory."""

    def __init__(self, config: SelfPlayConfig, run_dir: str | Path, *, console: Console | None = None):
        from sparring.agents.roles import Roles

        self.config, self.ctx = config, RunContext(config, run_dir, console=console)
        self.tracker: Tracker | None = None  # run_rounds opens config.logging's trackers
        self.eval_episodes: list[Any] = []  # the round's held-out episodes, saved with the round
        self.roles = Roles(self.ctx) if Roles.wanted(config) else None  # the agents around the solver

    # ---- bookkeeping ------------------------------------------------------------------------------
    def start(self, resume: bool) -> None:
        done = self.ctx.run.metrics.read_text().split("\n") if self.ctx.run.metrics.exists() else []
        if any(line.strip() for line in done) and not resume:
            raise SparringError(f"{self.ctx.run.root} already holds {sum(bool(line.strip()) for line in done)} finished "
                                "round(s): pass --resume to continue it, or choose a new --run-dir")
        if not resume and next(self.ctx.run.root.glob("rounds/*/stages/*.json"), None):
            raise SparringError(f"{self.ctx.run.root} holds a run that was stopped inside round 0 (rounds/000/stages): "
                                "pass --resume to continue it, or choose a new --run-dir")
        if resume and self.ctx.run.config.exists():
            check_resume(self.ctx.run.config, self.config)
        for old in self.ctx.run.root.rglob(".*.old"):  # killed between atomic_dir's two renames: the folder is here
            if not old.with_name(old.name[1:-4]).exists():
                os.replace(old, old.with_name(old.name[1:-4]))
        leftovers = [*self.ctx.run.root.rglob(".*.tmp*"), *self.ctx.run.root.rglob(".*.old")]  # from a writer that was killed
        for leftover in sorted(leftovers, reverse=True):
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        if resume:
            self.check_run_dir()
        atomic_write_text(self.ctx.run.config, dump_yaml(self.config))

    def check_run_dir(self) -> None:
        """Before a resume: what the finished rounds left must be whole, else stop and say what to delete; the
        unfinished round's stages are checked against their files, and redone from the first one whose files
        are damaged. A cut-short last line of metrics.jsonl is dropped (the round is rebuilt from its records)."""
        from sparring.stages import checkpoint_problem, repair_metrics, stage_order

        rows, note = repair_metrics(self.ctx.run.metrics)
        if note:
            self.ctx.console.print(f"[bold yellow]repaired:[/bold yellow] {note}")
        n, roles = len(rows), self.roles.models() if self.roles else []

        def outputs(r: int, stage: str) -> list[Path]:
            """The checkpoints stage `stage` of round `r` leaves."""
            names = {"bootstrap": ["round-000"], "training": [f"round-{r:03d}"], "control": [f"control-{r:03d}"],
                     "agents_bootstrap": [f"{role}-000" for role in roles], "agents": [f"{role}-{r:03d}" for role in roles]}
            return [self.ctx.run.checkpoint(name) for name in names.get(stage, [])]

        if n and n <= self.config.rounds:  # the next round starts from the last finished one's checkpoints
            last, problems = n - 1, []
            stages = [s for s in stage_order(last) if s != "control" or self.config.control]
            for path in ([self.ctx.run.checkpoint("round-000")] if last else []) + [p for s in stages for p in outputs(last, s)]:
                problem = checkpoint_problem(path)
                if problem:
                    problems.append(f"{path.relative_to(self.ctx.run.root)}: {problem}")
            if problems:
                raise SparringError(f"{self.ctx.run.root} cannot continue: {'; '.join(problems)}. Round {n} starts from "
                                    f"these. Restore them, or redo the round that saved them: delete its line and every "
                                    f"later one from metrics.jsonl and those rounds' rounds/NNN/stages folders")
        for r in range(1, n):
            tasks = self.ctx.run.round_dir(r) / "tasks.jsonl"
            if tasks.exists():
                continue
            if self.roles:
                raise SparringError(f"{tasks.relative_to(self.ctx.run.root)} is missing, but round {r} finished: its "
                                    "tasks came from the agents and cannot be drawn again. Restore it, or delete the "
                                    f"lines of round {r} and later from metrics.jsonl and their rounds/NNN/stages "
                                    "folders to redo those rounds")
            drawn = draw_tasks(self.ctx.env_id, self.ctx.round_kwargs(r), "train", *self.ctx.seeds.train_tasks(r),
                               self.config.tasks_per_round)
            atomic_write_text(tasks, "".join(json.dumps({"task": t, "source": "generator"}) + "\n" for t in drawn))
            self.ctx.console.print(f"[bold yellow]repaired:[/bold yellow] {tasks.relative_to(self.ctx.run.root)} was missing; "
                               "drawn again from the generator (the same seed gives the same tasks)")
        records = self.ctx.records(n)
        for stage in records.finished():
            bad = [f"{p.relative_to(self.ctx.run.root)}: {problem}" for p in outputs(n, stage)
                   if (problem := checkpoint_problem(p))]
            if stage == "tasks" and not (self.ctx.run.round_dir(n) / "tasks.jsonl").exists():
                bad.append(f"rounds/{n:03d}/tasks.jsonl is missing")
            if stage == "sampling" and self.trainer(n).k and not any(
                    (self.ctx.run.round_dir(n) / "trajectories").glob("*.parquet")):
                bad.append(f"rounds/{n:03d}/trajectories holds no episodes")
            if self.roles and (problem := self.roles.stage_problem(n, stage)):
                bad.append(problem)  # the agents' state this stage left (a run of an older version has none)
            if bad:
                records.drop_from(stage)
                self.ctx.console.print(f"[bold yellow]repaired:[/bold yellow] round {n}'s stage {stage!r} finished but "
                                   f"{'; '.join(bad)}: it runs again, and the stages after it")
                break

    # ---- phases -----------------------------------------------------------------------------------
    def base_checkpoint(self) -> Path:
        cfg = self.config.policy
        if cfg.backend == "hf":
            from sparring.policies.hf import check_checkpoint

            return check_checkpoint(cast(str, cfg.path))  # PolicyConfig refuses backend hf without a path
        path = self.ctx.run.checkpoint("base")
        if not (path / "config.json").exists():
            from sparring.policies.tiny import TinyModelConfig, save_tiny_model

            save_tiny_model(path, TinyModelConfig(**{**cfg.tiny.__dict__, "seed": self.ctx.seeds.bootstrap()}))
        return path

    def evaluate(self, policy: Any, prefix: str = "eval") -> dict[str, float]:
        from sparring.evaluation import evaluate

        cfg, out = self.config, {}
        for name, (kwargs, tasks, main) in self.ctx.eval_sets.items():
            k = cfg.eval.k if main else 1
            result = evaluate(policy, self.ctx.env_id, kwargs, tasks, k=k, executor=self.ctx.executor,
                              temperature=cfg.eval.temperature, max_tokens=cfg.policy.max_tokens,
                              max_turns=cfg.env.max_turns, seed=self.ctx.seeds.evaluation(),
                              prompt=self.roles.prompt(tasks) if self.roles else None,
                              on_turn=self.ctx.bars.episodes(f"{prefix} on {name or cfg.env.eval_split}",
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

    def expert_examples(self, tokenizer: Any, stream: Stream, n: int) -> list[dict[str, str]]:
        from sparring.trainers.bootstrap import expert_demonstrations
        from sparring.trainers.sft import sft_examples

        tasks = draw_tasks(self.ctx.env_id, self.ctx.expert_kwargs, "train", *stream, n)
        demos = expert_demonstrations(self.ctx.env_id, self.ctx.expert_kwargs, tasks, self.config.bootstrap.demonstrations)
        if self.roles:  # with skills: demonstrations show the skills retrieved for their tasks
            demos = self.roles.demonstrations(demos)
        return sft_examples(demos, tokenizer)

    def bootstrap(self, base: Path) -> tuple[Any, Any, dict[str, Any]]:
        """Round 0: supervised training on expert demonstrations until a plateau on a development set."""
        from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

        from sparring.evaluation import evaluate
        from sparring.policies.hf import HFPolicy
        from sparring.trainers.sft import supervised_finetune

        cfg, boot = self.config, self.config.bootstrap
        model, tokenizer = AutoModelForCausalLM.from_pretrained(base), AutoTokenizer.from_pretrained(base)
        if not boot.enabled:
            return model, tokenizer, {}
        n = min(boot.sft.steps * boot.sft.batch_size, 200_000)
        examples = self.expert_examples(tokenizer, self.ctx.seeds.train_tasks(0), n)
        dev = draw_tasks(self.ctx.env_id, self.ctx.expert_kwargs, "train", *self.ctx.seeds.dev_tasks(boot.dev_tasks), boot.dev_tasks)
        curve: list[tuple[int, float]] = []
        loop, output_dir = self, self.ctx.trainer_dir(0, "bootstrap")
        saved_curve = output_dir / "curve.json"  # the development curve so far, for a resumed bootstrap

        class Plateau(TrainerCallback):
            def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                if state.global_step and saved_curve.exists():  # resumed: the curve up to the trainer's checkpoint
                    curve[:] = [(step, s) for step, s in json.loads(saved_curve.read_text()) if step <= state.global_step]

            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                if state.global_step % boot.eval_every:
                    return
                policy = HFPolicy(model=kwargs["model"], tokenizer=tokenizer)
                success = evaluate(policy, loop.ctx.env_id, loop.ctx.expert_kwargs, dev, max_tokens=cfg.policy.max_tokens,
                                   max_turns=cfg.env.max_turns,
                                   prompt=loop.roles.prompt(dev) if loop.roles else None).success
                kwargs["model"].train()
                curve.append((state.global_step, success))
                atomic_write_text(saved_curve, json.dumps(curve))
                loop.ctx.console.print(f"  bootstrap step {state.global_step}: development success {success:.3f}")
                best_before = max((s for _, s in curve[:-boot.patience]), default=-1.0)
                if len(curve) > boot.patience and max(s for _, s in curve[-boot.patience:]) < best_before + boot.min_delta:
                    control.should_training_stop = True

        metrics = supervised_finetune(model, tokenizer, examples, boot.sft, output_dir, seed=self.ctx.seeds.bootstrap(),
                                      callbacks=[Plateau(), self.ctx.bars.steps("bootstrap: training on expert demonstrations",
                                                                            boot.sft.steps)])
        return model, tokenizer, {**metrics, "bootstrap/curve": curve, "bootstrap/examples": len(examples)}

    def control_round(self, r: int, tokenizer: Any, steps_settings: Any) -> dict[str, float]:
        """The control: the round's training steps spent on fresh expert demonstrations instead of self-play."""
        from transformers import AutoModelForCausalLM

        from sparring.trainers.sft import supervised_finetune

        start = time.perf_counter()
        previous = self.ctx.run.checkpoint(f"control-{r - 1:03d}" if r > 1 else "round-000")
        model = AutoModelForCausalLM.from_pretrained(previous)
        n = steps_settings.steps * steps_settings.batch_size
        examples = self.expert_examples(tokenizer, self.ctx.seeds.control_tasks(r), n)
        supervised_finetune(model, tokenizer, examples, steps_settings, self.ctx.trainer_dir(r, "control"),
                            seed=self.ctx.seeds.control(r), callbacks=[self.ctx.bars.steps("control: expert demonstrations",
                                                                                  steps_settings.steps)])
        checkpoint = self.ctx.run.checkpoint(f"control-{r:03d}")
        save_checkpoint(model, tokenizer, checkpoint)
        metrics = self.evaluate_checkpoint(r, checkpoint, prefix="control/eval")
        metrics["time/control_s"] = time.perf_counter() - start
        return metrics

    # ---- stages -----------------------------------------------------------------------------------
    def stage(self, r: int, name: str, work: Callable[[], dict[str, Any]],
              state: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run stage `name` of round `r` unless its record says it finished; record its metrics when it does (with
        the agents on, after the roles' state that later stages read: `Roles.save_stage`; `state`: what the
        round passes between its stages)."""
        records = self.ctx.records(r)
        done = records.get(name)
        if done is not None:
            return done
        self.ctx.seed_everything(r)  # the same random state whether the round got here in one go or resumed
        metrics = work()
        if self.roles:
            from sparring.agents.roles import STATEFUL

            if name in STATEFUL:
                self.roles.save_stage(r, name, state if state is not None else {})
        records.record(name, metrics)
        return metrics

    def round_zero(self) -> dict[str, Any]:
        """Round 0: bootstrap -> the agents' bootstrap -> evaluation, each stage recorded."""
        from transformers import AutoTokenizer

        checkpoint = self.ctx.run.checkpoint("round-000")
        if self.roles:  # resumed: the roles as the last finished stage left them
            self.roles.resume(0, self.ctx.records(0).finished(), {})

        def bootstrap() -> dict[str, Any]:
            start = time.perf_counter()
            model, tokenizer, metrics = self.bootstrap(self.base_checkpoint())
            metrics["time/train_s"] = time.perf_counter() - start
            save_checkpoint(model, tokenizer, checkpoint)
            return metrics

        metrics = self.stage(0, "bootstrap", bootstrap)
        if self.roles:  # the agents' models learn their formats; the skill library is saved
            roles = self.roles

            def agents() -> dict[str, Any]:
                start = time.perf_counter()
                out = roles.bootstrap(AutoTokenizer.from_pretrained(checkpoint))
                out["time/agents_bootstrap_s"] = time.perf_counter() - start
                return out
            metrics.update(self.stage(0, "agents_bootstrap", agents))
        metrics.update(self.stage(0, "eval", lambda: self.evaluate_checkpoint(0, checkpoint)))
        return metrics

    def evaluate_checkpoint(self, r: int, checkpoint: Path, prefix: str = "eval") -> dict[str, Any]:
        start = time.perf_counter()
        with self.ctx.generating(checkpoint) as policy:  # the saved weights, whether this process trained them or not
            metrics = self.evaluate(policy, prefix)
        if prefix == "eval":
            self.save_eval_episodes(r)  # with the stage: a resumed round does not evaluate again
        metrics[f"time/{'eval' if prefix == 'eval' else 'control'}_s"] = time.perf_counter() - start
        return metrics

    def train_round(self, r: int) -> dict[str, Any]:
        """Round r: tasks -> solve, verify, reflect (the sampling stage) -> train -> evaluate -> control -> the roles'
        training and files, each stage recorded (sparring/stages.py). With the agents on, the stages that change the
        roles' state leave it in rounds/NNN/agents/<stage>/ (`Roles.save_stage`): a resumed round loads it instead of
        running them again."""
        from transformers import AutoTokenizer

        cfg, roles = self.config, self.roles
        round_dir = self.ctx.run.round_dir(r)
        previous, checkpoint = self.ctx.run.checkpoint(f"round-{r - 1:03d}"), self.ctx.run.checkpoint(f"round-{r:03d}")
        tokenizer = AutoTokenizer.from_pretrained(previous)
        state: dict[str, Any] = {}  # what the roles pass between stages: the verifier's flags, extra trajectories
        if roles:  # resumed: the roles (and `state`) as the last finished stage left them
            roles.resume(r, self.ctx.records(r).finished(), state)

        metrics = dict(self.stage(r, "tasks", lambda: self.draw(r, state), state))
        tasks = state.get("tasks") or [record["task"] for record in read_jsonl(round_dir / "tasks.jsonl")]
        metrics.update(self.stage(r, "sampling", lambda: self.sample(r, tasks, previous, tokenizer, state), state))
        metrics.update(self.stage(r, "training", lambda: self.train(r, tasks, previous, tokenizer, state)))
        # the parts are in trajectories/ now; search-kept/ trained. Only once the training's record is written:
        # a training that runs again after a kill reads search-kept/ (the search's and guided traces) again
        shutil.rmtree(round_dir / "sampling", ignore_errors=True)
        metrics.update(self.stage(r, "eval", lambda: self.evaluate_checkpoint(r, checkpoint)))
        if cfg.control and cfg.algorithm == "expert_iteration":
            metrics.update(self.stage(r, "control", lambda: self.control_round(r, tokenizer, cfg.expert_iteration.sft)))
        if roles:  # each role's own model trained on the round's data; the library and memory saved
            def agents() -> dict[str, Any]:
                start = time.perf_counter()
                out = {**roles.train(r), **roles.finish(r)}
                out["time/agents_train_s"] = time.perf_counter() - start
                return out
            metrics.update(self.stage(r, "agents", agents))
        return metrics

    def draw(self, r: int, state: dict[str, Any]) -> dict[str, Any]:
        """The tasks stage: the generator's tasks of round r, with the agents on the proposer's share first and the
        rest in chains of similar tasks (skills); written to rounds/NNN/tasks.jsonl."""
        tasks = draw_tasks(self.ctx.env_id, self.ctx.round_kwargs(r), "train", *self.ctx.seeds.train_tasks(r),
                           self.config.tasks_per_round)
        records, metrics, start = [{"task": t, "source": "generator"} for t in tasks], {}, time.perf_counter()
        if self.roles:
            tasks, records, metrics = self.roles.tasks(r, tasks)
            metrics["time/propose_s"] = time.perf_counter() - start
        state["tasks"] = tasks
        atomic_write_text(self.ctx.run.round_dir(r) / "tasks.jsonl", "".join(json.dumps(record) + "\n" for record in records))
        return metrics

    def sample(self, r: int, tasks: list[dict[str, Any]], previous: Path, tokenizer: Any,
               state: dict[str, Any]) -> dict[str, Any]:
        """The sampling stage: the trainer's k attempts per task from the previous round's policy, written part by
        part to rounds/NNN/sampling/ (a resumed stage keeps the parts already written), then rounds/NNN/trajectories/;
        the trainer's searches after them, and the roles' verification and reflection. A trainer that samples while
        it trains (GRPO, k 0) gets none; with the agents on, they still probe the tasks (pass rates, verifiers'
        agreement, skills admitted)."""
        from sparring.solver import Solver
        from sparring.trajectories import save_trajectories

        ctx, roles, trainer, start = self.ctx, self.roles, self.trainer(r), time.perf_counter()
        round_dir, metrics, params = ctx.run.round_dir(r), {}, trainer.sampling_params()
        if not trainer.k:
            if roles:  # a probe of k attempts per task
                k = roles.k(r)
                with ctx.generating(previous) as sampler:
                    trajectories, collected = roles.collect(sampler, tasks, k, params, r,
                                                            ctx.bars.episodes("probe", len(tasks) * k))
                metrics.update(collected)
                metrics.update(roles.after_collect(r, trajectories, k, tokenizer).metrics)
            return metrics
        on_turn = ctx.bars.episodes("sampling", len(tasks) * trainer.k)
        with ctx.generating(previous) as sampler:
            if roles:
                trajectories, collected = roles.collect(sampler, tasks, trainer.k, params, r, on_turn)
                metrics.update(collected)
            else:
                solver = Solver(sampler, ctx.env_id, ctx.round_kwargs(r), params, max_turns=self.config.env.max_turns,
                                executor=ctx.executor)
                trajectories = ctx.collect_parts(r, tasks, lambda part, a: solver.run(
                    part, k=trainer.k, seed=ctx.seeds.round(r), on_turn=on_turn, first_task=a))
            searched, search_attempts, search_metrics = trainer.searched(sampler, tasks, trajectories)
            metrics.update(search_metrics)
            if searched:  # trained as they are; kept until the training stage is recorded
                save_trajectories(searched, round_dir / "sampling" / "search-kept")
        kept = []
        if roles:  # the proposer's pass rates, the verifiers' flags, the reflector's refined attempts
            after = roles.after_collect(r, trajectories, trainer.k, tokenizer)
            state["verified"], state["extra"], kept = after.verified, after.extra, after.kept
            metrics.update(after.metrics)
        save_trajectories(trajectories + search_attempts + kept, round_dir / "trajectories")
        metrics["time/sample_s"] = time.perf_counter() - start
        return metrics

    def trainer(self, r: int) -> RoundTrainer:
        return make_trainer(self.config.algorithm, self.ctx, r)

    def train(self, r: int, tasks: list[dict[str, Any]], previous: Path, tokenizer: Any,
              state: dict[str, Any]) -> dict[str, Any]:
        """The training stage: the round's trainer on what the sampling stage left (or on the tasks), resumed from
        the trainer's own checkpoints; ends with checkpoints/round-NNN saved."""
        from transformers import AutoModelForCausalLM

        cfg, ctx, start = self.config, self.ctx, time.perf_counter()
        model = AutoModelForCausalLM.from_pretrained(previous)
        adapter = ctx.trainer_dir(r, "adapter") if cfg.policy.lora.enabled else None
        trainer = self.trainer(r)
        if self.roles and not trainer.k:  # GRPO: the skills shown with each task, the skill-integrated reward
            state.update(self.roles.trainer_hooks(tasks))
        model, metrics = trainer.train(model, tokenizer, tasks, previous, state,
                                       {"lora": cfg.policy.lora, "adapter_dir": adapter})
        save_checkpoint(model, tokenizer, ctx.run.checkpoint(f"round-{r:03d}"), adapter)
        if adapter is not None:
            shutil.rmtree(adapter, ignore_errors=True)
        metrics["time/train_s"] = time.perf_counter() - start
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
        with make_executor(self.config.executor) as self.ctx.executor, self.ctx.bars.progress, \
                Tracker(self.config.logging, self.ctx.run.root, len(self.ctx.finished_rounds())) as self.tracker:
            try:
                self._run_rounds(self.tracker)
            except OSError as error:
                if error.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                raise SparringError(f"the disk is full ({error.strerror}: {error.filename}); every finished stage and "
                                    "checkpoint is kept. Free some space and continue with --resume") from error
            finally:
                self.ctx.executor = None
        return self.ctx.finished_rounds()

    def _run_rounds(self, tracker: Tracker) -> None:
        for r in range(len(self.ctx.finished_rounds()), self.config.rounds + 1):
            self.ctx.seed_everything(r)
            start = time.perf_counter()
            self.ctx.console.rule(f"round {r}" + (" (bootstrap)" if r == 0 else ""))
            metrics = self.round_zero() if r == 0 else self.train_round(r)
            metrics.update({"round": r, "time/round_s": time.perf_counter() - start})
            warn_untrained(self.ctx.console, r, metrics)
            self.save_eval_episodes(r)
            append_jsonl(self.ctx.run.metrics, metrics)
            shutil.rmtree(self.ctx.run.root / "tmp-trainer", ignore_errors=True)
            tracker.log(metrics)
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
            save_trajectories(kept, self.ctx.run.round_dir(r) / "eval-trajectories")

    def write_html_report(self) -> None:
        """RUN/report.html (sparring/report.py), rebuilt every round; a failure warns, the run goes on."""
        from sparring.report import write_report

        try:
            write_report(self.ctx.run.root)
        except Exception as error:  # noqa: BLE001 - the round is saved; the page can be rebuilt later
            self.ctx.console.print(f"[bold yellow]warning:[/bold yellow] report.html not written ({type(error).__name__}: "
                               f"{error}); `sparring report {self.ctx.run.root}` tries again")

    def report(self) -> None:
        """The round table in the terminal, and curves.png redrawn."""
        rows = self.ctx.finished_rounds()
        k = self.config.eval.k
        title = f"{self.ctx.env_id}: held-out success ({self.config.env.eval_split}, {self.config.env.eval_tasks} tasks)"
        named = [f"eval/{name}/success" for name in self.config.env.eval_sets]
        columns = ["round", "eval/success", "eval/details/spl", f"eval/pass@{k}", *named, "control/eval/success",
                   "ei/pass@1", "ei/kept", "ei/search_solved", "ei/tree_recovered", "ei/guided_recovered", "dpo/pairs",
                   "grpo/reward", "proposer/valid_rate", "proposer/solve_rate", "proposer/learnability", "verifier/agreement",
                   "reflector/accepted", "skills/size", "skills/reuse_rate", "time/train_s", "time/eval_s", "time/round_s"]
        columns = [c for c in columns if any(c in row for row in rows)]
        self.ctx.console.print(round_table(rows, columns, title, self.ctx.console.width))
        plot_curves(rows, self.ctx.run.curves, k, list(self.config.env.eval_sets))


def run(config: SelfPlayConfig | str | Path | None = None, run_dir: str | Path | None = None, *,
        overrides: Sequence[str] = (), resume: bool = False, console: Console | None = None) -> list[dict[str, Any]]:
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
