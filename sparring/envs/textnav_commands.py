"""The TextNav command parser: a player's text as a command, and a reference ("red mug") as the thing it names.

`parse` normalises case, spacing, articles and synonyms ("N", "go north", "Walk to the north." are one
command) and says in words why a text is not a command; `resolve` finds the one door, receptacle or
object a reference names among the candidates, or says why there is none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sparring.envs.textnav_task import DIRECTIONS, SHORT

MAX_COMMAND = 400

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


def resolve(reference: str, candidates: list[tuple[int, str]], what: str) -> int | str:
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

