"""The roles of a self-play run around the solver, and what the loop asks of them all at once (`Roles`).

The config sections `proposer`, `skills`, `verifier` and `reflector` each turn on one role (`ROLE_CLASSES`, in the
order the loop calls them: the tasks are proposed, shown with skills, verified, reflected on). `Roles` builds the
enabled ones from the run context and calls each hook of `sparring.agents.role.Role` on every role in that order:

    round 0      demonstrations(demos)   the skill library seeded from the expert's demonstrations
                 bootstrap(tokenizer)    the bootstrapped solver's attempts at the roles' bootstrap tasks, from which
                                         the proposer's, judge's and reflector's models learn their formats
    round r >= 1 tasks(r, tasks)         proposed tasks (accepted only when valid) + generator tasks, in chains
                 collect(...)            the solver's k attempts per task (with skills shown: SAGE's rollout)
                 after_collect(...)      pass rates of the proposed tasks, the verifiers' judgements and agreement,
                                         Re-ReST refinement of the failed tasks
                 train(r), finish(r)     each role's own model trained on the round's data; the files of round r

Each role's model is a checkpoint of its own (`checkpoints/<model>-NNN`), started from the bootstrapped solver and
trained in the loop, or (`model: solver`) the solver's current checkpoint, prompted only. Everything a round
writes is atomic and read back from the previous round's files, so `--resume` replays nothing: the proposer's aim
and the curriculum's level come from `metrics.jsonl`, the skill library from `rounds/NNN/skills.jsonl`, the
reflection memory from `rounds/NNN/reflections.jsonl`. Inside a round, each stage that changes what later stages
read (`STATEFUL`) leaves the roles' state in `rounds/NNN/agents/<stage>/` before its stage record (`save_stage`);
a resumed round loads the latest one (`resume`) instead of running the stage again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sparring.agents.proposer import ProposerRole
from sparring.agents.reflector import ReflectorRole
from sparring.agents.role import Collected, Damaged, PromptHook, Record, Role, expect
from sparring.agents.skills_role import SkillsRole
from sparring.agents.verifiers import VerifierRole
from sparring.context import RunContext
from sparring.errors import SparringError
from sparring.io import atomic_dir, atomic_write_json
from sparring.policies.policy import Policy, SamplingParams
from sparring.trajectories import Trajectory

ROLE_CLASSES: tuple[type[Role], ...] = (ProposerRole, SkillsRole, VerifierRole, ReflectorRole)
# the stages of a round that change what its later stages read from the roles: the library the bootstrap seeds,
# the roles' bootstrap (library pruned, memory made), the round's tasks and proposals, and sampling (the library
# and memory as the solver and reflector left them, each role's training data, the verifier's flags)
STATEFUL = ("bootstrap", "agents_bootstrap", "tasks", "sampling")


class Roles:
    """The enabled roles of a run, in `ROLE_CLASSES`' order, and the round's task records they share."""

    def __init__(self, ctx: RunContext):
        from sparring.envs.catalog import text_env

        self.ctx, self.config = ctx, ctx.config
        self.env = text_env(ctx.env_id, **ctx.env_kwargs)
        self.roles: list[Role] = [cls(ctx, self.env) for cls in ROLE_CLASSES if cls.wanted(ctx.config)]
        self.records: list[Record] = []  # the round's tasks.jsonl lines, in task order

    @staticmethod
    def wanted(config: Any) -> bool:
        """Whether `config` (a `SelfPlayConfig`) turns any role on."""
        return any(cls.wanted(config) for cls in ROLE_CLASSES)

    def get(self, name: str) -> Role | None:
        return next((role for role in self.roles if role.name == name), None)

    def models(self) -> list[str]:
        """The roles' own models (`checkpoints/<model>-NNN`)."""
        return [role.model for role in self.roles if role.own_model]

    # ---- round 0 ----------------------------------------------------------------------------------
    def demonstrations(self, demos: list[Trajectory]) -> list[Trajectory]:
        for role in self.roles:
            demos = role.demonstrations(demos)
        return demos

    def bootstrap(self, tokenizer: Any) -> dict[str, float]:
        """Round 0 for the roles, once the solver's round-000 checkpoint is saved: the bootstrapped solver's
        `proposer.k` attempts at the most bootstrap tasks a role with a model of its own reads, then each role's
        bootstrap, then round 0's files."""
        from sparring.envs.catalog import draw_tasks
        from sparring.solver import Solver, by_task

        cfg, ctx, metrics = self.config, self.ctx, {}
        for role in self.roles:
            role.begin(0)
        n = max([role.bootstrap_tasks for role in self.roles if role.own_model], default=0)
        if n:
            k = cfg.proposer.k
            # round 0's tasks: where the expert's demonstrations are (env.bootstrap_kwargs in easy-to-hard runs)
            tasks = draw_tasks(ctx.env_id, ctx.expert_kwargs, "train", *ctx.seeds.roles_bootstrap_tasks(), n)
            with ctx.generating(ctx.run.checkpoint("round-000")) as policy:
                solver = Solver(policy, ctx.env_id, ctx.env_kwargs,
                                SamplingParams(temperature=cfg.expert_iteration.temperature, max_tokens=cfg.policy.max_tokens),
                                max_turns=cfg.env.max_turns, prompt=self.prompt(tasks, evaluation=False))
                groups = by_task(solver.run(tasks, k=k, seed=ctx.seeds.bootstrap(), on_turn=ctx.bars.episodes(
                    "roles' bootstrap: solver attempts", n * k)), k)
            metrics["bootstrap/roles_pass@1"] = sum(t.success for g in groups for t in g) / max(1, n * k)
            for role in self.roles:
                metrics.update(role.bootstrap(groups, tokenizer))
        metrics.update(self.finish(0))
        return metrics

    # ---- a round ----------------------------------------------------------------------------------
    def tasks(self, r: int, generator_tasks: list[dict[str, Any]]
              ) -> tuple[list[dict[str, Any]], list[Record], dict[str, float]]:
        """The round's training tasks and their `tasks.jsonl` records, from the generator's as each role changes them
        (the proposer's share first; the rest in chains of similar tasks with skills). Returns (tasks, records,
        metrics)."""
        records: list[Record] = [{"task": t, "source": "generator"} for t in generator_tasks]
        metrics: dict[str, float] = {}
        for role in self.roles:
            role.begin(r)
        for role in self.roles:
            records, more = role.tasks(r, records)
            metrics.update(more)
        self.records = records
        return [rec["task"] for rec in records], records, metrics

    def prompt(self, tasks: list[dict[str, Any]], evaluation: bool = True) -> PromptHook | None:
        """What the solver is shown with each of `tasks` (a Solver prompt hook; None: the env's observation)."""
        return next((hook for role in self.roles if (hook := role.prompt(tasks, evaluation)) is not None), None)

    def k(self, r: int) -> int:
        """Attempts per task of the roles' probe, for a trainer that samples while it trains (GRPO)."""
        return self.config.proposer.k

    def collect(self, sampler: Policy, tasks: list[dict[str, Any]], k: int, params: SamplingParams, r: int,
                on_turn: Callable[[int, int], None] | None) -> tuple[list[Trajectory], dict[str, float]]:
        """The solver's `k` attempts per task, in task order: played by a role that plays them itself (skills: SAGE's
        chain rollout, position by position, each position's end saved to rounds/NNN/sampling/skills-position-P),
        else part by part (`RunContext.collect_parts`), so that a killed stage plays only what it had not saved."""
        from sparring.solver import Solver

        folder = self.ctx.run.round_dir(r) / "sampling"
        for role in self.roles:
            played = role.rollout(sampler, tasks, k, params, r, on_turn, folder)
            if played is not None:
                return played
        solver = Solver(sampler, self.ctx.env_id, self.ctx.env_kwargs, params, max_turns=self.config.env.max_turns)
        return self.ctx.collect_parts(r, tasks, lambda part, a: solver.run(
            part, k=k, seed=self.ctx.seeds.round(r), on_turn=on_turn, first_task=a)), {}

    def trainer_hooks(self, tasks: list[dict[str, Any]]) -> dict[str, Any]:
        """What a trainer that samples while it trains gets in its `state` (GRPO: `prompt_hook`, `extra_rewards`)."""
        out: dict[str, Any] = {}
        for role in self.roles:
            out.update(role.trainer_hooks(tasks))
        return out

    def after_collect(self, r: int, trajectories: list[Trajectory], k: int, tokenizer: Any) -> Collected:
        """Each role on the round's attempts (`k` per task, in the order of the round's records): the flags of the
        verifier in use (None: the env's), trajectories that train as they are, those saved with the round's."""
        from sparring.solver import by_task

        groups, out = by_task(trajectories, k), Collected()
        for role in self.roles:
            out.add(role.after_collect(r, self.records, groups, tokenizer))
        return out

    def train(self, r: int) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for role in self.roles:
            metrics.update(role.train(r))
        return metrics

    def finish(self, r: int) -> dict[str, float]:
        """Each role's files of round `r` (the skill library pruned and saved, the reflection memory saved)."""
        metrics: dict[str, float] = {}
        for role in self.roles:
            metrics.update(role.finish(r))
        return metrics

    # ---- the state a stage leaves, for a resumed round ------------------------------------------
    def stage_dir(self, r: int, stage: str) -> Path:
        return self.ctx.run.round_dir(r) / "agents" / stage

    def save_stage(self, r: int, stage: str, state: dict[str, Any]) -> None:
        """What the later stages of round `r` read from the roles once `stage` finished, in one folder written
        atomically (before the stage's record): each role's files and state (the library, the memory, the chains,
        the proposals, each role's training data), the round's task records, and of `state` (what the loop passes
        between stages) the verifier's flags and the extra training trajectories (extra/)."""
        from sparring.trajectories import save_trajectories

        with atomic_dir(self.stage_dir(r, stage)) as tmp:
            roles = {role.name: role.save(tmp) for role in self.roles}
            if state.get("extra"):
                save_trajectories(state["extra"], tmp / "extra")
            passed = {key: state[key] for key in ("verified",) if key in state}
            atomic_write_json(tmp / "state.json", {"records": self.records, "state": passed,
                                                   "extra": bool(state.get("extra")), "roles": roles})

    def resume(self, r: int, finished: list[str], state: dict[str, Any]) -> None:
        """A round resumed after its stages `finished`: the roles as the latest of them that changed them left them."""
        stage = next((stage for stage in reversed(finished) if stage in STATEFUL), None)
        if stage is not None:
            self.load_stage(r, stage, state)

    def load_stage(self, r: int, stage: str, state: dict[str, Any]) -> None:
        """The roles as `stage` of round `r` left them (`save_stage`), and `state`'s keys it saved. A SparringError
        naming the file and what is wrong with it, in one line, when anything is missing or damaged."""
        from sparring.trajectories import load_trajectories

        folder = self.stage_dir(r, stage)
        where, name = folder.relative_to(self.ctx.run.root), "state.json"
        try:
            saved = json.loads((folder / name).read_text())
            if not isinstance(saved, dict):
                raise ValueError(f"not the object save_stage writes but a {type(saved).__name__}")
            expect(saved, records=list, state=dict, extra=bool, roles=dict)
            expect(saved["roles"], **{role.name: dict for role in self.roles})
            for role in self.roles:
                role.load(folder, saved["roles"][role.name])
            name = "extra"
            extra = load_trajectories(folder / name) if saved["extra"] else []
        except Damaged as damaged:
            name = damaged.name
            raise SparringError(f"{where / name} is missing" if damaged.detail is None
                                else f"{where / name} is damaged ({damaged.detail[:200]})") from None
        except FileNotFoundError:
            raise SparringError(f"{where / name} is missing") from None
        except (OSError, ValueError, TypeError, KeyError) as error:  # pyarrow's errors are ValueErrors and OSErrors
            detail = " ".join(str(error).split())
            raise SparringError(f"{where / name} is damaged ({detail[:200]})") from None
        self.records = saved["records"]
        state.update(saved["state"])
        if "verified" in saved["state"]:
            state["extra"] = extra

    def stage_problem(self, r: int, stage: str) -> str | None:
        """What is wrong with the roles' state `stage` of round `r` left (one line), or None when it is whole or the
        stage leaves none. Read into roles of its own: these are left as they are."""
        if stage not in STATEFUL:
            return None
        try:
            Roles(self.ctx).load_stage(r, stage, {})
        except SparringError as error:
            return str(error)
        return None
