"""Run configs: YAML gives defaults, `key=value` overrides (dotted keys for nested sections), unknown keys
are errors that suggest the closest key. Configs are plain dataclasses; this module only fills them."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from sparring.errors import UnknownNameError

T = TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "") -> T:
    """Build dataclass `cls` from `data`, recursing into nested dataclass fields; every key must exist."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"config section {where or '(top level)'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in data.items():
        if key not in fields:
            raise UnknownNameError("config key", f"{where}{key}", [f"{where}{name}" for name in fields])
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            # a partial section keeps the parent's defaults for that section, not just the section class's
            default = fields[key].default_factory() if fields[key].default_factory is not dataclasses.MISSING \
                else fields[key].default
            if dataclasses.is_dataclass(default) and isinstance(value, dict):
                value = merge_sections(hint, dataclasses.asdict(default), value)
            values[key] = from_dict(hint, value, f"{where}{key}.")
        else:
            values[key] = _check_type(f"{where}{key}", value, hint)
    try:
        return cls(**values)
    except TypeError as error:
        raise ValueError(f"config section {where or '(top level)'}: {error}") from error


def _check_type(name: str, value: Any, hint: Any) -> Any:
    """Light type checks for the scalar kinds configs use, with the offending key in the message."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    for option in options:
        origin = typing.get_origin(option) or option
        if option is type(None) and value is None:
            return value
        if origin is bool and isinstance(value, bool):
            return value
        if origin is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if origin is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if origin in (str, dict, list, tuple) and isinstance(value, origin if origin is not tuple else (tuple, list)):
            return tuple(value) if origin is tuple else value
        if option is Any:
            return value
    expected = " or ".join(getattr(o, "__name__", str(o)) for o in options)
    raise ValueError(f"config key {name} must be {expected}, got {value!r}")


def set_dotted(data: dict[str, Any], override: str) -> None:
    """Apply one `a.b.c=value` override to nested dict `data` (the value is parsed as YAML: 8, 0.5, true, [1, 2])."""
    if "=" not in override:
        raise ValueError(f"override {override!r} is not of the form key=value (e.g. expert_iteration.k=8)")
    key, _, text = override.partition("=")
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"override {override!r}: {part!r} is not a section")
    node[parts[-1]] = yaml.safe_load(text)


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def merge_sections(cls: type, base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """`deep_merge` that descends only into `cls`'s nested dataclass sections: a plain dict field (an env's
    `kwargs`) is replaced whole, so another env's knobs never leak in from the defaults."""
    hints, out = typing.get_type_hints(cls), dict(base)
    for key, value in update.items():
        section = hints.get(key)
        if dataclasses.is_dataclass(section) and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_sections(section, out[key], value)
        else:
            out[key] = value
    return out


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] = (), base: dict | None = None) -> T:
    """`cls` from its defaults, then `base`, then the YAML file at `path`, then `overrides`."""
    data = dict(base or {})
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path} must hold a YAML mapping, got {type(loaded).__name__}")
        data = deep_merge(data, loaded)
    for override in overrides:
        set_dotted(data, override)
    return from_dict(cls, data)


def to_dict(config: Any) -> dict[str, Any]:
    """A config as plain data (tuples as lists), ready for YAML."""
    def plain(value: Any) -> Any:
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value
    return plain(dataclasses.asdict(config))


def dump_yaml(config: Any) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)
