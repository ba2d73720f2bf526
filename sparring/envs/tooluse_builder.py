"""The world builder and the registry of ToolUse-v0's built-in task templates.

A template is a function that gets a `Builder` (a seeded random world under construction, with its level
1..3 and a vocabulary) and returns a `Draft`: the instruction (full and compact), the expert's calls, the
expected answer (None for tasks that change the world), and plausible wrong answers and episodes.

`@template` registers a template in `TEMPLATES`, in the order the template modules define them
(`tooluse_templates_basic.py`, then `tooluse_templates_chains.py`). The registry is complete once
`tooluse_templates` is imported (it imports both), so read it from there; that module also turns drafts into
tasks.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sparring.envs.tooluse_checks import DAY_END, DAY_START, clock

FIRST_NAMES = ("Ada", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea", "Max", "Nia",
               "Oto", "Pia", "Quin", "Rae", "Sam", "Tess", "Uma", "Vik", "Wes", "Xia", "Yan", "Zoe", "Abe", "Bea",
               "Cy", "Dot", "Ed", "Flo", "Gil", "Hal", "Ike", "Joy", "Ken", "Liv", "Mo", "Ned")
DEPTS = ("sales", "ops", "eng", "hr", "legal", "design")
CITIES = ("Lima", "Oslo", "Pune", "Kyiv", "Rome", "Bern", "Doha", "Lyon", "Nice", "Riga", "Baku", "Cork", "Graz",
          "Ghent", "Malmo", "Porto", "Quito", "Turin", "Split", "Izmir")
WORDS = ("amber", "basil", "cedar", "delta", "ember", "fjord", "grove", "haze", "iris", "jade", "kelp", "lotus",
         "maple", "nectar", "onyx", "pearl", "quartz", "raven", "sage", "tulip", "umber", "violet", "willow",
         "yarrow", "zephyr", "birch", "coral", "dune", "flint", "glade", "heron", "ivory", "juniper", "lark",
         "moss", "nova", "opal", "pine", "reef", "slate")
ITEMS = ("bolt", "nut", "gear", "lamp", "cable", "fan", "valve", "pump", "hinge", "spring", "clamp", "drill")
TITLES = ("Standup", "Review", "Planning", "Demo", "Retro", "Lunch", "Sync", "Interview", "Workshop", "Training",
          "Budget", "Offsite", "Kickoff", "Checkin", "Onboarding", "Design crit")
FOLDERS = ("docs", "notes", "inbox", "reports", "drafts")
EMPLOYEES = [["id", "INTEGER PRIMARY KEY"], ["name", "TEXT"], ["dept", "TEXT"], ["salary", "INTEGER"], ["city", "TEXT"]]
PRODUCTS = [["sku", "TEXT"], ["name", "TEXT"], ["price", "INTEGER"], ["stock", "INTEGER"]]
ORDERS = [["id", "INTEGER PRIMARY KEY"], ["customer", "TEXT"], ["sku", "TEXT"], ["qty", "INTEGER"]]


def minutes_of(clock: str) -> int:
    return int(clock[:2]) * 60 + int(clock[3:])


Call = tuple[str, dict[str, Any]]


class Redraw(Exception):
    """A template met a world it cannot pose its task in (rare): the generator draws again."""


@dataclass
class Draft:
    """What a template writes. `answer` None: the task changes the world and any final answer ends it."""

    instruction: str
    compact: str
    calls: list[Call]
    answer: str | None = None
    unordered: bool = False
    wrong_answers: list[str] = field(default_factory=list)
    wrong_episodes: list[list[Call]] = field(default_factory=list)


class Builder:
    """A seeded world under construction, with the level and fresh names for a template to use."""

    def __init__(self, rng: random.Random, level: int, distractors: int):
        self.rng, self.level = rng, level
        self.today = dt.date(2026, 1, 5) + dt.timedelta(days=rng.randrange(330))
        self.now = f"{self.today.isoformat()}T{rng.choice(('08:30', '09:00', '09:15', '10:00'))}"
        self.files: dict[str, str] = {}
        self.kv: dict[str, str] = {}
        self.events: list[dict[str, Any]] = []
        self.employees: list[list[Any]] = []
        self.products: list[list[Any]] = []
        self.orders: list[list[Any]] = []
        self._used: set[str] = set()
        for _ in range(distractors):
            self.rng.choice((self._noise_file, self._noise_key, self._noise_event))()
        for _ in range(3 + 2 * level + distractors // 2):
            self.add_employee()
        for _ in range(3 + level):
            self.add_product()
        for _ in range(4 + 2 * level + distractors // 2):
            self.add_order()

    # ---- fresh names -----------------------------------------------------------------------------------
    def fresh(self, make: Callable[[], str]) -> str:
        for _ in range(1000):
            value = make()
            if value not in self._used:
                self._used.add(value)
                return value
        raise RuntimeError("the vocabulary ran out of fresh names")  # never with these vocabularies and sizes

    def word(self) -> str:
        return self.rng.choice(WORDS)

    def number(self, low: int = 2, high: int = 99) -> int:
        return self.rng.randint(low, high)

    def key(self, kind: str = "") -> str:
        kind = kind or self.rng.choice(("user", "team", "cfg", "app"))
        return self.fresh(lambda: f"{kind}:{self.rng.choice(WORDS)}" + (f":{self.rng.randint(1, 99)}" if self.level > 1 else ""))

    def path(self, folder: str = "", ext: str = "txt") -> str:
        folder = folder or self.rng.choice(FOLDERS)
        return self.fresh(lambda: f"/{folder}/{self.rng.choice(WORDS)}.{ext}")

    def folder(self) -> str:
        return self.fresh(lambda: f"/{self.rng.choice(('archive', 'old', 'done', 'keep'))}/{self.rng.choice(WORDS)}")

    def person(self) -> str:
        return self.fresh(lambda: self.rng.choice(FIRST_NAMES))

    def title(self) -> str:
        return self.fresh(lambda: f"{self.rng.choice(TITLES)} {self.rng.choice(WORDS)}")

    def day(self, low: int = 0, high: int = 6) -> str:
        return (self.today + dt.timedelta(days=self.rng.randint(low, high))).isoformat()

    def slot(self, length: int | None = None) -> tuple[str, str]:
        length = length or self.rng.choice((30, 45, 60, 90))
        start = self.rng.randrange(minutes_of(DAY_START), minutes_of(DAY_END) - length + 1, 15)
        return clock(start), clock(start + length)

    def sentence(self, n: int = 5) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(n))

    # ---- world content ---------------------------------------------------------------------------------
    def add_event(self, title: str, date: str, start: str, end: str) -> None:
        self.events.append({"id": len(self.events) + 1, "title": title, "date": date, "start": start, "end": end})

    def add_employee(self, name: str | None = None, dept: str | None = None, salary: int | None = None) -> list[Any]:
        row = [len(self.employees) + 1, name or self.person(), dept or self.rng.choice(DEPTS[:2 + self.level]),
               salary if salary is not None else self.rng.randrange(3000, 9000, 50), self.rng.choice(CITIES)]
        self.employees.append(row)
        return row

    def add_product(self) -> list[Any]:
        sku = self.fresh(lambda: f"{self.rng.choice('ABCDEFGH')}{self.rng.randint(1, 99)}")
        row = [sku, self.fresh(lambda: self.rng.choice(ITEMS)), self.rng.randint(2, 90), self.rng.randint(0, 40)]
        self.products.append(row)
        return row

    def add_order(self, customer: str | None = None, sku: str | None = None) -> list[Any]:
        customer = customer or self.rng.choice([r[1] for r in self.employees] or list(FIRST_NAMES))
        row = [len(self.orders) + 1, customer, sku or self.rng.choice([p[0] for p in self.products]),
               self.rng.randint(1, 9)]
        self.orders.append(row)
        return row

    def _noise_file(self) -> None:
        self.files[self.path()] = "\n".join(self.sentence(self.rng.randint(3, 6)) for _ in range(self.rng.randint(1, 3)))

    def _noise_key(self) -> None:
        key = self.key()
        self.kv[key] = self.rng.choice((self.word(), str(self.number()), self.rng.choice(CITIES)))

    def _noise_event(self) -> None:
        self.add_event(self.title(), self.day(0, 4), *self.slot())

    def snapshot(self) -> dict[str, Any]:
        return {"now": self.now, "files": dict(sorted(self.files.items())), "dirs": [],
                "kv": dict(sorted(self.kv.items())), "calendar": list(self.events),
                "db": {"employees": {"columns": EMPLOYEES, "rows": self.employees},
                       "products": {"columns": PRODUCTS, "rows": self.products},
                       "orders": {"columns": ORDERS, "rows": self.orders}}}


@dataclass(frozen=True)
class Template:
    name: str
    make: Callable[[Builder], Draft]
    held_out: bool
    summary: str


TEMPLATES: dict[str, Template] = {}


def template(held_out: bool = False) -> Callable[[Callable[[Builder], Draft]], Callable[[Builder], Draft]]:
    def register(make: Callable[[Builder], Draft]) -> Callable[[Builder], Draft]:
        TEMPLATES[make.__name__] = Template(make.__name__, make, held_out, (make.__doc__ or "").strip())
        return make
    return register
