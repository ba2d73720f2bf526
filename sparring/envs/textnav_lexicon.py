"""The words and goal templates of TextNav houses, each list split into a seen part and a held-out part.

`train` and `test-seen` tasks use only the seen words and templates. `test-unseen` tasks (as
TextWorld's `--test` games) draw their houses from every word, but their goal always names a held-out
word (the goal room, or the target object's kind) and is phrased by a held-out template, so a policy
is tested on language it never trained on. A held-out word never appears in a seen list or template.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Words:
    seen: tuple[str, ...]
    held_out: tuple[str, ...]

    def pick(self, held_out: bool) -> tuple[str, ...]:
        """The words a split may use: the seen ones, or (for `test-unseen`) all of them."""
        return self.seen + self.held_out if held_out else self.seen


ROOMS = Words(
    seen=("kitchen", "hallway", "study", "bedroom", "bathroom", "living room", "dining room", "pantry", "library",
          "office", "laundry", "garage", "cellar", "nursery", "den", "lounge", "playroom", "workshop", "closet",
          "foyer", "studio", "gym", "sunroom", "attic", "porch", "guest room", "music room", "landing"),
    held_out=("conservatory", "scullery", "boudoir", "armoury", "chapel", "gallery", "solarium", "observatory",
              "vestibule", "parlour"),
)
SURFACES = Words(  # receptacles things lie "on"
    seen=("table", "desk", "shelf", "counter", "dresser", "bench", "sofa", "bed", "nightstand", "sideboard", "stool"),
    held_out=("credenza", "ottoman", "mantelpiece"),
)
CONTAINERS = Words(  # receptacles things lie "in"; they open and close
    seen=("cabinet", "drawer", "fridge", "chest", "wardrobe", "cupboard", "basket", "crate"),
    held_out=("armoire", "hamper", "locker"),
)
KINDS = Words(  # what an object is (its head noun)
    seen=("mug", "book", "vase", "lamp", "plate", "bowl", "cup", "candle", "bottle", "pillow", "clock", "apple",
          "pen", "hat", "shoe", "towel", "spoon", "jar", "box", "ball"),
    held_out=("teapot", "globe", "kettle", "trophy", "lantern", "goblet", "scarf", "drum"),
)
COLOURS = Words(seen=("red", "blue", "green", "yellow", "black", "white", "brown", "grey"),
                held_out=("purple", "orange", "pink", "teal"))
MATERIALS = Words(seen=("wooden", "glass", "metal", "ceramic", "plastic", "stone", "leather"),
                  held_out=("marble", "velvet", "bamboo", "crystal"))
SIZES = Words(seen=("small", "large"), held_out=("tiny", "huge"))
KEY_METALS = Words(seen=("brass", "silver", "iron", "gold", "bronze", "steel"), held_out=("pewter", "platinum"))
DOOR_WOODS = Words(seen=("oak", "pine", "birch", "maple", "walnut", "cedar", "elm", "ash"),
                   held_out=("teak", "ebony", "mahogany", "willow"))

ATTRIBUTES = ("size", "colour", "material")  # the order they are written in: "small red ceramic mug"
ATTRIBUTE_WORDS = {"size": SIZES, "colour": COLOURS, "material": MATERIALS}


# ---- goal templates -------------------------------------------------------------------------------
# Fields: {dir} "north" / "up the stairs", {via} " through the oak door" or "", {room}, {key}, {obj} (the
# target's description), {prep} "on"/"in", {rec} (its receptacle), {floor} "floor 2", {region} "north-east",
# {neighbour} (a room next to the goal room), {prep2}/{rec2}/{room2} (where a fetched object goes).

@dataclass(frozen=True)
class RouteTemplate:
    step: str  # one move
    take: str  # picking up a key on the way
    joiner: str
    closer: str


ROUTE = {
    "seen": (RouteTemplate("go {dir}{via} to the {room}", "pick up the {key}", ", then ", ". Stop in the {room}."),
             RouteTemplate("walk {dir}{via} into the {room}", "take the {key}", " and ", ". Stop there."),
             RouteTemplate("head {dir}{via} to the {room}", "grab the {key}", ", then ", ", and stop.")),
    "held_out": (RouteTemplate("make your way {dir}{via} into the {room}", "collect the {key}", "; after that ",
                               ". Halt in the {room}."),
                 RouteTemplate("proceed {dir}{via} until you reach the {room}", "fetch the {key}", ", next ",
                               ". Remain in the {room}.")),
}
GOTO_OBJECT = {
    "seen": ("Find the {obj} {prep} the {rec} in the {room}, and stop there.",
             "Go to the {room} and find the {obj}. Stop next to it.",
             "Somewhere in the house there is a {obj}. Find it and stop in its room."),
    "held_out": ("Locate the {obj}; it is {prep} a {rec}. Halt beside it.",
                 "Search the house for the {obj} and remain where it is."),
}
COARSE_TO_FINE = {
    "seen": ("On {floor}, in the {region} part of the house, there is a {room} next to the {neighbour}. In it, "
             "{prep} the {rec}, is the {obj}. Go there and stop.",
             "Go to {floor}. In the {region}, find the {room}, which is next to the {neighbour}. The {obj} is "
             "{prep} the {rec} there; stop in that room."),
    "held_out": ("Head for {floor}, {region} side. The {room} beside the {neighbour} has a {rec}; {prep} it lies "
                 "the {obj}. Halt in that room.",),
}
FETCH = {
    "seen": ("Take the {obj} and put it {prep2} the {rec2} in the {room2}.",
             "Bring the {obj} to the {room2} and place it {prep2} the {rec2}.",
             "Pick up the {obj}, carry it to the {room2} and put it {prep2} the {rec2}."),
    "held_out": ("Move the {obj} so that it ends up {prep2} the {rec2} in the {room2}.",
                 "Deliver the {obj} to the {rec2} of the {room2}."),
}
GOAL_TEMPLATES = {"route": ROUTE, "goto_object": GOTO_OBJECT, "coarse_to_fine": COARSE_TO_FINE, "fetch": FETCH}


def held_out_words() -> set[str]:
    """Every word that only held-out entries and templates use (what `train` never contains)."""
    seen, held = set(), set()
    for words in (ROOMS, SURFACES, CONTAINERS, KINDS, COLOURS, MATERIALS, SIZES, KEY_METALS, DOOR_WOODS):
        seen.update(w for entry in words.seen for w in entry.split())
        held.update(w for entry in words.held_out for w in entry.split())
    return held - seen
