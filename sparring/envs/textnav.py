"""TextNav: navigate a procedurally generated house by language goals, as R2R, REVERIE, SOON and ALFWorld do.

A house has floors of rooms on a grid (a random spanning tree plus loops, stairs between floors),
doors (closed, or locked with a key placed where it can be reached before the door), receptacles and
objects with attributes, among them distractors that share the target's kind or attributes. Goals:

- `route` (R2R): step-by-step directions ("Go north to the hallway, then east to the study. Stop in the study.");
- `goto_object` (REVERIE): an object described by its attributes ("Find the small red ceramic mug ...");
- `coarse_to_fine` (SOON): floor and region, then room, receptacle and object;
- `fetch` (ALFWorld): take an object and put it on or in a receptacle elsewhere.

Observations are TextWorld's (room description, exits, visible objects, inventory); `info` carries the
`admissible_commands`. The verdict reports success, SPL, navigation error, oracle success, nDTW and the
invalid-command rate (`details`). The task record lives in `textnav_task.py`, the command parser in
`textnav_commands.py`, and `World`, the simulation and the BFS expert in `textnav_world.py`.

    >>> import gymnasium, sparring
    >>> env = gymnasium.make("TextNav-v0", difficulty="easy", instruction="compact")
    >>> observation, info = env.reset(seed=0)
    >>> env.unwrapped.expert_actions()              # doctest: +SKIP
    ['e', 's', 'stop']
"""

from __future__ import annotations

import json
import math
import random
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from sparring.envs import textnav_lexicon as lex
from sparring.envs.base import TextEnv, Verdict, check_choice, is_int, item_rng
from sparring.envs.textnav_task import (
    DELTA,
    GOAL_TYPES,
    NAV_GOALS,
    SHORT,
    Door,
    Edge,
    Goal,
    Item,
    Receptacle,
    Room,
    TextNavTask,
)
from sparring.envs.textnav_world import World, distances

SPLITS = ("train", "test-seen", "test-unseen")
INSTRUCTIONS = ("full", "compact")
MAX_ATTEMPTS = 2000


# ---- knobs and presets ------------------------------------------------------------------------------

@dataclass(frozen=True)
class TextNavConfig:
    """The difficulty knobs. `n_rooms` is a count or an inclusive `(min, max)` range; paths count moves."""

    n_rooms: int | tuple[int, int] = 8  # rooms per house: a count or a (min, max) range
    n_floors: int = 2              # floors (linked by stairs)
    loops: int = 1  # extra edges beyond the spanning tree of each floor
    p_door: float = 0.3  # chance that a passage has a (closed) door
    n_locked: int = 1  # locked doors, each with its key somewhere reachable before it
    n_objects: int = 5  # objects besides keys and distractors (the first is the goal's target)
    n_distractors: int = 2  # objects sharing the target's kind or attributes
    max_receptacles: int = 2  # per room (at least one)
    p_closed: float = 0.3  # chance that a container starts closed
    goal_types: tuple[str, ...] = GOAL_TYPES  # goal kinds drawn: route, goto_object, coarse_to_fine, fetch
    min_path: int = 2  # the expert's moves from the start, inclusive band
    max_path: int = 6              # the upper end of the band of the expert's moves (min_path: the lower)
    step_limit_factor: float = 3.0  # truncate after ceil(factor * the expert's command count) commands
    max_invalid: int = 5  # the episode ends (failed) at the invalid command after this many

    def __post_init__(self) -> None:
        for name in ("n_rooms", "goal_types"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        low, high = self.room_range
        if not (is_int(low) and is_int(high) and 1 <= low <= high <= len(lex.ROOMS.seen)):
            raise ValueError(f"n_rooms must be an integer or a (min, max) pair in 1..{len(lex.ROOMS.seen)}, "
                             f"got {self.n_rooms!r}")
        limits = {"n_floors": (1, 5), "loops": (0, 50), "n_locked": (0, len(lex.KEY_METALS.seen)),
                  "n_objects": (0, 40), "n_distractors": (0, 20), "max_receptacles": (1, 4),
                  "min_path": (0, 100), "max_path": (0, 100), "max_invalid": (0, 10_000)}
        for name, (lo, hi) in limits.items():
            value = getattr(self, name)
            if not is_int(value) or not lo <= value <= hi:
                raise ValueError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")
        for name in ("p_door", "p_closed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
        factor = self.step_limit_factor
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor >= 1:
            raise ValueError(f"step_limit_factor must be a number >= 1 (the expert must fit), got {factor!r}")
        if not isinstance(self.goal_types, tuple) or not self.goal_types:
            raise ValueError(f"goal_types must be a non-empty list of {GOAL_TYPES}, got {self.goal_types!r}")
        for goal_type in self.goal_types:
            check_choice("TextNav goal type", goal_type, GOAL_TYPES)
        if self.min_path > self.max_path:
            raise ValueError(f"need min_path <= max_path, got {self.min_path} > {self.max_path}")
        if self.n_objects == 0 and (self.n_distractors or set(self.goal_types) - {"route"}):
            raise ValueError("goal types other than route, and distractors, need a target: set n_objects >= 1")

    @property
    def room_range(self) -> tuple[int, int]:
        return self.n_rooms if isinstance(self.n_rooms, tuple) and len(self.n_rooms) == 2 else (self.n_rooms, self.n_rooms)


PRESETS = {
    "easy": TextNavConfig(n_rooms=4, n_floors=1, loops=0, p_door=0.0, n_locked=0, n_objects=2, n_distractors=0,
                          max_receptacles=1, p_closed=0.0, min_path=1, max_path=3),
    "medium": TextNavConfig(),
    "hard": TextNavConfig(n_rooms=14, n_floors=3, loops=3, p_door=0.5, n_locked=2, n_objects=8, n_distractors=4,
                          max_receptacles=3, p_closed=0.5, min_path=4, max_path=12),
}


# ---- metrics ----------------------------------------------------------------------------------------

def spl(success: bool, shortest: int, taken: int) -> float:
    """Success weighted by path length (Anderson et al. 2018): S * l / max(p, l), l the shortest path, p the taken."""
    if not success:
        return 0.0
    return 1.0 if max(taken, shortest) == 0 else shortest / max(taken, shortest)


def dtw(reference: Sequence[int], query: Sequence[int], dist: Sequence[Sequence[int]]) -> float:
    """Dynamic time warping cost of `query` against `reference`, with `dist[a][b]` between rooms."""
    inf = float("inf")
    n, m = len(reference), len(query)
    table = [[inf] * (m + 1) for _ in range(n + 1)]
    table[0][0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost = dist[reference[i - 1]][query[j - 1]]
            table[i][j] = cost + min(table[i - 1][j], table[i][j - 1], table[i - 1][j - 1])
    return table[n][m]


def ndtw(reference: Sequence[int], query: Sequence[int], dist: Sequence[Sequence[int]], threshold: float = 1.0) -> float:
    """Normalised DTW (Ilharco et al. 2019): exp(-DTW(R, Q) / (|R| * d_th)); 1.0 for the reference path itself."""
    if not reference or not query:
        return 0.0
    return math.exp(-dtw(reference, query, dist) / (len(reference) * threshold))


# ---- the generator ----------------------------------------------------------------------------------

def _layout(rng: random.Random, n: int) -> tuple[list[tuple[int, int]], list[tuple[int, str, int]]]:
    """`n` rooms on a grid grown as a random spanning tree: positions, and edges (a, direction, b)."""
    cells, edges = [(0, 0)], []
    taken = {(0, 0)}
    while len(cells) < n:
        i = rng.randrange(len(cells))
        direction = rng.choice(("north", "south", "east", "west"))
        cell = (cells[i][0] + DELTA[direction][0], cells[i][1] + DELTA[direction][1])
        if cell not in taken:
            taken.add(cell)
            cells.append(cell)
            edges.append((i, direction, len(cells) - 1))
    return cells, edges


def _region(room: Room, rooms: Sequence[Room]) -> str:
    """Where a room lies on its floor: "north-east", "west", "centre"."""
    floor = [r for r in rooms if r.floor == room.floor]
    cx, cy = sum(r.x for r in floor) / len(floor), sum(r.y for r in floor) / len(floor)
    vertical = "north" if room.y - cy > 0.5 else "south" if room.y - cy < -0.5 else ""
    horizontal = "east" if room.x - cx > 0.5 else "west" if room.x - cx < -0.5 else ""
    return "-".join(p for p in (vertical, horizontal) if p) or "centre"


class _Draw:
    """One attempt at a house for a split: rooms, passages, doors, receptacles, objects, keys and a goal."""

    def __init__(self, config: TextNavConfig, split: str, rng: random.Random):
        self.config, self.rng, self.unseen = config, rng, split == "test-unseen"

    def words(self, entry: lex.Words) -> tuple[str, ...]:
        return entry.pick(self.unseen)

    def house(self) -> tuple[list[Room], list[Edge]]:
        cfg, rng = self.config, self.rng
        n = rng.randint(*cfg.room_range)
        floors = min(cfg.n_floors, n)
        names = rng.sample(self.words(lex.ROOMS), n)
        if self.unseen:  # at least two held-out rooms, so a route can end in one
            for slot, name in zip(rng.sample(range(n), min(2, n)), rng.sample(lex.ROOMS.held_out, 2)):
                if name not in names:
                    names[slot] = name
        rooms: list[Room] = []
        edges: list[tuple[int, str, int]] = []
        first: list[int] = []
        for f in range(floors):
            count = n // floors + (f < n % floors)
            cells, tree = _layout(rng, count)
            base = len(rooms)
            first.append(base)
            rooms += [Room(names[base + i], f, x, y) for i, (x, y) in enumerate(cells)]
            edges += [(base + a, d, base + b) for a, d, b in tree]
            at = {cell: base + i for i, cell in enumerate(cells)}
            linked = {(a, b) for a, _, b in edges} | {(b, a) for a, _, b in edges}
            extra = [(at[c], d, at[(c[0] + DELTA[d][0], c[1] + DELTA[d][1])]) for c in cells for d in ("north", "east")
                     if (c[0] + DELTA[d][0], c[1] + DELTA[d][1]) in at
                     and (at[c], at[(c[0] + DELTA[d][0], c[1] + DELTA[d][1])]) not in linked]
            edges += rng.sample(extra, min(cfg.loops, len(extra)))
        for f in range(floors - 1):  # one staircase between neighbouring floors
            below = rng.randrange(first[f], first[f + 1])
            above = rng.randrange(first[f + 1], first[f + 2] if f + 2 < floors else len(rooms))
            edges.append((below, "up", above))
        return rooms, [Edge(a, d, b) for a, d, b in edges]

    def receptacles(self, rooms: list[Room]) -> list[Receptacle]:
        cfg, rng, out = self.config, self.rng, []
        surfaces, containers = self.words(lex.SURFACES), self.words(lex.CONTAINERS)
        for i in range(len(rooms)):
            for name in rng.sample(surfaces + containers, rng.randint(1, cfg.max_receptacles)):
                kind = "in" if name in containers else "on"
                out.append(Receptacle(name, i, kind, kind == "in" and rng.random() < cfg.p_closed))
        return out

    def item(self, kind: str | None = None, like: Item | None = None) -> Item:
        """A random object (of `kind` if given), or a distractor `like` the target."""
        rng = self.rng
        if like is None:
            values: dict[str, Any] = {a: rng.choice(self.words(lex.ATTRIBUTE_WORDS[a])) for a in lex.ATTRIBUTES}
            return Item(kind or rng.choice(self.words(lex.KINDS)), **values)
        values = {a: getattr(like, a) for a in lex.ATTRIBUTES}
        if rng.random() < 0.6:  # the same kind, one or two attributes changed
            for a in rng.sample(lex.ATTRIBUTES, rng.randint(1, 2)):
                values[a] = rng.choice([w for w in self.words(lex.ATTRIBUTE_WORDS[a]) if w != values[a]])
            return Item(like.kind, **values)
        return Item(rng.choice([k for k in self.words(lex.KINDS) if k != like.kind]), **values)  # same attributes

    def objects(self, receptacles: list[Receptacle]) -> list[Item]:
        cfg, rng = self.config, self.rng
        placed: list[Item] = []
        names: set[str] = set()

        def add(make: Any, away_from: int | None = None) -> None:
            for _ in range(100):
                item = make()
                if item.name not in names:
                    break
            else:
                return
            spots = [j for j, r in enumerate(receptacles) if away_from is None or r.room != away_from] or \
                list(range(len(receptacles)))
            names.add(item.name)
            placed.append(replace(item, receptacle=rng.choice(spots)))

        if cfg.n_objects:
            kinds = lex.KINDS.held_out if self.unseen else lex.KINDS.seen
            add(lambda: self.item(rng.choice(kinds)))  # the target: a held-out kind in test-unseen
            target = placed[0]
            target_room = receptacles[cast(int, target.receptacle)].room  # `add` put it on one
            for _ in range(cfg.n_distractors):
                add(lambda: self.item(like=target), target_room if rng.random() < 0.7 else None)
            for _ in range(cfg.n_objects - 1):
                add(self.item)
        return placed

    def doors(self, rooms: list[Room], edges: list[Edge], receptacles: list[Receptacle], objects: list[Item],
              start: int) -> tuple[list[Edge], list[Door], list[Item]]:
        """Closed doors, locked doors, and each lock's key placed where it can be reached before its door."""
        cfg, rng = self.config, self.rng
        floor_edges = [i for i, e in enumerate(edges) if e.direction not in ("up", "down")]
        locked = set(rng.sample(floor_edges, min(cfg.n_locked, len(floor_edges))))
        with_door = sorted(locked | {i for i in floor_edges if rng.random() < cfg.p_door})
        woods = [f"{w} door" for w in self.words(lex.DOOR_WOODS)]
        metals = rng.sample(self.words(lex.KEY_METALS), len(locked))
        doors: list[Door] = []
        edges = list(edges)
        for i in with_door:
            e = edges[i]
            used = {doors[x.door].name for x in edges if x.door is not None and {x.a, x.b} & {e.a, e.b}}
            doors.append(Door(rng.choice([w for w in woods if w not in used]), "locked" if i in locked else "closed"))
            edges[i] = replace(e, door=len(doors) - 1)
        objects = list(objects)
        open_doors: set[int] = set()
        remaining = [cast(int, edges[i].door) for i in sorted(locked)]  # each locked edge got a door above
        while remaining:
            reach = _reachable(start, edges, doors, open_doors)
            frontier = [d for d in remaining if any(e.door == d and {e.a, e.b} & reach for e in edges)]
            door = rng.choice(frontier)
            room = rng.choice(sorted(reach))
            key = Item("key", material=metals.pop())
            spots = [j for j, r in enumerate(receptacles) if r.room == room]
            objects.append(replace(key, receptacle=rng.choice(spots)) if rng.random() < 0.7 else replace(key, room=room))
            doors[door] = replace(doors[door], key=len(objects) - 1)
            open_doors.add(door)
            remaining.remove(door)
        return edges, doors, objects

    def goal(self, task: TextNavTask, goal_type: str) -> TextNavTask | None:
        """The task with a goal of `goal_type` whose expert path has a move count in the band, or None."""
        cfg, rng = self.config, self.rng
        rooms, recs = task.rooms, task.receptacles
        if goal_type == "route":
            held = set(lex.ROOMS.held_out)
            candidates = [(i, None, None) for i, r in enumerate(rooms)
                          if i != task.start and (r.name in held) == self.unseen]
        else:
            target = 0
            place = recs[cast(int, task.objects[target].receptacle)].room  # the target starts on a receptacle
            if goal_type != "fetch":
                candidates = [(place, target, None)]
            else:
                candidates = [(r.room, target, j) for j, r in enumerate(recs) if r.room != place]
        rng.shuffle(candidates)
        for room, obj, rec in candidates[:6]:
            if room == task.start:
                continue
            draft = replace(task, goal=Goal(goal_type, "", "", room, obj, rec))
            world = World(draft)
            commands = world.expert_commands()
            path = world.expert_rooms()
            if cfg.min_path <= len(path) - 1 <= cfg.max_path:
                return replace(draft, goal=self.words_for(draft, commands, path))
        return None

    def words_for(self, task: TextNavTask, commands: list[str], path: list[int]) -> Goal:
        """The goal in words: a template of its type (held-out ones for test-unseen), full and compact."""
        rng, g = self.rng, task.goal
        group = "held_out" if self.unseen else "seen"
        templates = lex.GOAL_TEMPLATES[g.type][group]
        index = rng.randrange(len(templates))
        template, rooms, recs = templates[index], task.rooms, task.receptacles
        world = World(task)
        if g.type == "route":
            phrases, compact = [], []
            sim = world.clone()
            for command in commands:
                before = sim.room
                verb, _ = sim.act(command)
                if verb == "go":
                    direction = command.split()[1]
                    _, door = sim.exits[before][direction]
                    way = f"{direction} the stairs" if direction in ("up", "down") else direction
                    via = f" through the {task.doors[door].name}" if door is not None else ""
                    phrases.append(template.step.format(dir=way, via=via, room=rooms[sim.room].name))
                    compact.append(f"{SHORT[direction]} {rooms[sim.room].name}")
                elif verb == "take":
                    key = sim.inventory()[-1]
                    phrases.append(template.take.format(key=sim.name(key)))
                    compact.append(f"take {world.short_names[key]}")
            text = template.joiner.join(phrases)
            text = text[0].upper() + text[1:] + template.closer.format(room=rooms[g.room].name)
            return replace(g, text=text, compact=", ".join(compact), path=tuple(path), template=f"route/{group}/{index}")
        target = task.objects[cast(int, g.object)]  # not a route: the goal has an object
        place = recs[cast(int, target.receptacle)]  # a goal's object starts on a receptacle
        fields = {"obj": target.name, "prep": place.kind, "rec": place.name, "room": rooms[place.room].name}
        short = world.short_names[cast(int, g.object)]
        if g.type == "goto_object":
            compact = f"find {short}"
        elif g.type == "coarse_to_fine":
            room = rooms[place.room]
            neighbours = sorted({rooms[t].name for t, _ in world.exits[place.room].values()})
            region = _region(room, rooms)
            fields.update(floor=f"floor {room.floor + 1}", region=region, neighbour=rng.choice(neighbours))
            compact = f"f{room.floor + 1} {region}: {room.name} by {fields['neighbour']}, {place.name}: {short}"
        else:
            dest = recs[cast(int, g.receptacle)]  # fetch
            fields.update(prep2=dest.kind, rec2=dest.name, room2=rooms[dest.room].name)
            compact = f"put {short} {dest.kind} {dest.name} in {rooms[dest.room].name}"
        return replace(g, text=template.format(**fields), compact=compact, path=tuple(path),
                       template=f"{g.type}/{group}/{index}")

    def task(self) -> TextNavTask | None:
        cfg, rng = self.config, self.rng
        rooms, edges = self.house()
        receptacles = self.receptacles(rooms)
        objects = self.objects(receptacles)
        start = rng.randrange(len(rooms))
        edges, doors, objects = self.doors(rooms, edges, receptacles, objects, start)
        goal_type = rng.choice(cfg.goal_types)
        draft = TextNavTask(tuple(rooms), tuple(edges), tuple(doors), tuple(receptacles), tuple(objects), start,
                            Goal(goal_type, "", "", start))
        return self.goal(draft, goal_type)


def _reachable(start: int, edges: list[Edge], doors: list[Door], unlocked: set[int]) -> set[int]:
    """The rooms reachable from `start` without passing a locked door (other than those in `unlocked`)."""
    reach, todo = {start}, [start]
    for room in todo:
        for e in edges:
            if e.door is not None and doors[e.door].state == "locked" and e.door not in unlocked:
                continue
            for a, b in ((e.a, e.b), (e.b, e.a)):
                if a == room and b not in reach:
                    reach.add(b)
                    todo.append(b)
    return reach


def split_of(task: TextNavTask) -> str:
    """`test-unseen` for held-out templates; otherwise a fixed hash of the whole task puts one in ten in
    `test-seen`, so `train` and the test splits never share a task."""
    if "/held_out/" in task.goal.template:
        return "test-unseen"
    key = json.dumps(task.to_dict(), sort_keys=True).encode()
    return "test-seen" if zlib.crc32(key) % 10 == 0 else "train"


def sample_task(config: TextNavConfig, split: str, rng: random.Random) -> TextNavTask:
    """A task of `split` drawn with `rng`: houses are redrawn until the goal's expert path fits the band."""
    for _ in range(MAX_ATTEMPTS):
        task = _Draw(config, split, rng).task()
        if task is not None and split_of(task) == split:
            return task
    raise ValueError(f"could not generate a {split!r} TextNav task for {config} in {MAX_ATTEMPTS} attempts: the "
                     "path band min_path..max_path is out of reach of these houses; widen it or add rooms")


def generate_task(config: TextNavConfig, split: str = "train", seed: int = 0, index: int = 0) -> TextNavTask:
    """Item `index` of `split` for `seed`: a pure function of its arguments, always solvable."""
    return sample_task(config, split, item_rng("TextNav", split, SPLITS, seed, index))


# ---- the environment --------------------------------------------------------------------------------

class TextNavEnv(TextEnv):
    """Navigate a generated house by a language goal; TextWorld-style text, success and SPL.

    ## Action Space
    Text: one command per step, normalised (case, spacing, articles; synonyms: "n" = "north" = "go north").
    `go <direction>`, `open|close <door or container>` (a door also by direction: `open n`),
    `unlock <door> [with <key>]`, `take <object> [from <receptacle>]`, `put <object> on|in <receptacle>`,
    `drop <object>`, `examine <thing>`, `look`, `inventory`, `stop`. Objects are named by any of their
    words that include the noun ("red mug"). `info["admissible_commands"]` lists what works.
    ## Observation Space
    Text. `full`: the goal, then TextWorld's room description (name, floor, receptacles and contents,
    exits with doors, inventory) after moves and `look`, the outcome of other commands.
    `compact`: the goal and one line per turn, `study: n=hall e=(closed) | desk: red mug`.
    ## Reward
    1.0 on success, else 0. Route/goto_object/coarse_to_fine succeed on `stop` in the goal room; fetch
    when the target is put on/in the named receptacle.
    ## Episode End
    Terminates on `stop`, on delivery (fetch), or at the invalid command after `max_invalid` of them;
    truncated after ceil(`step_limit_factor` x the expert's command count) commands. The verdict's details:
    success, spl, nav_error, oracle_success, ndtw, sdtw, invalid_rate, moves, expert_moves, path, ...
    ## Arguments
    - `split`: "train", "test-seen" or "test-unseen" (held-out words and goal templates)
    - `difficulty`: "easy", "medium" or "hard"; the knobs of `TextNavConfig` below refine it
    - `instruction`: "full" or "compact" (for small models)
    - `dtw_threshold`: nDTW's d_th in rooms (default 1)
    ## Version History
    v0: initial version.
    """

    family = "textnav"
    task_type = TextNavTask
    config_class = TextNavConfig
    presets = PRESETS
    splits = SPLITS
    proposer_writes_instructions = True  # SRDF: the proposer describes routes the generator sampled

    @classmethod
    def answer_key(cls, task: dict[str, Any], actions: Sequence[str], verdict: Mapping[str, Any]) -> str | None:
        """Where the episode ended (the room it stopped in): the outcome attempts can agree on."""
        room = verdict.get("details", {}).get("final_room")
        return None if room is None else str(room)

    def __init__(self, render_mode: str | None = None, *, split: str = "train", difficulty: str | None = None,
                 instruction: str = "full", dtw_threshold: float = 1.0, **knobs: Any):
        super().__init__(render_mode, split=split, difficulty=difficulty, env_args=("instruction", "dtw_threshold"),
                         **knobs)
        self.instruction = check_choice("TextNav instruction", instruction, INSTRUCTIONS)
        if isinstance(dtw_threshold, bool) or not isinstance(dtw_threshold, (int, float)) or not dtw_threshold > 0:
            raise ValueError(f"dtw_threshold must be a number > 0 (rooms), got {dtw_threshold!r}")
        self.dtw_threshold = float(dtw_threshold)
        self.world: World | None = None

    def generate_task(self, index: int, *, seed: int = 0, config: TextNavConfig | None = None) -> TextNavTask:
        return generate_task(config or self.config, self.split, seed, index)

    def sample_task(self, rng: random.Random, config: TextNavConfig) -> TextNavTask:
        return sample_task(config, self.split, rng)

    @property
    def compact(self) -> bool:
        return self.instruction == "compact"

    def _info(self, valid: bool = True) -> dict[str, Any]:
        world = cast(World, self.world)  # made by _begin: this and the methods below run after reset
        return {"admissible_commands": [] if self.done else world.admissible(),
                "objective": self.task.goal.text, "location": world.task.rooms[world.room].name,
                "moves": self.moves, "invalid_actions": self.invalid, "last_action_valid": valid}

    def _begin(self) -> tuple[str, dict[str, Any]]:
        task = self.task
        self.world = World(task)
        self.dist = distances(task)
        expert = self.world.expert_commands()  # raises UnsolvableTaskError on a task that has no solution
        self.expert_path = self.world.expert_rooms()
        self.reference = list(task.goal.path) or self.expert_path
        self.expert_commands = len(expert)
        self.step_limit = math.ceil(self.config.step_limit_factor * len(expert))
        self.steps = self.moves = self.invalid = 0
        self.path = [task.start]
        if self.compact:
            observation = f"{task.goal.compact}\n{self.world.describe_compact()}"
        else:
            observation = f"Your task: {task.goal.text}\n\n{self.world.describe()}"
        return observation, self._info()

    def _act(self, action: str) -> tuple[str, float, bool, bool, Verdict | None, dict[str, Any]]:
        world, goal, cfg = cast(World, self.world), self.task.goal, self.config
        verb, message = world.act(action)
        self.steps += 1
        if verb is None:
            self.invalid += 1
            message = message[0].upper() + message[1:] + ("" if message[-1] in ".?!" else ".")
        elif verb == "go":
            self.moves += 1
            self.path.append(world.room)
        delivered = goal.type == "fetch" and world.where[goal.object] == ("rec", goal.receptacle)
        ended = "stop" if verb == "stop" else "delivered" if delivered else \
            "invalid" if self.invalid > cfg.max_invalid else "step_limit" if self.steps >= self.step_limit else None
        if ended is None:
            if self.compact:
                observation = "invalid" if verb is None else message if verb == "examine" else world.describe_compact()
            else:
                observation = "\n\n".join(filter(None, [message, world.describe()])) if verb in ("go", "look") \
                    else message
            return observation, 0.0, False, False, None, self._info(verb is not None)
        self.done = True
        verdict = self._verdict(ended, message)
        observation = verdict.feedback if self.compact else f"{message}\n{verdict.feedback}"
        return observation, verdict.reward, ended != "step_limit", ended == "step_limit", verdict, \
            self._info(verb is not None)

    def _verdict(self, ended: str, message: str) -> Verdict:
        world, goal, task = cast(World, self.world), self.task.goal, self.task
        rooms = task.rooms
        success = ended == "delivered" or (ended == "stop" and goal.type in NAV_GOALS and world.room == goal.room)
        shortest = len(self.expert_path) - 1
        nav_error = self.dist[world.room][goal.room]
        score = ndtw(self.reference, self.path, self.dist, self.dtw_threshold)
        details = {
            "goal_type": goal.type, "success": success, "spl": spl(success, shortest, self.moves),
            "nav_error": nav_error, "oracle_success": goal.room in self.path, "ndtw": score,
            "sdtw": score if success else 0.0, "invalid_rate": self.invalid / max(1, self.steps),
            "invalid_actions": self.invalid, "actions": self.steps, "moves": self.moves, "expert_moves": shortest,
            "expert_actions": self.expert_commands, "step_limit": self.step_limit, "ended": ended,
            "path": [rooms[r].name for r in self.path], "reference_path": [rooms[r].name for r in self.reference],
            "final_room": rooms[world.room].name, "goal_room": rooms[goal.room].name,
        }
        where = f"the {rooms[goal.room].name}"
        if success and goal.type == "fetch":
            r = task.receptacles[goal.receptacle]
            feedback = (f"success: the {world.name(goal.object)} is {r.kind} the {r.name} in {where}, after "
                        f"{self.moves} moves (the shortest way takes {shortest})")
        elif success:
            feedback = f"success: you stopped in {where} after {self.moves} moves (the shortest way takes {shortest})"
        elif ended == "stop" and goal.type == "fetch":
            feedback = f"failed: you stopped before putting the {world.name(goal.object)} in place, in {where}"
        elif ended == "stop":
            feedback = (f"failed: you stopped in the {rooms[world.room].name}, {nav_error} moves from the goal, "
                        f"{where}")
        elif ended == "invalid":
            feedback = f"failed: too many invalid commands ({self.invalid}; at most {self.config.max_invalid}): {message}"
        else:
            feedback = (f"failed: out of steps ({self.steps}; the limit is {self.config.step_limit_factor:g} x the "
                        f"expert's {self.expert_commands} commands); the goal is {where}")
        return Verdict(1.0 if success else 0.0, success, feedback, details)

    def expert_actions(self) -> list[str]:
        return [] if self.done else cast(World, self.world).expert_commands(compact=self.compact)

