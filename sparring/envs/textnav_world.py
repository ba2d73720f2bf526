"""A TextNav world: a task played, its observations, its admissible commands and the expert planner.

`World` plays a task (`TextNavTask`, `textnav_task.py`): it keeps the mutable state (where the player is,
door and container states, where every object is), parses a command (`textnav_commands.py`: case,
spacing, articles and synonyms normalised: "N", "go north", "Walk to the north." are one command),
carries it out or says why it cannot, lists the admissible commands, and writes observations in two
modes: `full` (TextWorld's style) and `compact` (one short line per turn, for a small character-level model).

`World.plan` is the expert: Dijkstra over (room, keys held, target held), minimising moves first
and commands second, from whatever state the world is in; `World.expert_commands` turns the plan
into commands and replays them on a copy to certify them.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field
from typing import Any, cast

from sparring.envs.textnav_commands import DIRECTION_WORDS, parse, resolve
from sparring.envs.textnav_task import DIRECTIONS, OPPOSITE, SHORT, Item, TextNavTask
from sparring.errors import UnsolvableTaskError


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
            self.where = [("room", o.room) if o.room is not None else ("rec", cast(int, o.receptacle))
                          for o in t.objects]
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
        return resolve(reference, [(door, self.task.doors[door].name) for _, door in self.doors_here()], "door here")

    def _container(self, reference: str) -> int | str:
        return resolve(reference, [(j, self.task.receptacles[j].name) for j in self.receptacles_here()], "here")

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
            key = resolve(key_reference, held, "in your inventory")
            if isinstance(key, str):
                return "!" + key
            if key != d.key:
                return f"!the {self.name(key)} does not fit the {d.name}"
        self.doors[door] = "closed"
        return f"You unlock the {d.name} with the {self.name(key)}."

    def _take(self, reference: str, source: str | None = None) -> str:
        obj = resolve(reference, [(i, self.name(i)) for i in self.visible()], "here")
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
        obj = resolve(reference, [(i, self.name(i)) for i in self.inventory()], "in your inventory")
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
        obj = resolve(reference, [(i, self.name(i)) for i in self.inventory()], "in your inventory")
        if isinstance(obj, str):
            return "!" + obj
        self.where[obj] = ("room", self.room)
        return f"You drop the {self.name(obj)}."

    def _examine(self, reference: str) -> str:
        things = [(i, self.name(i)) for i in self.visible() + self.inventory()]
        obj = resolve(reference, things, "here")
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
            elif (key := t.doors[door].key) in held:
                out.append(f"unlock {name} with {self.name(key)}")
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
        needed = sorted(cast(int, t.doors[i].key) for i in locked)  # a locked door has a key
        fetch = goal.type == "fetch"
        wanted, dest = cast(int, goal.object), cast(int, goal.receptacle)  # read for fetch goals only: set there
        start = (self.room, frozenset(k for k in needed if self.where[k][0] == "inv"),
                 fetch and self.where[wanted][0] == "inv")

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
            if fetch and not holding and self.room_of(wanted) == room:
                moves.append(((room, keys, True), Step("take", thing=wanted), (0, 1 + extra(wanted))))
            if room == goal.room and (holding or not fetch):
                last = Step("put", thing=dest) if fetch else Step("stop")
                moves.append(("goal", last, (0, 1 + (fetch and self.closed[dest]))))
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
                    key = cast(int, t.doors[door].key)  # a locked door has a key
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
                r, obj = t.receptacles[step.thing], cast(int, t.goal.object)  # a fetch goal's: set
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
