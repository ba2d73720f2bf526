"""The conformance suite, for any env: `sparring.check(env_or_id)` and `sparring check ENV`.

What a sparring env promises (the project's own envs are tested the same way in
tests/envs/test_conformance.py), checked on anyone's env, ours or a user's registered one:

- gymnasium: Gymnasium's own `check_env` passes, and raises no warning (a ResourceWarning, a library's unclosed
  file, is counted but not failed);
- determinism: two envs reset with the same seeds give the same observations, infos and steps;
- task round trip: `info["task"]` is JSON, and `reset(options={"task": ...})` poses the same observation;
- verdict: the step that ends an episode has `info["verdict"]` with `reward` (float), `success` (bool),
  `feedback` (str) and `details` (dict), all JSON;
- junk actions: garbage and hostile actions never raise and never succeed (one that is the expert's own answer
  to the task, as `True` may be, is skipped), and their episodes end;
- expert: where the env has `expert_actions()`, following it succeeds (an env without one skips);
- vector envs: `gymnasium.make_vec` (sync and async) gives each slot exactly what a plain env gives;
- timing: milliseconds per reset and per step, as measured here.

    >>> import sparring
    >>> report = sparring.check("Countdown-v0")
    >>> report.passed, [(r.name, r.status) for r in report.results]
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import json
import time
import traceback
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, SupportsFloat, cast

import gymnasium
from gymnasium.utils.env_checker import check_env

if TYPE_CHECKING:
    from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv

JUNK_ACTIONS: tuple[Any, ...] = (
    "", " ", "\x00", "\n\n\t", "\ud800", "\U0001f600" * 50, "9" * 100_000, "(" * 10_000, "<answer></answer>",
    "<answer>1/0</answer>", "<answer>9**9**9</answer>", "__import__('os').system('echo hacked')",
    "<answer>__import__('os').system('echo hacked')</answer>", "exec(\"open('/tmp/x', 'w')\")",
    '{"name": "x", "arguments": {}}', "go north", "take all", "stop", "True", "None", None, 42, b"\xff\xfe", ["list"],
)
MAX_JUNK_STEPS = 100
STATUSES = ("pass", "fail", "skip", "info")


@dataclass
class CheckResult:
    """One check: its name, `pass`/`fail`/`skip`/`info`, and why (what failed, or what was measured)."""

    name: str
    status: str
    detail: str = ""


@dataclass
class CheckReport:
    """Every check's result on one env; `passed` when none failed."""

    env: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not any(r.status == "fail" for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {"env": self.env, "passed": self.passed,
                "results": [{"name": r.name, "status": r.status, "detail": r.detail} for r in self.results]}


class CheckFailed(AssertionError):
    """A check's own failure, with the reason a person reads."""


def _factory(env_or_id: Any, env_kwargs: dict[str, Any]) -> tuple[str, Callable[[], gymnasium.Env], str | None,
                                                                   dict[str, Any]]:
    """A name for the report, a function making a fresh env, the registered id (None for an instance that was
    not made from one) and the arguments it is made with."""
    if isinstance(env_or_id, str):
        module, _, name = env_or_id.rpartition(":")  # Gymnasium's `module:id`: importing the module registers it
        try:
            if module:
                importlib.import_module(module)
            gymnasium.spec(name)
        except ImportError as error:
            raise ValueError(f"cannot import {module!r} for {env_or_id!r}: {error}") from None
        except gymnasium.error.Error as error:  # a mistyped id: Gymnasium's NameNotFound says "did you mean"
            raise ValueError(str(error)) from None
        return env_or_id, lambda: gymnasium.make(env_or_id, **env_kwargs), env_or_id, env_kwargs
    if isinstance(env_or_id, gymnasium.Env):
        spec = env_or_id.spec
        if spec is not None and spec.id in gymnasium.registry:
            kwargs = {**spec.kwargs, **env_kwargs}
            return spec.id, lambda: gymnasium.make(spec.id, **kwargs), spec.id, kwargs
        return type(env_or_id.unwrapped).__name__, lambda: copy.deepcopy(env_or_id), None, env_kwargs
    raise TypeError(f"check() takes an env id (str) or a gymnasium.Env, got {type(env_or_id).__name__}")


def _jsonable(value: Any, what: str) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as error:
        raise CheckFailed(f"{what} is not JSON: {error}") from None


def _verdict(info: Mapping[str, Any]) -> dict[str, Any]:
    if "verdict" not in info:
        raise CheckFailed("the step that ended the episode has no info['verdict']")
    verdict = _jsonable(info["verdict"], "info['verdict']")
    kinds = {"reward": (int, float), "success": bool, "feedback": str, "details": dict}
    if not isinstance(verdict, dict) or set(verdict) != set(kinds):
        raise CheckFailed(f"info['verdict'] must be a dict with exactly the keys {sorted(kinds)}, got "
                          f"{sorted(verdict) if isinstance(verdict, dict) else type(verdict).__name__}")
    for key, kind in kinds.items():
        if not isinstance(verdict[key], kind) or (key == "reward" and isinstance(verdict[key], bool)):
            raise CheckFailed(f"info['verdict'][{key!r}] has type {type(verdict[key]).__name__}")
    return verdict


def _expert(env: gymnasium.Env) -> list[Any] | None:
    """The expert's actions from the current state, or None where the env has no expert."""
    expert = getattr(env.unwrapped, "expert_actions", None)
    if expert is None:
        return None
    try:
        return list(expert())
    except NotImplementedError:
        return None


class _Checks:
    def __init__(self, make: Callable[[], gymnasium.Env], env_id: str | None, env_kwargs: Mapping[str, Any],
                 episodes: int, seed: int):
        self.make, self.env_id, self.env_kwargs, self.episodes, self.seed = make, env_id, env_kwargs, episodes, seed
        self.seeds = range(seed, seed + episodes)
        self.reset_s: list[float] = []
        self.step_s: list[float] = []

    def timed_reset(self, env: gymnasium.Env, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        start = time.perf_counter()
        result = env.reset(**kwargs)
        self.reset_s.append(time.perf_counter() - start)
        return result

    def timed_step(self, env: gymnasium.Env, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        start = time.perf_counter()
        result = env.step(action)
        self.step_s.append(time.perf_counter() - start)
        return result

    def gymnasium(self) -> str:
        env = self.make()
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("always")
            check_env(env.unwrapped)  # it renders in every render mode: "human" would print
        leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]  # a library's unclosed file, not the env's API
        warned = [w for w in caught if not issubclass(w.category, ResourceWarning)]
        if warned:
            raise CheckFailed("check_env warned: " + "; ".join(sorted({str(w.message).strip() for w in warned}))[:500])
        return "check_env passed with no warning" + (f" ({len(leaks)} ResourceWarning(s) ignored)" if leaks else "")

    def determinism(self) -> str:
        a, b = self.make(), self.make()
        observations = set()
        for seed in self.seeds:
            first, second = self.timed_reset(a, seed=seed), b.reset(seed=seed)
            if first != second:
                raise CheckFailed(f"two envs reset with seed={seed} differ: {str(first)[:120]!r} vs {str(second)[:120]!r}")
            observations.add(str(first[0]))
            for action in ["junk", *(_expert(a) or [])[:1]]:
                if self.timed_step(a, action)[:4] != b.step(action)[:4]:
                    raise CheckFailed(f"seed={seed}: the same action {action!r} gave different steps")
        if self.episodes > 2 and len(observations) == 1:
            raise CheckFailed(f"{self.episodes} different seeds all gave the same observation")
        return f"{self.episodes} seeds: same seed, same episode; {len(observations)} distinct first observations"

    def task_round_trip(self) -> str:
        env = self.make()
        for seed in self.seeds:
            observation, info = self.timed_reset(env, seed=seed)
            if "task" not in info:
                raise CheckFailed("reset's info has no 'task' (the task record that reset(options={'task': ...}) poses)")
            task = _jsonable(info["task"], "info['task']")
            again, info_again = self.timed_reset(env, options={"task": task})
            if again != observation or info_again.get("task") != info["task"]:
                raise CheckFailed(f"seed={seed}: reset(options={{'task': info['task']}}) posed another observation")
        return f"{self.episodes} tasks: info['task'] is JSON and poses the same observation again"

    def verdict(self) -> str:
        env = self.make()
        for seed in self.seeds:
            self.timed_reset(env, seed=seed)
            _, reward, _, _, info = self._until_end(env, "junk")
            _verdict(info)
            if not isinstance(reward, float):
                raise CheckFailed(f"step() returned a {type(reward).__name__} reward, not a float")
        return "reward, success, feedback and details, all JSON"

    def junk(self) -> str:
        env = self.make()
        skipped = 0
        for index, action in enumerate(JUNK_ACTIONS):
            self.timed_reset(env, seed=self.seeds[index % len(self.seeds)])  # the same tasks as the other checks
            expert = {str(a).strip().lower() for a in _expert(env) or []}
            if isinstance(action, str) and action.strip().lower() in expert:  # "True" may be the answer
                skipped += 1
                continue
            try:
                _, _, _, _, info = self._until_end(env, action)
            except CheckFailed:
                raise
            except Exception as error:  # noqa: BLE001  the point of the check
                raise CheckFailed(f"step({str(action)[:40]!r}) raised {type(error).__name__}: {error}") from None
            if _verdict(info)["success"]:
                raise CheckFailed(f"the junk action {str(action)[:60]!r} succeeded")
        return (f"{len(JUNK_ACTIONS) - skipped} garbage and hostile actions: none raised, none succeeded, every episode "
                f"ended" + (f" ({skipped} skipped: the expert's own answer there)" if skipped else ""))

    def _until_end(self, env: gymnasium.Env, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        for _ in range(MAX_JUNK_STEPS):
            result = self.timed_step(env, action)
            if result[2] or result[3]:
                return result
        raise CheckFailed(f"an episode of {str(action)[:40]!r} did not end within {MAX_JUNK_STEPS} steps")

    def expert(self) -> str:
        env = self.make()
        self.timed_reset(env, seed=self.seed)
        if _expert(env) is None:
            return "skip: the env has no expert_actions()"
        for seed in self.seeds:
            self.timed_reset(env, seed=seed)
            actions = _expert(env) or []
            if not actions:
                raise CheckFailed(f"seed={seed}: expert_actions() gave no action")
            for i, action in enumerate(actions):
                _, _, terminated, truncated, info = self.timed_step(env, action)
                if (terminated or truncated) != (i == len(actions) - 1):
                    raise CheckFailed(f"seed={seed}: the expert's episode ended at action {i + 1} of {len(actions)}")
            if not _verdict(info)["success"]:
                raise CheckFailed(f"seed={seed}: the expert failed: {_verdict(info)['feedback'][:200]}")
        return f"the expert solved {self.episodes} of {self.episodes} tasks"

    def vector(self) -> str:
        if self.env_id is None:
            return "skip: an env instance without a registered id cannot be rebuilt in vector workers"
        actions = ["junk", "<answer>1</answer>", "stop", "go north"]
        seeds: list[int | None] = [self.seed, self.seed + 1]  # as the vector envs take them
        expected = []
        for slot, seed in enumerate(seeds):
            env, done = self.make(), False
            steps = [env.reset(seed=seed)[0]]
            for action in actions:
                if done:  # Gymnasium's next-step autoreset
                    steps.append((env.reset()[0], 0.0, False, False))
                    done = False
                    continue
                observation, reward, terminated, truncated, _ = env.step(action)
                steps.append((observation, float(reward), bool(terminated), bool(truncated)))
                done = terminated or truncated
            expected.append(steps)
        for mode in ("sync", "async"):
            # these modes build these classes (make_vec types the base VectorEnv, whose reset takes one seed)
            envs = cast("SyncVectorEnv | AsyncVectorEnv",
                        gymnasium.make_vec(self.env_id, num_envs=2, vectorization_mode=mode, **self.env_kwargs))
            try:
                observations, _ = envs.reset(seed=seeds)
                if tuple(observations) != (expected[0][0], expected[1][0]):
                    raise CheckFailed(f"{mode}: reset observations differ from a plain env's")
                for t, action in enumerate(actions, start=1):
                    observations, rewards, terminated, truncated, _ = envs.step([action, action])
                    got = tuple(zip(observations, rewards.tolist(), terminated.tolist(), truncated.tolist()))
                    if got != (expected[0][t], expected[1][t]):
                        raise CheckFailed(f"{mode}: step {t} differs from a plain env's")
            finally:
                envs.close()
        return "sync and async vector envs give each slot exactly what a plain env gives"

    def timing(self) -> str:
        def ms(samples: list[float]) -> str:
            if not samples:
                return "n/a"
            ordered = sorted(samples)
            return f"median {1000 * ordered[len(ordered) // 2]:.2f} ms, max {1000 * ordered[-1]:.2f} ms"
        return f"reset: {ms(self.reset_s)} ({len(self.reset_s)}); step: {ms(self.step_s)} ({len(self.step_s)})"


CHECKS = ("gymnasium", "determinism", "task_round_trip", "verdict", "junk", "expert", "vector", "timing")


def check(env_or_id: Any, *, env_kwargs: Mapping[str, Any] | None = None, episodes: int = 10, seed: int = 0,
          only: tuple[str, ...] | None = None) -> CheckReport:
    """Run the conformance suite on an env id (with `env_kwargs`) or a `gymnasium.Env`; never raises for a failing
    env: each check's failure is in the report (`report.passed`, `report.results`)."""
    if not isinstance(episodes, int) or isinstance(episodes, bool) or episodes < 1:
        raise ValueError(f"episodes must be an integer >= 1, got {episodes!r}")
    for name in only or ():
        if name not in CHECKS:
            from sparring.errors import UnknownNameError

            raise UnknownNameError("check", name, CHECKS)
    env_kwargs = dict(env_kwargs or {})
    name, make, env_id, env_kwargs = _factory(env_or_id, env_kwargs)
    report = CheckReport(name)
    try:
        make().close()
    except Exception as error:  # noqa: BLE001  reported, not raised
        report.results.append(CheckResult("make", "fail", f"{type(error).__name__}: {error}"))
        return report
    checks = _Checks(make, env_id, env_kwargs, episodes, seed)
    for check_name in CHECKS:
        if only and check_name not in only:
            continue
        try:
            detail = getattr(checks, check_name)()
            status = "info" if check_name == "timing" else "skip" if detail.startswith("skip: ") else "pass"
            detail = detail.removeprefix("skip: ")
        except CheckFailed as failure:
            status, detail = "fail", str(failure)
        except Exception as error:  # noqa: BLE001  any other exception is the env's failure, with where it happened
            frame = traceback.extract_tb(error.__traceback__)[-1]
            status, detail = "fail", f"{type(error).__name__}: {str(error)[:300]} ({frame.filename}:{frame.lineno})"
        report.results.append(CheckResult(check_name, status, detail))
    return report


def print_report(report: CheckReport, console: Any) -> None:
    """The report as a table: one row per check, its result and why."""
    from rich.table import Table

    style = {"pass": "green", "fail": "bold red", "skip": "yellow", "info": "cyan"}
    table = Table(title=f"sparring check {report.env}")
    for column in ("check", "result", "detail"):
        table.add_column(column, overflow="fold")
    for result in report.results:
        table.add_row(result.name, f"[{style[result.status]}]{result.status}[/]", result.detail)
    console.print(table)
    failed = [r.name for r in report.results if r.status == "fail"]
    console.print(f"{report.env}: " + (f"[bold red]{len(failed)} failed[/] ({', '.join(failed)})" if failed
                                       else "[green]every check passed[/]"))
