"""TextWorld's games as a sparring env: `gymnasium.make("TextWorld-v0", generator="cooking", recipe=2)`.

Games come from TextWorld's own generators: `custom` (`tw-make custom`: world size, objects, quest
length), and the challenges `coin_collector`, `treasure_hunter`, `cooking` and `simple`, each with its
knobs. A game is compiled once (a few seconds) and cached on disk under its generator, knobs and seed
(`cache_dir`, default `$SPARRING_CACHE/textworld` or `~/.cache/sparring/textworld`), written to a
private folder first and moved into place, so a split is generated once and a half-written game is
never read. The episode runs TextWorld's own interpreter with the information it can give:
admissible commands, the walkthrough from the current state (`policy_commands`, the expert), score,
max score, won and lost.

TextNav-v0 and TextWorld-v0 meet the same multi-turn interface. TextNav is ours: fast (no compiler,
no interpreter process), with knobs for navigation (floors, doors, distractors), language goals and
path metrics (SPL, nDTW), and held-out words for a test split. TextWorld is the benchmark people
know: Inform 7 games with TextWorld's grammar and quests, for results comparable with published work.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparring.envs.base import TextEnv, Verdict, check_choice, check_task_keys, is_int, item_rng
from sparring.envs.rgym import MissingExtraError

if TYPE_CHECKING:
    from textworld.logic import Proposition

SPLITS = ("train", "test")
INSTRUCTIONS = ("full", "compact")
GENERATORS = ("custom", "coin_collector", "treasure_hunter", "cooking", "simple")
INSTALL = "pip install 'sparring[textworld]'"
MAX_COMMAND_CHARS = 200
# knob: (generators that read it, check, what is accepted)
KNOBS: dict[str, tuple[tuple[str, ...], Any, str]] = {
    "world_size": (("custom",), lambda v: is_int(v) and 1 <= v <= 30, "an integer in 1..30 (rooms)"),
    "nb_objects": (("custom",), lambda v: is_int(v) and 0 <= v <= 60, "an integer in 0..60"),
    "quest_length": (("custom",), lambda v: is_int(v) and 1 <= v <= 20, "an integer in 1..20"),
    "level": (("coin_collector", "treasure_hunter"), lambda v: is_int(v) and 1 <= v <= 300,
              "an integer: 1..300 for coin_collector, 1..30 for treasure_hunter"),
    "recipe": (("cooking",), lambda v: is_int(v) and 1 <= v <= 5, "an integer in 1..5 (ingredients)"),
    "take": (("cooking",), lambda v: is_int(v) and 0 <= v <= 5, "an integer in 0..recipe (ingredients to find)"),
    "go": (("cooking",), lambda v: v in (1, 6, 9, 12) and is_int(v), "1, 6, 9 or 12 (locations)"),
    "open": (("cooking",), lambda v: isinstance(v, bool), "true or false"),
    "cook": (("cooking",), lambda v: isinstance(v, bool), "true or false"),
    "cut": (("cooking",), lambda v: isinstance(v, bool), "true or false"),
    "drop": (("cooking",), lambda v: isinstance(v, bool), "true or false"),
    "rewards": (("simple",), lambda v: v in ("dense", "balanced", "sparse"), "dense, balanced or sparse"),
    "goal": (("simple",), lambda v: v in ("detailed", "brief", "none"), "detailed, brief or none"),
}


def load_textworld() -> Any:
    """The textworld package, or an error that names the install command."""
    try:
        import textworld
        import textworld.challenges  # noqa: F401  (registers the challenges)
    except ImportError as error:
        raise MissingExtraError(f"TextWorld-v0 needs the textworld package ({error}); install it with: {INSTALL}") from None
    return textworld


@dataclass(frozen=True)
class TextWorldConfig:
    """The generator and its knobs (each generator reads its own; see `KNOBS`), and the episode's limits."""

    generator: str = "custom"      # TextWorld's game generator: custom, coin_collector, treasure_hunter, cooking or simple
    world_size: int = 5            # custom: rooms, 1..30
    nb_objects: int = 10           # custom: objects, 0..60
    quest_length: int = 5          # custom: quest steps, 1..20
    level: int = 1                 # coin_collector 1..300, treasure_hunter 1..30: the challenge's level
    recipe: int = 1                # cooking: ingredients in the recipe, 1..5
    take: int = 0                  # cooking: ingredients to find, 0..recipe
    go: int = 1                    # cooking: locations, 1, 6, 9 or 12
    open: bool = False             # cooking: doors and containers to open
    cook: bool = False             # cooking: ingredients to cook
    cut: bool = False              # cooking: ingredients to cut
    drop: bool = False             # cooking: a limited inventory
    rewards: str = "dense"         # simple: dense, balanced or sparse
    goal: str = "detailed"         # simple: how the goal is told: detailed, brief or none
    step_limit_factor: float = 3.0  # truncate after ceil(factor * the walkthrough's length) + 5 commands
    max_invalid: int = 5  # the episode ends (failed) at the inadmissible command after this many
    score_shaping: float = 0.5  # a lost or unfinished game's reward: this x score / max score
    # distinct games per split (0: a new game for every item): a fixed set, as TextWorld's benchmarks use, so a
    # split is compiled once; item i plays game i mod games whatever the seed
    games: int = 0

    def __post_init__(self) -> None:
        check_choice("TextWorld generator", self.generator, GENERATORS)
        for name, (_, ok, accepted) in KNOBS.items():
            if not ok(getattr(self, name)):
                raise ValueError(f"TextWorld knob {name} must be {accepted}, got {getattr(self, name)!r}")
        if self.generator == "treasure_hunter" and self.level > 30:
            raise ValueError(f"treasure_hunter's level must be in 1..30, got {self.level}")
        if self.take > self.recipe:
            raise ValueError(f"cooking's take ({self.take}) must be <= recipe ({self.recipe})")
        factor = self.step_limit_factor
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor >= 1:
            raise ValueError(f"step_limit_factor must be a number >= 1, got {factor!r}")
        if not is_int(self.max_invalid) or not 0 <= self.max_invalid <= 10_000:
            raise ValueError(f"max_invalid must be an integer in 0..10000, got {self.max_invalid!r}")
        shaping = self.score_shaping
        if isinstance(shaping, bool) or not isinstance(shaping, (int, float)) or not 0 <= shaping < 1:
            raise ValueError(f"score_shaping must be a number in [0, 1), got {shaping!r}")
        if not is_int(self.games) or not 0 <= self.games <= 1_000_000:
            raise ValueError(f"games must be an integer in 0..1000000 (0: no fixed set), got {self.games!r}")

    def knobs(self) -> dict[str, Any]:
        """The knobs the configured generator reads."""
        return {name: getattr(self, name) for name, (generators, _, _) in KNOBS.items() if self.generator in generators}


PRESETS = {
    "easy": TextWorldConfig(world_size=2, nb_objects=4, quest_length=2),
    "medium": TextWorldConfig(),
    "hard": TextWorldConfig(world_size=8, nb_objects=16, quest_length=8),
}


@dataclass(frozen=True)
class TextWorldTask:
    """One game: the generator, the knobs it reads, the game seed, and the split (cooking's food items differ
    between its train and test games)."""

    generator: str
    knobs: dict[str, Any]
    seed: int
    split: str = "train"

    def to_dict(self) -> dict[str, Any]:
        return {"generator": self.generator, "knobs": dict(self.knobs), "seed": self.seed, "split": self.split}

    @classmethod
    def from_dict(cls, data: Any) -> TextWorldTask:
        """Validate `{"generator", "knobs", "seed", "split"}` (from a user or a proposer): knobs in their ranges."""
        keys = {"generator", "knobs", "seed", "split"}
        check_task_keys("TextWorld", data, keys)
        generator, knobs, seed = data["generator"], data["knobs"], data["seed"]
        check_choice("TextWorld generator", generator, GENERATORS)
        check_choice("TextWorld task split", data["split"], SPLITS)
        if not isinstance(knobs, dict):
            raise ValueError(f"task 'knobs' must be a dict, got {type(knobs).__name__}")
        accepted = {name for name, (generators, _, _) in KNOBS.items() if generator in generators}
        for name in knobs:
            check_choice(f"TextWorld {generator} knob", name, tuple(sorted(accepted)))
        config = TextWorldConfig(generator=generator, **knobs)  # checks every value
        if not is_int(seed) or not 0 <= seed < 2**31:
            raise ValueError(f"task 'seed' must be an integer in 0..2**31-1, got {seed!r}")
        return cls(generator, config.knobs(), seed, data["split"])

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:20]


def default_cache_dir() -> Path:
    return Path(os.environ.get("SPARRING_CACHE") or Path.home() / ".cache" / "sparring") / "textworld"


def make_game(textworld: Any, task: TextWorldTask, options: Any) -> Path:
    """Generate and compile `task`'s game with TextWorld's own generator, where `options.path` says."""
    knobs = task.knobs
    if task.generator == "custom":  # what `tw-make custom --world-size --nb-objects --quest-length` sets
        options.nb_rooms, options.nb_objects = knobs["world_size"], knobs["nb_objects"]
        options.chaining.min_length = options.chaining.max_length = options.chaining.max_depth = knobs["quest_length"]
        made, _ = textworld.make(options)
        return Path(made)
    settings = {**knobs, "split": task.split, "recipe_seed": task.seed, "test": task.split == "test"}
    _, make, _ = textworld.challenges.CHALLENGES[f"tw-{task.generator}"]
    return Path(textworld.generator.compile_game(make(settings=settings, options=options), options))


def game_file(task: TextWorldTask, cache_dir: Path) -> Path:
    """The compiled game of `task`, generated on first use and cached under its generator, knobs and seed."""
    path = cache_dir / f"{task.generator}-{task.key()}.z8"
    if path.exists() and path.with_suffix(".json").exists():
        return path
    textworld = load_textworld()
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".making-") as private:
        options = textworld.GameOptions()
        options.seeds = task.seed
        options.path = str(Path(private) / "game.z8")
        options.force_recompile = True
        try:
            with warnings.catch_warnings():  # the challenges play their walkthrough once: jericho warns (see _begin)
                warnings.filterwarnings("ignore", message=".*is not fully supported", category=UserWarning)
                made = make_game(textworld, task, options)
        except (textworld.generator.QuestGenerationError, textworld.generator.CouldNotCompileGameError) as error:
            raise ValueError(f"TextWorld could not make {task.to_dict()}: {error}; relax the knobs") from None
        os.replace(made.with_suffix(".json"), path.with_suffix(".json"))  # the game last: its presence means done
        os.replace(made, path)
    return path


def clean_command(action: str) -> str:
    """One line of printable ASCII, at most 200 characters: what the interpreter is given (a newline would be
    a second command)."""
    return re.sub(r"\s+", " ", re.sub(r"[^\x20-\x7e]", " ", action))[:MAX_COMMAND_CHARS].strip()


# ---- compact observations: the game's own state facts, one short line -------------------------------

_DIRECTIONS = ("north", "south", "east", "west")
_GOAL_WORDS = {"in": "{0} in {1}", "on": "{0} on {1}", "open": "{0} open", "closed": "{0} closed",
               "locked": "{0} locked", "eaten": "eat {0}"}


def _names(fact: Any) -> list[str]:
    return [v.name for v in fact.arguments]


def goal_text(win_facts: list[Proposition], names: dict[str, str], start: set[str]) -> str:
    """The quest's winning condition in short words (`carry hat; chest locked`), without what holds at the
    start (the condition names every fixed thing's place)."""
    words = []
    for fact in win_facts:
        args = [names.get(v.name, v.name) for v in fact.arguments]
        said = f"{fact.name}({', '.join(args)})"
        if said in start:
            continue
        if fact.name == "at":
            words.append(f"go to {args[1]}" if args[0] == "P" else f"{args[0]} in {args[1]}")
        elif fact.name == "in" and args[1] == "I":
            words.append(f"carry {args[0]}")
        else:
            words.append(_GOAL_WORDS.get(fact.name, "{0} " + fact.name).format(*args))
    return "goal: " + ("; ".join(words) or "done")


def state_line(facts: list[Any]) -> str:
    """Where the player is and what is there, from the game's facts: `studio: w=office | chest(closed) |
    stand: apple | carrying: key`. Exits name the room beyond, or the door and its state; a closed
    container's contents are not shown (the player cannot see them either)."""
    by_name: dict[str, list[list[str]]] = {}
    kinds: dict[str, str] = {}
    for fact in facts:
        by_name.setdefault(fact.name, []).append(_names(fact))
        for v in fact.arguments:
            kinds[v.name] = v.type
    holds = {(name, tuple(args)) for name, rows in by_name.items() for args in rows}
    room = next((args[1] for args in by_name.get("at", []) if args[0] == "P"), "?")
    doors = {(a, b): d for a, d, b in by_name.get("link", [])}
    exits = []
    for direction in _DIRECTIONS:
        for there, here in by_name.get(f"{direction}_of", []):
            if here != room:
                continue
            door = doors.get((room, there))
            if door is None:
                exits.append(f"{direction[0]}={there}")
            else:
                state = next((s for s in ("locked", "closed", "open") if (s, (door,)) in holds), "")
                exits.append(f"{direction[0]}={door}({state})")

    def shown(thing: str) -> str:
        kind = kinds.get(thing)
        if kind == "c":
            state = next((s for s in ("locked", "closed") if (s, (thing,)) in holds), "open")
            inside = [a for a, b in by_name.get("in", []) if b == thing]
            return f"{thing}({state})" if state != "open" else f"{thing}: {', '.join(inside) or '-'}"
        if kind == "s":
            return f"{thing}: {', '.join(a for a, b in by_name.get('on', []) if b == thing) or '-'}"
        return thing

    here = [shown(a) for a, b in by_name.get("at", []) if b == room and a != "P"]
    carrying = [a for a, b in by_name.get("in", []) if b == "I"]
    return " | ".join([f"{room}: {' '.join(exits) or 'no exits'}", *here, f"carrying: {', '.join(carrying) or '-'}"])


class TextWorldEnv(TextEnv):
    """A TextWorld game generated by TextWorld's own generators; won is success, score shapes the reward.

    ## Action Space
    Text: one command per step (TextWorld's parser: `go east`, `take keycard from counter`, `open gate`, ...),
    cleaned to one line of printable ASCII of at most 200 characters. `info["admissible_commands"]` lists
    what works; a command outside it counts as invalid.
    ## Observation Space
    Text: the objective, the room's description and the inventory; then TextWorld's feedback to each command.
    `instruction="compact"` (for small models): the quest's winning condition in short words and one line of
    the game's own state facts (`studio: w=office | portmanteau: carrot | stand: - | carrying: -`), then that
    line again after each command (`invalid` for one that does not work here).
    ## Reward
    0 until the episode ends; then 1.0 if the game is won, else `score_shaping` x score / max score.
    ## Episode End
    Terminates when the game is won or lost, or at the invalid command after `max_invalid` of them;
    truncated after ceil(`step_limit_factor` x the walkthrough's length) + 5 commands. The verdict's details:
    won, lost, score, max_score, moves, invalid_actions, actions, walkthrough_length, ended.
    ## Arguments
    - `split`: "train" or "test"
    - `difficulty`: "easy", "medium", "hard": custom games of 2, 5 and 8 rooms; the knobs of
      `TextWorldConfig` below (`generator` and its knobs, the limits) refine it
    - `cache_dir`: where compiled games are kept (default: $SPARRING_CACHE/textworld or
      ~/.cache/sparring/textworld)
    - `instruction`: "full" (TextWorld's own text) or "compact" (short state lines, for small models)
    ## Version History
    v0: initial version (textworld 1.7.0).
    """

    family = "textworld"
    task_type = TextWorldTask
    config_class = TextWorldConfig
    config: TextWorldConfig  # (made by TextEnv.__init__ from config_class)
    presets = PRESETS
    splits = SPLITS

    def __init__(self, render_mode: str | None = None, *, split: str = "train", difficulty: str | None = None,
                 cache_dir: str | os.PathLike | None = None, instruction: str = "full", **knobs: Any):
        self._textworld = load_textworld()
        super().__init__(render_mode, split=split, difficulty=difficulty, env_args=("cache_dir", "instruction"),
                         **knobs)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.instruction = check_choice("TextWorld instruction", instruction, INSTRUCTIONS)
        self._game: Any = None
        self._state: Any = None

    # ---- games ----------------------------------------------------------------------------------
    def generate_task(self, index: int, *, seed: int = 0, config: TextWorldConfig | None = None) -> TextWorldTask:
        """Item `index` of this split: a game seed drawn for `(split, seed, index)`; test seeds are multiples of
        4 and train seeds are not, so the splits never share a game. With `games`, item `index` is game
        `index mod games` of the split's fixed set, whatever `seed`."""
        config = config or self.config
        if config.games:
            seed, index = 0, index % config.games
        rng = item_rng("TextWorld", self.split, SPLITS, seed, index)
        while True:
            game_seed = rng.getrandbits(31)
            if (game_seed % 4 == 0) == (self.split == "test"):
                return TextWorldTask(config.generator, config.knobs(), game_seed, self.split)

    def _begin(self) -> tuple[str, dict[str, Any]]:
        path = game_file(self.task, self.cache_dir)
        infos = self._textworld.EnvInfos(admissible_commands=True, policy_commands=True, score=True, max_score=True,
                                         won=True, lost=True, objective=True, description=True, inventory=True,
                                         moves=True, facts=self.instruction == "compact")
        if self._game is not None:
            self._game.close()
        with warnings.catch_warnings():
            # jericho (TextWorld's Z-machine) says it cannot detect score and moves in TextWorld's games: TextWorld
            # tracks them itself, from its own game state, so the warning is noise on every game
            warnings.filterwarnings("ignore", message=".*is not fully supported", category=UserWarning)
            self._game = self._textworld.start(str(path), request_infos=infos)
            self._state = self._game.reset()
        self.walkthrough = len(self._state["policy_commands"])
        self.step_limit = math.ceil(self.config.step_limit_factor * self.walkthrough) + 5
        self.steps = self.invalid = 0
        if self.instruction == "compact":
            game = self._textworld.Game.load(str(path.with_suffix(".json")))
            names = {key: info.name for key, info in game.infos.items() if info.name}
            start = {f"{f.name}({', '.join(_names(f))})" for f in self._state["facts"]}
            win = [fact for quest in game.quests[:1] for event in quest.win_events[:1] for fact in event.condition.preconditions]
            return f"{goal_text(win, names, start)}\n{state_line(self._state['facts'])}", self._info()
        parts = [self._state["objective"], self._state["description"], self._state["inventory"]]
        return "\n\n".join(p.strip() for p in parts if p and p.strip()), self._info()

    def _info(self, valid: bool = True) -> dict[str, Any]:
        state = self._state
        return {"admissible_commands": [] if self.done else sorted(state["admissible_commands"]),
                "objective": state["objective"], "score": state["score"], "max_score": state["max_score"],
                "moves": state["moves"], "invalid_actions": self.invalid, "last_action_valid": valid}

    def _act(self, action: str) -> tuple[str, float, bool, bool, Verdict | None, dict[str, Any]]:
        command = clean_command(action)
        valid = command.lower() in {c.lower() for c in self._state["admissible_commands"]}
        self.steps += 1
        compact = self.instruction == "compact"
        if valid:
            self._state, _, _ = self._game.step(command)
            observation = state_line(self._state["facts"]) if compact else self._state.feedback.strip()
        else:
            self.invalid += 1
            observation = "invalid" if compact else \
                f"That command does not work here: {command[:80]!r}. `info['admissible_commands']` lists what does."
        won, lost = bool(self._state["won"]), bool(self._state["lost"])
        ended = "won" if won else "lost" if lost else "invalid" if self.invalid > self.config.max_invalid else \
            "step_limit" if self.steps >= self.step_limit else None
        if ended is None:
            return observation, 0.0, False, False, None, self._info(valid)
        self.done = True
        verdict = self._verdict(ended)
        observation = verdict.feedback if compact else f"{observation}\n{verdict.feedback}"
        return observation, verdict.reward, ended != "step_limit", ended == "step_limit", \
            verdict, self._info(valid)

    def _verdict(self, ended: str) -> Verdict:
        state = self._state
        score, max_score = int(state["score"]), int(state["max_score"])
        won = ended == "won"
        reward = 1.0 if won else self.config.score_shaping * score / max(1, max_score)
        feedback = {"won": f"won: the quest is done in {self.steps} commands (the walkthrough takes {self.walkthrough})",
                    "lost": f"lost: the game is over, score {score} of {max_score}",
                    "invalid": f"failed: more than {self.config.max_invalid} commands that do not work here, "
                               f"score {score} of {max_score}",
                    "step_limit": f"failed: {self.steps} commands without finishing, score {score} of {max_score}"}[ended]
        details = {"won": won, "lost": ended == "lost", "score": score, "max_score": max_score, "moves": state["moves"],
                   "invalid_actions": self.invalid, "actions": self.steps, "walkthrough_length": self.walkthrough,
                   "ended": ended}
        return Verdict(reward, won, feedback, details)

    def expert_actions(self) -> list[str]:
        """TextWorld's walkthrough from the current state (`policy_commands`)."""
        return [] if self.done else list(self._state["policy_commands"])

    def close(self) -> None:
        if self._game is not None:
            self._game.close()
            self._game = None
        super().close()

    def __getstate__(self) -> dict[str, Any]:  # the interpreter is a process: a copy starts its own at reset
        state = dict(self.__dict__)
        state.update(_game=None, _state=None, _textworld=None, task=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._textworld = load_textworld()
