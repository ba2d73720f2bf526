"""A TextNav house: the task record, the world it simulates, the command parser and the expert planner.

A task (`TextNavTask`) is a whole house written out: rooms on a grid per floor, exits (compass
directions, and up/down stairs between floors), doors that are open, closed or locked (a locked door
names the key object that opens it), receptacles that things lie on or in (containers open and
close), objects with attributes, the start room and the goal. It is JSON-serialisable, so a proposer
or a person can write one by hand; `TextNavTask.from_dict` checks it.

`World` plays a task: it keeps the mutable state (where the player is, door and container states,
where every object is), parses a command (case, spacing, articles and synonyms normalised: "N",
"go north", "Walk to the north." are one command), carries it out or says why it cannot, lists the
admissible commands, and writes observations in two modes: `full` (TextWorld's style) and `compact`
(one short line per turn, for a small character-level model).

`World.plan` is the expert: Dijkstra over (room, keys held, target held), minimising moves first
and commands second, from whatever state the world is in; `World.expert_commands` turns the plan
into commands and replays them on a copy to certify them.
"""

from __future__ import annotations

import heapq
import re
from collections import deque
from dataclasses import MISSING, dataclass, field
from typing import Any

from sparring.envs.base import check_task_keys
from sparring.errors import UnsolvableTaskError

DIRECTIONS = ("north", "south", "east", "west", "up", "down")
OPPOSITE = {"north": "south", "south": "north", "east": "west", "west": "east", "up": "down", "down": "up"}
SHORT = {"north": "n", "south": "s", "east": "e", "west": "w", "up": "u", "down": "d"}
DELTA = {"north": (0, 1), "south": (0, -1), "east": (1, 0), "west": (-1, 0)}
DOOR_STATES = ("open", "closed", "locked")
RECEPTACLE_KINDS = ("on", "in")  # "on" a surface (always visible), "in" a container (visible when open)
GOAL_TYPES = ("route", "goto_object", "coarse_to_fine", "fetch")
NAV_GOALS = ("route", "goto_object", "coarse_to_fine")  # these end with `stop` in the goal room
MAX_ROOMS, MAX_THINGS, MAX_NAME, MAX_TEXT, MAX_COMMAND = 200, 1000, 60, 4000, 400
MAX_LOCKED = 8  # the expert searches rooms x subsets of keys: 2**8 subsets at most


# ---- the task record --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Room:
    name: str
    floor: int
    x: int
    y: int


@dataclass(frozen=True)
class Edge:
    """Going `direction` from room `a` leads to room `b` (and the opposite way back), through `door` if any."""

    a: int
    direction: str
    b: int
    door: int | None = None


@dataclass(frozen=True)
class Door:
    name: str  # "oak door"
    state: str  # open, closed or locked
    key: int | None = None  # the object that unlocks it (locked doors)


@dataclass(frozen=True)
class Receptacle:
    name: str  # "desk"
    room: int
    kind: str  # on or in
    closed: bool = False  # containers only


@dataclass(frozen=True)
class Item:
    """An object: its kind (head noun), its attributes, and where it starts: on a room's floor or a receptacle."""

    kind: str
    size: str | None = None
    colour: str | None = None
    material: str | None = None
    room: int | None = None
    receptacle: int | None = None

    @property
    def name(self) -> str:
        return " ".join(w for w in (self.size, self.colour, self.material, self.kind) if w)


@dataclass(frozen=True)
class Goal:
    type: str  # route, goto_object, coarse_to_fine, fetch
    text: str  # the instruction in words (full mode)
    compact: str  # the same, short (compact mode)
    room: int  # where the episode should end: the route's end, the target's room, the delivery room
    object: int | None = None  # the target object (goto_object, coarse_to_fine, fetch)
    receptacle: int | None = None  # fetch: where the target must be put
    path: tuple[int, ...] = ()  # the reference room sequence (for nDTW); empty: the expert's path at the start
    template: str = ""  # which template wrote `text` ("route/seen/0"), for split checks


_FIELDS = {"rooms": Room, "edges": Edge, "doors": Door, "receptacles": Receptacle, "objects": Item}


@dataclass(frozen=True)
class TextNavTask:
    rooms: tuple[Room, ...]
    edges: tuple[Edge, ...]
    doors: tuple[Door, ...]
    receptacles: tuple[Receptacle, ...]
    objects: tuple[Item, ...]
    start: int
    goal: Goal

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: [_record(x) for x in getattr(self, name)] for name in _FIELDS}
        goal = _record(self.goal)
        goal["path"] = list(self.goal.path)
        return {**out, "start": self.start, "goal": goal}

    @classmethod
    def from_dict(cls, data: Any) -> TextNavTask:
        """Check a task dict (from the generator, a proposer or a person) and build the task."""
        keys = set(_FIELDS) | {"start", "goal"}
        check_task_keys("TextNav", data, keys)
        parts: dict[str, Any] = {}
        for name, record in _FIELDS.items():
            rows = data[name]
            if not isinstance(rows, list) or len(rows) > (MAX_ROOMS if name == "rooms" else MAX_THINGS):
                raise ValueError(f"task {name!r} must be a list of at most {MAX_THINGS} records, got {_short(rows)}")
            parts[name] = tuple(_build(record, row, f"{name}[{i}]") for i, row in enumerate(rows))
        goal = data["goal"]
        if isinstance(goal, dict) and "path" in goal:
            goal = {**goal, "path": tuple(goal["path"]) if isinstance(goal["path"], list) else goal["path"]}
        task = cls(**parts, start=data["start"], goal=_build(Goal, goal, "goal"))
        task.check()
        return task

    def check(self) -> None:
        """Every reference in range, names unique where commands need them, the house connected."""
        rooms, n = self.rooms, len(self.rooms)
        if not rooms:
            raise ValueError("a TextNav task needs at least one room")
        if len({r.name for r in rooms}) != n:
            raise ValueError(f"room names must be unique, got {[r.name for r in rooms]}")
        _index("start", self.start, n)
        seen_exits: set[tuple[int, str]] = set()
        door_edges: dict[int, int] = {}
        for i, e in enumerate(self.edges):
            _index(f"edges[{i}].a", e.a, n), _index(f"edges[{i}].b", e.b, n)
            if e.direction not in DIRECTIONS or e.a == e.b:
                raise ValueError(f"edges[{i}] must join two different rooms in one of {DIRECTIONS}, got {e}")
            for exit_ in ((e.a, e.direction), (e.b, OPPOSITE[e.direction])):
                if exit_ in seen_exits:
                    raise ValueError(f"edges[{i}]: room {rooms[exit_[0]].name!r} has two exits {exit_[1]}")
                seen_exits.add(exit_)
            if e.door is not None:
                _index(f"edges[{i}].door", e.door, len(self.doors))
                if e.door in door_edges:
                    raise ValueError(f"door {e.door} is on two edges ({door_edges[e.door]} and {i})")
                door_edges[e.door] = i
        for i, d in enumerate(self.doors):
            if i not in door_edges:
                raise ValueError(f"doors[{i}] ({d.name!r}) is on no edge")
            if d.state not in DOOR_STATES:
                raise ValueError(f"doors[{i}].state must be one of {DOOR_STATES}, got {d.state!r}")
            if d.state == "locked" and d.key is None:
                raise ValueError(f"doors[{i}] is locked but names no key object")
            if d.key is not None:
                _index(f"doors[{i}].key", d.key, len(self.objects))
            if not d.name.endswith("door"):
                raise ValueError(f"doors[{i}].name must end with 'door', got {d.name!r}")
        if sum(d.state == "locked" for d in self.doors) > MAX_LOCKED:
            raise ValueError(f"a TextNav task has at most {MAX_LOCKED} locked doors")
        for room in range(n):  # a door's name must tell it apart from the other doors of both its rooms
            names = [self.doors[e.door].name for e in self.edges if e.door is not None and room in (e.a, e.b)]
            if len(set(names)) != len(names):
                raise ValueError(f"room {rooms[room].name!r} has two doors with the same name: {names}")
        for i, r in enumerate(self.receptacles):
            _index(f"receptacles[{i}].room", r.room, n)
            if r.kind not in RECEPTACLE_KINDS or (r.closed and r.kind != "in"):
                raise ValueError(f"receptacles[{i}].kind must be 'on' or 'in' (only 'in' can be closed), got {r}")
        for room in range(n):
            names = [r.name for r in self.receptacles if r.room == room]
            if len(set(names)) != len(names):
                raise ValueError(f"room {rooms[room].name!r} has two receptacles with the same name: {names}")
        for i, item in enumerate(self.objects):
            if (item.room is None) == (item.receptacle is None):
                raise ValueError(f"objects[{i}] must give exactly one of 'room' and 'receptacle'")
            if item.room is not None:
                _index(f"objects[{i}].room", item.room, n)
            else:
                _index(f"objects[{i}].receptacle", item.receptacle, len(self.receptacles))
        names = [o.name for o in self.objects]
        if len(set(names)) != len(names):
            raise ValueError(f"object names must be unique in a house, got {names}")
        g = self.goal
        if g.type not in GOAL_TYPES:
            raise ValueError(f"goal.type must be one of {GOAL_TYPES}, got {g.type!r}")
        _index("goal.room", g.room, n)
        if g.type != "route":
            _index("goal.object", g.object, len(self.objects))
        if g.type != "route" and any(d.key == g.object for d in self.doors):
            raise ValueError("goal.object must not be a key")
        if g.type in ("goto_object", "coarse_to_fine"):
            item = self.objects[g.object]
            if g.room != (item.room if item.room is not None else self.receptacles[item.receptacle].room):
                raise ValueError(f"goal.room must be the room the target starts in for a {g.type} goal")
        if g.type == "fetch":
            _index("goal.receptacle", g.receptacle, len(self.receptacles))
            if self.objects[g.object].receptacle == g.receptacle:
                raise ValueError("goal.object already is in goal.receptacle: there is nothing to fetch")
            if self.receptacles[g.receptacle].room != g.room:
                raise ValueError("goal.room must be the room of goal.receptacle for a fetch goal")
        if g.path:
            for i, room in enumerate(g.path):
                _index(f"goal.path[{i}]", room, n)
            if g.path[0] != self.start or g.path[-1] != g.room:
                raise ValueError("goal.path must start at the start room and end in goal.room")
            linked = {(e.a, e.b) for e in self.edges} | {(e.b, e.a) for e in self.edges}
            if any((a, b) not in linked for a, b in zip(g.path, g.path[1:])):
                raise ValueError("goal.path must step between adjacent rooms")
        reached, todo = {self.start}, [self.start]
        for room in todo:
            for e in self.edges:
                for a, b in ((e.a, e.b), (e.b, e.a)):
                    if a == room and b not in reached:
                        reached.add(b)
                        todo.append(b)
        if len(reached) != n:
            raise ValueError(f"every room must be reachable: {sorted(rooms[i].name for i in set(range(n)) - reached)} "
                             "are not joined to the start")


def _record(x: Any) -> dict[str, Any]:
    """A record as a dict, optional fields that are None left out (so every value of a key has one type: Gymnasium's
    vector envs stack `info["task"]` field by field)."""
    return {f: getattr(x, f) for f in x.__dataclass_fields__ if getattr(x, f) is not None}


def _short(x: Any) -> str:
    text = repr(x)
    return text if len(text) < 80 else text[:77] + "..."


def _index(name: str, value: Any, n: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < n:
        raise ValueError(f"{name} must be an index in 0..{n - 1}, got {_short(value)}")


_NAME = re.compile(r"[a-z0-9-]+( [a-z0-9-]+)*")  # what `normalize` leaves of a name: it can be referred to


def _build(record: type, row: Any, where: str) -> Any:
    """A record from a dict, with every field checked for type (str fields: short, printable)."""
    fields = record.__dataclass_fields__
    required = {f for f, spec in fields.items() if spec.default is MISSING and spec.default_factory is MISSING}
    if not isinstance(row, dict) or not required <= set(row) <= set(fields):
        raise ValueError(f"{where} must be a dict with the keys {sorted(required)} (optional: "
                         f"{sorted(set(fields) - required)}), got {_short(row)}")
    for key, value in row.items():
        kind = fields[key].type
        if key in ("text", "compact", "template", "type"):
            ok = isinstance(value, str) and len(value) <= MAX_TEXT
        elif key == "path":
            ok = isinstance(value, tuple) and len(value) <= MAX_THINGS
        elif kind in ("str", "str | None"):
            ok = (value is None and "None" in kind) or (isinstance(value, str) and len(value) <= MAX_NAME
                                                         and _NAME.fullmatch(value) is not None)
        elif kind == "bool":
            ok = isinstance(value, bool)
        else:  # int, int | None
            ok = (value is None and "None" in kind) or (isinstance(value, int) and not isinstance(value, bool))
        if not ok:
            raise ValueError(f"{where}.{key} must be {kind.replace('str', 'a lower-case name')}, got {_short(value)}")
    return record(**row)


# ---- commands -------------------------------------------------------------------------------------

DIRECTION_WORDS = {**{d: d for d in DIRECTIONS}, **{s: d for d, s in SHORT.items()},
                   "upstairs": "up", "downstairs": "down"}
ARTICLES = {"the", "a", "an", "some", "your", "my"}
GO_VERBS = {"go", "walk", "move", "head", "run", "climb", "travel", "proceed", "g"}
GO_FILLERS = {"to", "towards", "toward", "stairs", "staircase", "the", "through", "door", "exit", "way"}
TAKE_VERBS = {"take", "get", "grab", "pick", "collect", "fetch"}
PUT_VERBS = {"put", "place", "insert", "set", "leave", "drop", "deliver"}
PLACE_PREPS = {"in", "into", "inside", "on", "onto", "upon"}
EXAMINE_VERBS = {"examine", "x", "inspect", "check", "read", "describe"}
STOP_WORDS = {"stop", "done", "finish", "halt", "end"}


@dataclass(frozen=True)
class Command:
    verb: str  # go, look, inventory, stop, take, put, drop, open, close, unlock, examine
    args: tuple[str, ...] = ()  # raw word groups: an object reference, a receptacle reference, ...


def normalize(text: str) -> list[str]:
    """The words of a command: lower case, punctuation and articles dropped ("Take the Red Mug!" -> take red mug)."""
    words = re.sub(r"[^a-z0-9\s-]", " ", text.lower()).split()
    return [w for w in words if w not in ARTICLES]


def parse(text: str) -> Command | str:
    """A command, or why the text is not one."""
    if len(text) > MAX_COMMAND:
        return f"that command is too long ({len(text)} characters)"
    words = normalize(text)
    if not words:
        return "say what to do, for example: go north, take red mug, look, stop"
    verb, rest = words[0], words[1:]
    if len(words) == 1 and verb in DIRECTION_WORDS:
        return Command("go", (DIRECTION_WORDS[verb],))
    if verb in GO_VERBS:
        dirs = [w for w in rest if w not in GO_FILLERS]
        if len(dirs) == 1 and dirs[0] in DIRECTION_WORDS:
            return Command("go", (DIRECTION_WORDS[dirs[0]],))
        return "go where? Give a direction: north, south, east, west, up or down"
    if verb in ("look", "l"):
        if not rest or rest == ["around"]:
            return Command("look")
        if rest[0] in ("at", "in", "inside", "into", "on"):
            return Command("examine", (" ".join(rest[1:]),)) if rest[1:] else "look at what?"
        return "look at what? Say look, or look at <thing>"
    if words in (["inventory"], ["i"], ["inv"], ["check", "inventory"], ["show", "inventory"]):
        return Command("inventory")
    if verb in STOP_WORDS and (not rest or rest in (["here"], ["now"], ["there"])):
        return Command("stop")
    if verb in TAKE_VERBS:
        if verb == "pick":
            if "up" not in rest:
                return "pick up what? Say pick up <thing> or take <thing>"
            rest = [w for w in rest if w != "up"]
        for sep in ("from", "off", "out"):
            if sep in rest:
                i = rest.index(sep)
                source = [w for w in rest[i + 1:] if w != "of"]
                return Command("take", (" ".join(rest[:i]), " ".join(source))) if rest[:i] and source else "take what from where?"
        return Command("take", (" ".join(rest),)) if rest else "take what?"
    if verb in PUT_VERBS:
        if rest and rest[-1] == "down" or rest[:1] == ["down"]:
            rest = [w for w in rest if w != "down"]
            return Command("drop", (" ".join(rest),)) if rest else "put down what?"
        preps = [i for i, w in enumerate(rest) if w in PLACE_PREPS]
        if preps and 0 < preps[0] < len(rest) - 1:
            i = preps[0]
            target = [w for w in rest[i + 1:] if w not in ("to", "top", "of")]
            return Command("put", (" ".join(rest[:i]), " ".join(target))) if target else "put it where?"
        if verb == "drop" and rest:
            return Command("drop", (" ".join(rest),))
        return f"{verb} what where? Say put <thing> on <receptacle>, or drop <thing>"
    if verb in ("open", "close", "shut"):
        return Command("close" if verb == "shut" else verb, (" ".join(rest),)) if rest else f"{verb} what?"
    if verb == "unlock":
        if "with" in rest:
            i = rest.index("with")
            return Command("unlock", (" ".join(rest[:i]), " ".join(rest[i + 1:]))) if rest[:i] and rest[i + 1:] \
                else "unlock what with what?"
        return Command("unlock", (" ".join(rest),)) if rest else "unlock what?"
    if verb in EXAMINE_VERBS:
        return Command("examine", (" ".join(rest),)) if rest else "examine what?"
    shown = verb if len(verb) <= 20 else verb[:17] + "..."
    return (f"I don't know the verb {shown!r}; try go <direction>, open/close/unlock <door>, take <thing>, "
            "put <thing> on <receptacle>, drop, examine, look, inventory, stop")


def _matches(reference: str, name: str) -> bool:
    """`reference` names `name` when its words are among the name's and include the head noun ("red mug")."""
    ref, words = set(reference.split()), name.split()
    return bool(ref) and ref <= set(words) and words[-1] in ref


def _resolve(reference: str, candidates: list[tuple[int, str]], what: str) -> int | str:
    """The one candidate `reference` names (an exact name wins over partial ones), or why there is none."""
    hits = [(i, name) for i, name in candidates if _matches(reference, name)]
    exact = [i for i, name in hits if name == reference]
    if len(exact) == 1:
        return exact[0]
    if len(hits) == 1:
        return hits[0][0]
    shown = reference if len(reference) <= 40 else reference[:37] + "..."
    if not hits:
        return f"you see no {shown!r} {what}"
    return f"which one do you mean: {' or '.join(sorted('the ' + name for _, name in hits))}?"


# ---- the world ------------------------------------------------------------------------------------

@dataclass
class Step:
    """One step of the expert's plan: move through an edge, take an object, put the target, or stop."""

    kind: str  # go, take, put, stop
    direction: str = ""
    thing: int = -1


@dataclass
class World:
    task: TextNavTask
    room: int = -1
    doors: list[str] = field(default_factory=list)  # each door's state
    closed: list[bool] = field(default_factory=list)  # each receptacle's
    where: list[tuple[str, int]] = field(default_factory=list)  # each object: ("room", r), ("rec", j) or ("inv", 0)

    def __post_init__(self) -> None:
        t = self.task
        if self.room < 0:
            self.room = t.start
            self.doors = [d.state for d in t.doors]
            self.closed = [r.closed for r in t.receptacles]
            self.where = [("room", o.room) if o.room is not None else ("rec", o.receptacle) for o in t.objects]
        self.exits: list[dict[str, tuple[int, int | None]]] = [{} for _ in t.rooms]  # room -> dir -> (room, door)
        for e in t.edges:
            self.exits[e.a][e.direction] = (e.b, e.door)
            self.exits[e.b][OPPOSITE[e.direction]] = (e.a, e.door)
        self.keys_of = {d.key: i for i, d in enumerate(t.doors) if d.key is not None}  # key object -> door
        self.short_names = compact_names(t.objects)

    def clone(self) -> World:
        return World(self.task, self.room, list(self.doors), list(self.closed), list(self.where))

    # ---- where things are ---------------------------------------------------------------------
    def room_of(self, obj: int) -> int | None:
        """The room an object is in (None when the player carries it)."""
        place, i = self.where[obj]
        return i if place == "room" else self.task.receptacles[i].room if place == "rec" else None

    def receptacles_here(self) -> list[int]:
        return [j for j, r in enumerate(self.task.receptacles) if r.room == self.room]

    def visible(self) -> list[int]:
        """Objects the player can see and take here: on the floor, on surfaces, in open containers."""
        out = []
        for i, (place, j) in enumerate(self.where):
            if place == "room" and j == self.room:
                out.append(i)
            elif place == "rec" and self.task.receptacles[j].room == self.room and not self.closed[j]:
                out.append(i)
        return out

    def inventory(self) -> list[int]:
        return [i for i, (place, _) in enumerate(self.where) if place == "inv"]

    def name(self, obj: int) -> str:
        return self.task.objects[obj].name

    def doors_here(self) -> list[tuple[str, int]]:
        return [(d, door) for d, (_, door) in self.exits[self.room].items() if door is not None]

    # ---- commands -----------------------------------------------------------------------------
    def act(self, text: str) -> tuple[str | None, str]:
        """Carry out a command: (its verb, a message) when it worked, (None, why not) when it did not."""
        command = parse(text)
        if isinstance(command, str):
            return None, command
        result = getattr(self, f"_{command.verb}")(*command.args)
        return (None, result[1:]) if result.startswith("!") else (command.verb, result)

    def _go(self, direction: str) -> str:
        if direction not in self.exits[self.room]:
            return f"!you can't go {direction} from the {self.task.rooms[self.room].name}"
        target, door = self.exits[self.room][direction]
        if door is not None and self.doors[door] != "open":
            return f"!the {self.task.doors[door].name} is {self.doors[door]}"
        self.room = target
        return f"You go {direction}."

    def _look(self) -> str:
        return ""

    def _inventory(self) -> str:
        return self.carrying()

    def _stop(self) -> str:
        return "You stop."

    def _door(self, reference: str) -> int | str:
        """The door a reference names here: by direction ("n", "north door", "door to the north") or by name."""
        words = reference.split()
        dirs = {DIRECTION_WORDS[w] for w in words if w in DIRECTION_WORDS}
        if dirs:
            if len(dirs) > 1 or not set(words) <= set(DIRECTION_WORDS) | {"door", "to", "of"}:
                return f"no door {reference!r} here"
            (direction,) = dirs
            _, door = self.exits[self.room].get(direction, (None, None))
            return door if door is not None else f"there is no door {direction} of here"
        return _resolve(reference, [(door, self.task.doors[door].name) for _, door in self.doors_here()], "door here")

    def _container(self, reference: str) -> int | str:
        return _resolve(reference, [(j, self.task.receptacles[j].name) for j in self.receptacles_here()], "here")

    def _open(self, reference: str) -> str:
        door = self._door(reference)
        if isinstance(door, int):
            state, name = self.doors[door], self.task.doors[door].name
            if state != "closed":
                return f"!the {name} is {'already open' if state == 'open' else 'locked'}"
            self.doors[door] = "open"
            return f"You open the {name}."
        j = self._container(reference)
        if isinstance(j, str):  # neither a door nor a receptacle: say why (an ambiguous door first)
            return "!" + (door if door.startswith("which one") else j)
        r = self.task.receptacles[j]
        if r.kind != "in" or not self.closed[j]:
            return f"!the {r.name} {'is already open' if r.kind == 'in' else 'does not open'}"
        self.closed[j] = False
        inside = [self.name(i) for i, w in enumerate(self.where) if w == ("rec", j)]
        return f"You open the {r.name}." + (f" Inside you see {_list(inside)}." if inside else " It is empty.")

    def _close(self, reference: str) -> str:
        door = self._door(reference)
        if isinstance(door, int):
            name = self.task.doors[door].name
            if self.doors[door] != "open":
                return f"!the {name} is already {self.doors[door]}"
            self.doors[door] = "closed"
            return f"You close the {name}."
        j = self._container(reference)
        if isinstance(j, str):
            return "!" + j
        r = self.task.receptacles[j]
        if r.kind != "in" or self.closed[j]:
            return f"!the {r.name} {'is already closed' if r.kind == 'in' else 'does not close'}"
        self.closed[j] = True
        return f"You close the {r.name}."

    def _unlock(self, reference: str, key_reference: str | None = None) -> str:
        door = self._door(reference)
        if isinstance(door, str):
            return "!" + door
        d = self.task.doors[door]
        if self.doors[door] != "locked":
            return f"!the {d.name} is not locked"
        held = [(i, self.name(i)) for i in self.inventory()]
        if key_reference is None:
            fitting = [i for i, _ in held if i == d.key]
            if not fitting:
                return f"!you have no key that fits the {d.name}"
            key = fitting[0]
        else:
            key = _resolve(key_reference, held, "in your inventory")
            if isinstance(key, str):
                return "!" + key
            if key != d.key:
                return f"!the {self.name(key)} does not fit the {d.name}"
        self.doors[door] = "closed"
        return f"You unlock the {d.name} with the {self.name(key)}."

    def _take(self, reference: str, source: str | None = None) -> str:
        obj = _resolve(reference, [(i, self.name(i)) for i in self.visible()], "here")
        if isinstance(obj, str):
            return "!" + obj
        place, j = self.where[obj]
        if source is not None:
            rec = self._container(source)
            if isinstance(rec, str) or place != "rec" or rec != j:
                return f"!the {self.name(obj)} is not there"
        self.where[obj] = ("inv", 0)
        where = f" from the {self.task.receptacles[j].name}" if place == "rec" else ""
        return f"You take the {self.name(obj)}{where}."

    def _put(self, reference: str, target: str) -> str:
        obj = _resolve(reference, [(i, self.name(i)) for i in self.inventory()], "in your inventory")
        if isinstance(obj, str):
            return "!" + obj
        j = self._container(target)
        if isinstance(j, str):
            return "!" + j
        r = self.task.receptacles[j]
        if r.kind == "in" and self.closed[j]:
            return f"!the {r.name} is closed"
        self.where[obj] = ("rec", j)
        return f"You put the {self.name(obj)} {r.kind} the {r.name}."

    def _drop(self, reference: str) -> str:
        obj = _resolve(reference, [(i, self.name(i)) for i in self.inventory()], "in your inventory")
        if isinstance(obj, str):
            return "!" + obj
        self.where[obj] = ("room", self.room)
        return f"You drop the {self.name(obj)}."

    def _examine(self, reference: str) -> str:
        things = [(i, self.name(i)) for i in self.visible() + self.inventory()]
        obj = _resolve(reference, things, "here")
        if isinstance(obj, int):
            o = self.task.objects[obj]
            attributes = ", ".join(f"{a} {getattr(o, a)}" for a in ("size", "colour", "material") if getattr(o, a))
            door = self.keys_of.get(obj)
            opens = f" It opens the {self.task.doors[door].name}." if door is not None else ""
            return f"The {o.name}: a {o.kind}{' (' + attributes + ')' if attributes else ''}.{opens}"
        j = self._container(reference)
        if isinstance(j, int):
            return self._describe_receptacle(j) or f"The {self.task.receptacles[j].name} is empty."
        door = self._door(reference)
        if isinstance(door, int):
            return f"The {self.task.doors[door].name} is {self.doors[door]}."
        return "!" + obj

    # ---- what the player sees -----------------------------------------------------------------
    def carrying(self) -> str:
        held = [self.name(i) for i in self.inventory()]
        return f"You are carrying {_list(held) if held else 'nothing'}."

    def _describe_receptacle(self, j: int) -> str:
        r = self.task.receptacles[j]
        if r.kind == "in" and self.closed[j]:
            return f"The {r.name} is closed."
        inside = [self.name(i) for i, w in enumerate(self.where) if w == ("rec", j)]
        return f"{r.kind.capitalize()} the {r.name} you see {_list(inside)}." if inside else ""

    def describe(self) -> str:
        """The room in TextWorld's style: name, floor, receptacles and what they hold, exits, inventory."""
        t = self.task
        room = t.rooms[self.room]
        lines = [f"-= {room.name.title()} =-", f"You are in the {room.name} on floor {room.floor + 1}."]
        things = []
        for j in self.receptacles_here():
            r = t.receptacles[j]
            things.append(self._describe_receptacle(j) or f"There is an empty {r.name} here."
                          if r.kind == "on" or not self.closed[j] else f"There is a closed {r.name} here.")
        floor = [self.name(i) for i, w in enumerate(self.where) if w == ("room", self.room)]
        if floor:
            things.append(f"On the floor you see {_list(floor)}.")
        lines.append(" ".join(things) or "The room is bare.")
        exits = []
        for direction in DIRECTIONS:
            if direction not in self.exits[self.room]:
                continue
            target, door = self.exits[self.room][direction]
            way = f"{direction} to the {t.rooms[target].name}" if direction not in ("up", "down") \
                else f"{direction} the stairs to the {t.rooms[target].name}"
            if door is not None:
                name, state = t.doors[door].name, self.doors[door]
                way = f"{way} through the open {name}" if state == "open" else f"{direction}: a {state} {name}"
            exits.append(way)
        lines.append(f"Exits: {'; '.join(exits)}." if exits else "There is no way out.")
        lines.append(self.carrying())
        return "\n".join(lines)

    def describe_compact(self) -> str:
        """The room in one line: `study: n=hall e=(closed) | desk: red mug | cabinet(closed) | have: key`
        (receptacles that are open and empty are not listed)."""
        t = self.task
        exits = []
        for direction in DIRECTIONS:
            if direction in self.exits[self.room]:
                target, door = self.exits[self.room][direction]
                state = self.doors[door] if door is not None else "open"
                exits.append(f"{SHORT[direction]}={t.rooms[target].name if state == 'open' else '(' + state + ')'}")
        parts = [f"{t.rooms[self.room].name}: {' '.join(exits)}"]
        for j in self.receptacles_here():
            r = t.receptacles[j]
            inside = [self.short_names[i] for i, w in enumerate(self.where) if w == ("rec", j)]
            if r.kind == "in" and self.closed[j]:
                parts.append(f"{r.name}(closed)")
            elif inside:  # an empty open receptacle is left out: every character counts for a small model
                parts.append(f"{r.name}: {', '.join(inside)}")
        floor = [self.short_names[i] for i, w in enumerate(self.where) if w == ("room", self.room)]
        if floor:
            parts.append(f"floor: {', '.join(floor)}")
        held = [self.short_names[i] for i in self.inventory()]
        if held:
            parts.append(f"have: {', '.join(held)}")
        return " | ".join(parts)

    def admissible(self) -> list[str]:
        """Every command that works here, in its canonical full form (TextWorld's admissible commands)."""
        t, out = self.task, []
        for direction in DIRECTIONS:
            if direction in self.exits[self.room]:
                _, door = self.exits[self.room][direction]
                if door is None or self.doors[door] == "open":
                    out.append(f"go {direction}")
        held = self.inventory()
        for _, door in self.doors_here():
            name, state = t.doors[door].name, self.doors[door]
            if state == "open":
                out.append(f"close {name}")
            elif state == "closed":
                out.append(f"open {name}")
            elif t.doors[door].key in held:
                out.append(f"unlock {name} with {self.name(t.doors[door].key)}")
        here = self.receptacles_here()
        for j in here:
            r = t.receptacles[j]
            if r.kind == "in":
                out.append(f"{'open' if self.closed[j] else 'close'} {r.name}")
        for i in self.visible():
            place, j = self.where[i]
            out.append(f"take {self.name(i)}" + (f" from {t.receptacles[j].name}" if place == "rec" else ""))
        for i in held:
            out.append(f"drop {self.name(i)}")
            out += [f"put {self.name(i)} {t.receptacles[j].kind} {t.receptacles[j].name}"
                    for j in here if not self.closed[j]]
        out += [f"examine {self.name(i)}" for i in self.visible() + held]
        out += [f"examine {t.receptacles[j].name}" for j in here]
        return out + ["look", "inventory", "stop"]

    # ---- the expert -------------------------------------------------------------------------------
    def plan(self) -> list[Step]:
        """The steps to the goal with the fewest moves (then the fewest commands), from the current state.

        Dijkstra over (room, keys held, target held): the only state that limits moves is which locked
        doors the player can pass (keys are never used up, and a key fits one door) and, for fetch,
        whether the target is in hand. Door and container opening is counted as commands, not moves.
        """
        t, goal = self.task, self.task.goal
        locked = {i for i, s in enumerate(self.doors) if s == "locked"}
        needed = sorted(t.doors[i].key for i in locked)
        fetch = goal.type == "fetch"
        start = (self.room, frozenset(k for k in needed if self.where[k][0] == "inv"),
                 fetch and self.where[goal.object][0] == "inv")

        def extra(obj: int) -> int:  # opening a closed container first
            place, j = self.where[obj]
            return int(place == "rec" and self.closed[j])

        best: dict[Any, tuple[int, int]] = {start: (0, 0)}
        came: dict[Any, tuple[Any, Step]] = {}
        heap: list[Any] = [((0, 0), 0, start)]
        counter, done = 1, None
        while heap:
            cost, _, state = heapq.heappop(heap)
            if state == "goal":
                done = cost
                break
            if best.get(state) != cost:
                continue
            room, keys, holding = state
            moves: list[tuple[Any, Step, tuple[int, int]]] = []
            for direction, (target, door) in self.exits[room].items():
                if door is not None and door in locked and t.doors[door].key not in keys:
                    continue
                commands = 1 + (door is not None and self.doors[door] != "open") + (door in locked)
                moves.append(((target, keys, holding), Step("go", direction), (1, commands)))
            for k in needed:
                if k not in keys and self.room_of(k) == room:
                    moves.append(((room, keys | {k}, holding), Step("take", thing=k), (0, 1 + extra(k))))
            if fetch and not holding and self.room_of(goal.object) == room:
                moves.append(((room, keys, True), Step("take", thing=goal.object), (0, 1 + extra(goal.object))))
            if room == goal.room and (holding or not fetch):
                last = Step("put", thing=goal.receptacle) if fetch else Step("stop")
                moves.append(("goal", last, (0, 1 + (fetch and self.closed[goal.receptacle]))))
            for nxt, step, (dm, dc) in moves:
                new = (cost[0] + dm, cost[1] + dc)
                if nxt not in best or new < best[nxt]:
                    best[nxt], came[nxt] = new, (state, step)
                    heapq.heappush(heap, (new, counter, nxt))
                    counter += 1
        if done is None:
            raise UnsolvableTaskError(f"the goal of this TextNav task ({goal.type}: {goal.text[:80]!r}) cannot be "
                                      "reached from the current state")
        steps, state = [], "goal"
        while state != start:
            state, step = came[state]
            steps.append(step)
        return steps[::-1]

    def expert_commands(self, compact: bool = False) -> list[str]:
        """The plan as commands (full or compact forms), replayed on a copy to make sure each one works."""
        sim, out = self.clone(), []
        t = self.task

        def run(full: str, short: str) -> None:
            verb, message = sim.act(full)
            if verb is None:  # the planner and the world disagree: a bug, never the player's fault
                raise RuntimeError(f"TextNav expert command {full!r} failed: {message}")
            out.append(short if compact else full)

        for step in self.plan():
            if step.kind == "go":
                _, door = sim.exits[sim.room][step.direction]
                if door is not None and sim.doors[door] == "locked":
                    key = t.doors[door].key
                    run(f"unlock {t.doors[door].name} with {sim.name(key)}", f"unlock {SHORT[step.direction]}")
                if door is not None and sim.doors[door] == "closed":
                    run(f"open {t.doors[door].name}", f"open {SHORT[step.direction]}")
                run(f"go {step.direction}", SHORT[step.direction])
            elif step.kind == "take":
                place, j = sim.where[step.thing]
                if place == "rec" and sim.closed[j]:
                    run(f"open {t.receptacles[j].name}", f"open {t.receptacles[j].name}")
                source = f" from {t.receptacles[j].name}" if place == "rec" else ""
                run(f"take {sim.name(step.thing)}{source}", f"take {sim.short_names[step.thing]}")
            elif step.kind == "put":
                r, obj = t.receptacles[step.thing], t.goal.object
                if sim.closed[step.thing]:
                    run(f"open {r.name}", f"open {r.name}")
                run(f"put {sim.name(obj)} {r.kind} {r.name}", f"put {sim.short_names[obj]} {r.kind} {r.name}")
            else:
                run("stop", "stop")
        return out

    def expert_rooms(self) -> list[int]:
        """The rooms the expert's plan passes through, from the current room."""
        sim, rooms = self.clone(), [self.room]
        for command in self.expert_commands():
            verb, _ = sim.act(command)
            if verb == "go":
                rooms.append(sim.room)
        return rooms


def _list(names: list[str]) -> str:
    names = [f"a {n}" for n in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def compact_names(objects: tuple[Item, ...]) -> list[str]:
    """Each object's shortest description that no other object in the house shares ("red mug", "key")."""
    order = [(), ("colour",), ("material",), ("size",), ("colour", "material"), ("size", "colour"),
             ("size", "material"), ("size", "colour", "material")]
    out = []
    for i, o in enumerate(objects):
        for attrs in order:
            if any(getattr(o, a) is None for a in attrs):
                continue
            clash = any(p.kind == o.kind and all(getattr(p, a) == getattr(o, a) for a in attrs)
                        for k, p in enumerate(objects) if k != i)
            if not clash:
                out.append(" ".join([*(getattr(o, a) for a in ("size", "colour", "material") if a in attrs), o.kind]))
                break
        else:
            out.append(o.name)
    return out


def distances(task: TextNavTask) -> list[list[int]]:
    """Shortest path lengths (in moves) between every pair of rooms, doors ignored: the house's geodesic."""
    n = len(task.rooms)
    neighbours: list[list[int]] = [[] for _ in range(n)]
    for e in task.edges:
        neighbours[e.a].append(e.b)
        neighbours[e.b].append(e.a)
    table = []
    for source in range(n):
        dist = [-1] * n
        dist[source] = 0
        queue = deque([source])
        while queue:
            room = queue.popleft()
            for nxt in neighbours[room]:
                if dist[nxt] < 0:
                    dist[nxt] = dist[room] + 1
                    queue.append(nxt)
        table.append(dist)
    return table
