"""Run configs: YAML gives defaults, `key=value` overrides (dotted keys for nested sections), unknown keys
are errors that suggest the closest key. Configs are plain dataclasses; this module only fills them."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from sparring.errors import UnknownNameError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")  # a config class: a dataclass


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
        hint, field = hints[key], fields[key]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            # a partial section keeps the parent's defaults for that section, not just the section class's
            default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
            if dataclasses.is_dataclass(default) and not isinstance(default, type) and isinstance(value, dict):
                value = merge_section(hint, dataclasses.asdict(default), value)
            values[key] = from_dict(hint, value, f"{where}{key}.")
        else:
            values[key] = _check_type(f"{where}{key}", value, hint)
    try:
        return cls(**values)
    except TypeError as error:
        raise ValueError(f"config section {where or '(top level)'}: {error}") from error


_YAML11_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


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
        if origin is float and isinstance(value, str) and _YAML11_FLOAT.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string; people mean the number
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


def merge_section(cls: type, default: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """`update` over `default` for dataclass `cls`: nested dataclass sections merge key by key, any other value
    (a dict such as env.kwargs included) is replaced whole, so a config for another env keeps none of the
    default env's arguments."""
    hints, out = typing.get_type_hints(cls), dict(default)
    for key, value in update.items():
        hint = hints.get(key)
        nested = isinstance(out.get(key), dict) and isinstance(value, dict)
        out[key] = merge_section(hint, out[key], value) if nested and isinstance(hint, type) \
            and dataclasses.is_dataclass(hint) else value
    return out


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = (),
                base: dict | None = None) -> T:
    """`cls` from its defaults, then `base`, then the YAML file at `path`, then `overrides`."""
    data = dict(base or {})
    if path is not None:
        loaded = read_yaml(path) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path} must hold a YAML mapping, got {type(loaded).__name__}")
        data = deep_merge(data, loaded)
    for override in overrides:
        set_dotted(data, override)
    return from_dict(cls, data)


def read_yaml(path: str | Path) -> Any:
    """The YAML document at `path`; a missing file or malformed YAML is a one-line error naming the file."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ValueError(f"config file {str(path)!r} does not exist (shipped configs are in configs/, e.g. "
                         "configs/countdown-ei.yaml)") from None
    except OSError as error:
        raise ValueError(f"config file {str(path)!r} cannot be read: {error.strerror or error}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ValueError(f"config file {str(path)!r} is not valid YAML{where}: {problem}") from None


def to_dict(config: Any) -> dict[str, Any]:
    """A config as plain data (tuples as lists), ready for YAML."""
    return _plain(dataclasses.asdict(config))


def _plain(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def dump_yaml(config: Any) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def field_help(cls: type, name: str) -> str:
    """One line of help for field `name` of dataclass `cls`: its `metadata["help"]` (as TRL's HfArgumentParser
    reads it), else the comment that documents it in the source (on its line, or the lines right above)."""
    for f in dataclasses.fields(cls):
        if f.name == name and f.metadata.get("help"):
            return str(f.metadata["help"])
    return _source_comments(cls).get(name, "")


_FIELD = re.compile(r"\s*([A-Za-z_]\w*)\s*:")


def _source_comments(cls: type) -> dict[str, str]:
    """Field name -> the comment that documents it in `cls`'s source: the one on its line, else the block of
    comment lines right above it. Read with `tokenize`, so `#` inside strings is not a comment."""
    import inspect
    import io
    import textwrap
    import tokenize

    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # no source (frozen, built at runtime): no comments to read
        return {}
    comments: dict[int, str] = {}  # line number -> comment text
    code_lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
        elif token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            code_lines.update(range(token.start[0], token.end[0] + 1))
    names = {f.name for f in dataclasses.fields(cls)}
    lines, out = source.splitlines(), {}
    for number, line in enumerate(lines, start=1):
        match = _FIELD.match(line)
        if not match or match.group(1) not in names or match.group(1) in out or line[:1].strip():
            continue
        if number in comments:
            out[match.group(1)] = comments[number]
            continue
        above, n = [], number - 1
        while n in comments and n not in code_lines:
            above.insert(0, comments[n])
            n -= 1
        out[match.group(1)] = " ".join(above)
    return out


def annotated_yaml(config: Any) -> str:
    """`config` as YAML that loads back to the same config, every key preceded by a one-line `# help` comment
    (what `sparring selfplay --print-config` prints)."""
    lines: list[str] = []

    def walk(node: Any, indent: str) -> None:
        hints = typing.get_type_hints(type(node))
        for f in dataclasses.fields(node):
            value, help_text = getattr(node, f.name), field_help(type(node), f.name)
            kind = type_name(hints[f.name])
            lines.append(f"{indent}# {help_text + ' ' if help_text else ''}({kind})" if not dataclasses.is_dataclass(value)
                         else f"{indent}# {help_text or f.name}")
            if dataclasses.is_dataclass(value):
                lines.append(f"{indent}{f.name}:")
                walk(value, indent + "  ")
            else:
                shown = yaml.safe_dump(_plain(value), default_flow_style=True, width=10**6).strip()
                shown = shown.removesuffix("\n...").removesuffix("...").strip()
                lines.append(f"{indent}{f.name}: {shown}")

    walk(config, "")
    return "\n".join(lines) + "\n"


def type_name(hint: Any) -> str:
    """`int | tuple[int, int]` for a type hint, as people write it."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " | ".join(type_name(h) for h in typing.get_args(hint))
    if hint is type(None):
        return "None"
    if typing.get_origin(hint) is not None:
        args = ", ".join("..." if a is Ellipsis else type_name(a) for a in typing.get_args(hint))
        return f"{typing.get_origin(hint).__name__}[{args}]"
    return getattr(hint, "__name__", str(hint))
