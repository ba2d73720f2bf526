"""Named seed streams: every seed and task index a self-play run draws, in one place.

A run has one seed (`SelfPlayConfig.seed`). Tasks come from an env's generator as `generate_task(index, seed=s)`, so
a task stream is a generator seed and a first index; streams never overlap, so no two rounds (nor the dev set, the
control's demonstrations, the replayed demonstrations or the curriculum's tasks) share a task:

    the held-out tasks              seed,     from 0 of the held-out split
    round r's training tasks        seed,     from r * 10**9
    its replayed demonstrations     seed,     from r * 10**9 + 10**9 / 4
    its control's demonstrations    seed,     from r * 10**9 + 10**9 / 2
    the curriculum proposer's       seed,     from r * 10**9 + 10**8
    the bootstrap's dev tasks       seed + 1, the last n below 10**9
    the roles' bootstrap tasks      seed + 3, from 0
    the instruction proposer's      seed + 4, from r * 10**6 (routes for round r)

and the seeds of round r's sampling and training (`Seeds.round`) and of its global RNGs (`Seeds.rngs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

TASKS_PER_STREAM = 10**9  # round r draws training items from [r * 10**9, ...): no two rounds share a task


class Stream(NamedTuple):
    """A stream of generated tasks: the generator's seed and the first index drawn."""

    seed: int
    start: int


@dataclass(frozen=True)
class Seeds:
    """The named streams of a run with seed `seed`."""

    seed: int

    def bootstrap(self) -> int:
        """Round 0's: the tiny model's initialisation, the bootstrap's training and the roles' bootstrap samples."""
        return self.seed

    def evaluation(self) -> int:
        """The held-out evaluation's sampling seed, the same every round so rounds compare on equal draws."""
        return self.seed

    def round(self, r: int) -> int:
        """Round r's sampling, training and agents' seed."""
        return self.seed * 1000 + r

    def rngs(self, r: int) -> int:
        """The seed of Python's, NumPy's and torch's global generators at the start of round r."""
        return self.seed * 10_000 + r

    def control(self, r: int) -> int:
        """The training seed of round r's control (fresh expert demonstrations)."""
        return self.seed + r

    def eval_tasks(self) -> Stream:
        """The held-out tasks: from 0 of the held-out split (a split of its own, so no training stream meets it)."""
        return Stream(self.seed, 0)

    def train_tasks(self, r: int) -> Stream:
        return Stream(self.seed, r * TASKS_PER_STREAM)

    def replay_tasks(self, r: int) -> Stream:
        return Stream(self.seed, r * TASKS_PER_STREAM + TASKS_PER_STREAM // 4)

    def control_tasks(self, r: int) -> Stream:
        return Stream(self.seed, r * TASKS_PER_STREAM + TASKS_PER_STREAM // 2)

    def curriculum_tasks(self, r: int) -> Stream:
        return Stream(self.seed, r * TASKS_PER_STREAM + TASKS_PER_STREAM // 10)

    def dev_tasks(self, n: int) -> Stream:
        return Stream(self.seed + 1, TASKS_PER_STREAM - n)

    def roles_bootstrap_tasks(self) -> Stream:
        return Stream(self.seed + 3, 0)

    def instruction_routes(self, r: int) -> Stream:
        return Stream(self.seed + 4, r * 10**6)
