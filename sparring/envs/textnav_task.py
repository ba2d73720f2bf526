"""A TextNav house as a record: rooms, exits, doors, receptacles, objects, the start and the goal.

A task (`TextNavTask`) is a whole house written out: rooms on a grid per floor, exits (compass
directions, and up/down stairs between floors), doors that are open, closed or locked (a locked door
names the key object that opens it), receptacles that things lie on or in (containers open and
close), objects with attributes, the start room and the goal. It is JSON-serialisable, so a proposer
or a person can write one by hand; `TextNavTask.from_dict` checks it. `World` (`textnav_world.py`)
plays a task.
"""

from __future__ import annotations

import re
from dataclasses import MISSING, dataclass
from typing import Any, cast

from sparring.envs.base import check_task_keys

DIRECTIONS = ("north", "south", "east", "west", "up", "down")
OPPOSITE = {"north": "south", "south": "north", "east": "west", "west": "east", "up": "down", "down": "up"}
SHORT = {"north": "n", "south": "s", "east": "e", "west": "w", "up": "u", "down": "d"}
DELTA = {"north": (0, 1), "south": (0, -1), "east": (1, 0), "west": (-1, 0)}
DOOR_STATES = ("open", "closed", "locked")
RECEPTACLE_KINDS = ("on", "in")  # "on" a surface (always visible), "in" a container (visible when open)
GOAL_TYPES = ("route", "goto_object", "coarse_to_fine", "fetch")
NAV_GOALS = ("route", "goto_object", "coarse_to_fine")  # these end with `stop` in the goal room
MAX_ROOMS, MAX_THINGS, MAX_NAME, MAX_TEXT = 200, 1000, 60, 4000
MAX_LOCKED = 8  # the expert searches rooms x subsets of keys: 2**8 subsets at most



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
            _index(f"edges[{i}].a", e.a, n)
            _index(f"edges[{i}].b", e.b, n)
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
            item = self.objects[cast(int, g.object)]  # checked above
            if g.room != (item.room if item.room is not None else self.receptacles[cast(int, item.receptacle)].room):
                raise ValueError(f"goal.room must be the room the target starts in for a {g.type} goal")
        if g.type == "fetch":
            _index("goal.receptacle", g.receptacle, len(self.receptacles))
            if self.objects[cast(int, g.object)].receptacle == g.receptacle:
                raise ValueError("goal.object already is in goal.receptacle: there is nothing to fetch")
            if self.receptacles[cast(int, g.receptacle)].room != g.room:
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


_NAME = re.compile(r"[a-z0-9-]+( [a-z0-9-]+)*")  # what the parser's `normalize` leaves of a name: it can be named


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

