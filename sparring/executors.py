"""Executors: where the work that fans out runs. `local` runs it in this process, as sparring always has;
`ray` shards it over Ray tasks, on a Ray started here or on an existing cluster.

    executor:              # in a self-play config
      kind: ray            # local | ray
      address: null        # null: start Ray on this machine; "auto" or "ray://head:10001": join a cluster
      num_workers: 4       # shards (Ray tasks, one CPU each) per batch of work
      max_retries: 3       # a shard whose worker process died runs again, up to this many times

    >>> with make_executor(ExecutorConfig(kind="ray", num_workers=2)) as executor:
    ...     trajectories = Solver(policy, "Countdown-v0", executor=executor).run(tasks, k=4)
    ...     verdicts = executor.verify("Countdown-v0", {}, [(task, "<answer>8*3-2</answer>")])
    ...     results = executor.run_sandboxes([{"code": "print(1)"}, {"code": "print(input())", "stdin": "2"}])

What fans out: solver episodes (the env's verification runs inside them), batches of verdicts, and
sandbox runs. Each is split into contiguous shards, one Ray task per shard. A worker cannot be sent a
model, so it rebuilds the policy from `policy.spec` (a checkpoint folder, or the URL of a server every
worker shares) and keeps it for the next shard with the same spec; a sandbox is kept the same way.

Same seeds, same results up to batching. Shard boundaries fall on the policy's own batch boundaries
(`batch_size` prompts per generate call), every backend samples prompt i of a call from the stream
`seed + i` (hf: each batch from its first prompt's), and a shard's seed is moved on by the index of its
first task. So every first-turn prompt is generated in the same batch, from the same stream, as in a
local run: single-turn episodes, greedy and sampled, match the local ones exactly (tests/test_executors.py
checks it, a whole self-play round included). Later turns of multi-turn episodes are batched with
whichever episodes of the shard are still running, so there results match only as far as the model's
numerics ignore padding and the streams line up.

Faults. Ray runs a task again when its worker process dies (`max_retries` times); an error raised by
the work itself is not retried but raised here with the worker's traceback. Results are collected by
shard, and before anything is returned the executor checks that every item came back exactly once.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparring.envs.base import check_at_least, check_choice
from sparring.errors import SparringError

if TYPE_CHECKING:
    from sparring.solver import Solver
    from sparring.trajectories import Trajectory

KINDS = ("local", "ray")
RAY_HINT = 'the ray executor needs Ray: pip install "sparring[ray]"'


@dataclass
class ExecutorConfig:
    kind: str = "local"            # local: this process; ray: Ray tasks
    address: str | None = None     # ray only: None starts Ray here; "auto" or "ray://host:10001" joins a cluster
    num_workers: int = 2           # shards per batch of work (ray: tasks that run at once, cluster CPUs allowing)
    max_retries: int = 3           # ray only: reruns of a shard whose worker process died

    def __post_init__(self) -> None:
        check_choice("executor.kind", self.kind, KINDS)
        check_at_least("executor", self, {"num_workers": 1, "max_retries": 0})
        if self.address is not None:
            if not isinstance(self.address, str) or not self.address:
                raise ValueError(f"executor.address must be a Ray address string or null, got {self.address!r}")
            if self.kind != "ray":
                raise ValueError(f"executor.address is {self.address!r} but executor.kind is {self.kind!r}; an address "
                                 "is where a Ray cluster is: set executor.kind=ray, or drop the address")


def make_executor(config: ExecutorConfig | None = None, **kwargs: Any) -> Executor:
    """The executor of `config` (or of `ExecutorConfig(**kwargs)`). Use it as a context manager."""
    config = config or ExecutorConfig(**kwargs)
    return RayExecutor(config) if config.kind == "ray" else LocalExecutor(config)


def plan_shards(n: int, workers: int, align: int = 1) -> list[tuple[int, int]]:
    """Split `range(n)` into at most `workers` contiguous (start, stop) shards of nearly equal size whose
    boundaries fall on multiples of `align` (one shard when `n <= align`)."""
    if n <= 0:
        return []
    blocks = math.ceil(n / align)
    per = math.ceil(blocks / min(workers, blocks))
    return [(start * align, min(n, (start + per) * align)) for start in range(0, blocks, per)]


class Executor:
    """Where fanned-out work runs. Subclasses: `LocalExecutor`, `RayExecutor`."""

    kind = "?"

    def __init__(self, config: ExecutorConfig):
        self.config = config

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """`[fn(item) for item in items]`, in order; `fn` must be picklable by Ray's cloudpickle for `ray`."""
        raise NotImplementedError

    def run_episodes(self, solver: Solver, tasks: list[dict[str, Any]], k: int, *, seed: int = 0,
                     on_turn: Callable[[int, int], None] | None = None, first_task: int = 0) -> list[Trajectory]:
        """`solver`'s `k` episodes per task, as `Solver.run` returns them (`Solver.run` calls this)."""
        raise NotImplementedError

    def verify(self, env_id: str, env_kwargs: dict[str, Any], items: Sequence[tuple[dict[str, Any], str]]
               ) -> list[dict[str, Any]]:
        """The env's verdict (as a dict) on each (task, answer): reset with the task, step once with the answer."""
        shards = [(env_id, dict(env_kwargs), list(items[a:b])) for a, b in plan_shards(len(items), self.config.num_workers)]
        return [v for part in self._map_shards(_verify_shard, shards) for v in part]

    def run_sandboxes(self, requests: Sequence[dict[str, Any]], backend: str = "local", **limits: Any) -> list[Any]:
        """`make_sandbox(backend, **limits).run_many(requests)`, the requests shared out over the workers;
        `ExecResult`s in input order."""
        raise NotImplementedError

    def _map_shards(self, fn: Callable[[Any], Any], shards: list[Any]) -> list[Any]:
        return self.map(fn, shards)

    def close(self) -> None:
        """Release what the executor started (Ray, when it started it)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class LocalExecutor(Executor):
    """Everything in this process: the single-machine path, unchanged."""

    kind = "local"

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        return [fn(item) for item in items]

    def run_episodes(self, solver: Solver, tasks: list[dict[str, Any]], k: int, *, seed: int = 0,
                     on_turn: Callable[[int, int], None] | None = None, first_task: int = 0) -> list[Trajectory]:
        return solver.play(tasks, k, seed=seed, on_turn=on_turn, first_task=first_task)

    def run_sandboxes(self, requests: Sequence[dict[str, Any]], backend: str = "local", **limits: Any) -> list[Any]:
        from sparring.sandboxes import make_sandbox

        with make_sandbox(backend, **{"workers": self.config.num_workers, **limits}) as sandbox:
            return sandbox.run_many(requests)


class RayExecutor(Executor):
    """Shards as Ray tasks (one CPU each), retried when their worker process dies."""

    kind = "ray"

    def __init__(self, config: ExecutorConfig):
        super().__init__(config)
        try:
            import ray
            import ray.exceptions  # what _map_shards catches (ray imports it too)
        except ImportError as error:
            raise ImportError(RAY_HINT) from error
        self.ray = ray
        self.started = connect_ray(config.address)
        self._task = ray.remote(num_cpus=1, max_retries=config.max_retries)(_run_shard)

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        shards = [list(items[a:b]) for a, b in plan_shards(len(items), self.config.num_workers)]
        return [out for part in self._map_shards(_map_items, [(fn, shard) for shard in shards]) for out in part]

    def _map_shards(self, fn: Callable[[Any], Any], shards: list[Any],
                    on_done: Callable[[int], None] | None = None) -> list[Any]:
        """`fn(shard)` for each shard as one Ray task each; results in shard order. `on_done(i)` as shard i ends."""
        ray = self.ray
        refs = [self._task.remote(fn, shard) for shard in shards]
        index = {ref: i for i, ref in enumerate(refs)}
        results: list[Any] = [None] * len(refs)
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            i = index[done[0]]
            try:
                results[i] = ray.get(done[0])
            except ray.exceptions.RayTaskError as error:  # the work raised: not retried, the worker's traceback
                for ref in pending:
                    ray.cancel(ref, force=True)
                raise error.as_instanceof_cause() from None
            except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                    ray.exceptions.OutOfMemoryError) as error:
                for ref in pending:
                    ray.cancel(ref, force=True)
                raise SparringError(f"shard {i} of {len(refs)} lost its worker {self.config.max_retries + 1} times "
                                    f"(executor.max_retries={self.config.max_retries}): {error}") from error
            if on_done:
                on_done(i)
        return results

    def run_episodes(self, solver: Solver, tasks: list[dict[str, Any]], k: int, *, seed: int = 0,
                     on_turn: Callable[[int, int], None] | None = None, first_task: int = 0) -> list[Trajectory]:
        spec = getattr(solver.policy, "spec", None)
        if spec is None:
            raise SparringError(f"the {type(solver.policy).__name__} policy {solver.policy.name!r} has no spec, so Ray "
                                "workers cannot rebuild it: a model is never shipped to them. Load it from its "
                                "checkpoint folder (HFPolicy(path), make_policy('hf', path=...)), or use a server "
                                "every worker can reach (make_policy('openai', base_url=...))")
        batch = getattr(solver.policy, "batch_size", None)  # prompts per generate call, first turn: batch // k
        align = max(1, batch // k) if isinstance(batch, int) and batch > 0 else 1
        plan = plan_shards(len(tasks), self.config.num_workers, align)
        recipe = {"env_id": solver.env_id, "env_kwargs": solver.env_kwargs, "params": solver.params,
                  "max_turns": solver.max_turns, "role": solver.role, "prompt": solver.prompt}
        shards = [(spec, recipe, tasks[a:b], k, seed, first_task + a) for a, b in plan]
        remaining = [len(tasks) * k]

        def done(i: int) -> None:
            remaining[0] -= (plan[i][1] - plan[i][0]) * k
            if on_turn:
                on_turn(0, remaining[0])

        if on_turn:
            on_turn(0, remaining[0])
        trajectories = [t for part in self._map_shards(_play_shard, shards, done) for t in part]
        account(trajectories, len(tasks), k, first_task)
        return trajectories

    def run_sandboxes(self, requests: Sequence[dict[str, Any]], backend: str = "local", **limits: Any) -> list[Any]:
        settings = {"backend": backend, **limits, "workers": 1}
        shards = [(settings, list(requests[a:b])) for a, b in plan_shards(len(requests), self.config.num_workers)]
        return [r for part in self._map_shards(_sandbox_shard, shards) for r in part]

    def close(self) -> None:
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()
        self.started = False


def connect_ray(address: str | None = None, **init_kwargs: Any) -> bool:
    """Start Ray here (`address=None`) or join the cluster at `address`, unless Ray is already up in this
    process; True when this call started it. Workers import the `sparring` this process imported (shipped
    as a `py_modules` runtime env), so a cluster runs the driver's code."""
    import ray

    if ray.is_initialized():
        return False
    runtime_env = {"py_modules": [str(Path(__file__).resolve().parent)],  # the sparring package
                   "env_vars": {"TOKENIZERS_PARALLELISM": "false"}}
    ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False,
             runtime_env=runtime_env, **init_kwargs)
    return True


def account(trajectories: list[Trajectory], n_tasks: int, k: int, first_task: int = 0) -> None:
    """Check that every (task, sample) is there exactly once, in order; a SparringError otherwise."""
    seen = [(t.meta.get("task_index"), t.meta.get("sample")) for t in trajectories]
    expected = [(i, s) for i in range(first_task, first_task + n_tasks) for s in range(k)]
    if seen != expected:
        missing = sorted(set(expected) - set(seen))[:5]
        repeated = sorted({x for x in seen if seen.count(x) > 1})[:5]
        raise SparringError(f"the executor returned {len(seen)} episodes for {n_tasks} tasks x k={k}: missing "
                            f"{missing}, repeated {repeated} (task_index, sample); a shard was lost or counted twice")


# ---- what runs in a worker ----------------------------------------------------------------------

_CACHE: dict[str, tuple[str, Any]] = {}  # per worker process: the policy and the sandbox last built, by spec


def _cached(kind: str, spec: dict[str, Any], build: Callable[[], Any]) -> Any:
    key = json.dumps(spec, sort_keys=True, default=repr)
    held = _CACHE.get(kind)
    if held is None or held[0] != key:
        if held is not None and hasattr(held[1], "close"):
            held[1].close()
        _CACHE[kind] = (key, build())
    return _CACHE[kind][1]


def _run_shard(fn: Callable[[Any], Any], shard: Any) -> Any:
    return fn(shard)


def _map_items(shard: tuple[Callable[[Any], Any], list[Any]]) -> list[Any]:
    fn, items = shard
    return [fn(item) for item in items]


def _play_shard(shard: tuple[Any, ...]) -> list[Any]:
    from sparring.policies.policy import make_policy
    from sparring.solver import Solver

    spec, recipe, tasks, k, seed, first_task = shard
    weights = Path(spec["path"]) / "config.json" if "path" in spec else None  # a checkpoint rewritten in place reloads
    version = weights.stat().st_mtime_ns if weights is not None and weights.exists() else None
    policy = _cached("policy", {**spec, "version": version}, lambda: make_policy(**spec))
    return Solver(policy, **recipe).play(tasks, k, seed=seed, first_task=first_task)


def _verify_shard(shard: tuple[str, dict[str, Any], list[tuple[dict[str, Any], str]]]) -> list[dict[str, Any]]:
    from sparring.envs.grading import EnvGrader

    env_id, env_kwargs, items = shard
    grader = EnvGrader(env_id, env_kwargs)
    try:
        return [grader.grade(task, answer) for task, answer in items]
    finally:
        grader.env.close()


def _sandbox_shard(shard: tuple[dict[str, Any], list[dict[str, Any]]]) -> list[Any]:
    from sparring.sandboxes import make_sandbox

    settings, requests = shard
    sandbox = _cached("sandbox", settings, lambda: make_sandbox(**settings))
    return sandbox.run_many(requests)
