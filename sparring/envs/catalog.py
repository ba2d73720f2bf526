"""What sparring registered: its env ids, their classes and knobs, and id look-ups that suggest the closest."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, cast

import gymnasium
from gymnasium.envs.registration import load_env_creator

import sparring.envs  # noqa: F401  (registers the environments)
from sparring.envs.base import TextEnv
from sparring.errors import SparringError, UnknownNameError


def env_ids() -> list[str]:
    """Every env id that sparring registered, sorted."""
    return sorted(spec.id for spec in gymnasium.registry.values()
                  if isinstance(spec.entry_point, str) and spec.entry_point.startswith("sparring."))


def env_class(env_id: str) -> type[TextEnv]:
    """The class behind a sparring env id, or behind your own text env (a `sparring.envs.base.TextEnv`) as
    Gymnasium names it: `module:Env-v0` imports `module` first, which registers it. A mistyped id gets the
    accepted ids and the closest one."""
    module, _, name = env_id.rpartition(":")
    if module:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise SparringError(f"env id {env_id!r}: cannot import {module!r} ({error}); a `module:Env-v0` id needs "
                                "the module on the Python path (PYTHONPATH), where it registers Env-v0") from None
    if name in gymnasium.registry and (module or name in env_ids()):
        entry = gymnasium.spec(name).entry_point  # "module:Class", or the class itself
        cls = load_env_creator(entry) if isinstance(entry, str) else entry
        if isinstance(cls, type) and issubclass(cls, TextEnv):
            return cls
    raise UnknownNameError("sparring env id", env_id, env_ids(),
                           "(your own env: `module:Env-v0`, a sparring.envs.base.TextEnv its module registers)")


def make(env_id: str, **kwargs: Any) -> gymnasium.Env:
    """`gymnasium.make` for sparring ids, with an error that lists every sparring id on a typo."""
    env_class(env_id)
    return gymnasium.make(env_id, **kwargs)


def text_env(env_id: str, **kwargs: Any) -> TextEnv:
    """The env of a sparring id (`make`'s checks and errors) without Gymnasium's wrappers: its family's own
    methods and hooks (`expert_actions`, `generate_task`, ...)."""
    return unwrapped(make(env_id, **kwargs))


def unwrapped(env: gymnasium.Env) -> TextEnv:
    """The `TextEnv` under the wrappers of `env`, an env that `make` (or `gymnasium.make`) gave for a sparring id."""
    return cast(TextEnv, env.unwrapped)  # env_class admits only TextEnv classes


def draw_tasks(env_id: str, env_kwargs: dict[str, Any], split: str, seed: int, start: int, n: int) -> list[dict[str, Any]]:
    """Items `start .. start+n-1` of `split`, through the env family's own generator."""
    env = text_env(env_id, split=split, **env_kwargs)
    return [env.generate_task(i, seed=seed).to_dict() for i in range(start, start + n)]


def describe(env_id: str, **kwargs: Any) -> dict[str, Any]:
    """Family, one-line description, knobs (with defaults), presets and splits of an env id; `arguments`: every
    keyword the env accepts (its own arguments, then its config's knobs) with type, default and help. With
    `kwargs`, those of the env they make (ReasoningGym-v0's knobs are its `dataset`'s)."""
    cls: type[TextEnv] | TextEnv = env_class(env_id)
    if kwargs:
        env = make(env_id, **kwargs)
        cls = unwrapped(env)  # an instance: its own config_class and presets
        env.close()
    return {
        "id": env_id,
        "family": cls.family,
        "description": (cls.__doc__ or "").strip().splitlines()[0],
        "knobs": {f.name: getattr(cls.config_class(), f.name) for f in dataclasses.fields(cls.config_class)},
        "presets": list(cls.presets),
        "splits": list(cls.splits),
        "arguments": arguments(cls),
    }


BASE_HELP = {  # what TextEnv itself takes, for families that do not say more
    "render_mode": "Gymnasium render mode: ansi (render() returns the last step as text) or human (printed)",
    "difficulty": "a preset of the knobs below (None: the knobs' defaults)",
    "split": "which items the generator draws (held-out splits never meet train)",
}


def arguments(cls: Any) -> list[dict[str, Any]]:
    """Every keyword `cls` accepts: `__init__`'s own (help from the `## Arguments` list of its docstring), then the
    fields of its `config_class` (help from their comments); each with `name`, `type`, `default`, `help`, `kind`."""
    import inspect
    import typing

    from sparring.config import field_help, type_name

    documented = argument_help(cls.__doc__ or "")
    init = type(cls).__init__ if not isinstance(cls, type) else cls.__init__  # a class, or an env instance
    hints = typing.get_type_hints(init)
    out = []
    for name, parameter in inspect.signature(init).parameters.items():
        if name == "self" or parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            continue
        help_text = documented.get(name) or BASE_HELP.get(name, "")
        if name == "difficulty" and cls.presets:
            help_text += f"; presets: {', '.join(cls.presets)}"
        if name == "split":
            help_text += f"; splits: {', '.join(cls.splits)}"
        out.append({"name": name, "type": type_name(hints.get(name, Any)), "default": parameter.default,
                    "help": help_text, "kind": "argument"})
    config, config_hints = cls.config_class(), typing.get_type_hints(cls.config_class)
    for f in dataclasses.fields(cls.config_class):
        if any(a["name"] == f.name for a in out):  # listed as an argument already (ReasoningGym's dataset, level)
            continue
        out.append({"name": f.name, "type": type_name(config_hints[f.name]), "default": getattr(config, f.name),
                    "help": field_help(cls.config_class, f.name), "kind": "knob"})
    return out


def argument_help(doc: str) -> dict[str, str]:
    """`name -> help` from the `## Arguments` section of an env docstring, written as a list:
    `- `name`: help` (the help may continue on the lines below, indented)."""
    import inspect
    import re

    section = re.search(r"^## Arguments\n(.*?)(?:^## |\Z)", inspect.cleandoc(doc), re.S | re.M)
    out: dict[str, str] = {}
    name = None
    for line in (section.group(1) if section else "").splitlines():
        item = re.match(r"- `(\w+)`:\s*(.*)", line.strip())
        if item:
            name = item.group(1)
            out[name] = item.group(2)
        elif name and line.startswith((" ", "\t")) and line.strip():
            out[name] += " " + line.strip()
        else:
            name = None
    return out
