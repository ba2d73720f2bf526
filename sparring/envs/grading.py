"""Grading helpers: a model's completion as text, one action graded on a task as the env grades it, and the final
answer an attempt gives (its family's `answer_key`), which majority votes and preference pairs compare."""

from __future__ import annotations

import functools
from typing import Any

from sparring.envs.base import TextEnv
from sparring.envs.catalog import env_class, env_ids, make
from sparring.trajectories import Trajectory


def completion_text(completion: Any) -> str:
    """The text of a completion: a string as it is; a conversation's last message's content (text parts joined)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        content = completion[-1].get("content") or ""
        if isinstance(content, list):  # typed content blocks
            return "".join(part.get("text") or "" for part in content if isinstance(part, dict))
        return content if isinstance(content, str) else str(content)
    if isinstance(completion, list) and not completion:
        return ""
    raise TypeError(f"a completion must be a string or a list of message dicts, got {type(completion).__name__}")


class EnvGrader:
    """Grades one action on a task as the env does: reset with the task, step once, read the verdict.

    An action that does not end the episode (a multi-turn env) gets reward 0, as an unfinished episode does.
    """

    def __init__(self, env_id: str, env_kwargs: dict[str, Any] | None = None):
        self.env_id, self.env_kwargs = env_id, dict(env_kwargs or {})
        self.env = make(env_id, **self.env_kwargs)

    def grade(self, task: dict[str, Any], action: str) -> dict[str, Any]:
        self.env.reset(options={"task": task})
        _, _, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            return info["verdict"]
        return {"reward": 0.0, "success": False, "feedback": "the episode did not end after one action", "details": {}}


@functools.lru_cache(maxsize=None)
def family_of(env_id: str) -> type[TextEnv]:
    """The env class whose family hooks apply to trajectories of `env_id`; `TextEnv` (the defaults) for an id
    sparring did not register."""
    found = env_class(env_id) if env_id in env_ids() else TextEnv
    return found if isinstance(found, type) and issubclass(found, TextEnv) else TextEnv


def answer_key(trajectory: Trajectory) -> str | None:
    """The final answer an attempt votes with: its env family's `answer_key` (by default its last action's text)."""
    return family_of(trajectory.env_id).answer_key(trajectory.task, [turn.action for turn in trajectory.turns],
                                                   trajectory.verdict)
