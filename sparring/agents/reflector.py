"""The reflector: turns failed attempts and their feedback into corrected training data.

Two ideas, one mechanism:
- Reflexion's memory. A failed attempt becomes a reflection (the attempt and what the verifier said
  about it, or a few sentences a policy writes about it); the last `memory` reflections on a task go
  into the next attempt at it (`ReflectionMemory`, persisted as JSON lines in the run directory).
- Re-ReST's refinement. The reflector policy plays the failed task again with those reflections in its
  first observation; an attempt is kept only if the env verifies it, and then joins the solver's
  training data as the plain task and the corrected actions, marked `source="refined"`. Each trial that
  still fails adds its own reflections, so trial t sees the last few of everything tried before.

The reflector learns from the solver's own rounds (`Reflector.examples`): wherever some of a task's k
attempts failed and one succeeded, the failures' reflections -> the success is a supervised pair. Its
bootstrap pairs failures with the expert's solutions.

    >>> reflector = Reflector("Countdown-v0", {"instruction": "compact"}, ReflectorConfig(enabled=True))
    >>> refined, metrics = reflector.refine(policy, groups, seed=0, round=3)
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sparring.agents.proposer import PROMPT_STYLES, ROLE_MODELS, task_key
from sparring.agents.role import Collected, Record, Role, expect, read_saved, train_own_model
from sparring.context import RunContext
from sparring.envs.base import TextEnv, check_at_least, check_choice
from sparring.io import atomic_write_text, read_jsonl
from sparring.policies.policy import Policy, Prompt, SamplingParams
from sparring.trainers.sft import SFTSettings
from sparring.trajectories import Trajectory

REFLECTIONS = ("feedback", "policy")  # a reflection is the attempt and the verifier's feedback, or a policy's words


@dataclass
class ReflectorConfig:
    enabled: bool = False          # turn the reflector on (expert_iteration only)
    model: str = "own"                 # own: its own checkpoint, trained in the loop; solver: the solver's, prompted only
    prompt: str = "compact"            # compact (the task, then one `x attempt : feedback` line per reflection) or full
    reflections: str = "feedback"      # feedback (attempt + verifier feedback) or policy (the reflector writes them)
    memory: int = 3                    # reflections per task kept and shown (Reflexion's last 3)
    trials: int = 2                    # refinement trials per failed task; each sees the reflections so far
    samples: int = 2                   # revised attempts sampled per task and trial
    temperature: float = 1.0       # sampling temperature of revised attempts
    only_unsolved: bool = True         # refine only tasks none of whose attempts verified (else every task with a failure)
    max_tasks: int = 0                 # failed tasks refined per round (0: all)
    bootstrap_tasks: int = 600         # round 0: tasks whose failed attempts are paired with the expert's solutions
    # round 0 training of the reflector's own model
    bootstrap_sft: SFTSettings = field(default_factory=lambda: SFTSettings(steps=300, batch_size=64, learning_rate=1e-3,
                                                                           warmup_steps=20, scheduler="cosine"))
    # each round's training of the reflector
    sft: SFTSettings = field(default_factory=lambda: SFTSettings(steps=30, batch_size=64, learning_rate=3e-4))

    def __post_init__(self) -> None:
        check_choice("reflector.model", self.model, ROLE_MODELS)
        check_choice("reflector.prompt", self.prompt, PROMPT_STYLES)
        check_choice("reflector.reflections", self.reflections, REFLECTIONS)
        check_at_least("reflector", self, {"memory": 1, "trials": 1, "samples": 1, "max_tasks": 0, "bootstrap_tasks": 0})
        if not self.temperature > 0:
            raise ValueError(f"reflector.temperature must be > 0 (revisions are sampled), got {self.temperature!r}")


@dataclass
class Reflection:
    task: str          # the task's key (canonical JSON)
    text: str          # what the next attempt reads
    action: str = ""
    feedback: str = ""
    reward: float = 0.0
    trial: int = 0     # 0: the solver's attempt; t >= 1: the reflector's t-th trial
    round: int = 0


class ReflectionMemory:
    """The last `size` reflections per task, in order; saved and loaded as JSON lines."""

    def __init__(self, size: int = 3, max_tasks: int = 20_000):
        self.size, self.max_tasks = size, max_tasks
        self.by_task: dict[str, list[Reflection]] = {}

    def add(self, reflection: Reflection) -> None:
        kept = self.by_task.pop(reflection.task, [])  # re-inserted last: the dict's order is recency
        if all(r.text != reflection.text for r in kept):
            kept.append(reflection)
        self.by_task[reflection.task] = kept[-self.size:]
        while len(self.by_task) > self.max_tasks:
            self.by_task.pop(next(iter(self.by_task)))

    def recent(self, task: dict[str, Any] | str) -> list[Reflection]:
        return list(self.by_task.get(task if isinstance(task, str) else task_key(task), []))

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_task.values())

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, "".join(json.dumps(asdict(r), sort_keys=True) + "\n"
                                        for rs in self.by_task.values() for r in rs))

    @classmethod
    def load(cls, path: str | Path, size: int = 3) -> ReflectionMemory:
        memory = cls(size)
        for record in read_jsonl(path):
            memory.add(Reflection(**record))
        return memory


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def attempt_text(trajectory: Trajectory) -> str:
    return " | ".join(turn.action for turn in trajectory.turns)


def reflection_text(trajectory: Trajectory, style: str = "compact") -> str:
    """The feedback reflection on a failed attempt: what was tried and what the verifier said."""
    action, feedback = _clip(attempt_text(trajectory), 60), _clip(str(trajectory.verdict.get("feedback", "")), 80)
    return f"x {action} : {feedback}" if style == "compact" else f"Tried: {action}\nResult: {feedback}"


def reflection_prompt(observation: str, reflections: list[Reflection], style: str = "compact") -> str:
    """The first observation of an attempt that reads the reflections so far."""
    if not reflections:
        return observation
    if style == "compact":
        return observation + "".join(f"\n{r.text}" for r in reflections)
    lines = "\n".join(f"- {r.text}" for r in reflections)
    return (f"{observation}\n\nYour earlier attempts at this task failed. What you learned from them:\n{lines}\n"
            "Use it to answer correctly this time.")


def policy_reflection_prompt(trajectory: Trajectory) -> list[dict[str, str]]:
    """Reflexion's self-reflection request, for a policy that writes its own reflections."""
    first = trajectory.turns[0].observation if trajectory.turns else ""
    return [{"role": "user", "content": (
        f"Task:\n{first}\n\nYour attempt:\n{attempt_text(trajectory)}\n\nThe verifier said: "
        f"{trajectory.verdict.get('feedback', '')}\n\nIn one or two sentences, say what went wrong and what to do "
        "differently next time.")}]


def seen_as(trajectory: Trajectory, observation: str) -> Trajectory:
    """A copy of `trajectory` whose first observation is `observation` (what a policy was shown)."""
    out = copy.deepcopy(trajectory)
    if out.turns:
        out.turns[0].observation = observation
    return out


class Reflector:
    def __init__(self, env_id: str, env_kwargs: dict[str, Any], config: ReflectorConfig,
                 memory: ReflectionMemory | None = None, *, max_tokens: int = 64, max_turns: int = 32):
        self.env_id, self.env_kwargs, self.config = env_id, dict(env_kwargs), config
        self.memory = memory if memory is not None else ReflectionMemory(config.memory)
        self.max_tokens, self.max_turns = max_tokens, max_turns

    def reflect(self, failed: list[Trajectory], *, round: int = 0, trial: int = 0,
                policy: Policy | None = None) -> list[Reflection]:
        """Reflections on failed attempts, remembered. With `reflections: policy`, `policy` writes them."""
        failed = [t for t in failed if not t.success and t.turns]
        texts = [reflection_text(t, self.config.prompt) for t in failed]
        if self.config.reflections == "policy" and policy is not None and failed:
            outputs = policy.generate([policy_reflection_prompt(t) for t in failed],
                                      SamplingParams(temperature=0.0, max_tokens=128))
            texts = [_clip(group[0].text, 300) or text for group, text in zip(outputs, texts)]
        out = []
        for t, text in zip(failed, texts):
            reflection = Reflection(task_key(t.task), text, _clip(attempt_text(t), 120),
                                    str(t.verdict.get("feedback", "")), t.reward, trial, round)
            self.memory.add(reflection)
            out.append(reflection)
        return out

    def prompt_hook(self) -> Callable[[Trajectory, str], Prompt]:
        """The Solver's prompt: the conversation so far, the first observation with the task's reflections."""
        style = self.config.prompt

        def prompt(trajectory: Trajectory, observation: str) -> Prompt:
            messages = trajectory.conversation() + [{"role": "user", "content": observation}]
            messages[0] = {"role": "user", "content": reflection_prompt(messages[0]["content"],
                                                                        self.memory.recent(trajectory.task), style)}
            return messages
        return prompt

    def refine(self, policy: Policy, groups: list[list[Trajectory]], *, seed: int = 0,
               round: int = 0) -> tuple[list[Trajectory], dict[str, float]]:
        """Re-ReST: revised attempts at the failed tasks of `groups` (k attempts per task), kept if they verify.

        Returns the refined trajectories (plain observations, `source="refined"`) and metrics:
        `reflector/tasks` (failed tasks tried), `reflector/accepted` (refined attempts kept),
        `reflector/accept_rate` (share of tried tasks with one), `reflector/memory` (reflections held).
        """
        from sparring.solver import Solver, by_task

        cfg = self.config
        if cfg.only_unsolved:
            failed = [g for g in groups if g and not any(t.success for t in g)]
        else:
            failed = [g for g in groups if g and not all(t.success for t in g)]
        if cfg.max_tasks:
            failed = failed[:cfg.max_tasks]
        for group in failed:
            self.reflect(group, round=round, trial=0, policy=policy)
        pending = [group[0].task for group in failed]
        refined: list[Trajectory] = []
        solver = Solver(policy, self.env_id, self.env_kwargs,
                        SamplingParams(temperature=cfg.temperature, max_tokens=self.max_tokens),
                        max_turns=self.max_turns, role="reflector", prompt=self.prompt_hook())
        for trial in range(1, cfg.trials + 1):
            if not pending:
                break
            shown = {task_key(task): [r.text for r in self.memory.recent(task)] for task in pending}
            attempts = by_task(solver.run(pending, k=cfg.samples, seed=seed * 100 + trial), cfg.samples)
            still = []
            for task, group in zip(pending, attempts):
                wins = [t for t in group if t.success]
                if wins:
                    refined.append(self._as_refined(wins[0], trial, round, shown[task_key(task)]))
                else:
                    self.reflect(group, round=round, trial=trial, policy=policy)
                    still.append(task)
            pending = still
        return refined, {"reflector/tasks": len(failed), "reflector/accepted": len(refined),
                         "reflector/accept_rate": len(refined) / len(failed) if failed else 0.0,
                         "reflector/memory": len(self.memory)}

    @staticmethod
    def _as_refined(trajectory: Trajectory, trial: int, round: int, reflections: list[str]) -> Trajectory:
        out = copy.deepcopy(trajectory)
        out.role, out.source = "solver", "refined"
        for turn in out.turns:  # generated under the reflection prompt: not the solver's own log-probs
            turn.token_ids, turn.logprobs = None, None
        out.meta = {**out.meta, "refined": {"trial": trial, "round": round, "reflections": reflections}}
        return out

    def examples(self, groups: list[list[Trajectory]], tokenizer: Any,
                 refined: Sequence[Trajectory] = ()) -> list[dict[str, str]]:
        """The reflector's supervised pairs: for each task with failed and successful attempts, the failures'
        reflections -> a success; and its own refined attempts, with the reflections they were written from."""
        from sparring.trainers.sft import sft_examples

        style, rows = self.config.prompt, []
        for group in groups:
            wins, losses = [t for t in group if t.success], [t for t in group if not t.success and t.turns]
            if wins and losses and wins[0].turns:
                reflections = [Reflection("", reflection_text(t, style)) for t in losses][-self.config.memory:]
                rows.append(seen_as(wins[0], reflection_prompt(wins[0].turns[0].observation, reflections, style)))
        for t in refined:
            texts = t.meta.get("refined", {}).get("reflections", [])
            reflections = [Reflection("", text) for text in texts]
            rows.append(seen_as(t, reflection_prompt(t.turns[0].observation, reflections, style)))
        return sft_examples(rows, tokenizer)

    def bootstrap_examples(self, attempts: list[list[Trajectory]], demonstrations: dict[str, Trajectory],
                           tokenizer: Any) -> list[dict[str, str]]:
        """Round 0's pairs: a task's failed attempts' reflections -> the expert's demonstration of it."""
        from sparring.trainers.sft import sft_examples

        style, rows = self.config.prompt, []
        for group in attempts:
            losses = [t for t in group if not t.success and t.turns]
            demo = demonstrations.get(task_key(group[0].task)) if group else None
            if losses and demo is not None and demo.turns:
                reflections = [Reflection("", reflection_text(t, style)) for t in losses][-self.config.memory:]
                rows.append(seen_as(demo, reflection_prompt(demo.turns[0].observation, reflections, style)))
        return sft_examples(rows, tokenizer)


# ---- the role in the loop ------------------------------------------------------------------------

def plain(trajectory: Trajectory) -> Trajectory:
    """The attempt as the env posed it: without the skills its prompt showed (`meta["plain_observation"]`)."""
    if "plain_observation" not in trajectory.meta:
        return trajectory
    out = copy.deepcopy(trajectory)
    out.turns[0].observation = out.meta["plain_observation"]
    return out


class ReflectorRole(Role):
    """The reflector in the loop: Re-ReST refinement of the round's failed tasks (the refined attempts train and are
    saved with the round's), the reflection memory kept across rounds (`rounds/NNN/reflections.jsonl`), and with
    its own model, training on the round's failures -> successes."""

    name, model = "reflector", "reflector"

    def __init__(self, ctx: RunContext, env: TextEnv):
        super().__init__(ctx, env)
        self.settings = ctx.config.reflector
        self.memory: ReflectionMemory | None = None

    @classmethod
    def wanted(cls, config: Any) -> bool:
        return config.reflector.enabled

    @property
    def own_model(self) -> bool:
        return self.settings.model == "own"

    @property
    def bootstrap_tasks(self) -> int:
        return self.settings.bootstrap_tasks

    def sft(self, r: int) -> SFTSettings:
        return self.settings.bootstrap_sft if r == 0 else self.settings.sft

    def reflector(self) -> Reflector:
        cfg = self.config
        return Reflector(self.ctx.env_id, self.ctx.env_kwargs, self.settings, self.memory,
                         max_tokens=cfg.policy.max_tokens, max_turns=cfg.env.max_turns)

    def begin(self, r: int) -> None:
        super().begin(r)
        self.memory = (ReflectionMemory(self.settings.memory) if r == 0 else
                       ReflectionMemory.load(self.ctx.run.round_dir(r - 1) / "reflections.jsonl", self.settings.memory))

    def bootstrap(self, groups: list[list[Trajectory]], tokenizer: Any) -> dict[str, float]:
        """Its model learns the format: the bootstrapped solver's failures' reflections -> the expert's solution."""
        from sparring.trainers.bootstrap import expert_demonstrations

        if not self.own_model:
            return {}
        chosen = groups[:self.settings.bootstrap_tasks]
        demos = expert_demonstrations(self.ctx.env_id, self.ctx.expert_kwargs, [g[0].task for g in chosen],
                                      self.config.bootstrap.demonstrations)
        examples = self.reflector().bootstrap_examples(chosen, {task_key(d.task): d for d in demos}, tokenizer)
        return train_own_model(self.ctx, self.model, 0, examples, self.sft(0), self.checkpoint(-1))

    def after_collect(self, r: int, records: list[Record], groups: list[list[Trajectory]], tokenizer: Any) -> Collected:
        reflector = self.reflector()
        # the reflector reads the plain tasks: skills shown to the solver are not part of its prompt
        plain_groups = [[plain(t) for t in g] for g in groups]
        with self.ctx.generating(self.checkpoint(r - 1)) as policy:
            refined, metrics = reflector.refine(policy, plain_groups, seed=self.ctx.seeds.round(r), round=r)
        if self.own_model:
            self.examples = reflector.examples(plain_groups, tokenizer, refined)
        return Collected(metrics, extra=refined, kept=refined)

    def finish(self, r: int) -> dict[str, float]:
        if self.memory is not None:
            self.memory.save(self.ctx.run.round_dir(r) / "reflections.jsonl")
        return {}

    def save(self, folder: Path) -> dict[str, Any]:
        if self.memory is not None:
            self.memory.save(folder / "reflections.jsonl")
        return {**super().save(folder), "memory": self.memory is not None}

    def load(self, folder: Path, saved: dict[str, Any]) -> None:
        super().load(folder, expect(saved, memory=bool))
        self.memory = (read_saved(folder, "reflections.jsonl", lambda p: ReflectionMemory.load(p, self.settings.memory))
                       if saved["memory"] else None)
