"""Grading helpers: a model's completion as text, and one action graded on a task as the env grades it."""

from __future__ import annotations

from typing import Any

from sparring.envs.catalog import make


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
