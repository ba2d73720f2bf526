"""The solver: a policy plays env episodes, batched across episodes, and returns trajectories.

    >>> solver = Solver(policy, "Countdown-v0", {"instruction": "compact"}, SamplingParams(n=1, max_tokens=32))
    >>> trajectories = solver.run(tasks, k=8)          # k episodes per task
    >>> groups = by_task(trajectories, k=8)            # the k episodes of each task together
    >>> Solver(policy, "Countdown-v0", executor=executor).run(tasks, k=8)   # sharded over Ray (sparring.executors)

Episodes run in lockstep, one env each; the envs are kept in a pool per (env id, kwargs) and reset with
the next task, so a round of 12,000 episodes does not build 12,000 envs again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

import gymnasium

import sparring.envs  # noqa: F401  (registers the environments)
from sparring.policies.policy import Policy, SamplingParams
from sparring.trajectories import Trajectory, Turn


class EpisodeExecutor(Protocol):
    """Where a solver's episodes run when not in this process (`sparring.executors.Executor` is one)."""

    def run_episodes(self, solver: Solver, tasks: list[dict[str, Any]], k: int, *, seed: int = 0,
                     on_turn: Callable[[int, int], None] | None = None, first_task: int = 0) -> list[Trajectory]: ...


class Solver:
    def __init__(self, policy: Policy, env_id: str, env_kwargs: dict[str, Any] | None = None,
                 params: SamplingParams = SamplingParams(), *, max_turns: int = 32, role: str = "solver",
                 prompt: Callable[[Trajectory, str], Any] | None = None, executor: EpisodeExecutor | None = None):
        """`executor` (a `sparring.executors.Executor`): where the episodes run; None plays them here."""
        from sparring.envs.catalog import env_class

        env_class(env_id)  # a clear error on a mistyped id
        self.policy, self.env_id, self.env_kwargs = policy, env_id, dict(env_kwargs or {})
        self.params, self.max_turns, self.role, self.executor = params, max_turns, role, executor
        self.prompt = prompt or (lambda trajectory, observation: trajectory.conversation()
                                 + [{"role": "user", "content": observation}])

    def run(self, tasks: list[dict[str, Any]], k: int = 1, *, seed: int = 0,
            on_turn: Callable[[int, int], None] | None = None, first_task: int = 0) -> list[Trajectory]:
        """`k` episodes per task, in task order, through the executor if there is one. `on_turn(turn, active)`
        reports progress; `first_task`: the index of `tasks[0]` in a larger batch run part by part (see `play`)."""
        if self.executor is not None:
            return self.executor.run_episodes(self, tasks, k, seed=seed, on_turn=on_turn, first_task=first_task)
        return self.play(tasks, k, seed=seed, on_turn=on_turn, first_task=first_task)

    def play(self, tasks: list[dict[str, Any]], k: int = 1, *, seed: int = 0,
             on_turn: Callable[[int, int], None] | None = None, first_task: int = 0) -> list[Trajectory]:
        """`run` in this process. `first_task`: the index of `tasks[0]` in a larger batch that an executor
        shards; it numbers the trajectories (`meta["task_index"]`) and moves the sampling seed on by as many
        prompts, so the shard's first turn draws what the whole batch's run draws for those tasks."""
        episodes = []
        envs = iter(acquire_envs(self.env_id, self.env_kwargs, len(tasks) * k))
        for index, task in enumerate(tasks):
            for sample in range(k):
                env = next(envs)
                observation, _ = env.reset(seed=seed, options={"task": task})
                trajectory = Trajectory(self.env_id, task, role=self.role, env_kwargs=self.env_kwargs,
                                        meta={"task_index": first_task + index, "sample": sample,
                                              "policy": self.policy.name})
                episodes.append([env, observation, trajectory])
        for turn in range(self.max_turns):
            active = [e for e in episodes if not e[2].verdict]
            if not active:
                break
            if on_turn:
                on_turn(turn, len(active))
            if turn == 0:  # every sample of a task sees the same first prompt: ask once for k completions
                firsts = active[::k]
                outputs = self.policy.generate([self.prompt(e[2], e[1]) for e in firsts],
                                               replace(self.params, n=k, seed=turn_seed(seed, turn, first_task)))
                completions = [c for group in outputs for c in group]
            else:
                outputs = self.policy.generate([self.prompt(e[2], e[1]) for e in active],
                                               replace(self.params, n=1, seed=turn_seed(seed, turn, first_task)))
                completions = [group[0] for group in outputs]
            for episode, completion in zip(active, completions):
                env, observation, trajectory = episode
                episode[1], reward, terminated, truncated, info = env.step(completion.text)
                trajectory.turns.append(Turn(observation, completion.text, float(reward),
                                             completion.token_ids, completion.logprobs))
                if terminated or truncated:
                    trajectory.verdict = info["verdict"]
        for _, _, trajectory in episodes:
            if not trajectory.verdict:
                trajectory.verdict = {"reward": 0.0, "success": False,
                                      "feedback": f"ran out of turns ({self.max_turns})", "details": {}}
        release_envs(self.env_id, self.env_kwargs, [e[0] for e in episodes])
        return [e[2] for e in episodes]


def by_task(trajectories: list[Trajectory], k: int) -> list[list[Trajectory]]:
    """`Solver.run(tasks, k)`'s flat list as one group of `k` episodes per task, in task order."""
    if k < 1 or len(trajectories) % k:
        raise ValueError(f"{len(trajectories)} trajectories do not split into groups of k={k}")
    return [trajectories[i:i + k] for i in range(0, len(trajectories), k)]


_POOL: dict[str, list[Any]] = {}  # idle envs by (env id, kwargs)


def _pool_key(env_id: str, env_kwargs: dict[str, Any]) -> str:
    return json.dumps([env_id, env_kwargs], sort_keys=True, default=repr)


def acquire_envs(env_id: str, env_kwargs: dict[str, Any], n: int) -> list[Any]:
    """`n` envs of `env_id` with `env_kwargs`: idle ones from this process's pool first, then new ones."""
    idle = _POOL.setdefault(_pool_key(env_id, env_kwargs), [])
    taken = [idle.pop() for _ in range(min(n, len(idle)))]
    return taken + [gymnasium.make(env_id, **env_kwargs) for _ in range(n - len(taken))]


def release_envs(env_id: str, env_kwargs: dict[str, Any], envs: list[Any]) -> None:
    """Give `envs` back to the pool for the next episodes (each is reset with its next task)."""
    _POOL.setdefault(_pool_key(env_id, env_kwargs), []).extend(envs)


def turn_seed(seed: int, turn: int, first_task: int = 0) -> int:
    """The sampling seed of a turn. Backends give prompt i the stream `seed + i`, so a shard whose first task
    is `first_task` continues the streams of a whole batch's run (up to 10**6 prompts per turn)."""
    return (seed * 1_000 + turn) * 1_000_000 + first_task
