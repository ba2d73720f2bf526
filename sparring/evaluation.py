"""Success and pass@k of a policy on tasks, with 95% intervals."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sparring.policies.policy import Policy, SamplingParams
from sparring.solver import EpisodeExecutor, Solver, by_task
from sparring.trajectories import Trajectory


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimate from `n` samples of which `c` are correct (Chen et al., 2021)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


@dataclass
class EvalResult:
    n_tasks: int
    success: float  # greedy, one attempt per task
    success_low: float
    success_high: float
    k: int = 1
    pass_at_k: float | None = None  # k samples per task at `temperature`
    pass_at_k_low: float | None = None
    pass_at_k_high: float | None = None
    mean_reward: float = 0.0
    details: dict[str, float] = field(default_factory=dict)  # numeric verdict details, averaged (greedy episodes)
    # every graded episode: the greedy ones (meta "mode": "greedy"), then the pass@k samples ("sampled")
    episodes: list[Trajectory] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The numbers (the episodes are left out: `save_trajectories(result.episodes, path)` keeps them)."""
        return {key: value for key, value in asdict(self).items() if key != "episodes"}


def mean_details(verdicts: list[dict[str, Any]]) -> dict[str, float]:
    """The mean of every numeric verdict detail (booleans as 0/1) over the verdicts that carry it: an env's own
    metrics, such as TextNav's `spl` and `ndtw`, without the evaluation knowing them. Text, lists and None are skipped."""
    sums: dict[str, list[float]] = {}
    for verdict in verdicts:
        for key, value in (verdict.get("details") or {}).items():
            if isinstance(value, (bool, int, float)) and math.isfinite(value):
                sums.setdefault(key, []).append(float(value))
    return {key: sum(values) / len(values) for key, values in sorted(sums.items())}


def evaluate(policy: Policy, env_id: str, env_kwargs: dict[str, Any], tasks: list[dict[str, Any]], *, k: int = 1,
             temperature: float = 1.0, max_tokens: int = 64, max_turns: int = 32, seed: int = 0,
             on_turn: Callable[[int, int], None] | None = None, executor: EpisodeExecutor | None = None,
             prompt: Callable[..., Any] | None = None) -> EvalResult:
    """Greedy success on `tasks`, and with `k > 1` pass@k from `k` samples per task; the episodes run on
    `executor` (a `sparring.executors.Executor`) when given. `prompt`: the solver's prompt hook (e.g. retrieved
    skills added to the first observation); None shows the env's observations."""
    greedy = Solver(policy, env_id, env_kwargs, SamplingParams(temperature=0.0, max_tokens=max_tokens),
                    max_turns=max_turns, executor=executor, prompt=prompt).run(tasks, k=1, seed=seed, on_turn=on_turn)
    solved = sum(t.success for t in greedy)
    result = EvalResult(len(tasks), solved / max(1, len(tasks)), *wilson_interval(solved, len(tasks)),
                        mean_reward=sum(t.reward for t in greedy) / max(1, len(tasks)),
                        details=mean_details([t.verdict for t in greedy]), episodes=_marked(greedy, "greedy"))
    if k > 1:
        sampled = Solver(policy, env_id, env_kwargs, SamplingParams(temperature=temperature, max_tokens=max_tokens),
                         max_turns=max_turns, executor=executor, prompt=prompt).run(tasks, k=k, seed=seed + 1,
                                                                                    on_turn=on_turn)
        per_task = [sum(t.success for t in group) for group in by_task(sampled, k)]
        estimate = sum(pass_at_k(k, c, k) for c in per_task) / max(1, len(tasks))
        any_solved = sum(c > 0 for c in per_task)
        result.k, result.pass_at_k = k, estimate
        result.pass_at_k_low, result.pass_at_k_high = wilson_interval(any_solved, len(tasks))
        result.episodes += _marked(sampled, "sampled")
    return result


def evaluate_search(policy: Policy, env_id: str, env_kwargs: dict[str, Any], tasks: list[dict[str, Any]],
                    config: Any = None, *, max_tokens: int = 64, max_turns: int = 32, seed: int = 0) -> EvalResult:
    """Success of tree search (`sparring.search.TreeSearch` with `config`, a `SearchConfig`) on `tasks` of
    a multi-turn env: a task counts when the search's trace verifies. `details` adds the search's cost:
    `search/nodes` and `search/tokens` per task and `search/nodes_per_solved`."""
    from sparring.search import SearchConfig, TreeSearch

    found = TreeSearch(policy, env_id, env_kwargs, config or SearchConfig(), max_tokens=max_tokens,
                       max_turns=max_turns).run(tasks, seed=seed)
    solved = sum(t.success for t in found)
    nodes, tokens = sum(t.meta["nodes"] for t in found), sum(t.meta["tokens"] for t in found)
    details = {**mean_details([t.verdict for t in found]), "search/nodes": nodes / max(1, len(tasks)),
               "search/tokens": tokens / max(1, len(tasks))}
    if solved:
        details["search/nodes_per_solved"] = nodes / solved
    return EvalResult(len(tasks), solved / max(1, len(tasks)), *wilson_interval(solved, len(tasks)),
                      mean_reward=sum(t.reward for t in found) / max(1, len(tasks)), details=details,
                      episodes=_marked(found, "search"))


def _marked(trajectories: list[Trajectory], mode: str) -> list[Trajectory]:
    """The trajectories, each with `meta["mode"]` set: how it was sampled (greedy or at temperature)."""
    for trajectory in trajectories:
        trajectory.meta = {**trajectory.meta, "mode": mode}
    return trajectories
