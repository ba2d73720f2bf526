"""The skill library in the loop (`SkillsRole`): seeded from the bootstrap's demonstrations, shown to the solver with
each task, grown by SAGE's chain rollout, pruned and saved after each round (`rounds/NNN/skills.jsonl`).
The library itself, its skill kinds and the rollout are in `sparring.agents.skills`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sparring.agents.proposer import task_key
from sparring.agents.role import Collected, PromptHook, Record, Role, expect, read_saved
from sparring.agents.skills import (
    SkillKind,
    SkillLibrary,
    SkillRewardFunction,
    as_shown,
    chain_rollout,
    make_chains,
    skill_kind_for,
    skill_prompt,
)
from sparring.context import RunContext
from sparring.envs.base import TextEnv
from sparring.policies.policy import Policy, SamplingParams
from sparring.trajectories import Trajectory


class SkillsRole(Role):
    """The skill library of the run: `library` as the current round left it, `chains` the round's tasks as chains
    of similar tasks (length 1 without SAGE's chains)."""

    name = "skills"

    def __init__(self, ctx: RunContext, env: TextEnv):
        super().__init__(ctx, env)
        self.settings = ctx.config.skills
        self.kind: SkillKind = skill_kind_for(env)
        self.library: SkillLibrary | None = None
        self.chains: list[list[dict[str, Any]]] = []

    @classmethod
    def wanted(cls, config: Any) -> bool:
        return config.skills.enabled

    def initial_library(self) -> SkillLibrary:
        """Round 0's library: the one `skills.load` names, else an empty one."""
        if self.settings.load:
            return SkillLibrary.load(self.settings.load, self.kind, self.env, self.settings.max_size)
        return SkillLibrary(self.kind, self.env, self.settings.max_size)

    def begin(self, r: int) -> None:
        super().begin(r)
        if r == 0:
            if self.library is None:  # (the bootstrap's demonstrations may have seeded it)
                self.library = self.initial_library()
        else:
            self.library = SkillLibrary.load(self.ctx.run.round_dir(r - 1) / "skills.jsonl", self.kind, self.env,
                                             self.settings.max_size)

    def demonstrations(self, demos: list[Trajectory]) -> list[Trajectory]:
        """With `skills.bootstrap`: seed the library from the demonstrations' verified skills and show each
        demonstration the skills retrieved for its task, so the solver learns the prompt it will see."""
        if not self.settings.bootstrap:
            return demos
        if self.library is None:
            self.library = self.initial_library()
            if not self.settings.load:
                for t in demos:
                    self.library.add(self.kind.extract(t))
        for t in demos:
            as_shown(t, self.kind, self.library.retrieve(t.task, self.settings.top_k), self.settings.prompt)
        return demos

    def tasks(self, r: int, records: list[Record]) -> tuple[list[Record], dict[str, float]]:
        """With SAGE's chains and a trainer that samples: the generator's tasks in chains of similar tasks, after the
        proposer's (each of those a chain of its own)."""
        from sparring.trainers.base import make_trainer

        head = [rec for rec in records if rec["source"] != "generator"]
        if not (self.settings.chains and make_trainer(self.config.algorithm, self.ctx, r).k):
            self.chains = [[rec["task"]] for rec in records]
            return records, {}
        rest = [rec["task"] for rec in records if rec["source"] == "generator"]
        chains = make_chains(rest, self.settings.chain_length, self.env, self.kind, self.ctx.seeds.round(r))
        self.chains = [[rec["task"]] for rec in head] + chains
        for c, chain in enumerate(chains, start=len(head)):
            head += [{"task": t, "source": "generator" if i == 0 else "chain", "chain": c} for i, t in enumerate(chain)]
        return head, {}

    def prompt(self, tasks: list[dict[str, Any]], evaluation: bool) -> PromptHook | None:
        """Each task shown with its retrieved skills (at evaluation only with `skills.at_eval`)."""
        if self.library is None or (evaluation and not self.settings.at_eval):
            return None
        shown = {task_key(t): self.library.retrieve(t, self.settings.top_k) for t in tasks}
        return skill_prompt(self.kind, shown, self.settings.prompt)

    def rollout(self, sampler: Policy, tasks: list[dict[str, Any]], k: int, params: SamplingParams, r: int,
                on_turn: Callable[[int, int], None] | None, folder: Path
                ) -> tuple[list[Trajectory], dict[str, float]] | None:
        """SAGE's sequential rollout over the round's chains (every task of the round in one call: the library grows
        position by position over every chain); each position's end is saved in `folder`, and a cut rollout goes
        on after the last one saved."""
        if self.library is None:
            return None
        if len(tasks) != sum(map(len, self.chains)):
            raise ValueError("with skills, the rollout plays every chain of the round in one call, not a part")
        cfg = self.config
        return chain_rollout(sampler, self.ctx.env_id, self.ctx.env_kwargs, self.library, self.chains, k, params,
                             self.settings, max_turns=cfg.env.max_turns, seed=self.ctx.seeds.round(r), round=r,
                             on_turn=on_turn, folder=folder)

    def trainer_hooks(self, tasks: list[dict[str, Any]]) -> dict[str, Any]:
        """GRPO: each prompt shows its task's retrieved skills (their ids in the `skills` column), and the
        skill-integrated reward joins the env's when `skills.reward_bonus` > 0."""
        library, settings = self.library, self.settings
        if library is None:
            return {}
        shown = {task_key(t): library.retrieve(t, settings.top_k) for t in tasks}

        def hook(task: dict[str, Any], observation: str) -> tuple[str, dict[str, str]]:
            skills = shown.get(task_key(task), [])
            return self.kind.render(observation, skills, settings.prompt), {"skills": json.dumps([s.id for s in skills])}
        bonus = settings.reward_bonus
        return {"prompt_hook": hook,
                "extra_rewards": [SkillRewardFunction(self.ctx.env_id, self.ctx.env_kwargs, library, bonus)] if bonus else []}

    def after_collect(self, r: int, records: list[Record], groups: list[list[Trajectory]], tokenizer: Any) -> Collected:
        """The verified attempts that earned the skill-integrated reward train once more (expert iteration)."""
        if self.library is None:
            return Collected()
        return Collected(extra=[t for g in groups for t in g if t.success and t.meta.get("skill_bonus", 0) > 0])

    def finish(self, r: int) -> dict[str, float]:
        """Prune and save the library (also as the run's latest, `skills.jsonl`): `skills/size`, `skills/pruned`."""
        if self.library is None:
            return {}
        metrics: dict[str, float] = {"skills/pruned": self.library.prune(self.settings.min_uses, self.settings.min_rate),
                   "skills/size": len(self.library)}
        self.library.save(self.ctx.run.round_dir(r) / "skills.jsonl")
        self.library.save(self.ctx.run.root / "skills.jsonl")  # the latest, for people and other tools
        return metrics

    def save(self, folder: Path) -> dict[str, Any]:
        if self.library is not None:
            self.library.save(folder / "skills.jsonl")
        return {"chains": self.chains, "library": self.library is not None}

    def load(self, folder: Path, saved: dict[str, Any]) -> None:
        self.chains = expect(saved, chains=list, library=bool)["chains"]
        self.library = (read_saved(folder, "skills.jsonl", lambda p: SkillLibrary.load(p, self.kind, self.env,
                                                                                       self.settings.max_size))
                        if saved["library"] else None)
