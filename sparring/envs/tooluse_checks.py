"""What the tools of the tool-use world share: `ToolError`, the `@tool` mark, and the checks of paths, dates and
times (used by the tools and by the snapshot loader), with the working day's free slots.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

MAX_PATH_CHARS = 200
MAX_VALUE_CHARS = 2_000
DAY_START, DAY_END = "09:00", "17:00"  # the working day that free slots are sought in

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"\d{2}:\d{2}")


class ToolError(Exception):
    """A tool could not do what it was asked (a missing file, bad SQL, ...): shown to the model, never raised to it."""


def tool(method: Callable) -> Callable:
    """Mark a `ToolWorld` method as a tool the model may call."""
    method.is_tool = True  # type: ignore[attr-defined]
    return method


def normalise_path(path: Any) -> str:
    """`path` as a normalised absolute path in the virtual file system (relative paths start at `/`).

    `.` and empty parts are dropped and `..` goes up one folder; a `..` above `/` is an escape and refused,
    as are paths that are not text, too long, or hold control characters or backslashes."""
    if not isinstance(path, str):
        raise ToolError(f"a path is text like /notes/a.txt, got {type(path).__name__}")
    if len(path) > MAX_PATH_CHARS:
        raise ToolError(f"the path is too long ({len(path)} characters; at most {MAX_PATH_CHARS})")
    if any(ord(c) < 32 or c == "\\" for c in path):
        raise ToolError(f"the path {path!r} holds a control character or a backslash; use / between folders")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise ToolError(f"the path {path!r} escapes the virtual file system (a '..' above /)")
            parts.pop()
        else:
            parts.append(part)
    return "/" + "/".join(parts)


def parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def parse_date(text: Any, what: str = "date") -> dt.date:
    if not isinstance(text, str) or not _DATE.fullmatch(text.strip()):
        raise ToolError(f"the {what} must be written YYYY-MM-DD, like 2026-03-02, got {text!r}")
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ToolError(f"{text!r} is not a real date") from None


def parse_time(text: Any, what: str = "time") -> int:
    """Minutes after midnight of an `HH:MM` time."""
    if not isinstance(text, str) or not _TIME.fullmatch(text.strip()):
        raise ToolError(f"the {what} must be written HH:MM (24-hour), like 14:30, got {text!r}")
    hours, minutes = int(text[:2]), int(text[3:5])
    if hours > 23 or minutes > 59:
        raise ToolError(f"{text!r} is not a time of day")
    return hours * 60 + minutes


def clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def free_slots(events: list[dict[str, Any]], day: str, minutes: int) -> list[tuple[int, int]]:
    """The free periods of at least `minutes` on `day` between DAY_START and DAY_END, as (start, end) minutes."""
    busy = sorted((parse_time(e["start"]), parse_time(e["end"])) for e in events if e["date"] == day)
    slots, cursor, close = [], parse_time(DAY_START), parse_time(DAY_END)
    for begin, finish in busy + [(close, close)]:
        begin, finish = min(max(begin, parse_time(DAY_START)), close), min(finish, close)
        if begin - cursor >= minutes:
            slots.append((cursor, begin))
        cursor = max(cursor, finish)
    return slots
