"""What sparring registered: its env ids, their classes and knobs, and id look-ups that suggest the closest."""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium
from gymnasium.envs.registration import load_env_creator

import sparring.envs  # noqa: F401  (registers the environments)
from sparring.errors import UnknownNameError


def env_ids() -> list[str]:
    """Every env id that sparring registered, sorted."""
    return sorted(spec.id for spec in gymnasium.registry.values()
                  if isinstance(spec.entry_point, str) and spec.entry_point.startswith("sparring."))


def env_class(env_id: str) -> type:
    """The class behind a sparring env id; a mistyped id gets the accepted ids and the closest one."""
    if env_id not in env_ids():
        raise UnknownNameError("sparring env id", env_id, env_ids())
    return load_env_creator(gymnasium.spec(env_id).entry_point)


def make(env_id: str, **kwargs: Any) -> gymnasium.Env:
    """`gymnasium.make` for sparring ids, with an error that lists every sparring id on a typo."""
    env_class(env_id)
    return gymnasium.make(env_id, **kwargs)


def describe(env_id: str) -> dict[str, Any]:
    """Family, one-line description, knobs (with defaults), presets and splits of an env id."""
    cls = env_class(env_id)
    return {
        "id": env_id,
        "family": cls.family,
        "description": (cls.__doc__ or "").strip().splitlines()[0],
        "knobs": {f.name: getattr(cls.config_class(), f.name) for f in dataclasses.fields(cls.config_class)},
        "presets": list(cls.presets),
        "splits": list(cls.splits),
    }
