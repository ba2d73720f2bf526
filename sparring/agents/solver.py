"""The solver: a policy plays env episodes, batched across episodes, and returns trajectories.

    >>> solver = Solver(policy, "Countdown-v0", {"instruction": "compact"}, SamplingParams(n=1, max_tokens=32))
    >>> trajectories = solver.run(tasks, k=8)          # k episodes per task
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import gymnasium

import sparring  # noqa: F401  (registers the environments)
from sparring.agents.policy import Policy, SamplingParams
from sparring.trajectories import Trajectory, Turn


class Solver:
    def __init__(self, policy: Policy, env_id: str, env_kwargs: dict[str, Any] | None = None,
                 params: SamplingParams = SamplingParams(), *, max_turns: int = 32, role: str = "solver",
                 prompt: Callable[[Trajectory, str], Any] | None = None):
        from sparring.envs.catalog import env_class

        env_class(env_id)  # a clear error on a mistyped id
        self.policy, self.env_id, self.env_kwargs = policy, env_id, dict(env_kwargs or {})
        self.params, self.max_turns, self.role = params, max_turns, role
        self.prompt = prompt or (lambda trajectory, observation: trajectory.conversation()
                                 + [{"role": "user", "content": observation}])

    def run(self, tasks: list[dict[str, Any]], k: int = 1, *, seed: int = 0,
            on_turn: Callable[[int, int], None] | None = None) -> list[Trajectory]:
        """`k` episodes per task, in task order. `on_turn(turn, active)` reports progress."""
        episodes = []
        for index, task in enumerate(tasks):
            for sample in range(k):
                env = gymnasium.make(self.env_id, **self.env_kwargs)
                observation, _ = env.reset(seed=seed, options={"task": task})
                trajectory = Trajectory(self.env_id, task, role=self.role, env_kwargs=self.env_kwargs,
                                        meta={"task_index": index, "sample": sample, "policy": self.policy.name})
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
                                               replace(self.params, n=k, seed=_seed(seed, turn)))
                completions = [c for group in outputs for c in group]
            else:
                outputs = self.policy.generate([self.prompt(e[2], e[1]) for e in active],
                                               replace(self.params, n=1, seed=_seed(seed, turn)))
                completions = [group[0] for group in outputs]
            for episode, completion in zip(active, completions):
                env, observation, trajectory = episode
                episode[1], reward, terminated, truncated, info = env.step(completion.text)
                trajectory.turns.append(Turn(observation, completion.text, float(reward),
                                             completion.token_ids, completion.logprobs))
                if terminated or truncated:
                    trajectory.verdict = info["verdict"]
                    env.close()
        for env, _, trajectory in episodes:
            if not trajectory.verdict:
                trajectory.verdict = {"reward": 0.0, "success": False,
                                      "feedback": f"ran out of turns ({self.max_turns})", "details": {}}
                env.close()
        return [e[2] for e in episodes]


def _seed(seed: int, turn: int) -> int:
    return seed * 1_000 + turn
