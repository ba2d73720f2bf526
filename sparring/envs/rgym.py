"""reasoning-gym's procedural datasets as one sparring env: `gymnasium.make("ReasoningGym-v0", dataset="gcd")`.

One id with a `dataset` argument, not one id per dataset: the datasets are reasoning-gym's to list (a
new release adds some without a change here), the registry and `sparring envs` stay readable, and
the id is registered even where the optional extra is not installed (making it then says how to
install it). Every dataset of `reasoning_gym.factory.DATASETS` is accepted except `composite`, which
mixes other datasets (make one env per dataset instead), and `codeio`, whose items run code snippets that
keep state between calls (the same item came out different twice in one process).

- Task: the dataset's entry (`question`, `answer`, `metadata`), made JSON-safe once (tuples become
  lists, sets sorted lists, other values their text), plus the dataset's name. The scorer always sees
  the JSON-safe entry, so a generated task and the same task posed again score alike.
- Items: item `index` of a split for seed `seed` is the first of its 64 candidates whose question hashes
  (SHA-256) into the split: a quarter of all questions belong to `test`, the rest to `train`, so the
  splits never share a question. The candidates of 64 consecutive items come from one dataset of 4,096
  entries, seeded from `(split, seed, index // 64)` (built once per block: some datasets take a tenth
  of a second to build; acre, which builds every entry up front, gets one dataset of 64 per item).
- Verdict: reasoning-gym's `score_answer` as the reward; success is a score of exactly 1.0. The action
  is graded whole, or its last `<answer>...</answer>` where it has one. Scorers run in a child process
  with guards against the `eval`s some of them contain (see `rgym_scorer.py`).
- Where reasoning-gym's scoring is lenient or broken, found by running every dataset's scorer on junk
  and on known cheats: game_of_life_halting scores `bool(answer) == bool(expected)`, so any non-empty
  answer scored 1.0 (here: the answer must equal the expected one, case aside); coin_flip gives credit
  for a matching prefix divided by the shorter length, so `0` scored 1.0 on every probability below 1
  (here: the number must be within the scorer's own 1e-4, or the score is 0); puzzle24 checks that
  four numbers in range make 24 (`int()` of the value, so 24.5 passes) but not that they are the
  task's, so `1*2*3*4` scored 1.0 on every task (here: Countdown's exact verifier must accept the
  answer for the task's numbers); the integration
  scorers differentiate the answer, so `Integral(<integrand>, x) + C` scored 1.0 on every task (here:
  the guard admits no `Integral` name, see `rgym_scorer.py`), and some of intermediate_integration's
  own answers are such an unevaluated integral (those items are skipped); list_functions draws from
  the global `random` (here: seeded from the item, and restored after); arc_agi and rearc compare
  tuples that JSON turns into lists (the scorer's child turns them back).
- Expert: the entry's answer, or for the datasets that give none the example solution in the entry's
  metadata (graph_color, propositional_logic, rubiks_cube); boxnet and rush_hour have neither.
- Difficulty: where reasoning-gym has a curriculum for the dataset, `level=N` sets every curriculum
  attribute to level N and the presets are its levels (easy: 0, medium: the middle, hard: the top).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import random
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from sparring.envs.base import SingleTurnEnv, Verdict, check_task_keys, is_int, item_rng
from sparring.envs.rgym_scorer import shared_scorer
from sparring.errors import SparringError, UnknownNameError

SPLITS = ("train", "test")
TEST_SHARE = 64  # questions whose SHA-256 starts with a byte below this (a quarter) belong to `test`
CANDIDATES = 64
BLOCK = 64  # items whose candidates come from one constructed dataset (of BLOCK * CANDIDATES entries)
EAGER = {"acre"}  # builds every entry when constructed: one dataset of CANDIDATES entries per item instead
EXCLUDED = {"composite": "it mixes other datasets: make one ReasoningGym-v0 env per dataset instead",
            "codeio": "its items run code snippets shipped with reasoning-gym, some of which keep state between calls "
                      "(the same item came out different twice in one process), so an item is not a pure function "
                      "of its seed"}


def same_text(answer: str, task: ReasoningGymTask) -> bool:
    return task.answer is not None and answer.strip().lower() == task.answer.strip().lower()


def same_number(answer: str, task: ReasoningGymTask, tolerance: float = 1e-4) -> bool:
    try:
        given, expected = (float(Fraction(text.replace(",", ""))) for text in (answer, str(task.answer)))
        return abs(given - expected) <= tolerance
    except (ValueError, ZeroDivisionError, OverflowError, TypeError):
        return False


def makes_24_from_the_numbers(answer: str, task: ReasoningGymTask) -> bool:
    """Countdown's exact verifier: every one of the task's numbers once, exactly 24."""
    from sparring.envs.countdown_tasks import CountdownTask, verify

    try:
        numbers = CountdownTask.from_dict({"numbers": task.metadata.get("numbers"), "target": 24})
    except ValueError:
        return False
    return verify(numbers, f"<answer>{answer}</answer>").success


SUCCESS_CHECKS = {"game_of_life_halting": same_text, "coin_flip": same_number,  # what a 1.0 must also pass
                  "puzzle24": makes_24_from_the_numbers}
BROKEN_ITEMS = {"intermediate_integration": ("Integral", "some reference answers are an unevaluated Integral(...)")}
EXAMPLE_ANSWER_KEYS = ("possible_answer", "example_answer", "example_correct_answer")
INSTALL = "pip install 'sparring[reasoning-gym]'"
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


class MissingExtraError(SparringError, ImportError):
    """An optional dependency that an env or command needs is not installed."""


def load_reasoning_gym() -> Any:
    """reasoning-gym's dataset factory, or an error that names the install command."""
    try:
        from reasoning_gym import factory
    except ImportError as error:
        raise MissingExtraError(f"ReasoningGym-v0 needs the reasoning-gym package ({error}); install it with: "
                                f"{INSTALL}") from None
    return factory


def dataset_names() -> list[str]:
    """Every reasoning-gym dataset this env accepts, sorted."""
    return sorted(set(load_reasoning_gym().DATASETS) - set(EXCLUDED))


def json_safe(value: Any) -> Any:
    """`value` as JSON would carry it: tuples -> lists, sets -> sorted lists, numpy scalars -> numbers, the rest
    that JSON lacks -> its text; non-finite floats -> their text."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((json_safe(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        try:
            return json_safe(value.item())
        except (TypeError, ValueError):
            pass
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy arrays
        return json_safe(value.tolist())
    return str(value)


def split_of(question: str) -> str:
    """The split a question belongs to, by its SHA-256: the same question is always in the same split."""
    return "test" if hashlib.sha256(question.encode("utf-8", "surrogatepass")).digest()[0] < TEST_SHARE else "train"


@dataclass(frozen=True)
class ReasoningGymTask:
    """One reasoning-gym entry: the dataset it is from, its question, its answer (None where the dataset has no
    single answer) and its metadata, which the dataset's scorer reads."""

    dataset: str
    question: str
    answer: str | None
    metadata: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "question": self.question, "answer": self.answer,
                "metadata": copy.deepcopy(self.metadata)}

    def entry(self) -> dict[str, Any]:
        """The entry as reasoning-gym's `score_answer` reads it."""
        return {"question": self.question, "answer": self.answer, "metadata": self.metadata}

    @classmethod
    def from_dict(cls, data: Any) -> ReasoningGymTask:
        """Validate a task dict `{"dataset", "question", "answer", "metadata"}` (from a user or a proposer)."""
        keys = {"dataset", "question", "answer", "metadata"}
        check_task_keys("ReasoningGym", data, keys)
        if not isinstance(data["dataset"], str) or not isinstance(data["question"], str) or not data["question"]:
            raise ValueError("task 'dataset' and 'question' must be strings (the question non-empty)")
        if data["answer"] is not None and not isinstance(data["answer"], str):
            raise ValueError(f"task 'answer' must be a string or null, got {type(data['answer']).__name__}")
        if not isinstance(data["metadata"], dict):
            raise ValueError(f"task 'metadata' must be a dict, got {type(data['metadata']).__name__}")
        try:
            metadata = json.loads(json.dumps(data["metadata"], allow_nan=False))
        except (TypeError, ValueError) as error:
            raise ValueError(f"task 'metadata' must be JSON: {error}") from None
        return cls(data["dataset"], data["question"], data["answer"], metadata)


def graded_text(action: str) -> str:
    """What is scored: the last `<answer>...</answer>`'s content (stripped) where there is one, else the whole
    action stripped."""
    found = _ANSWER_TAG.findall(action)
    return (found[-1] if found else action).strip()


@dataclass(frozen=True)
class ReasoningGymArguments:
    """The env's own arguments, as `sparring envs` lists them; an instance's knobs are its dataset's config fields."""

    dataset: str = "(required: a reasoning-gym dataset)"
    level: int | None = None


class ReasoningGymEnv(SingleTurnEnv):
    """A reasoning-gym dataset (`dataset=...`) in one turn: the question is the observation, the action the answer.

    ## Action Space
    Any text (`UnicodeText`); graded whole, or its last `<answer>...</answer>` where it has one.
    ## Observation Space
    Text: the dataset's question (its own instructions included); after the step, the verdict's feedback.
    ## Reward
    reasoning-gym's score of the answer, in [0, 1] (partial credit as the dataset gives it); success is 1.0.
    ## Episode End
    Terminates after one step.
    ## Arguments
    - `dataset`: required: a name of `reasoning_gym.factory.DATASETS`
    - `split`: "train" or "test"
    - `level`: the curriculum level, where the dataset has a curriculum
    - `difficulty`: preset levels "easy", "medium", "hard"
    The fields of the dataset's config dataclass are knobs too (but `seed` and `size`: items are seeded
    by the env).
    ## Version History
    v0: initial version (reasoning-gym 0.1.25).
    """

    family = "reasoning-gym"
    task_type = ReasoningGymTask
    config_class: type = ReasoningGymArguments  # replaced per instance by the dataset's config dataclass
    presets: dict[str, Any]  # per instance: the dataset's curriculum levels
    splits = SPLITS

    def __init__(self, render_mode: str | None = None, *, dataset: str | None = None, split: str = "train",
                 difficulty: str | None = None, level: int | None = None, **knobs: Any):
        factory = load_reasoning_gym()
        accepted = dataset_names()
        if dataset is None:
            raise ValueError(f"ReasoningGym-v0 needs dataset=NAME, one of: {', '.join(accepted)}")
        if dataset in EXCLUDED:
            raise ValueError(f"reasoning-gym's {dataset!r} is not offered: {EXCLUDED[dataset]}")
        if dataset not in accepted:
            raise UnknownNameError("reasoning-gym dataset", dataset, accepted)
        for key in ("seed", "size"):
            if key in knobs:
                raise ValueError(f"ReasoningGym-v0 does not take {key}=: items are seeded by reset(seed=...) and "
                                 f"generate_task(index, seed=...), and a split has no size")
        self.dataset = dataset
        self.config_class = factory.DATASETS[dataset][1]
        self.curriculum = factory.create_curriculum(dataset) if factory.has_curriculum(dataset) else None
        self.presets = self._curriculum_presets()
        if level is not None:
            if self.curriculum is None:
                raise ValueError(f"reasoning-gym has no curriculum for {dataset!r}, so it takes no level=")
            if difficulty is not None:
                raise ValueError("give level= or difficulty=, not both")
            top = self.max_level()
            if not is_int(level) or not 0 <= level <= top:
                raise ValueError(f"level must be an integer in 0..{top} for {dataset!r}, got {level!r}")
            self.presets = {**self.presets, f"level-{level}": self._at_level(level)}
            difficulty = f"level-{level}"
        self._blocks: dict[tuple[str, int], Any] = {}
        super().__init__(render_mode, split=split, difficulty=difficulty, env_args=("dataset", "level"), **knobs)
        self._check_config(self.config)

    # ---- configuration --------------------------------------------------------------------------
    def max_level(self) -> int:
        return max(len(attr.levels) for attr in self.curriculum.attributes.values()) - 1 if self.curriculum else 0

    def _at_level(self, level: int) -> Any:
        if self.curriculum is None:
            raise ValueError(f"reasoning-gym has no curriculum for {self.dataset!r}, so it has no levels")
        self.curriculum.set_global_level(level)
        return self.curriculum.generate_configuration()

    def _curriculum_presets(self) -> dict[str, Any]:
        if self.curriculum is None or not self.curriculum.attributes:
            return {}
        top = self.max_level()
        return {"easy": self._at_level(0), "medium": self._at_level(top // 2), "hard": self._at_level(top)}

    def _check_config(self, config: Any) -> None:
        try:
            if hasattr(config, "validate"):
                config.validate()
        except (AssertionError, ValueError, TypeError) as error:
            raise ValueError(f"reasoning-gym refused this {self.dataset} config: {error or type(error).__name__} "
                             f"({config})") from None

    def _config_dict(self, config: Any) -> dict[str, Any]:
        return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}

    # ---- items ----------------------------------------------------------------------------------
    def generate_task(self, index: int, *, seed: int = 0, config: Any = None) -> ReasoningGymTask:
        config = config or self.config
        block, slot = divmod(index, 1 if self.dataset in EAGER else BLOCK)
        block_seed = item_rng("ReasoningGym", self.split, SPLITS, seed, block).getrandbits(31)
        state = random.getstate()  # some generators draw from the global `random` (list_functions): seed it
        try:
            dataset = self._block(config, block_seed)
            random.seed(block_seed * BLOCK + slot)
            entries = (json_safe(dataset[c]) for c in range(slot * CANDIDATES, (slot + 1) * CANDIDATES))
            entry = next((e for e in entries if self._poses(e)), None)
        finally:
            random.setstate(state)
        if entry is not None:
            answer = entry.get("answer")
            return ReasoningGymTask(self.dataset, entry["question"], None if answer is None else str(answer),
                                    entry.get("metadata") or {})
        raise ValueError(f"none of {CANDIDATES} {self.dataset} questions fell into the {self.split!r} split: this "
                         f"config has too few distinct questions to split")

    def _block(self, config: Any, block_seed: int) -> Any:
        """The dataset that holds a block of `BLOCK` consecutive items' candidates (some datasets take a tenth of a
        second to build: one per block, not one per item; the last few are kept)."""
        key = (repr(config), block_seed)
        if key not in self._blocks:
            random.seed(block_seed)
            size = CANDIDATES * (1 if self.dataset in EAGER else BLOCK)
            settings = {**self._config_dict(config), "seed": block_seed, "size": size}
            self._blocks[key] = load_reasoning_gym().DATASETS[self.dataset][0](config=self.config_class(**settings))
            while len(self._blocks) > 4:
                self._blocks.pop(next(iter(self._blocks)))
        return self._blocks[key]

    def _poses(self, entry: dict[str, Any]) -> bool:
        """Whether a generated entry is an item of this env's split (and not one of a dataset's known-broken ones)."""
        if not isinstance(entry.get("question"), str) or split_of(entry["question"]) != self.split:
            return False
        marker = BROKEN_ITEMS.get(self.dataset, (None,))[0]
        return marker is None or marker not in str(entry.get("answer"))

    def sample_task(self, rng: random.Random, config: Any) -> ReasoningGymTask:
        return self.generate_task(rng.getrandbits(63), seed=rng.getrandbits(31), config=config)

    def task_problems(self, task: ReasoningGymTask, config: Any = None) -> list[str]:
        """Why `task` is not one this env would pose: another dataset, or a question of the other split."""
        problems = []
        if task.dataset != self.dataset:
            problems.append(f"the task is from {task.dataset!r}, this env poses {self.dataset!r}")
        if split_of(task.question) != self.split:
            problems.append(f"the question belongs to the {split_of(task.question)!r} split, not {self.split!r}")
        return problems

    # ---- the episode ----------------------------------------------------------------------------
    def _begin(self) -> tuple[str, dict[str, Any]]:
        return self.task.question, {}

    def verify(self, answer: str) -> Verdict:
        graded = graded_text(answer)
        if self.task.dataset != self.dataset:
            return Verdict(0.0, False, f"this env scores {self.dataset} answers, the task is from {self.task.dataset}",
                           {"error": "wrong_dataset"})
        score, error = shared_scorer().score(self.dataset, self.config, self.task.entry(), graded)
        score = min(max(score, 0.0), 1.0)
        if self.dataset in SUCCESS_CHECKS and not SUCCESS_CHECKS[self.dataset](graded, self.task):
            score = 0.0  # the scorer's credit is what its leniency gives (see the module docstring)
        success = score == 1.0
        if error is not None:
            feedback = f"the answer could not be scored ({error}): score 0"
        elif success:
            feedback = "correct"
        else:
            feedback = f"not correct: reasoning-gym's {self.dataset} scorer gave {score:.3g} (1.0 is correct)"
        return Verdict(score, success, feedback, {"score": score, "graded": graded[:200], "scorer_error": error})

    def expert_answer(self) -> str:
        if self.task.answer is not None:
            return self.task.answer
        for key in EXAMPLE_ANSWER_KEYS:
            example = self.task.metadata.get(key)
            if example is not None:
                return example if isinstance(example, str) else json.dumps(example)
        raise NotImplementedError(f"reasoning-gym's {self.dataset} gives no answer or example solution to replay")
