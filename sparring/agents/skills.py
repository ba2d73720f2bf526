"""The skill library: verified, reusable skills, retrieved by relevance, counted, pruned and kept on disk.

A skill is what one family can reuse across episodes (`SkillKind`); the env names its family's kind (its
`skill_kind` hook) and `skill_kind_for` builds it:
- "expression" (`ExpressionSkills`, Countdown): an answer's expression pattern, its numbers replaced by
  letters in the order written (`a*b-c` from `8*3-2`): a verified macro the solver is shown for similar tasks,
  retrieved by the env's `skill_features` of the task.
- "macro" (`MacroSkills`, the default, for multi-turn families such as TextNav): the command sequence of a
  successful episode, a macro shown as a known routine.
- "function" (`FunctionSkills`, code families): a function a verified answer defined (found by parsing, never
  run here), shown to later tasks as code to call or copy; the env re-verifies it by replaying the answer in
  its sandbox.

`SkillLibrary` admits a skill only when it verifies (its kind replays it in the env on the task it came
from), merges a skill seen again into the one it already holds (one more test case, a longer
description), retrieves the most relevant ones for a task with BM25 over descriptions (rank-bm25's
BM25L, offline) weighted by a success-rate prior, counts how often each was shown, used and used
successfully, prunes those that keep failing, and saves and loads itself as JSON lines.

SAGE's sequential rollout (`chain_rollout`): the round's tasks come as chains of similar tasks (the env's
`similar_task_chains` hook); the chains are played position by position, a verified success adds its skill
to the library, and later tasks of the same chain are shown the skills made earlier in it first. Its
skill-integrated reward gives a bonus to a verified attempt that used such a skill and to the attempt that
made it; expert iteration repeats those attempts once more, GRPO adds `SkillRewardFunction` to the env's reward. Given a folder, the
rollout saves the end of each position there (`save_position`) and a cut one continues after the last saved.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sparring.agents.proposer import PROMPT_STYLES, task_key
from sparring.envs.base import check_at_least, check_choice, extract_answer
from sparring.envs.expr import expression_pattern, instantiate
from sparring.io import atomic_write_text, read_jsonl
from sparring.policies.policy import Policy, Prompt, SamplingParams
from sparring.trajectories import Trajectory, Turn

MAX_TESTS = 8          # verified instances kept per skill
MAX_DESCRIPTION = 400  # description tokens kept per skill (the most recent)


@dataclass
class SkillsConfig:
    enabled: bool = False          # turn the skill library on
    top_k: int = 2                     # skills shown per task
    prompt: str = "compact"            # compact (`8 3 2 -> 22 | a*b-c`) or full (a sentence and the skills)
    at_eval: bool = True               # held-out evaluation also shows retrieved skills (the agent with its library)
    chains: bool = True                # SAGE's sequential rollout over chains of similar tasks
    chain_length: int = 4          # tasks per chain of similar tasks
    reward_bonus: float = 0.5          # skill-integrated reward (0: off)
    min_uses: int = 8                  # pruning: a skill shown this often ...
    min_rate: float = 0.05             # ... whose uses verified less often than this per showing is dropped
    max_size: int = 200            # skills kept at most (the least useful are pruned)
    bootstrap: bool = True             # seed the library from the bootstrap's demonstrations and show skills in them
    load: str | None = None            # start from a saved library (a skills.jsonl, e.g. another run's) instead

    def __post_init__(self) -> None:
        check_choice("skills.prompt", self.prompt, PROMPT_STYLES)
        check_at_least("skills", self, {"top_k": 1, "chain_length": 1, "min_uses": 1, "max_size": 1})
        if self.load is not None and not Path(self.load).is_file():
            raise ValueError(f"skills.load {self.load!r} is not a file: give a skills.jsonl that a run saved")
        if not 0 <= self.min_rate <= 1 or self.reward_bonus < 0:
            raise ValueError(f"skills.min_rate must be in [0, 1] and skills.reward_bonus >= 0, got "
                             f"{self.min_rate!r} and {self.reward_bonus!r}")


@dataclass
class Skill:
    id: str
    kind: str
    body: str                                   # what is shown and reused: a pattern, a command list, code
    description: list[str] = field(default_factory=list)  # retrieval tokens: where it worked
    tests: list[dict[str, Any]] = field(default_factory=list)  # verified instances {"task": ..., "args": ...}
    n_retrieved: int = 0                        # times shown with a task
    n_used: int = 0                             # times an attempt shown it used it
    n_success: int = 0                          # ... and verified
    version: int = 1                            # bumped when another task confirms it
    created_round: int = 0

    @property
    def utility(self) -> float:
        """A success-rate prior: (successes + 1) / (showings + 2)."""
        return (self.n_success + 1) / (self.n_retrieved + 2)


# ---- what a skill is, per family ----------------------------------------------------------------

class SkillKind(ABC):
    kind: str = ""

    @classmethod
    def for_env(cls, env: Any) -> SkillKind:
        """The kind for `env`'s family (what `skill_kind_for` builds)."""
        return cls()

    @abstractmethod
    def extract(self, trajectory: Trajectory, round: int = 0) -> Skill | None:
        """The skill a verified trajectory shows, or None."""

    @abstractmethod
    def verify(self, skill: Skill, env: Any) -> bool:
        """Whether the skill, replayed in `env` on its test instances, verifies on every one."""

    @abstractmethod
    def used(self, skill: Skill, trajectory: Trajectory) -> bool:
        """Whether an attempt used the skill."""

    sees_observation: bool = False  # query from the task's first observation (what the solver sees), not the task

    @abstractmethod
    def query(self, task: dict[str, Any], observation: str = "") -> list[str]:
        """Retrieval tokens for a task (what a skill's description is matched against): only what the solver sees,
        never hidden parts of the task (a program to synthesise, a goal's reference path)."""

    def render(self, observation: str, skills: list[Skill], style: str = "compact") -> str:
        """The observation with the skills shown."""
        if not skills:
            return observation
        if style == "compact":
            return f"{observation} | {' '.join(s.body for s in skills)}"
        return observation + "\n\nSkills that solved similar tasks:\n" + "\n".join(f"- {s.body}" for s in skills)


def _answer_expression(action: str) -> str | None:
    content = extract_answer(action)
    if content is None:
        return None
    expression = content.rpartition("=")[0] if "=" in content else content
    expression = "".join(expression.split())
    return expression if re.fullmatch(r"[0-9+\-*/()]+", expression or "-") else None


def _no_features(task: dict[str, Any]) -> list[str]:
    return []


class ExpressionSkills(SkillKind):
    """Countdown: a verified answer's expression pattern (`a*b-c`), retrieved by `features` of the task (the env's
    `skill_features`)."""

    kind = "expression"

    def __init__(self, features: Callable[[dict[str, Any]], list[str]] = _no_features):
        self.features = features

    @classmethod
    def for_env(cls, env: Any) -> ExpressionSkills:
        return cls(env.skill_features)

    def extract(self, trajectory: Trajectory, round: int = 0) -> Skill | None:
        if not trajectory.success or not trajectory.turns:
            return None
        expression = _answer_expression(trajectory.turns[-1].action)
        found = expression_pattern(expression) if expression else None
        if found is None:
            return None
        pattern, args = found
        ops = [f"op{'+-*/'.index(c)}" for c in pattern if c in "+-*/"]
        return Skill(id=f"expression:{pattern}", kind=self.kind, body=pattern,
                     description=self.features(trajectory.task) + ops,
                     tests=[{"task": trajectory.task, "args": args}], created_round=round)

    def verify(self, skill: Skill, env: Any) -> bool:
        for test in skill.tests[-MAX_TESTS:]:
            env.reset(options={"task": test["task"]})
            _, _, _, _, info = env.step(f"<answer>{instantiate(skill.body, test['args'])}</answer>")
            if not info.get("verdict", {}).get("success"):
                return False
        return bool(skill.tests)

    def used(self, skill: Skill, trajectory: Trajectory) -> bool:
        expression = _answer_expression(trajectory.turns[-1].action) if trajectory.turns else None
        found = expression_pattern(expression) if expression else None
        return found is not None and found[0] == skill.body

    def query(self, task: dict[str, Any], observation: str = "") -> list[str]:
        return self.features(task)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+|\d+", text.lower())


def _first_observation(trajectory: Trajectory) -> str:
    """What the solver was shown first, without any skills added to it."""
    return trajectory.meta.get("plain_observation") or (trajectory.turns[0].observation if trajectory.turns else "")


class MacroSkills(SkillKind):
    """Multi-turn command envs (TextNav and the like): a successful episode's command sequence as a macro."""

    kind = "macro"
    sees_observation = True

    def __init__(self, max_commands: int = 12):
        self.max_commands = max_commands

    def extract(self, trajectory: Trajectory, round: int = 0) -> Skill | None:
        commands = [" ".join(t.action.split()) for t in trajectory.turns]
        if not trajectory.success or not commands or len(commands) > self.max_commands:
            return None
        body = "; ".join(commands)
        return Skill(id=f"macro:{body}", kind=self.kind, body=body,
                     description=_words(_first_observation(trajectory)) + _words(body),
                     tests=[{"task": trajectory.task, "args": commands}], created_round=round)

    def verify(self, skill: Skill, env: Any) -> bool:
        return bool(skill.tests) and all(_replays(env, t["task"], t["args"]) for t in skill.tests[-MAX_TESTS:])

    def used(self, skill: Skill, trajectory: Trajectory) -> bool:
        return skill.body in "; ".join(" ".join(t.action.split()) for t in trajectory.turns)

    def query(self, task: dict[str, Any], observation: str = "") -> list[str]:
        return _words(observation)


def _replays(env: Any, task: dict[str, Any], actions: list[str]) -> bool:
    """Whether `actions`, played in `env` on `task`, end the episode with a verified success."""
    env.reset(options={"task": task})
    for action in actions:
        _, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return bool(info.get("verdict", {}).get("success"))
    return False


MAX_CODE_CHARS = 20_000


def defined_functions(code: str) -> list[tuple[str, str]]:
    """(name, source) of each top-level function in `code` (a ```python block, or the text itself). Parsing only:
    nothing is run; text that does not parse defines nothing."""
    import ast

    block = re.search(r"```(?:python)?\n(.*?)```", code, flags=re.DOTALL)
    code = block[1] if block else code
    if len(code) > MAX_CODE_CHARS:
        return []
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    return [(node.name, ast.get_source_segment(code, node) or "") for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


class FunctionSkills(SkillKind):
    """Code families: a function a verified answer defined, shown to later tasks as reusable code."""

    kind = "function"
    sees_observation = True

    def extract(self, trajectory: Trajectory, round: int = 0) -> Skill | None:
        if not trajectory.success or not trajectory.turns:
            return None
        functions = defined_functions(trajectory.turns[-1].action)
        if not functions:
            return None
        name, source = functions[0]
        return Skill(id=f"function:{name}:{zlib.crc32(source.encode()):08x}", kind=self.kind, body=source,
                     description=_words(_first_observation(trajectory)) + name.lower().split("_"),
                     tests=[{"task": trajectory.task, "args": [t.action for t in trajectory.turns]}], created_round=round)

    def verify(self, skill: Skill, env: Any) -> bool:
        return bool(skill.tests) and all(_replays(env, t["task"], t["args"]) for t in skill.tests[-MAX_TESTS:])

    def used(self, skill: Skill, trajectory: Trajectory) -> bool:
        name = skill.id.split(":")[1]
        text = "\n".join(t.action for t in trajectory.turns)
        return len(re.findall(rf"\b{re.escape(name)}\s*\(", text)) > len(re.findall(rf"\bdef\s+{re.escape(name)}\s*\(", text))

    def query(self, task: dict[str, Any], observation: str = "") -> list[str]:
        return _words(observation)

    def render(self, observation: str, skills: list[Skill], style: str = "compact") -> str:
        if not skills:
            return observation
        return observation + "\n\nFunctions that solved similar tasks (you may call or copy them):\n\n" + \
            "\n\n".join(s.body for s in skills)


SKILL_KINDS: dict[str, type[SkillKind]] = {kind.kind: kind for kind in (ExpressionSkills, MacroSkills, FunctionSkills)}


def skill_kind_for(env: Any) -> SkillKind:
    """The kind of skill `env`'s family names (its `skill_kind` hook: command macros unless it says otherwise)."""
    name = check_choice(f"{type(env).__name__}.skill_kind", getattr(env, "skill_kind", "macro"), tuple(SKILL_KINDS))
    return SKILL_KINDS[name].for_env(env)


# ---- the library --------------------------------------------------------------------------------

class SkillLibrary:
    def __init__(self, kind: SkillKind, env: Any = None, max_size: int = 200):
        self.kind, self.env, self.max_size = kind, env, max_size
        self.skills: dict[str, Skill] = {}
        self._index: Any = None
        self._ids: list[str] = []

    def __len__(self) -> int:
        return len(self.skills)

    def __contains__(self, skill_id: str) -> bool:
        return skill_id in self.skills

    def add(self, skill: Skill | None) -> Skill | None:
        """Admit `skill` if it verifies in the env (Voyager: only verified skills). A skill already held gets the
        new test case and description (and a version bump) if the merged skill still verifies. Returns the
        library's skill, or None when it was not admitted."""
        if skill is None:
            return None
        held = self.skills.get(skill.id)
        if held is not None:
            if any(task_key(t["task"]) == task_key(skill.tests[0]["task"]) for t in held.tests):
                return held
            merged = Skill(**{**asdict(held), "tests": (held.tests + skill.tests)[-MAX_TESTS:],
                              "description": (held.description + skill.description)[-MAX_DESCRIPTION:],
                              "version": held.version + 1})
            if self.env is not None and not self.kind.verify(Skill(**{**asdict(merged), "tests": skill.tests}), self.env):
                return held
            self.skills[skill.id] = merged
        else:
            if self.env is not None and not self.kind.verify(skill, self.env):
                return None
            self.skills[skill.id] = skill
        self._index = None
        return self.skills[skill.id]

    def retrieve(self, task: dict[str, Any], k: int, exclude: AbstractSet[str] = frozenset()) -> list[Skill]:
        """The `k` skills most relevant to `task`: BM25L score of the task's tokens against each description,
        times the skill's success-rate prior; only skills that share a token with the task."""
        if not self.skills or k <= 0:
            return []
        if self._index is None:
            from rank_bm25 import BM25L

            self._ids = list(self.skills)
            self._index = BM25L([self.skills[i].description or ["<empty>"] for i in self._ids])
        scores = self._index.get_scores(self.kind.query(task, self.observation(task)))
        ranked = sorted(((score * self.skills[i].utility, i) for score, i in zip(scores, self._ids)
                         if score > 0 and i not in exclude), reverse=True)
        return [self.skills[i] for _, i in ranked[:k]]

    def observation(self, task: dict[str, Any]) -> str:
        """The task's first observation, for kinds that retrieve by it (needs the library's env)."""
        if not self.kind.sees_observation or self.env is None:
            return ""
        observation, _ = self.env.reset(options={"task": task})
        return observation

    def record(self, shown: list[Skill], trajectory: Trajectory) -> list[Skill]:
        """Count one showing of `shown` with an attempt; returns the skills it used."""
        used = []
        for skill in shown:
            held = self.skills.get(skill.id)
            if held is None:
                continue
            held.n_retrieved += 1
            if self.kind.used(held, trajectory):
                held.n_used += 1
                held.n_success += trajectory.success
                used.append(held)
        return used

    def prune(self, min_uses: int, min_rate: float) -> int:
        """Drop skills shown at least `min_uses` times whose verified uses per showing fell below `min_rate`;
        then the least useful beyond `max_size`. Returns how many were dropped."""
        before = len(self.skills)
        self.skills = {i: s for i, s in self.skills.items()
                       if s.n_retrieved < min_uses or s.n_success / s.n_retrieved >= min_rate}
        if len(self.skills) > self.max_size:
            keep = sorted(self.skills.values(), key=lambda s: (s.utility, s.n_success), reverse=True)[:self.max_size]
            self.skills = {s.id: s for s in keep}
        self._index = None
        return before - len(self.skills)

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, "".join(json.dumps(asdict(s), sort_keys=True) + "\n" for s in self.skills.values()))

    @classmethod
    def load(cls, path: str | Path, kind: SkillKind, env: Any = None, max_size: int = 200) -> SkillLibrary:
        library = cls(kind, env, max_size)
        for record in read_jsonl(path):
            skill = Skill(**record)
            library.skills[skill.id] = skill
        return library


# ---- skills in the solver's prompt --------------------------------------------------------------

def skill_prompt(kind: SkillKind, shown: dict[str, list[Skill]], style: str) -> Callable[[Trajectory, str], Prompt]:
    """A Solver prompt hook: the first observation of each task with the skills `shown[task_key]`."""
    def prompt(trajectory: Trajectory, observation: str) -> Prompt:
        messages = trajectory.conversation() + [{"role": "user", "content": observation}]
        messages[0] = {"role": "user", "content": kind.render(messages[0]["content"],
                                                               shown.get(task_key(trajectory.task), []), style)}
        return messages
    return prompt


def as_shown(trajectory: Trajectory, kind: SkillKind, skills: list[Skill], style: str) -> None:
    """Record in `trajectory` what its policy saw: the first observation with the skills, their ids in meta."""
    if trajectory.turns:
        trajectory.meta.setdefault("plain_observation", trajectory.turns[0].observation)
        trajectory.turns[0].observation = kind.render(trajectory.meta["plain_observation"], skills, style)
    trajectory.meta["skills"] = [s.id for s in skills]


# ---- chains of similar tasks (SAGE) -------------------------------------------------------------

def make_chains(tasks: list[dict[str, Any]], length: int, env: Any, kind: SkillKind, seed: int) -> list[list[dict[str, Any]]]:
    """Chains of similar tasks from `tasks`, at most `length` a chain: the env family's `similar_task_chains` (for
    Countdown, each task and tasks its pattern solves; by default, the tasks sorted by `kind`'s retrieval tokens
    and cut into runs), drawing from `random.Random(seed)`."""
    observe = (lambda t: env.reset(options={"task": t})[0]) if kind.sees_observation else (lambda t: "")
    return env.similar_task_chains(tasks, length, random.Random(seed), key=lambda t: " ".join(kind.query(t, observe(t))))


POSITION_DIR = "skills-position-"  # chain_rollout's resume point after position P: <folder>/skills-position-P


def save_position(path: Path, position: int, chains: list[list[dict[str, Any]]], library: SkillLibrary,
                  made: list[list[Skill]], makers: dict[tuple[int, str], Trajectory],
                  played: list[list[list[Trajectory]]], counts: dict[str, int]) -> None:
    """What the positions after `position` need, in one folder written atomically: the library (skills.jsonl), the
    attempts so far chain by chain (trajectories/, their skill bonuses as set so far), and in state.json the chains,
    the ids of the skills each chain made, where each skill's maker is among the attempts, and the counts."""
    from sparring.io import atomic_dir, atomic_write_json
    from sparring.trajectories import save_trajectories

    where = {id(t): [p, i] for chain in played for p, group in enumerate(chain) for i, t in enumerate(group)}
    with atomic_dir(path) as tmp:
        library.save(tmp / "skills.jsonl")
        save_trajectories([t for chain in played for group in chain for t in group], tmp / "trajectories")
        atomic_write_json(tmp / "state.json", {
            "position": position, "chains": chains, "made": [[s.id for s in chain] for chain in made],
            "makers": [[c, skill_id, *where[id(t)]] for (c, skill_id), t in makers.items()], "counts": counts})


def load_position(path: Path, chains: list[list[dict[str, Any]]], k: int, library: SkillLibrary
                  ) -> tuple[list[list[Skill]], dict[tuple[int, str], Trajectory], list[list[list[Trajectory]]],
                             dict[str, int]]:
    """The rollout as `save_position` left it at `path`: the library's skills replaced in place by the saved ones,
    and each chain's skills, the makers, the attempts (`k` a task) and the counts."""
    from sparring.errors import SparringError
    from sparring.trajectories import load_trajectories

    try:
        state = json.loads((path / "state.json").read_text())
        if json.loads(json.dumps(chains)) != state["chains"]:
            raise SparringError(f"{path} was saved by a rollout over other chains of tasks than this round's; delete "
                                f"{path.parent}/{POSITION_DIR}* to play the chains from their start")
        skills = SkillLibrary.load(path / "skills.jsonl", library.kind).skills
        attempts = iter(load_trajectories(path / "trajectories"))
        played = [[[next(attempts) for _ in range(k)] for _ in chain[:state["position"] + 1]] for chain in chains]
        made = [[skills[i] for i in ids] for ids in state["made"]]
        makers = {(c, skill_id): played[c][p][i] for c, skill_id, p, i in state["makers"]}
        counts = {name: int(state["counts"][name]) for name in ("shown", "used", "admitted")}
    except SparringError:
        raise
    except Exception as error:  # a damaged resume point: one line that names it, never a traceback
        raise SparringError(f"{path}, the skill chains' resume point, is damaged ({type(error).__name__}: {error}); "
                            f"delete it to play its position again") from error
    library.skills, library._index = skills, None
    return made, makers, played, counts


def saved_positions(folder: str | Path) -> list[Path]:
    """The resume points `chain_rollout` left in `folder`, by position."""
    found = [p for p in Path(folder).glob(f"{POSITION_DIR}*") if p.name[len(POSITION_DIR):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(POSITION_DIR):]))


def chain_rollout(policy: Policy, env_id: str, env_kwargs: dict[str, Any], library: SkillLibrary,
                  chains: list[list[dict[str, Any]]], k: int, params: SamplingParams, config: SkillsConfig, *,
                  max_turns: int = 32, seed: int = 0, round: int = 0,
                  on_turn: Callable[[int, int], None] | None = None,
                  folder: str | Path | None = None) -> tuple[list[Trajectory], dict[str, float]]:
    """Play `chains` position by position with skills shown (the chain's own first, then retrieved ones), admit
    the skills of verified attempts as they come, and give the skill-integrated reward (`meta["skill_bonus"]`).
    Returns the trajectories, `k` per task in the chains' order (chain by chain), and metrics.

    With `folder`, the end of each position is saved there (`save_position`, folder skills-position-P; the one
    before it is then removed), and the rollout goes on from what it reads back; a call that finds one continues
    at the next position, so a rollout cut inside position P plays only P and the positions after it, and ends
    as an uninterrupted one (each position's attempts are seeded by the position)."""
    from sparring.solver import Solver, by_task

    kind, style = library.kind, config.prompt
    made: list[list[Skill]] = [[] for _ in chains]  # skills each chain made so far
    makers: dict[tuple[int, str], Trajectory] = {}  # (chain, skill id) -> the attempt that made it
    played: list[list[list[Trajectory]]] = [[] for _ in chains]
    counts = {"shown": 0, "used": 0, "admitted": 0}
    saved = saved_positions(folder) if folder is not None else []
    start = 0
    if saved:
        made, makers, played, counts = load_position(saved[-1], chains, k, library)
        start = int(saved[-1].name[len(POSITION_DIR):]) + 1
    for position in range(start, max((len(c) for c in chains), default=0)):
        live = [c for c, chain in enumerate(chains) if position < len(chain)]
        tasks = [chains[c][position] for c in live]
        shown: dict[str, list[Skill]] = {}
        for c, task in zip(live, tasks):
            own = made[c][-config.top_k:]
            shown[task_key(task)] = own + library.retrieve(task, config.top_k - len(own), exclude={s.id for s in own})
        solver = Solver(policy, env_id, env_kwargs, params, max_turns=max_turns, prompt=skill_prompt(kind, shown, style))
        groups = by_task(solver.run(tasks, k=k, seed=seed * 1000 + position, on_turn=on_turn), k)
        for c, task, group in zip(live, tasks, groups):
            skills = shown[task_key(task)]
            own_ids = {s.id for s in made[c]}
            for t in group:
                used = library.record(skills, t)
                as_shown(t, kind, skills, style)
                counts["shown"] += bool(skills)
                counts["used"] += bool(used)
                bonus = 0.0
                if t.success and config.reward_bonus:
                    for skill in used:
                        if skill.id in own_ids:  # SAGE: a skill from earlier in the chain, reused successfully
                            bonus = config.reward_bonus
                            maker = makers.get((c, skill.id))
                            if maker is not None:
                                maker.meta["skill_bonus"] = config.reward_bonus
                t.meta["skill_bonus"] = max(bonus, t.meta.get("skill_bonus", 0.0))
            for t in group:
                if t.success:
                    before = len(library)
                    skill = library.add(kind.extract(t, round))
                    counts["admitted"] += len(library) - before
                    if skill is not None and skill.id not in {s.id for s in made[c]}:
                        made[c].append(skill)
                        makers[(c, skill.id)] = t
                    break  # one skill per task and position
            played[c].append(group)
        if folder is not None:  # the resume point; go on from what was saved, as a resumed rollout does
            path = Path(folder) / f"{POSITION_DIR}{position}"
            save_position(path, position, chains, library, made, makers, played, counts)
            for older in saved_positions(folder)[:-1]:
                shutil.rmtree(older, ignore_errors=True)
            made, makers, played, counts = load_position(path, chains, k, library)
    trajectories = [t for chain in played for group in chain for t in group]
    return trajectories, {"skills/shown_rate": counts["shown"] / max(1, len(trajectories)),
                          "skills/reuse_rate": counts["used"] / max(1, counts["shown"]),
                          "skills/admitted": counts["admitted"],
                          "skills/bonus_rate": sum(t.meta.get("skill_bonus", 0) > 0 for t in trajectories)
                          / max(1, len(trajectories))}


class SkillRewardFunction:
    """A TRL reward function for GRPO (SAGE's skill-integrated reward): `bonus` for a completion that the env
    verifies and that uses one of the skills its prompt showed (the dataset column `skills`, JSON ids)."""

    __name__ = "skill_bonus"

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], library: SkillLibrary, bonus: float):
        from sparring.envs.grading import EnvGrader

        self.grader, self.library, self.bonus = EnvGrader(env_id, env_kwargs), library, bonus

    def __call__(self, prompts: list[Any] | None = None, completions: list[Any] | None = None,
                 task: list[Any] | None = None, skills: list[Any] | None = None, **kwargs: Any) -> list[float]:
        from sparring.envs.grading import completion_text

        if completions is None or task is None or skills is None:
            raise ValueError("the skill reward needs `completions` and the dataset columns `task` and `skills`, got "
                             f"kwargs {sorted(kwargs)}")
        rewards = []
        for completion, task_json, skill_ids in zip(completions, task, skills):
            text, task_dict = completion_text(completion), json.loads(task_json)
            verdict = self.grader.grade(task_dict, text)
            trajectory = Trajectory(self.grader.env_id, task_dict, turns=[Turn("", text)], verdict=verdict)
            shown = [self.library.skills[i] for i in json.loads(skill_ids) if i in self.library.skills]
            used = any(self.library.kind.used(s, trajectory) for s in shown)
            rewards.append(self.bonus if verdict["success"] and used else 0.0)
        return rewards
