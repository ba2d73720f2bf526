"""The base of every sparring environment: text in, text out, one task per episode, a verdict at the end.

A family subclasses `TextEnv` and fills in five things: `task_type` (a small JSON-serialisable
record), `generate_task` (item `index` of a split, a pure function of `(seed, index)`), `_begin`
(the first observation), `_act` (one step) and `expert_actions` (a solution from the current
state). Everything Gymnasium asks for (spaces, seeding, `reset(options=...)`, `info`, rendering)
lives here once.

What the self-play roles need to know about a family is asked of its env through optional hooks, declared
with their defaults on `TextEnv` ("family hooks") and overridden in the family's own file:
`curriculum_levels`, `proposer_writes_instructions`, `task_problems`, `proposal_problems`, `compact_task` and
`parse_compact_task`, `answer_key`, `skill_kind`, `skill_features` and `similar_task_chains`. A new family overrides the ones it needs.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeGuard

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import read_from_shared_memory

from sparring.errors import UnknownNameError

MAX_OBSERVATION_CHARS = 32_768
MAX_ACTION_CHARS = 65_536
RESET_OPTIONS = ("task", "index", "seed", "difficulty")

_PRINTABLE = "".join(chr(c) for c in range(32, 127)) + "\n\t"


class _AllCodePoints:
    """The character set of every Unicode code point, without materialising 1.1M entries."""

    def __contains__(self, char: object) -> bool:
        return isinstance(char, str) and len(char) == 1

    def __len__(self) -> int:
        return 0x110000

    def __getitem__(self, index: int) -> str:  # the "character list": code point -> character
        return chr(index)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _AllCodePoints)

    def __hash__(self) -> int:
        return hash(_AllCodePoints)


class UnicodeText(spaces.Text):
    """A `gymnasium.spaces.Text` whose charset is all of Unicode: it admits anything a model may write.

    A character's index is its code point, so flattening and the shared memory of
    `AsyncVectorEnv` carry any text losslessly. `sample()` draws printable ASCII.
    """

    def __init__(self, max_length: int, *, min_length: int = 0, seed: int | None = None):
        super().__init__(max_length, min_length=min_length, charset=_PRINTABLE, seed=seed)
        self._sample_chars = self._char_list
        self._char_set = self._char_list = _AllCodePoints()  # type: ignore[assignment]
        self._char_str = "<all of Unicode>"

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def character_index(self, char: str) -> np.int32:
        return np.int32(ord(char))

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        if mask is not None or probability is not None:
            raise ValueError("UnicodeText.sample() takes no mask or probability: it draws printable ASCII")
        length = int(self.np_random.integers(self.min_length, min(self.max_length, 256) + 1))
        return "".join(self.np_random.choice(self._sample_chars, size=length))


class SharedTexts(Sequence):
    """The texts in an `AsyncVectorEnv`'s shared memory, decoded each time they are read.

    Gymnasium reads a vector env's shared memory once, when the vector env is built, and relies on the
    result being a view that follows the buffer (as numpy arrays do for `Box`). Its reader for `Text`
    returns a tuple of strings instead: a snapshot of the empty buffer, so every later observation
    read 32,768 NULs. This view is what it should have been: `deepcopy` (what `AsyncVectorEnv` does
    with `copy=True`, the default) gives a tuple of the current texts, as the sync vector env returns.
    """

    def __init__(self, memory: Any, n: int, max_length: int):
        self._codes = np.frombuffer(memory.get_obj(), dtype=np.int32).reshape(n, max_length)

    def __len__(self) -> int:
        return len(self._codes)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(len(self))))
        row = self._codes[index]
        return "".join(map(chr, row[row < 0x110000].tolist()))  # Gymnasium pads with len(charset) = 0x110000

    def __deepcopy__(self, memo: dict) -> tuple[str, ...]:
        return tuple(self)

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, SharedTexts) else other)

    __hash__ = None  # type: ignore[assignment]  (mutable, like the buffer under it)

    def __repr__(self) -> str:
        return f"SharedTexts({tuple(self)!r})"


# Gymnasium types a reader's result as dict | tuple | ndarray; this one is a view on purpose (see SharedTexts)
@read_from_shared_memory.register(UnicodeText)  # pyright: ignore[reportArgumentType]
def _read_unicode_text_from_shared_memory(space: UnicodeText, shared_memory: Any, n: int = 1) -> SharedTexts:
    return SharedTexts(shared_memory, n, space.max_length)


@dataclass(frozen=True)
class Verdict:
    """How an episode ended: what a trainer reads (`reward`, `success`) and what a reflector reads (`feedback`)."""

    reward: float
    success: bool
    feedback: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"reward": self.reward, "success": self.success, "feedback": self.feedback, "details": self.details}


def resolve_config(config_class: type, presets: Mapping[str, Any], difficulty: str | None,
                   knobs: Mapping[str, Any], *, owner: str, also_accepted: tuple[str, ...] = ()) -> Any:
    """The knob dataclass for `difficulty` (a preset name, or None for the class defaults) with `knobs` applied.

    Mistyped presets and knobs get an `UnknownNameError` that lists what is accepted and the closest match.
    """
    if difficulty is None:
        base = config_class()
    elif isinstance(difficulty, str) and difficulty in presets:
        base = presets[difficulty]
    else:
        raise UnknownNameError(f"{owner} difficulty", difficulty, presets)
    names = {f.name for f in dataclasses.fields(config_class)}
    for key in knobs:
        if key not in names:
            raise UnknownNameError(f"{owner} knob", key, names | set(also_accepted) | {"difficulty"})
    return dataclasses.replace(base, **knobs)


def check_at_least(section: str, settings: Any, lows: dict[str, int], hints: dict[str, str] | None = None) -> None:
    """Each field `name` of `settings` an integer (not a bool) >= `lows[name]`, checked in order; else a ValueError
    naming `section.name` (with `hints[name]` after it, where given)."""
    for name, low in lows.items():
        value = getattr(settings, name)
        if not is_int(value) or value < low:
            raise ValueError(f"{section}.{name} must be an integer >= {low}, got {value!r}" + (hints or {}).get(name, ""))


def check_choice(kind: str, value: Any, accepted: tuple[str, ...]) -> str:
    """`value` if it is one of `accepted`, else an `UnknownNameError` naming them."""
    if not isinstance(value, str) or value not in accepted:
        raise UnknownNameError(kind, value, accepted)
    return value


def check_task_keys(family: str, data: Any, keys: set[str] | frozenset[str]) -> dict[str, Any]:
    """`data` if it is a dict with exactly `keys`, else a ValueError naming the keys given and those accepted."""
    if not isinstance(data, dict) or set(data) != set(keys):
        given = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"a {family} task is a dict with exactly the keys {sorted(keys)}, got {given}")
    return data


def is_int(x: Any) -> TypeGuard[int]:
    """An integer that is not a bool."""
    return isinstance(x, int) and not isinstance(x, bool)


def item_rng(family: str, split: str, splits: tuple[str, ...], seed: int, index: int) -> random.Random:
    """The random generator of item `index` of `split` for generator seed `seed` (what makes a family's
    `generate_task` a pure function of its arguments); errors name a bad split, seed or index."""
    check_choice(f"{family} split", split, splits)
    if not (is_int(seed) and seed >= 0 and is_int(index) and 0 <= index < 2**64):
        raise ValueError(f"seed must be an integer >= 0 and index an integer in 0..2**64-1, got seed={seed!r}, "
                         f"index={index!r}")
    return random.Random(((seed * 4 + splits.index(split)) << 64) | index)


def extract_answer(text: str) -> str | None:
    """The content of the last complete `<answer>...</answer>` in `text`, stripped, or None."""
    end = text.rfind("</answer>")
    start = text.rfind("<answer>", 0, end) if end >= 0 else -1
    return None if start < 0 else text[start + len("<answer>"):end].strip()


def as_text(action: Any) -> str:
    """Any action as text: models write `str`; bytes are decoded; anything else is shown as it prints."""
    if isinstance(action, str):
        return str(action)  # np.str_ -> str
    if isinstance(action, (bytes, bytearray)):
        return bytes(action).decode("utf-8", errors="replace")
    return repr(action)


class TextEnv(gymnasium.Env[str, str]):
    """A text environment: `str` observations, `str` actions, one task per episode.

    `reset(seed=..., options=...)` takes the options `task` (a task dict to pose), `index` and `seed`
    (pose item `index` of the env's split for generator seed `seed`, default 0) and `difficulty` (a
    preset to draw from). `info["task"]` always holds the current task; the step that ends an episode
    adds `info["verdict"]`.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "human"], "render_fps": 4}
    family: ClassVar[str] = ""
    task_type: ClassVar[type]
    config_class: ClassVar[type]
    presets: ClassVar[dict[str, Any]] = {}
    splits: ClassVar[tuple[str, ...]] = ("train",)

    def __init__(self, render_mode: str | None = None, *, split: str = "train", difficulty: str | None = None,
                 env_args: tuple[str, ...] = (), **knobs: Any):
        if render_mode is not None:
            check_choice(f"{type(self).__name__} render_mode", render_mode, tuple(self.metadata["render_modes"]))
        self.render_mode = render_mode
        self.split = check_choice(f"{type(self).__name__} split", split, self.splits)
        self.config = resolve_config(self.config_class, self.presets, difficulty, knobs,
                                     owner=type(self).__name__, also_accepted=("split", "render_mode") + env_args)
        self.observation_space = UnicodeText(MAX_OBSERVATION_CHARS)
        self.action_space = UnicodeText(MAX_ACTION_CHARS)
        self.task: Any = None
        self.done = False
        self._rng: random.Random | None = None
        self._transcript: list[str] = []

    # ---- what a family implements -------------------------------------------------------------
    def generate_task(self, index: int, *, seed: int = 0, config: Any = None) -> Any:
        """Item `index` of this env's split for generator seed `seed`: a pure function of its arguments."""
        raise NotImplementedError

    def sample_task(self, rng: random.Random, config: Any) -> Any:
        """A task drawn from this env's split with `rng` (what `reset` poses when given no task or index)."""
        return self.generate_task(rng.getrandbits(63), config=config)

    def _begin(self) -> tuple[str, dict[str, Any]]:
        """Start an episode on `self.task`: the first observation and extra info."""
        raise NotImplementedError

    def _act(self, action: str) -> tuple[str, float, bool, bool, Verdict | None, dict[str, Any]]:
        """One step: observation, reward, terminated, truncated, the verdict if the episode ended, extra info."""
        raise NotImplementedError

    def expert_actions(self) -> list[str]:
        """Actions that solve the current task from the current state."""
        raise NotImplementedError

    # ---- family hooks: what the self-play roles ask of a family (all optional) ------------------
    # The model-free curriculum's default ladder: knob overrides of this env's knobs, easiest first (the
    # curriculum proposer moves one level up or down after each round). Empty: no default ladder, the
    # config must give `proposer.levels`.
    curriculum_levels: ClassVar[tuple[dict[str, Any], ...]] = ()
    # True when the proposer writes a task's instruction for a route the generator sampled (SRDF's speaker,
    # `InstructionProposer`) rather than writing whole tasks.
    proposer_writes_instructions: ClassVar[bool] = False
    # The name of the kind of skill the skill library keeps for this family: "macro" (a successful episode's
    # commands), "function" (a function a verified code answer defined) or "expression" (a verified arithmetic
    # answer's pattern, `a*b-c`). The kinds themselves live with the skill library (sparring.agents.skills).
    skill_kind: ClassVar[str] = "macro"

    def task_problems(self, task: Any, config: Any = None) -> list[str]:
        """Why `task` (a `task_type`) lies outside this env's knobs (or `config`'s) and split, one reason each;
        empty when it lies within. Default: every well-formed task does."""
        return []

    def proposal_problems(self, task: Any) -> list[str]:
        """Why a proposed `task` (a `task_type` within the knobs) is rejected by the family's own filter, a check
        too costly to run on every task (ToolUse replays it in a sandbox); empty when it passes. Default: none."""
        return []

    @classmethod
    def answer_key(cls, task: dict[str, Any], actions: Sequence[str], verdict: Mapping[str, Any]) -> str | None:
        """The final answer an attempt (its task, actions and verdict) votes with in a majority vote, without
        looking at the ground truth; None when it gives no answer. Default: the last action, its whitespace
        collapsed."""
        text = " ".join((actions[-1] if actions else "").split())
        return text or None

    def compact_task(self, task: dict[str, Any]) -> str | None:
        """`task` as a proposer with the compact prompt writes it (Countdown: `8 3 2 -> 22`); None when the family
        has no compact form (the proposer writes the task's JSON). Default: None."""
        return None

    def parse_compact_task(self, text: str) -> dict[str, Any] | None:
        """The task dict of `text` written as `compact_task` writes tasks, None when it is not in that form (a
        proposer's text: never evaluated, never raises). Default: None."""
        return None

    def skill_features(self, task: dict[str, Any]) -> list[str]:
        """Retrieval tokens of `task` itself, for skill kinds that match skills to the task rather than to its
        first observation (the "expression" kind): only what the solver sees. Default: none."""
        return []

    def similar_task_chains(self, tasks: list[dict[str, Any]], length: int, rng: random.Random,
                            key: Callable[[dict[str, Any]], str]) -> list[list[dict[str, Any]]]:
        """SAGE's chains of similar tasks made from `tasks`, at most `length` a chain and as many tasks in all as
        given; `rng` for any draw, `key` the tasks' retrieval text (the skill kind's). Default: the tasks sorted
        by `key` and cut into runs of `length`."""
        ordered = sorted(tasks, key=key)
        return [ordered[i:i + length] for i in range(0, len(ordered), length)]

    # ---- the Gymnasium API ----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None or self._rng is None:
            self._rng = random.Random(int(self.np_random.integers(2**63)))
        options = options or {}
        for key in options:
            check_choice(f"{type(self).__name__} reset option", key, RESET_OPTIONS)
        config = self.config
        if options.get("difficulty") is not None:
            config = resolve_config(self.config_class, self.presets, options["difficulty"], {}, owner=type(self).__name__)
        if options.get("task") is not None:
            self.task = self.task_type.from_dict(options["task"])
        elif options.get("index") is not None:
            self.task = self.generate_task(options["index"], seed=options.get("seed", 0), config=config)
        else:
            self.task = self.sample_task(self._rng, config)
        self.done = False
        observation, extra = self._begin()
        self._transcript = [observation]
        if self.render_mode == "human":
            self.render()
        return observation, {"task": self.task.to_dict(), **extra}

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self.task is None:
            raise gymnasium.error.ResetNeeded("call reset() before step()")
        action = as_text(action)
        if self.done:
            verdict = Verdict(0.0, False, "the episode is over: call reset() to start a new one", {"error": "episode_over"})
            observation, reward, terminated, truncated, extra = verdict.feedback, 0.0, True, False, {}
        else:
            observation, reward, terminated, truncated, verdict, extra = self._act(action)
            self.done = terminated or truncated
        info = {"task": self.task.to_dict(), **extra}
        if terminated or truncated:
            if verdict is None:
                raise TypeError(f"{type(self).__name__}._act ended the episode without a verdict")
            info["verdict"] = verdict.to_dict()
        self._transcript += [f"> {action}", observation]
        if self.render_mode == "human":
            self.render()
        return observation, float(reward), terminated, truncated, info

    def render(self) -> str | None:
        text = "\n".join(self._transcript[-2:]) if self._transcript else ""
        if self.render_mode == "human":
            print(text)
            return None
        return text


class SingleTurnEnv(TextEnv):
    """A text environment answered in one step: the observation poses the task, the action is graded and ends
    the episode. A family implements `verify` (the answer's verdict) and `expert_answer`."""

    def verify(self, answer: str) -> Verdict:
        """The verdict on `answer` to the current task; never raises on model output."""
        raise NotImplementedError

    def expert_answer(self) -> str:
        """An answer that solves the current task."""
        raise NotImplementedError

    def _act(self, action: str) -> tuple[str, float, bool, bool, Verdict, dict[str, Any]]:
        verdict = self.verify(action)
        return verdict.feedback, verdict.reward, True, False, verdict, {}

    def expert_actions(self) -> list[str]:
        return [] if self.done else [self.expert_answer()]
