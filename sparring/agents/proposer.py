"""Proposers: where a self-play round's training tasks come from, aimed at the solver's frontier.

- `CurriculumProposer`, the model-free baseline: the env's own generator, its difficulty knobs moved one
  level up or down a ladder after each round so that the solver's solve rate stays inside a band.
- `PolicyProposer`: a policy prompted to write tasks in the env's Task format (PSV, Absolute Zero,
  Self-Challenging). It is difficulty-aware as in PSV: each prompt asks for a task the solver solves with
  a given pass rate, and the rate asked for follows the solver's recent pass rates on proposed tasks
  (`next_aim`). It is trained in the loop: its accepted, learnable tasks, labelled with the pass rate the
  solver really had on them, are its next supervised data (`proposer_examples`).

A proposed task is accepted only after validation (`check_task`): it parses as the family's Task, lies
within the knobs (the env's `task_problems`), passes the family's own filter (the env's `proposal_problems`:
ToolUse's Code-as-Task checks in the sandbox), is not a held-out or earlier task, and the env's expert solves
it (its actions, replayed in the env, verify). That is the family-generic certificate.

- `InstructionProposer` (SRDF, for families whose env sets `proposer_writes_instructions`: TextNav): the
  generator samples a house and a route; the proposer writes the instruction for that route; the task with
  its instruction replaced is kept when a navigator (the solver) follows it closely (the verdict's nDTW at or
  above a threshold).

Learnability is Absolute Zero's: with p the share of the solver's k samples that solve a task,
`1 - p` when 0 < p < 1, else 0 (a task always or never solved teaches nothing).

    >>> proposer = PolicyProposer("Countdown-v0", {"instruction": "compact"}, ProposerConfig(kind="policy"), k=4)
    >>> proposals = proposer.propose(policy, n=64, aim=0.5, seed=0)
    >>> accepted = proposer.accept(proposals, quota=32)
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparring.agents.role import Collected, Record, Role, expect, train_own_model
from sparring.context import RunContext
from sparring.envs.base import TextEnv, check_at_least, check_choice
from sparring.errors import UnsolvableTaskError
from sparring.io import atomic_write_text, read_jsonl
from sparring.policies.policy import Policy, Prompt, SamplingParams
from sparring.trainers.sft import SFTSettings
from sparring.trajectories import Trajectory

PROPOSER_KINDS = ("none", "curriculum", "policy")
PROMPT_STYLES = ("compact", "full")
ROLE_MODELS = ("own", "solver")  # a role's model: its own checkpoint, trained in the loop; or the solver's, prompted
MAX_TASK_CHARS = 2_000


@dataclass
class ProposerConfig:
    kind: str = "none"                 # none (the generator alone), curriculum (model-free baseline), policy
    fraction: float = 0.5              # share of a round's training tasks that the proposer writes; the generator the rest
    band: list[float] = field(default_factory=lambda: [0.25, 0.75])  # the solve-rate band to aim at
    k: int = 4                         # solver samples per proposed task for its pass rate (expert iteration uses its own k)
    # the policy proposer
    prompt: str = "compact"            # compact: `propose p=0.50` (a tiny model); full: instructions, recent tasks, pass rates
    model: str = "own"                 # own: its own checkpoint, trained in the loop; solver: the solver's, prompted only
    candidates: int = 0                # proposals sampled per round; 0 means 3 x the quota
    temperature: float = 1.0       # sampling temperature of proposals
    max_tokens: int = 40           # tokens per proposal
    novel: bool = True                 # reject tasks posed in an earlier round
    # knob overrides proposed tasks must lie within (default: the env's)
    knobs: dict[str, Any] = field(default_factory=dict)
    bootstrap_tasks: int = 1000        # round 0: generator tasks labelled with the bootstrapped solver's pass rates
    # round 0 training of the proposer's own model
    bootstrap_sft: SFTSettings = field(default_factory=lambda: SFTSettings(steps=300, batch_size=64, learning_rate=1e-3,
                                                                           warmup_steps=20, scheduler="cosine"))
    # each round's training of the proposer
    sft: SFTSettings = field(default_factory=lambda: SFTSettings(steps=30, batch_size=64, learning_rate=3e-4))
    # the curriculum proposer
    # knob overrides, easiest first (empty: the family's ladder, its env's `curriculum_levels`)
    levels: list[dict[str, Any]] = field(default_factory=list)
    # instruction families (TextNav, SRDF): an instruction is kept when the navigator's nDTW reaches this
    ndtw: float = 0.8

    def __post_init__(self) -> None:
        check_choice("proposer.kind", self.kind, PROPOSER_KINDS)
        check_choice("proposer.prompt", self.prompt, PROMPT_STYLES)
        check_choice("proposer.model", self.model, ROLE_MODELS)
        if not 0 < self.fraction <= 1:
            raise ValueError(f"proposer.fraction must be in (0, 1] (the share of a round's tasks it writes), got {self.fraction!r}")
        if len(self.band) != 2 or not 0 <= self.band[0] < self.band[1] <= 1:
            raise ValueError(f"proposer.band must be [low, high] with 0 <= low < high <= 1, got {self.band!r}")
        check_at_least("proposer", self, {"k": 2, "candidates": 0, "max_tokens": 1, "bootstrap_tasks": 0})
        if not self.temperature > 0:
            raise ValueError(f"proposer.temperature must be > 0 (proposals are sampled), got {self.temperature!r}")
        if not 0 <= self.ndtw <= 1:
            raise ValueError(f"proposer.ndtw must be in [0, 1] (an nDTW threshold), got {self.ndtw!r}")
        if not all(isinstance(level, dict) for level in self.levels):
            raise ValueError(f"proposer.levels must be a list of knob dicts, got {self.levels!r}")


def learnability(p: float) -> float:
    """Absolute Zero's proposer reward: 1 - p when 0 < p < 1, else 0."""
    return 1.0 - p if 0.0 < p < 1.0 else 0.0


def task_key(task: dict[str, Any]) -> str:
    """A task's identity: its canonical JSON."""
    return json.dumps(task, sort_keys=True)


# ---- tasks as text ------------------------------------------------------------------------------

def task_to_text(task: dict[str, Any], env: TextEnv, style: str = "compact") -> str:
    """How a proposer writes `task`: the family's compact form (the env's `compact_task`: Countdown's `8 3 2 -> 22`)
    when there is one and `style` is compact, else the task's JSON."""
    compact = env.compact_task(task) if style == "compact" else None
    return compact if compact is not None else json.dumps(task, sort_keys=True)


def text_to_task(text: str, env: TextEnv) -> dict[str, Any]:
    """The task dict a proposer wrote: a JSON object (the first `{...}` in the text), or the family's compact form
    (the env's `parse_compact_task`: Countdown's `8 3 2 -> 22`). A ValueError says why the text is neither; nothing
    is evaluated."""
    if not isinstance(text, str) or len(text) > MAX_TASK_CHARS:
        raise ValueError(f"a proposal must be text of at most {MAX_TASK_CHARS} characters")
    start, end = text.find("{"), text.rfind("}")
    if start >= 0 and end > start:
        try:
            task = json.loads(text[start:end + 1])
        except json.JSONDecodeError as error:
            raise ValueError(f"its JSON does not parse: {error}") from None
        if not isinstance(task, dict):
            raise ValueError(f"its JSON is a {type(task).__name__}, not an object")
        return task
    task = env.parse_compact_task(text)
    if task is None:
        raise ValueError(f"{text[:60]!r} holds no JSON object and is not a compact {env.family} task")
    return task


# ---- validation ---------------------------------------------------------------------------------

@dataclass
class Proposal:
    text: str
    label: float | None = None           # the pass rate the prompt asked for
    task: dict[str, Any] | None = None   # the parsed task (None when the text does not parse)
    reason: str | None = None            # why it was rejected: "parse", "knobs", "unsolvable", "duplicate", "held_out"
    detail: str = ""

    @property
    def accepted(self) -> bool:
        return self.task is not None and self.reason is None


def check_task(env: TextEnv, task: Any, config: Any = None) -> tuple[str, str] | None:
    """None when `task` is one `env` may pose, else (reason code, detail): it must parse as the family's Task, lie
    within the knobs (`env.task_problems(task, config)`; `config` defaults to the env's), pass the family's own
    filter (`env.proposal_problems(task)`), and the expert's actions must solve it when replayed in the env.
    Never raises on a bad task."""
    try:
        parsed = env.task_type.from_dict(task)
    except (ValueError, TypeError, KeyError) as error:
        return "parse", str(error)
    problems = env.task_problems(parsed, config)
    if problems:
        return "knobs", "; ".join(problems)
    problems = env.proposal_problems(parsed)
    if problems:
        return "filter", "; ".join(problems)
    try:
        env.reset(options={"task": parsed.to_dict()})
        actions = env.expert_actions()
        verdict = None
        for action in actions:
            _, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                verdict = info["verdict"]
                break
    except UnsolvableTaskError as error:
        return "unsolvable", str(error)
    except (ValueError, TypeError, RecursionError) as error:  # the expert choked on an odd task: not certified
        return "unsolvable", f"the expert could not solve it: {error}"
    if verdict is None or not verdict["success"]:
        return "unsolvable", "the expert's solution does not verify" if verdict else "the expert's actions do not end the episode"
    return None


def env_config(env: Any, overrides: dict[str, Any]) -> Any:
    """The env's knob dataclass with `overrides` applied (unknown knobs are an error naming the accepted ones)."""
    from sparring.envs.base import resolve_config

    knobs = {f.name: getattr(env.config, f.name) for f in dataclasses.fields(env.config)}
    return resolve_config(type(env.config), {}, None, {**knobs, **overrides}, owner=f"{type(env).__name__} (proposer.knobs)")


# ---- the policy proposer ------------------------------------------------------------------------

def label_grid(k: int) -> list[float]:
    """The pass rates k samples can measure: 0, 1/k, ..., 1."""
    return [i / k for i in range(k + 1)]


def labels_for(aim: float, n: int, k: int, rng: random.Random) -> list[float]:
    """`n` labels on the k-sample grid whose mean is `aim`: each is one of the two grid points around it."""
    aim = min(1.0, max(0.0, aim))
    lower = math.floor(aim * k) / k
    upper = min(1.0, lower + 1 / k)
    share = (aim - lower) * k
    return [upper if rng.random() < share else lower for _ in range(n)]


def next_aim(previous_aim: float | None, solve_rate: float | None, band: list[float], k: int) -> float:
    """The pass rate to ask for next: the band's centre at first, then moved by how far the solver's solve rate
    on the last proposals fell from the centre (solved too often: ask for harder tasks), kept inside (0, 1)."""
    centre = (band[0] + band[1]) / 2
    if previous_aim is None or solve_rate is None:
        return centre
    return min(1 - 1 / k, max(1 / k, previous_aim + (centre - solve_rate)))


class PolicyProposer:
    """A policy that writes tasks for `env_id` on request: `propose` samples, `accept` validates."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], config: ProposerConfig, k: int,
                 forbidden: set[str] | None = None):
        from sparring.envs.catalog import text_env

        self.env_id, self.env_kwargs, self.config, self.k = env_id, dict(env_kwargs), config, k
        self.env = text_env(env_id, **self.env_kwargs)
        self.family = self.env.family
        self.knobs = env_config(self.env, config.knobs)
        self.forbidden = set(forbidden or ())  # held-out tasks and, with `novel`, earlier rounds' tasks
        self.example = self.env.generate_task(0, config=self.knobs).to_dict()

    def prompt_text(self, label: float, recent: Sequence[tuple[dict[str, Any], float]] = (),
                    solve_rate: float | None = None) -> str:
        """The request for one task the solver solves with pass rate `label`."""
        if self.config.prompt == "compact":
            return f"propose p={label:.2f}"
        lines = [f"You write {self.family} tasks for a solver to practise on. A task is a JSON object like "
                 f"{json.dumps(self.example, sort_keys=True)}."]
        if recent:
            lines.append("Recent tasks and the share of the solver's attempts that solved them:")
            lines += [f"{json.dumps(task, sort_keys=True)} -> {p:.2f}" for task, p in recent[:8]]
        if solve_rate is not None:
            lines.append(f"The solver's recent pass rate is {solve_rate:.2f}.")
        lines.append(f"Write one new task, different from these, that the solver would solve about {label:.0%} of the "
                     "time. Answer with the JSON object only.")
        return "\n".join(lines)

    def conversation(self, label: float, **context: Any) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.prompt_text(label, **context)}]

    def propose(self, policy: Policy, n: int, aim: float, *, seed: int = 0,
                recent: Sequence[tuple[dict[str, Any], float]] = (), solve_rate: float | None = None) -> list[Proposal]:
        """`n` sampled proposals; their labels average `aim` (see `labels_for`)."""
        labels = Counter(labels_for(aim, n, self.k, random.Random(seed)))
        order = sorted(labels)
        prompts: list[Prompt] = [self.conversation(label, recent=recent, solve_rate=solve_rate) for label in order]
        outputs = []
        for label, prompt in zip(order, prompts):  # one call per label: each asks for `count` completions
            params = SamplingParams(n=labels[label], temperature=self.config.temperature,
                                    max_tokens=self.config.max_tokens, seed=seed * 100 + round(label * 100))
            outputs.append((label, policy.generate([prompt], params)[0]))
        return [Proposal(text=c.text, label=label) for label, group in outputs for c in group]

    def accept(self, proposals: list[Proposal], quota: int | None = None) -> list[Proposal]:
        """Validate every proposal in place (`task`, `reason`); return the accepted ones, at most `quota`, unique."""
        seen: set[str] = set()
        accepted = []
        for proposal in proposals:
            try:
                proposal.task = text_to_task(proposal.text, self.env)
            except ValueError as error:
                proposal.reason, proposal.detail = "parse", str(error)
                continue
            key = task_key(proposal.task)
            if key in seen:
                proposal.reason = "duplicate"
                continue
            if key in self.forbidden:
                proposal.reason, proposal.detail = "held_out", "a held-out task or one posed in an earlier round"
                continue
            problem = check_task(self.env, proposal.task, self.knobs)
            if problem is not None:
                proposal.reason, proposal.detail = problem
                continue
            proposal.task = self.env.task_type.from_dict(proposal.task).to_dict()  # canonical form
            seen.add(key)
            if quota is None or len(accepted) < quota:
                accepted.append(proposal)
        return accepted

    def examples(self, labelled: list[tuple[dict[str, Any], float]], tokenizer: Any,
                 recent: Sequence[tuple[dict[str, Any], float]] = (), solve_rate: float | None = None) -> list[dict[str, str]]:
        """Supervised pairs: the request for pass rate p (rounded to the k-sample grid) -> the task that had it."""
        from sparring.policies.hf import render

        style = "compact" if self.config.prompt == "compact" else "json"
        out = []
        for task, p in labelled:
            label = round(p * self.k) / self.k
            prompt = render(tokenizer, self.conversation(label, recent=recent, solve_rate=solve_rate))
            out.append({"prompt": prompt, "completion": task_to_text(task, self.env, style)})
        return out


def proposal_metrics(proposals: list[Proposal], pass_rates: list[float]) -> dict[str, float]:
    """valid_rate (accepted / sampled), solve_rate and learnability (means over the accepted tasks the solver
    played, from their pass rates), and the count of each rejection reason."""
    n = max(1, len(proposals))
    metrics = {"proposer/candidates": len(proposals),
               "proposer/valid_rate": sum(p.reason is None and p.task is not None for p in proposals) / n}
    for reason, count in Counter(p.reason for p in proposals if p.reason).items():
        metrics[f"proposer/rejected/{reason}"] = count / n
    metrics.update(pass_rate_metrics(pass_rates))
    return metrics


def pass_rate_metrics(pass_rates: list[float]) -> dict[str, float]:
    if not pass_rates:
        return {"proposer/tasks": 0}
    return {"proposer/tasks": len(pass_rates),
            "proposer/solve_rate": sum(pass_rates) / len(pass_rates),
            "proposer/learnability": sum(map(learnability, pass_rates)) / len(pass_rates),
            "proposer/learnable": sum(0 < p < 1 for p in pass_rates) / len(pass_rates)}


# ---- the model-free curriculum ------------------------------------------------------------------

class CurriculumProposer:
    """The env's generator on a ladder of knob settings; one level up when the solver's solve rate on the last
    round's curriculum tasks was above the band, one down when below."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], config: ProposerConfig):
        from sparring.envs.catalog import text_env

        self.env_id, self.env_kwargs, self.config = env_id, dict(env_kwargs), config
        env = text_env(env_id, **self.env_kwargs)
        self.levels = config.levels or copy.deepcopy(list(env.curriculum_levels))
        if not self.levels:
            raise ValueError(f"proposer.kind 'curriculum' needs proposer.levels (knob overrides, easiest first) for "
                             f"{env_id}: the {env.family!r} family has no default ladder")
        for level in self.levels:
            env_config(env, level)  # a clear error now on a mistyped knob
        knobs = {f.name: getattr(env.config, f.name) for f in dataclasses.fields(env.config)}

        def matches(level: dict[str, Any]) -> bool:
            resolved = env_config(env, level)
            return all(getattr(resolved, name) == value for name, value in knobs.items())
        self.start = next((i for i, level in enumerate(self.levels) if matches(level)), 0)

    def level(self, previous_level: int | None, solve_rate: float | None) -> int:
        if previous_level is None or solve_rate is None:
            return self.start
        low, high = self.config.band
        step = 1 if solve_rate > high else -1 if solve_rate < low else 0
        return min(len(self.levels) - 1, max(0, previous_level + step))

    def propose(self, level: int, seed: int, start: int, n: int) -> list[dict[str, Any]]:
        """Items `start .. start+n-1` of the train split at `level`'s knobs."""
        from sparring.envs.catalog import text_env

        kwargs = {**self.env_kwargs, **self.levels[level]}
        env = text_env(self.env_id, split="train", **kwargs)
        return [env.generate_task(i, seed=seed).to_dict() for i in range(start, start + n)]


# ---- instructions for sampled paths (SRDF) -------------------------------------------------------


class InstructionProposer:
    """SRDF's speaker: instructions for routes the generator sampled, kept when a navigator follows them."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], config: ProposerConfig):
        from sparring.envs.catalog import text_env

        self.env_id, self.env_kwargs, self.config = env_id, dict(env_kwargs), config
        self.env = text_env(env_id, **{**self.env_kwargs, "goal_types": ["route"]})
        self.family = self.env.family

    def draw(self, n: int, seed: int, start: int) -> list[dict[str, Any]]:
        """Routes of the train split (the generator's own instructions still in them)."""
        return [self.env.generate_task(i, seed=seed).to_dict() for i in range(start, start + n)]

    def describe(self, task: dict[str, Any]) -> str:
        """The route as the speaker sees it: each expert command and the room it leads to."""
        self.env.reset(options={"task": task})
        steps = []
        for command in self.env.expert_actions():
            _, _, terminated, truncated, info = self.env.step(command)
            if terminated or truncated:
                break
            steps.append(f"{command} {info['location']}")
        return " ; ".join(steps)

    def prompt_text(self, task: dict[str, Any]) -> str:
        if self.config.prompt == "compact":
            return f"describe {self.describe(task)}"
        return ("Write the navigation instruction a person would give for this route through a house (each step: "
                f"the command taken and the room reached):\n{self.describe(task)}\nAnswer with the instruction only.")

    def with_instruction(self, task: dict[str, Any], text: str) -> dict[str, Any]:
        text = " ".join(text.split())
        if not text or len(text) > 400:
            raise ValueError("an instruction must be 1 to 400 characters of text")
        goal = {**task["goal"], "text": text, "compact": text, "template": "route/proposer/0"}
        return self.env.task_type.from_dict({**task, "goal": goal}).to_dict()

    def write(self, policy: Policy, tasks: list[dict[str, Any]], *, seed: int = 0) -> list[Proposal]:
        """One instruction per route; `task` is the route with it (None when it does not make a valid task)."""
        prompts = [[{"role": "user", "content": self.prompt_text(t)}] for t in tasks]
        params = SamplingParams(temperature=self.config.temperature, max_tokens=self.config.max_tokens, seed=seed)
        proposals = []
        for task, group in zip(tasks, policy.generate(prompts, params) if tasks else []):
            proposal = Proposal(text=group[0].text)
            try:
                proposal.task = self.with_instruction(task, proposal.text)
            except (ValueError, TypeError) as error:
                proposal.reason, proposal.detail = "parse", str(error)
            proposals.append(proposal)
        return proposals

    def accept(self, proposals: list[Proposal], navigator: Policy, quota: int | None = None, *,
               max_tokens: int = 32, max_turns: int = 32, seed: int = 0) -> list[Proposal]:
        """The navigator follows each instruction greedily; kept when its nDTW to the route reaches `ndtw`."""
        from sparring.solver import Solver

        candidates = [p for p in proposals if p.task is not None and p.reason is None]
        solver = Solver(navigator, self.env_id, self.env_kwargs, SamplingParams(temperature=0.0, max_tokens=max_tokens),
                        max_turns=max_turns, role="navigator")
        episodes = solver.run([p.task for p in candidates if p.task is not None], k=1, seed=seed) if candidates else []
        accepted = []
        for proposal, episode in zip(candidates, episodes):
            score = float(episode.verdict.get("details", {}).get("ndtw", 0.0))
            if score < self.config.ndtw:
                proposal.reason, proposal.detail = "navigator", f"the navigator's nDTW is {score:.2f} < {self.config.ndtw}"
            elif quota is None or len(accepted) < quota:
                accepted.append(proposal)
        return accepted

    def examples(self, tasks: list[dict[str, Any]], tokenizer: Any) -> list[dict[str, str]]:
        """The speaker's supervised pairs: a route -> its instruction (the generator's, or a kept proposal)."""
        from sparring.policies.hf import render

        field_name = "compact" if self.config.prompt == "compact" else "text"
        return [{"prompt": render(tokenizer, [{"role": "user", "content": self.prompt_text(t)}]),
                 "completion": t["goal"][field_name]} for t in tasks]


# ---- the role in the loop ------------------------------------------------------------------------

class ProposerRole(Role):
    """The proposer in the loop: the round's share of tasks (curriculum or policy), the pass rates the solver had
    on them (`proposals.jsonl`), and with its own model, training on the learnable ones."""

    name, model = "proposer", "proposer"

    def __init__(self, ctx: RunContext, env: TextEnv):
        super().__init__(ctx, env)
        self.settings = ctx.config.proposer
        self.proposals: list[Proposal] = []
        self.proposer: PolicyProposer | InstructionProposer | None = None

    @classmethod
    def wanted(cls, config: Any) -> bool:
        return config.proposer.kind != "none"

    @property
    def own_model(self) -> bool:
        return self.settings.kind == "policy" and self.settings.model == "own"

    @property
    def bootstrap_tasks(self) -> int:
        return self.settings.bootstrap_tasks

    def sft(self, r: int) -> SFTSettings:
        return self.settings.bootstrap_sft if r == 0 else self.settings.sft

    def k(self, r: int) -> int:
        """The solver's attempts per task that measure a pass rate: the trainer's, or (a trainer that samples while it
        trains) `proposer.k`'s probe."""
        from sparring.trainers.base import make_trainer

        return make_trainer(self.config.algorithm, self.ctx, r).k or self.settings.k

    def begin(self, r: int) -> None:
        super().begin(r)
        self.proposals, self.proposer = [], None

    def bootstrap(self, groups: list[list[Trajectory]], tokenizer: Any) -> dict[str, float]:
        """Its model learns the format: generator tasks labelled with the pass rates the bootstrapped solver had
        (`proposer.k` attempts each); for instruction families, the generator's routes and instructions."""
        if not self.own_model:
            return {}
        cfg, env_id, kwargs = self.settings, self.ctx.env_id, self.ctx.env_kwargs
        if self.env.proposer_writes_instructions:
            speaker = InstructionProposer(env_id, kwargs, cfg)
            examples = speaker.examples(speaker.draw(cfg.bootstrap_tasks, *self.ctx.seeds.roles_bootstrap_tasks()), tokenizer)
        else:
            labelled = [(g[0].task, sum(t.success for t in g) / cfg.k) for g in groups[:cfg.bootstrap_tasks]]
            examples = PolicyProposer(env_id, kwargs, cfg, cfg.k).examples(labelled, tokenizer)
        return train_own_model(self.ctx, self.model, 0, examples, cfg.bootstrap_sft, self.checkpoint(-1))

    def tasks(self, r: int, records: list[Record]) -> tuple[list[Record], dict[str, float]]:
        """The proposer's share of the round's tasks first, then as many of the generator's as are left."""
        cfg, metrics = self.settings, {}
        quota, proposed = round(cfg.fraction * len(records)), []
        if cfg.kind == "curriculum":
            curriculum = CurriculumProposer(self.ctx.env_id, self.ctx.env_kwargs, cfg)
            level = curriculum.level(self.ctx.previous("proposer/level"), self.ctx.previous("proposer/solve_rate"))
            proposed = [{"task": t, "source": "curriculum", "level": level}
                        for t in curriculum.propose(level, *self.ctx.seeds.curriculum_tasks(r), quota)]
            metrics.update({"proposer/level": level, "proposer/valid_rate": 1.0})
        elif self.env.proposer_writes_instructions:
            proposed = self._propose_instructions(r, quota)
        else:
            proposed = self._propose(r, quota, metrics)
        return proposed + records[:len(records) - len(proposed)], metrics

    def _propose(self, r: int, quota: int, metrics: dict[str, float]) -> list[Record]:
        proposer = PolicyProposer(self.ctx.env_id, self.ctx.env_kwargs, self.settings, self.k(r), self.forbidden(r))
        aim = next_aim(self.ctx.previous("proposer/aim"), self.ctx.previous("proposer/solve_rate"), self.settings.band,
                       self.k(r))
        recent = [(p["task"], p["pass_rate"]) for p in read_jsonl(self.ctx.run.round_dir(r - 1) / "proposals.jsonl")
                  if p.get("pass_rate") is not None][:8]
        with self.ctx.generating(self.checkpoint(r - 1)) as policy:
            self.proposals = proposer.propose(policy, self.settings.candidates or 3 * quota, aim,
                                              seed=self.ctx.seeds.round(r), recent=recent,
                                              solve_rate=self.ctx.previous("proposer/solve_rate"))
        accepted = proposer.accept(self.proposals, quota)
        self.proposer, metrics["proposer/aim"] = proposer, aim
        return [{"task": p.task, "source": "proposer", "label": p.label} for p in accepted]

    def _propose_instructions(self, r: int, quota: int) -> list[Record]:
        """SRDF: routes drawn from the generator, instructions written by the proposer, kept when the solver
        (the navigator, as round r - 1 left it) follows them."""
        cfg, proposer = self.config, InstructionProposer(self.ctx.env_id, self.ctx.env_kwargs, self.settings)
        routes = proposer.draw(self.settings.candidates or 3 * quota, *self.ctx.seeds.instruction_routes(r))
        with self.ctx.generating(self.checkpoint(r - 1)) as policy:
            self.proposals = proposer.write(policy, routes, seed=self.ctx.seeds.round(r))
        with self.ctx.generating(self.ctx.run.checkpoint(f"round-{r - 1:03d}")) as navigator:
            accepted = proposer.accept(self.proposals, navigator, quota, max_tokens=cfg.policy.max_tokens,
                                       max_turns=cfg.env.max_turns, seed=self.ctx.seeds.round(r))
        self.proposer = proposer
        return [{"task": p.task, "source": "proposer"} for p in accepted]

    def make_proposer(self, r: int) -> PolicyProposer | InstructionProposer:
        """Round `r`'s policy proposer (the speaker for instruction families)."""
        if self.env.proposer_writes_instructions:
            return InstructionProposer(self.ctx.env_id, self.ctx.env_kwargs, self.settings)
        return PolicyProposer(self.ctx.env_id, self.ctx.env_kwargs, self.settings, self.k(r), self.forbidden(r))

    def forbidden(self, r: int) -> set[str]:
        """Tasks a proposer may not pose: the held-out ones, and with `novel` those of earlier rounds."""
        keys = {task_key(t) for _, tasks, _ in self.ctx.eval_sets.values() for t in tasks}
        if self.settings.novel:
            for earlier in range(1, r):
                keys |= {task_key(rec["task"]) for rec in read_jsonl(self.ctx.run.round_dir(earlier) / "tasks.jsonl")}
        return keys

    def after_collect(self, r: int, records: list[Record], groups: list[list[Trajectory]], tokenizer: Any) -> Collected:
        """The pass rates the solver had on the proposed tasks; the policy proposer's proposals.jsonl and, with its
        own model, its next training data (the learnable tasks, or SRDF's kept instructions)."""
        rates = [sum(t.success for t in g) / len(g) for g in groups]
        proposed = [(rec["task"], p) for rec, p in zip(records, rates) if rec["source"] in ("proposer", "curriculum")]
        pass_rates = [p for _, p in proposed]
        if self.settings.kind != "policy":
            return Collected({"proposer/valid_rate": 1.0, **pass_rate_metrics(pass_rates)})
        by_key = {task_key(task): p for task, p in proposed}
        atomic_write_text(self.ctx.run.round_dir(r) / "proposals.jsonl", "".join(
            json.dumps({"text": p.text, "label": p.label, "task": p.task, "reason": p.reason, "detail": p.detail,
                        "pass_rate": by_key.get(task_key(p.task)) if p.accepted and p.task is not None else None,
                        "learnability": learnability(by_key[task_key(p.task)])
                        if p.accepted and p.task is not None and task_key(p.task) in by_key else None},
                       sort_keys=True) + "\n" for p in self.proposals))
        if self.own_model:
            proposer = self.proposer or self.make_proposer(r)  # a resumed round made none
            if isinstance(proposer, InstructionProposer):  # SRDF trains the speaker on the pairs its navigator kept
                self.examples = proposer.examples([task for task, _ in proposed], tokenizer)
            else:
                self.examples = proposer.examples([(task, p) for task, p in proposed if 0 < p < 1], tokenizer)
        return Collected(proposal_metrics(self.proposals, pass_rates))

    def save(self, folder: Path) -> dict[str, Any]:
        return {"examples": self.examples, "proposals": [dataclasses.asdict(p) for p in self.proposals]}

    def load(self, folder: Path, saved: dict[str, Any]) -> None:
        super().load(folder, expect(saved, proposals=list))
        self.proposals, self.proposer = [Proposal(**p) for p in saved["proposals"]], None
