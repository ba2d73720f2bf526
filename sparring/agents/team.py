"""The agents of a self-play round around the solver: proposer, verifiers, reflector and skill library.

`AgentTeam` is what `sparring.selfplay` calls at fixed points of a round when any of the config sections
`proposer`, `verifier`, `reflector` or `skills` turns something on:

    round 0      bootstrap(...)          after the solver's bootstrap: the proposer, reflector and judge models
                                         learn their formats (from the bootstrapped solver's attempts and the
                                         expert's solutions); the skill library is seeded from demonstrations
    round r >= 1 round_tasks(r)          proposed tasks (accepted only when valid) + generator tasks, in chains
                 collect(...)            the solver's k attempts per task (with skills shown: SAGE's rollout)
                 after_collect(...)      verifiers' judgements and agreement, pass rates and learnability of the
                                         proposed tasks, Re-ReST refinement of the failed tasks
                 train_roles(r)          the proposer, reflector and judge models trained on the round's data
                 finish_round(r)         the skill library and reflection memory saved for round r

Each role's model is a checkpoint of its own (`checkpoints/<role>-NNN`), started from the bootstrapped
solver and trained in the loop, or (`model: solver`) the solver's current checkpoint, prompted only.
Everything a round writes is atomic and read back from the previous round's files, so `--resume`
replays nothing: the proposer's aim and the curriculum's level come from `metrics.jsonl`, the skill
library from `rounds/NNN/skills.jsonl`, the reflection memory from `rounds/NNN/reflections.jsonl`.
Inside a round, each stage that changes what later stages read (`STATEFUL`) leaves it in
`rounds/NNN/agents/<stage>/` before its stage record (`save_stage`); a resumed round loads the latest one
(`load_stage`) instead of running the stage again.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sparring.policies.policy import SamplingParams
from sparring.agents.proposer import (CurriculumProposer, InstructionProposer, PolicyProposer,
                                      Proposal, learnability, pass_rate_metrics, proposal_metrics, task_key)
from sparring.agents.reflector import ReflectionMemory, Reflector
from sparring.agents.skills import (SkillLibrary, as_shown, chain_rollout, make_chains, skill_kind_for, skill_prompt)
from sparring.agents.verifiers import (MajorityVoteVerifier, ModelJudgeVerifier, ProgrammaticVerifier, judge_examples,
                                       verifier_metrics)
from sparring.context import RunContext
from sparring.io import atomic_dir, atomic_write_json, atomic_write_text, read_jsonl
from sparring.trajectories import Trajectory

ROLES = ("proposer", "reflector", "judge")
# the stages of a round that change what its later stages read from the team: the library the bootstrap seeds,
# the roles' bootstrap (library pruned, memory made), the round's tasks and proposals, and sampling (the library
# and memory as the solver and reflector left them, each role's training data, the verifier's flags)
STATEFUL = ("bootstrap", "agents_bootstrap", "tasks", "sampling")


class AgentTeam:
    def __init__(self, ctx: RunContext):
        from sparring.envs.catalog import make

        self.ctx, self.config, self.seeds = ctx, ctx.config, ctx.seeds
        cfg = self.config
        self.env_id, self.env_kwargs = ctx.env_id, ctx.env_kwargs
        self.env = make(self.env_id, **self.env_kwargs).unwrapped
        self.kind = skill_kind_for(self.env) if cfg.skills.enabled else None
        self.library: SkillLibrary | None = None
        self.memory: ReflectionMemory | None = None
        # what the current round gathered between its calls
        self.records: list[dict[str, Any]] = []           # tasks.jsonl's lines, in task order
        self.chains: list[list[dict[str, Any]]] = []      # the tasks as chains (length 1 without skill chains)
        self.proposer: PolicyProposer | InstructionProposer | None = None
        self.proposals: list[Any] = []
        self.refined: list[Trajectory] = []
        self.examples: dict[str, list[dict[str, str]]] = {}  # each role's training data

    @staticmethod
    def wanted(config: Any) -> bool:
        return (config.proposer.kind != "none" or config.verifier.active != ["programmatic"]
                or config.reflector.enabled or config.skills.enabled)

    # ---- roles and their checkpoints ------------------------------------------------------------
    def own_model(self, role: str) -> bool:
        cfg = self.config
        return {"proposer": cfg.proposer.kind == "policy" and cfg.proposer.model == "own",
                "reflector": cfg.reflector.enabled and cfg.reflector.model == "own",
                "judge": "judge" in cfg.verifier.active and cfg.verifier.judge_model == "own"}[role]

    def checkpoint(self, role: str, r: int) -> Path:
        """The model a role plays with after round `r`: its own, or the solver's."""
        return self.ctx.run.checkpoint(f"{role}-{r:03d}" if self.own_model(role) else f"round-{r:03d}")

    def _train_role(self, role: str, r: int, examples: list[dict[str, str]], settings: Any) -> dict[str, float]:
        """Fine-tune `role`'s model of round r - 1 (round 0: the bootstrapped solver) on `examples`; save it for round r."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from sparring.context import save_checkpoint
        from sparring.trainers.sft import fitting, supervised_finetune

        records = self.ctx.records(r)
        done = records.get(f"{role}-training")  # a resumed stage keeps the roles it finished training
        if done is not None:
            return done
        start = self.ctx.run.checkpoint("round-000") if r == 0 else self.checkpoint(role, r - 1)
        model, tokenizer = AutoModelForCausalLM.from_pretrained(start), AutoTokenizer.from_pretrained(start)
        examples = fitting(examples, model, tokenizer)  # a prompt with long reflections may not fit a small model
        metrics: dict[str, float] = {f"{role}/examples": len(examples)}
        if examples:
            out = supervised_finetune(model, tokenizer, examples, settings, self.ctx.trainer_dir(r, role),
                                      seed=self.seeds.round(r),
                                      callbacks=[self.ctx.bars.steps(f"{role}: training", settings.steps)])
            metrics[f"{role}/loss"] = out["train/loss"]
        save_checkpoint(model, tokenizer, self.ctx.run.checkpoint(f"{role}-{r:03d}"))
        records.record(f"{role}-training", metrics)
        return metrics

    # ---- state carried between rounds -----------------------------------------------------------
    def load_state(self, r: int) -> None:
        """The library and memory as round `r` left them (r = -1: empty)."""
        cfg, folder = self.config, self.ctx.run.round_dir(r)
        if self.kind is not None:
            self.library = SkillLibrary.load(folder / "skills.jsonl", self.kind, self.env, cfg.skills.max_size)
        if cfg.reflector.enabled:
            self.memory = ReflectionMemory.load(folder / "reflections.jsonl", cfg.reflector.memory)

    def initial_library(self) -> SkillLibrary:
        """Round 0's library: the one `skills.load` names, else an empty one."""
        cfg = self.config.skills
        if cfg.load:
            return SkillLibrary.load(cfg.load, self.kind, self.env, cfg.max_size)
        return SkillLibrary(self.kind, self.env, cfg.max_size)

    def finish_round(self, r: int) -> dict[str, float]:
        """Prune and save the library, save the memory; the metrics `skills/size`, `skills/pruned`."""
        metrics: dict[str, float] = {}
        folder = self.ctx.run.round_dir(r)
        if self.library is not None:
            metrics["skills/pruned"] = self.library.prune(self.config.skills.min_uses, self.config.skills.min_rate)
            metrics["skills/size"] = len(self.library)
            self.library.save(folder / "skills.jsonl")
            self.library.save(self.ctx.run.root / "skills.jsonl")  # the latest, for people and other tools
        if self.memory is not None:
            self.memory.save(folder / "reflections.jsonl")
        return metrics

    def previous(self, key: str) -> Any:
        rows = self.ctx.finished_rounds()
        return rows[-1].get(key) if rows else None

    # ---- state carried between the stages of a round ----------------------------------------------
    def stage_dir(self, r: int, stage: str) -> Path:
        return self.ctx.run.round_dir(r) / "agents" / stage

    def save_stage(self, r: int, stage: str, state: dict[str, Any]) -> None:
        """What the later stages of round `r` read from the team once `stage` finished, in one folder written
        atomically (before the stage's record): the library, the memory, the round's task records and chains, the
        proposals, each role's training data, and of `state` (what the loop passes between stages) the verifier's
        flags and the extra training trajectories."""
        from sparring.trajectories import save_trajectories

        with atomic_dir(self.stage_dir(r, stage)) as tmp:
            if self.library is not None:
                self.library.save(tmp / "skills.jsonl")
            if self.memory is not None:
                self.memory.save(tmp / "reflections.jsonl")
            passed = {key: state[key] for key in ("verified",) if key in state}
            if state.get("extra"):
                save_trajectories(state["extra"], tmp / "extra")
            atomic_write_json(tmp / "state.json", {
                "records": self.records, "chains": self.chains, "proposals": [asdict(p) for p in self.proposals],
                "examples": self.examples, "state": passed, "extra": bool(state.get("extra")),
                "library": self.library is not None, "memory": self.memory is not None})

    def resume(self, r: int, finished: list[str], state: dict[str, Any]) -> None:
        """A round resumed after its stages `finished`: the team as the latest of them that changed it left it."""
        stage = next((stage for stage in reversed(finished) if stage in STATEFUL), None)
        if stage is not None:
            self.load_stage(r, stage, state)

    def load_stage(self, r: int, stage: str, state: dict[str, Any]) -> None:
        """The team as `stage` of round `r` left it (`save_stage`), and `state`'s keys it saved. A SparringError
        (one line, `stage_problem`'s) when that state is missing or damaged."""
        cfg = self.config
        saved = self.read_stage(r, stage)
        self.library, self.memory = saved["library"], saved["memory"]
        self.records, self.chains, self.examples = saved["records"], saved["chains"], saved["examples"]
        self.proposals = saved["proposals"]
        self.proposer = self.make_proposer(r) if r > 0 and cfg.proposer.kind == "policy" else None
        self.refined = []
        state.update(saved["state"])
        if "verified" in saved["state"]:
            state["extra"] = saved["extra"]

    def read_stage(self, r: int, stage: str) -> dict[str, Any]:
        """What `save_stage` wrote for `stage` of round `r`, read and checked whole: the library and memory (None
        where not saved), the records, chains, proposals, examples, `state` and the extra trajectories. A
        SparringError naming the file and what is wrong with it, in one line, when anything is missing or damaged."""
        from sparring.errors import SparringError
        from sparring.trajectories import load_trajectories

        cfg, folder = self.config, self.stage_dir(r, stage)
        where = folder.relative_to(self.ctx.run.root)
        def check(path: Path) -> Path:  # read_jsonl reads a missing file as empty
            if not path.exists():
                raise FileNotFoundError(path)
            return path
        shapes = {"records": list, "chains": list, "proposals": list, "examples": dict, "state": dict, "extra": bool}
        name = "state.json"
        try:
            saved = json.loads((folder / name).read_text())
            if not isinstance(saved, dict) or any(not isinstance(saved.get(key), kind) for key, kind in shapes.items()):
                raise ValueError("not the object save_stage writes: " + ", ".join(
                    f"{key!r} must be a {kind.__name__}" for key, kind in shapes.items()
                    if not isinstance(saved, dict) or not isinstance(saved.get(key), kind)))
            saved["proposals"] = [Proposal(**p) for p in saved["proposals"]]
            name = "skills.jsonl"
            # (a state saved before these flags were written: the files that are there)
            saved["library"] = (SkillLibrary.load(check(folder / name), self.kind, self.env, cfg.skills.max_size)
                                if saved.get("library", (folder / name).exists()) else None)
            name = "reflections.jsonl"
            saved["memory"] = (ReflectionMemory.load(check(folder / name), cfg.reflector.memory)
                               if saved.get("memory", (folder / name).exists()) else None)
            name = "extra"
            saved["extra"] = load_trajectories(folder / name) if saved["extra"] else []
        except FileNotFoundError:
            raise SparringError(f"{where / name} is missing") from None
        except (OSError, ValueError, TypeError, KeyError) as error:  # pyarrow's errors are ValueErrors and OSErrors
            detail = " ".join(str(error).split())
            raise SparringError(f"{where / name} is damaged ({detail[:200]})") from None
        return saved

    def stage_problem(self, r: int, stage: str) -> str | None:
        """What is wrong with the team state `stage` of round `r` left (one line), or None when it is whole or the
        stage leaves none."""
        from sparring.errors import SparringError

        if stage not in STATEFUL:
            return None
        try:
            self.read_stage(r, stage)
        except SparringError as error:
            return str(error)
        return None

    # ---- round 0 --------------------------------------------------------------------------------
    def decorate_demonstrations(self, demos: list[Trajectory]) -> list[Trajectory]:
        """With skills: seed the library from the demonstrations' verified skills and show each demonstration
        the skills retrieved for its task, so the solver learns the prompt it will see."""
        if self.kind is None or not self.config.skills.bootstrap:
            return demos
        if self.library is None:
            self.library = self.initial_library()
            if not self.config.skills.load:
                for t in demos:
                    self.library.add(self.kind.extract(t))
        for t in demos:
            as_shown(t, self.kind, self.library.retrieve(t.task, self.config.skills.top_k), self.config.skills.prompt)
        return demos

    def bootstrap(self, tokenizer: Any) -> dict[str, float]:
        """Round 0 for the roles, once the solver's round-000 checkpoint is saved."""
        from sparring.solver import Solver, by_task
        from sparring.envs.catalog import draw_tasks
        from sparring.trainers.bootstrap import expert_demonstrations

        cfg, metrics = self.config, {}
        if self.kind is not None and self.library is None:
            self.library = self.initial_library()
        if cfg.reflector.enabled:
            self.memory = ReflectionMemory(cfg.reflector.memory)
        sizes = {"proposer": cfg.proposer.bootstrap_tasks, "reflector": cfg.reflector.bootstrap_tasks,
                 "judge": cfg.verifier.judge_bootstrap}
        n = max([sizes[role] for role in ROLES if self.own_model(role)], default=0)
        if n:
            k = cfg.proposer.k
            # round 0's tasks: where the expert's demonstrations are (env.bootstrap_kwargs in easy-to-hard runs)
            tasks = draw_tasks(self.env_id, self.ctx.expert_kwargs, "train", *self.seeds.roles_bootstrap_tasks(), n)
            with self.ctx.generating(self.ctx.run.checkpoint("round-000")) as policy:
                solver = Solver(policy, self.env_id, self.env_kwargs,
                                SamplingParams(temperature=cfg.expert_iteration.temperature, max_tokens=cfg.policy.max_tokens),
                                max_turns=cfg.env.max_turns, prompt=self.solver_prompt(tasks))
                groups = by_task(solver.run(tasks, k=k, seed=self.seeds.bootstrap(), on_turn=self.ctx.bars.episodes(
                    "roles' bootstrap: solver attempts", n * k)), k)
            metrics["bootstrap/roles_pass@1"] = sum(t.success for g in groups for t in g) / max(1, n * k)
            if self.own_model("proposer") and self.env.proposer_writes_instructions:
                speaker = InstructionProposer(self.env_id, self.env_kwargs, cfg.proposer)
                routes = speaker.draw(sizes["proposer"], *self.seeds.roles_bootstrap_tasks())
                metrics.update(self._train_role("proposer", 0, speaker.examples(routes, tokenizer),
                                                cfg.proposer.bootstrap_sft))
            elif self.own_model("proposer"):
                proposer = PolicyProposer(self.env_id, self.env_kwargs, cfg.proposer, k)
                labelled = [(g[0].task, sum(t.success for t in g) / k) for g in groups[:sizes["proposer"]]]
                metrics.update(self._train_role("proposer", 0, proposer.examples(labelled, tokenizer),
                                                cfg.proposer.bootstrap_sft))
            if self.own_model("reflector"):
                chosen = groups[:sizes["reflector"]]
                demos = expert_demonstrations(self.env_id, self.ctx.expert_kwargs, [g[0].task for g in chosen],
                                              cfg.bootstrap.demonstrations)
                reflector = Reflector(self.env_id, self.env_kwargs, cfg.reflector, self.memory,
                                      max_tokens=cfg.policy.max_tokens, max_turns=cfg.env.max_turns)
                examples = reflector.bootstrap_examples(chosen, {task_key(d.task): d for d in demos}, tokenizer)
                metrics.update(self._train_role("reflector", 0, examples, cfg.reflector.bootstrap_sft))
            if self.own_model("judge"):
                attempts = [t for g in groups[:sizes["judge"]] for t in g]
                metrics.update(self._train_role("judge", 0, judge_examples(attempts, tokenizer, cfg.verifier.judge_prompt),
                                                cfg.verifier.judge_bootstrap_sft))
        metrics.update(self.finish_round(0))
        return metrics

    # ---- a round's tasks ------------------------------------------------------------------------
    def forbidden(self, r: int) -> set[str]:
        """Tasks a proposer may not pose: the held-out ones, and with `novel` those of earlier rounds."""
        keys = {task_key(t) for _, tasks, _ in self.ctx.eval_sets.values() for t in tasks}
        if self.config.proposer.novel:
            for earlier in range(1, r):
                keys |= {task_key(rec["task"]) for rec in read_jsonl(self.ctx.run.round_dir(earlier) / "tasks.jsonl")}
        return keys

    def round_tasks(self, r: int, generator_tasks: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, float]]:
        """The round's training tasks and their `tasks.jsonl` records: the proposer's share first, then the
        generator's tasks (in chains of similar tasks when skills chain). Returns (tasks, records, metrics)."""
        cfg = self.config
        self.load_state(r - 1)
        self.examples, self.proposals = {}, []
        quota = round(cfg.proposer.fraction * len(generator_tasks)) if cfg.proposer.kind != "none" else 0
        records: list[dict[str, Any]] = []
        metrics: dict[str, float] = {}
        if cfg.proposer.kind == "curriculum":
            curriculum = CurriculumProposer(self.env_id, self.env_kwargs, cfg.proposer)
            level = curriculum.level(self.previous("proposer/level"), self.previous("proposer/solve_rate"))
            proposed = curriculum.propose(level, *self.seeds.curriculum_tasks(r), quota)
            records += [{"task": t, "source": "curriculum", "level": level} for t in proposed]
            metrics.update({"proposer/level": level, "proposer/valid_rate": 1.0})
        elif cfg.proposer.kind == "policy":
            records += self._propose(r, quota, metrics)
        rest = generator_tasks[:len(generator_tasks) - len(records)]
        if self.kind is not None and cfg.skills.chains and cfg.algorithm == "expert_iteration":
            chains = make_chains(rest, cfg.skills.chain_length, self.env, self.kind, self.seeds.round(r))
            self.chains = [[rec["task"]] for rec in records] + chains
            for c, chain in enumerate(chains, start=len(records)):
                records += [{"task": t, "source": "generator" if i == 0 else "chain", "chain": c} for i, t in enumerate(chain)]
        else:
            records += [{"task": t, "source": "generator"} for t in rest]
            self.chains = [[rec["task"]] for rec in records]
        self.records = records
        return [rec["task"] for rec in records], records, metrics

    def _propose(self, r: int, quota: int, metrics: dict[str, float]) -> list[dict[str, Any]]:
        cfg = self.config.proposer
        if self.env.proposer_writes_instructions:
            return self._propose_instructions(r, quota)
        proposer = self.make_proposer(r)
        aim = self.aim()
        recent = [(p["task"], p["pass_rate"]) for p in read_jsonl(self.ctx.run.round_dir(r - 1) / "proposals.jsonl")
                  if p.get("pass_rate") is not None][:8]
        with self.ctx.generating(self.checkpoint("proposer", r - 1)) as policy:
            self.proposals = proposer.propose(policy, cfg.candidates or 3 * quota, aim, seed=self.seeds.round(r),
                                              recent=recent, solve_rate=self.previous("proposer/solve_rate"))
        accepted = proposer.accept(self.proposals, quota)
        self.proposer = proposer
        metrics["proposer/aim"] = aim
        return [{"task": p.task, "source": "proposer", "label": p.label} for p in accepted]

    def _propose_instructions(self, r: int, quota: int) -> list[dict[str, Any]]:
        """SRDF: routes drawn from the generator, instructions written by the proposer, kept when the solver
        (the navigator, as round r - 1 left it) follows them."""
        cfg = self.config
        proposer = self.make_proposer(r)
        routes = proposer.draw(cfg.proposer.candidates or 3 * quota, *self.seeds.instruction_routes(r))
        with self.ctx.generating(self.checkpoint("proposer", r - 1)) as policy:
            self.proposals = proposer.write(policy, routes, seed=self.seeds.round(r))
        with self.ctx.generating(self.ctx.run.checkpoint(f"round-{r - 1:03d}")) as navigator:
            accepted = proposer.accept(self.proposals, navigator, quota, max_tokens=cfg.policy.max_tokens,
                                       max_turns=cfg.env.max_turns, seed=self.seeds.round(r))
        self.proposer = proposer
        return [{"task": p.task, "source": "proposer"} for p in accepted]

    def make_proposer(self, r: int) -> PolicyProposer | InstructionProposer:
        """Round `r`'s policy proposer (the speaker for instruction families)."""
        if self.env.proposer_writes_instructions:
            return InstructionProposer(self.env_id, self.env_kwargs, self.config.proposer)
        return PolicyProposer(self.env_id, self.env_kwargs, self.config.proposer, self.k, self.forbidden(r))

    @property
    def k(self) -> int:
        return self.config.expert_iteration.k if self.config.algorithm == "expert_iteration" else self.config.proposer.k

    def aim(self) -> float:
        from sparring.agents.proposer import next_aim

        return next_aim(self.previous("proposer/aim"), self.previous("proposer/solve_rate"), self.config.proposer.band, self.k)

    # ---- solving --------------------------------------------------------------------------------
    def solver_prompt(self, tasks: list[dict[str, Any]]) -> Any:
        """A Solver prompt hook that shows each task its retrieved skills (None without skills)."""
        if self.library is None:
            return None
        shown = {task_key(t): self.library.retrieve(t, self.config.skills.top_k) for t in tasks}
        return skill_prompt(self.kind, shown, self.config.skills.prompt)

    def eval_prompt(self, tasks: list[dict[str, Any]]) -> Any:
        return self.solver_prompt(tasks) if self.config.skills.at_eval else None

    def collect(self, sampler: Any, tasks: list[dict[str, Any]], k: int, params: SamplingParams, r: int,
                on_turn: Any = None, first_task: int = 0, folder: Path | None = None
                ) -> tuple[list[Trajectory], dict[str, float]]:
        """The solver's k attempts per task, in task order: with skills, SAGE's sequential rollout over the chains
        (all the round's tasks in one call: the library grows position by position over every chain; with `folder`
        each position's end is saved there and a cut rollout continues after the last one saved). Without
        skills, `tasks` may be a part of the round's tasks, `first_task` the index of its first (sparring.stages)."""
        from sparring.solver import Solver

        cfg = self.config
        if self.library is not None:
            if first_task or len(tasks) != sum(map(len, self.chains)):
                raise ValueError("with skills, collect plays every chain of the round in one call, not a part")
            return chain_rollout(sampler, self.env_id, self.env_kwargs, self.library, self.chains, k, params, cfg.skills,
                                 max_turns=cfg.env.max_turns, seed=self.seeds.round(r), round=r, on_turn=on_turn,
                                 folder=folder)
        solver = Solver(sampler, self.env_id, self.env_kwargs, params, max_turns=cfg.env.max_turns)
        return solver.run(tasks, k=k, seed=self.seeds.round(r), on_turn=on_turn, first_task=first_task), {}

    def grpo_hooks(self, tasks: list[dict[str, Any]]) -> tuple[Any, list[Any]]:
        """GRPO with skills: each prompt shows its task's retrieved skills (their ids in the `skills` column), and
        the skill-integrated reward joins the env's when `skills.reward_bonus` > 0."""
        if self.library is None:
            return None, []
        from sparring.agents.skills import SkillRewardFunction

        shown = {task_key(t): self.library.retrieve(t, self.config.skills.top_k) for t in tasks}

        def hook(task: dict[str, Any], observation: str) -> tuple[str, dict[str, str]]:
            skills = shown.get(task_key(task), [])
            return (self.kind.render(observation, skills, self.config.skills.prompt),
                    {"skills": json.dumps([s.id for s in skills])})
        bonus = self.config.skills.reward_bonus
        return hook, [SkillRewardFunction(self.env_id, self.env_kwargs, self.library, bonus)] if bonus else []

    # ---- after the solver played ----------------------------------------------------------------
    def after_collect(self, r: int, trajectories: list[Trajectory], k: int, tokenizer: Any
                      ) -> tuple[list[bool] | None, list[Trajectory], dict[str, float]]:
        """Verifiers, proposer statistics and reflection on the round's attempts (`k` per task, task order).
        Returns the flags of the verifier in use (None: the env's), extra training trajectories, metrics."""
        from sparring.solver import by_task

        cfg = self.config
        groups = by_task(trajectories, k)
        metrics: dict[str, float] = {}
        verified, extra = None, []
        if cfg.verifier.active != ["programmatic"]:
            judgements, verified = self.judge(r, groups)
            metrics.update(verifier_metrics(judgements, cfg.verifier.use))
            if self.own_model("judge"):
                self.examples["judge"] = judge_examples(trajectories, tokenizer, cfg.verifier.judge_prompt)
        if cfg.proposer.kind != "none":
            metrics.update(self._proposer_stats(r, groups, tokenizer))
        if self.library is not None:
            extra += [t for t in trajectories if t.success and t.meta.get("skill_bonus", 0) > 0]
        if cfg.reflector.enabled:
            refined, reflector_metrics = self.reflect(r, groups, tokenizer)
            metrics.update(reflector_metrics)
            extra += refined
            self.refined = refined
        else:
            self.refined = []
        return verified, extra, metrics

    def judge(self, r: int, groups: list[list[Trajectory]]) -> tuple[dict[str, list[list[bool]]], list[bool] | None]:
        """Every active verifier's flags, on the attempts all of them judged (a model judge in measurement only
        reads `judge_samples` of them, whole groups), and the flags of the verifier in use on every attempt
        (None for the env's)."""
        cfg = self.config.verifier
        chosen = list(range(len(groups)))
        if "judge" in cfg.active and cfg.use != "judge" and cfg.judge_samples:
            random.Random(self.seeds.round(r)).shuffle(chosen)
            chosen = sorted(chosen[:max(1, cfg.judge_samples // max(1, len(groups[0])))])
        subset = [groups[i] for i in chosen]
        judgements = {"programmatic": ProgrammaticVerifier().judge(subset)}
        selection = None
        if "majority" in cfg.active:
            judgements["majority"] = MajorityVoteVerifier(cfg.min_votes).judge(subset)
        if "judge" in cfg.active:
            with self.ctx.generating(self.checkpoint("judge", r - 1)) as policy:
                judgements["judge"] = ModelJudgeVerifier(policy, cfg.judge_prompt).judge(subset)
        if cfg.use != "programmatic":  # the verifier in use judged every group
            selection = [flag for group in judgements[cfg.use] for flag in group]
        return judgements, selection

    def _proposer_stats(self, r: int, groups: list[list[Trajectory]], tokenizer: Any) -> dict[str, float]:
        cfg = self.config.proposer
        sources = [rec["source"] for rec in self.records]
        rates = [sum(t.success for t in g) / len(g) for g in groups]
        proposed = [(rec["task"], p) for rec, p, source in zip(self.records, rates, sources)
                    if source in ("proposer", "curriculum")]
        pass_rates = [p for _, p in proposed]
        if cfg.kind == "policy":
            metrics = proposal_metrics(self.proposals, pass_rates)
            by_key = {task_key(task): p for task, p in proposed}
            atomic_write_text(self.ctx.run.round_dir(r) / "proposals.jsonl", "".join(
                json.dumps({"text": p.text, "label": p.label, "task": p.task, "reason": p.reason, "detail": p.detail,
                            "pass_rate": by_key.get(task_key(p.task)) if p.accepted else None,
                            "learnability": learnability(by_key[task_key(p.task)]) if p.accepted and task_key(p.task) in by_key else None},
                           sort_keys=True) + "\n" for p in self.proposals))
            if self.own_model("proposer") and isinstance(self.proposer, InstructionProposer):
                # SRDF trains the speaker on the pairs its navigator filter kept
                self.examples["proposer"] = self.proposer.examples([task for task, _ in proposed], tokenizer)
            elif self.own_model("proposer"):
                learnable = [(task, p) for task, p in proposed if 0 < p < 1]
                self.examples["proposer"] = self.proposer.examples(learnable, tokenizer)
        else:
            metrics = {"proposer/valid_rate": 1.0, **pass_rate_metrics(pass_rates)}
        return metrics

    def reflect(self, r: int, groups: list[list[Trajectory]], tokenizer: Any) -> tuple[list[Trajectory], dict[str, float]]:
        cfg = self.config
        reflector = Reflector(self.env_id, self.env_kwargs, cfg.reflector, self.memory,
                              max_tokens=cfg.policy.max_tokens, max_turns=cfg.env.max_turns)
        # the reflector reads the plain tasks: skills shown to the solver are not part of its prompt
        plain = [[_plain(t) for t in g] for g in groups]
        with self.ctx.generating(self.checkpoint("reflector", r - 1)) as policy:
            refined, metrics = reflector.refine(policy, plain, seed=self.seeds.round(r), round=r)
        if self.own_model("reflector"):
            self.examples["reflector"] = reflector.examples(plain, tokenizer, refined)
        return refined, metrics

    # ---- training the roles ---------------------------------------------------------------------
    def train_roles(self, r: int) -> dict[str, float]:
        cfg, metrics = self.config, {}
        settings = {"proposer": cfg.proposer.sft, "reflector": cfg.reflector.sft, "judge": cfg.verifier.judge_sft}
        for role in ROLES:
            if self.own_model(role):
                metrics.update(self._train_role(role, r, self.examples.get(role, []), settings[role]))
        return metrics


def _plain(trajectory: Trajectory) -> Trajectory:
    """The attempt as the env posed it: without the skills its prompt showed."""
    if "plain_observation" not in trajectory.meta:
        return trajectory
    import copy

    out = copy.deepcopy(trajectory)
    out.turns[0].observation = out.meta["plain_observation"]
    return out
