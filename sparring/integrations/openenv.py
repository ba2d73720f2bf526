"""Any sparring env as an OpenEnv server (`sparring serve ENV_ID`), for the stacks that train against OpenEnv.

    $ sparring serve TextNav-v0 --port 8000 difficulty=easy
    >>> from openenv.core import GenericEnvClient
    >>> with GenericEnvClient(base_url="http://127.0.0.1:8000").sync() as env:
    ...     result = env.reset(seed=3)                  # or reset(task={...}), reset(index=5, task_seed=0)
    ...     result = env.step({"text": "go north"})
    ...     result.observation["text"], result.reward, result.done, result.observation["verdict"]

Each WebSocket session gets its own env instance (`SUPPORTS_CONCURRENT_SESSIONS`), so sessions never see each
other's episodes, and a session's `reset(seed=...)` seeds its env exactly as `env.reset(seed=...)` does.
Actions are `{"text": ...}`; observations carry `text` (the env's observation), `task`, `verdict` (when the
episode ends, else None), `info` (the rest of the env's info), plus OpenEnv's `reward` and `done`.
"""

# What this file relies on in openenv-core 0.3.0 and openenv 0.10.0 (the same `openenv` module; the extra pins
# openenv-core, which installs beside verifiers 0.4.0: openenv 0.10.0 needs mcp < 2, verifiers mcp == 2.0.0)
# (openenv/core/env_server/{interfaces,types,http_server}.py):
# - `Environment` (abstract `reset(seed=None, episode_id=None, **kwargs)`, `step(action, timeout_s=None,
#   **kwargs)`, property `state`), with the class flag `SUPPORTS_CONCURRENT_SESSIONS`.
# - `Action`, `Observation` (fields done, reward, metadata; extra="forbid") and `State` (episode_id,
#   step_count; extra="allow"): pydantic models subclassed with our fields.
# - `create_fastapi_app(env_factory, action_cls, observation_cls, max_concurrent_envs=)` (0.10.0 adds
#   `env_name=`, `state_cls=`, passed where accepted): HTTP /reset /step /state /schema /health and the WebSocket /ws that EnvClient speaks; it
#   calls the factory once per WebSocket session and passes reset only the kwargs its signature accepts.
# - The client side (tests, `OpenEnvClientEnv`): `openenv.core.GenericEnvClient(base_url=...)`, `.sync()`,
#   `reset(**kwargs)` / `step(dict)` -> StepResult(observation: dict, reward, done).

from __future__ import annotations

import inspect
import json
from typing import Any, SupportsFloat

from sparring.integrations import require

__all__ = ["make_app", "serve"]

_MODELS: dict[str, Any] = {}


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _models() -> dict[str, Any]:
    """The pydantic models of the protocol (built once, on first use, so that importing this file needs no openenv)."""
    if _MODELS:
        return _MODELS
    require("openenv.core.env_server", "openenv")
    from openenv.core.env_server.types import Action, Observation, State
    from pydantic import Field

    class SparringAction(Action):
        """One action of a sparring env: the text the model wrote."""

        text: str = Field(description="the action as text (an answer, a command, a tool call...)")

    class SparringObservation(Observation):
        """What a sparring env answers: its text observation, the task, and the verdict once the episode ends."""

        text: str = Field(default="", description="the env's observation")
        task: dict[str, Any] = Field(default_factory=dict, description="the episode's task (the env's Task as a dict)")
        verdict: dict[str, Any] | None = Field(default=None, description="reward, success, feedback, details; "
                                                                         "set on the step that ends the episode")
        info: dict[str, Any] = Field(default_factory=dict, description="the rest of the env's info dict")

    class SparringState(State):
        """The session's env id, task and verdict (None while the episode runs)."""

        env_id: str = ""
        task: dict[str, Any] | None = None
        verdict: dict[str, Any] | None = None

    _MODELS.update(action=SparringAction, observation=SparringObservation, state=SparringState)
    return _MODELS


def environment_class(env_id: str, **env_kwargs: Any) -> type:
    """An `openenv` Environment class whose instances each hold one `env_id` env (made with `env_kwargs`)."""
    require("openenv.core.env_server", "openenv")
    from openenv.core.env_server.interfaces import Environment

    from sparring.envs.catalog import make

    models = _models()
    make(env_id, **env_kwargs).close()  # bad ids and kwargs fail here, not in every session

    class SparringEnvironment(Environment):
        SUPPORTS_CONCURRENT_SESSIONS = True  # one env instance per session, no shared state

        def __init__(self) -> None:
            super().__init__()
            # Gymnasium 1.4's PassiveEnvChecker breaks the first step after a first reset that raised (a bad
            # task from a client): it keeps no reset data and fails to unpack None. The envs pass check_env in
            # sparring's tests; a long-lived server goes without the checker.
            self.env = make(env_id, disable_env_checker=True, **env_kwargs)
            self._state = models["state"](env_id=env_id)

        def reset(self, seed: int | None = None, episode_id: str | None = None, task: dict[str, Any] | None = None,
                  index: int | None = None, task_seed: int | None = None, difficulty: str | None = None,
                  **kwargs: Any) -> Any:
            """Start an episode: `task` poses a task dict; `index` (with `task_seed`, default 0) poses item
            `index` of the env's split; `difficulty` draws from a preset; else the env draws a task. `seed`
            seeds this session's env as `env.reset(seed=...)` does."""
            if kwargs:
                raise ValueError(f"unknown reset argument(s) {sorted(kwargs)}; accepted: seed, episode_id, task, "
                                 "index, task_seed, difficulty")
            options = {k: v for k, v in (("task", task), ("index", index), ("difficulty", difficulty)) if v is not None}
            if index is not None:
                options["seed"] = task_seed or 0
            observation, info = self.env.reset(seed=seed, options=options)
            self._state = models["state"](env_id=env_id, episode_id=episode_id, step_count=0,
                                          task=_json_safe(info["task"]))
            return self._observation(observation, 0.0, False, info)

        def step(self, action: Any, timeout_s: float | None = None, **kwargs: Any) -> Any:
            if self._state.task is None:
                raise ValueError("call reset before step: this session has no episode yet")
            observation, reward, terminated, truncated, info = self.env.step(action.text)
            self._state.step_count += 1
            if "verdict" in info:
                self._state.verdict = _json_safe(info["verdict"])
            return self._observation(observation, reward, terminated or truncated, info)

        @property
        def state(self) -> Any:
            return self._state

        def close(self) -> None:
            self.env.close()

        def _observation(self, text: str, reward: SupportsFloat, done: bool, info: dict[str, Any]) -> Any:
            rest = {k: v for k, v in info.items() if k not in ("task", "verdict")}
            return models["observation"](text=text, reward=float(reward), done=bool(done),
                                         task=_json_safe(info["task"]), verdict=_json_safe(info.get("verdict")),
                                         info=_json_safe(rest))

    SparringEnvironment.__name__ = SparringEnvironment.__qualname__ = \
        "Sparring" + "".join(c for c in env_id if c.isalnum()) + "Environment"
    return SparringEnvironment


def make_app(env_id: str, *, max_sessions: int = 64, **env_kwargs: Any) -> Any:
    """The FastAPI app that serves `env_id` with OpenEnv's protocol, up to `max_sessions` WebSocket sessions at once."""
    if not isinstance(max_sessions, int) or isinstance(max_sessions, bool) or max_sessions < 1:
        raise ValueError(f"max_sessions must be an integer >= 1, got {max_sessions!r}")
    require("openenv.core.env_server", "openenv")
    from openenv.core.env_server.http_server import create_fastapi_app

    models = _models()
    named = {"env_name": env_id, "state_cls": models["state"]}  # openenv 0.10 takes them; openenv-core 0.3 does not
    accepted = inspect.signature(create_fastapi_app).parameters
    return create_fastapi_app(environment_class(env_id, **env_kwargs), models["action"], models["observation"],
                              max_concurrent_envs=max_sessions, **{k: v for k, v in named.items() if k in accepted})


def serve(env_id: str, host: str = "127.0.0.1", port: int = 8000, *, max_sessions: int = 64,
          **env_kwargs: Any) -> None:
    """Serve `env_id` on `host:port` until interrupted (uvicorn)."""
    import uvicorn

    app = make_app(env_id, max_sessions=max_sessions, **env_kwargs)
    uvicorn.run(app, host=host, port=port, log_level="warning")
