"""The tool-use world: a virtual file system, an in-memory SQLite database, a calendar, a key-value store and a
fixed clock, and the tools that act on them.

Nothing here touches the host. Files live in a dict under normalised absolute paths (a `..` that would climb
above `/` is refused: `tooluse_checks.py`); the database is `sqlite3`'s `:memory:` behind an authorizer that
admits plain table statements only (`tooluse_sql.py`). Tools are ordinary methods with Google-style
docstrings, marked `@tool`; their OpenAI function-calling schemas come from the signatures and docstrings
through `transformers.utils.get_json_schema`, and arguments are checked against those same schemas with
`jsonschema` before a tool runs. A tool that cannot do what it is asked raises `ToolError`, which the env
shows the model as an observation.

    >>> world = ToolWorld.from_snapshot({"now": "2026-03-02T09:00", "kv": {"color": "blue"}})
    >>> world.call("kv_get", {"key": "color"})
    'blue'
    >>> world.state_hash() == ToolWorld.from_snapshot(world.snapshot()).state_hash()
    True

A snapshot (what a task's `world` holds and what verification functions read) is plain JSON:
`{"now": "YYYY-MM-DDTHH:MM", "files": {path: text}, "dirs": [path, ...], "kv": {key: value},
"calendar": [{"id", "title", "date", "start", "end"}], "db": {table: {"columns": [[name, type], ...],
"rows": [[value, ...], ...]}}}`; `tooluse_state.py` hashes and compares snapshots.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import sqlite3
from fractions import Fraction
from typing import Any

from sparring.envs.expr import ExprError, format_value, parse
from sparring.envs.tooluse_checks import (
    MAX_VALUE_CHARS,
    ToolError,
    clock,
    free_slots,
    normalise_path,
    parent,
    parse_date,
    parse_time,
    tool,
)
from sparring.envs.tooluse_sql import MAX_SQL_CHARS, load_tables, run_sql
from sparring.envs.tooluse_state import state_hash

MAX_FILE_CHARS = 20_000
MAX_FILES = 500
MAX_KEY_CHARS = 100
MAX_KEYS = 500
MAX_EVENTS = 500
MAX_TITLE_CHARS = 100


def _plain(value: Any) -> Any:
    """A database value as JSON: blobs become their hex text, so a snapshot is always JSON."""
    return f"x'{value.hex()}'" if isinstance(value, bytes) else value


class ToolWorld:
    """One world: files, database, calendar, key-value store and clock, with the tools as methods.

    Build it from a snapshot (`from_snapshot`), act on it with `call(name, arguments)`, read it back with
    `snapshot()`; `state_hash()` fingerprints it for tau-bench-style comparisons.
    """

    def __init__(self) -> None:
        self.now_: dt.datetime = dt.datetime(2026, 3, 2, 9, 0)
        self.files: dict[str, str] = {}
        self.dirs: set[str] = {"/"}
        self.kv: dict[str, str] = {}
        self.events: list[dict[str, Any]] = []
        self.db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self.db.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        self.db.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_CHARS * 50)
        self.db.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_CHARS * 50)

    # ---- loading and saving ----------------------------------------------------------------------------
    @classmethod
    def from_snapshot(cls, data: Any, *, database: bool = True) -> ToolWorld:
        """A world from its JSON snapshot; anything malformed is a `ValueError` naming the field and the rule.
        With `database=False` the tables are checked but not created (a cheaper check of a snapshot)."""
        if not isinstance(data, dict):
            raise ValueError(f"a world snapshot is a dict, got {type(data).__name__}")
        known = {"now", "files", "dirs", "kv", "calendar", "db"}
        if set(data) - known:
            raise ValueError(f"unknown world field(s) {sorted(set(data) - known)}; accepted: {sorted(known)}")
        world = cls()
        try:
            world._load(data, database)
        except ToolError as error:
            world.close()
            raise ValueError(f"invalid world: {error}") from None
        return world

    def _load(self, data: dict[str, Any], database: bool = True) -> None:
        now = data.get("now", "2026-03-02T09:00")
        try:
            self.now_ = dt.datetime.strptime(now, "%Y-%m-%dT%H:%M")
        except (TypeError, ValueError):
            raise ToolError(f"'now' must be written YYYY-MM-DDTHH:MM, got {now!r}") from None
        dirs, files = data.get("dirs", []), data.get("files", {})
        if not isinstance(dirs, list) or not isinstance(files, dict):
            raise ToolError("'dirs' must be a list of paths and 'files' a dict of path -> text")
        for path in dirs:
            self.fs_mkdir(path)
        if len(files) > MAX_FILES:
            raise ToolError(f"at most {MAX_FILES} files, got {len(files)}")
        for path, content in files.items():
            self.fs_write(path, content)
        kv = data.get("kv", {})
        if not isinstance(kv, dict):
            raise ToolError("'kv' must be a dict of key -> text")
        for key, value in kv.items():
            self.kv_set(key, value)
        calendar = data.get("calendar", [])
        if not isinstance(calendar, list):
            raise ToolError("'calendar' must be a list of events")
        for event in calendar:
            if not isinstance(event, dict) or set(event) - {"id", "title", "date", "start", "end"} \
                    or not {"title", "date", "start", "end"} <= set(event):
                raise ToolError(f"a calendar event is {{'id', 'title', 'date', 'start', 'end'}}, got {event!r}")
            self.cal_add(event["title"], event["date"], event["start"], event["end"])
            if "id" in event:
                if not isinstance(event["id"], int) or isinstance(event["id"], bool) or event["id"] < 1 \
                        or any(e["id"] == event["id"] for e in self.events[:-1]):
                    raise ToolError(f"calendar event ids are distinct integers >= 1, got {event['id']!r}")
                self.events[-1]["id"] = event["id"]
        load_tables(self.db, data.get("db", {}), database)

    def copy(self) -> ToolWorld:
        return ToolWorld.from_snapshot(self.snapshot())

    def close(self) -> None:
        self.db.close()

    def snapshot(self) -> dict[str, Any]:
        """The whole world as JSON (the format `from_snapshot` reads and verification functions see)."""
        db = {}
        tables = self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' "
                                 "ORDER BY name").fetchall()
        for (name,) in tables:
            info = self.db.execute(f'PRAGMA table_info("{name}")').fetchall()
            columns = [[c[1], ("INTEGER PRIMARY KEY" if c[5] and c[2].upper() == "INTEGER" else c[2].upper())
                        if c[2].upper() in ("INTEGER", "REAL", "TEXT") else "TEXT"] for c in info]
            rows = [[_plain(v) for v in row] for row in self.db.execute(f'SELECT * FROM "{name}" ORDER BY rowid')]
            db[name] = {"columns": columns, "rows": rows}
        return {"now": self.now_.strftime("%Y-%m-%dT%H:%M"), "files": dict(sorted(self.files.items())),
                "dirs": sorted(self.dirs - {"/"}), "kv": dict(sorted(self.kv.items())),
                "calendar": copy.deepcopy(self.events), "db": db}

    def state_hash(self) -> str:
        return state_hash(self.snapshot())

    # ---- calling tools ---------------------------------------------------------------------------------
    def call(self, name: str, arguments: dict[str, Any]) -> str:
        """Run tool `name` with `arguments` (already checked by `check_arguments`); a failure is a `ToolError`."""
        if name not in TOOL_NAMES:
            raise ToolError(unknown_tool_message(name))
        problem = check_arguments(name, arguments)
        if problem:
            raise ToolError(problem)
        return getattr(self, name)(**coerce_arguments(name, arguments))

    # ---- file system -----------------------------------------------------------------------------------
    @tool
    def fs_list(self, path: str = "/") -> str:
        """List a folder of the file system: its files, then its subfolders (ending in /), one per line.

        Args:
            path: The folder, like /docs (default: the root /).
        """
        folder = normalise_path(path)
        if folder not in self.dirs:
            raise ToolError(f"no folder {folder}" + (" (it is a file)" if folder in self.files else ""))
        prefix = folder.rstrip("/") + "/"
        files = sorted(p[len(prefix):] for p in self.files if parent(p) == folder)
        dirs = sorted(d[len(prefix):] + "/" for d in self.dirs if d != "/" and parent(d) == folder)
        return "\n".join(files + dirs) or "(empty folder)"

    @tool
    def fs_read(self, path: str) -> str:
        """Read a text file.

        Args:
            path: The file, like /docs/notes.txt.
        """
        file = normalise_path(path)
        if file not in self.files:
            raise ToolError(f"no file {file}" + (" (it is a folder)" if file in self.dirs else ""))
        return self.files[file]

    @tool
    def fs_write(self, path: str, content: str) -> str:
        """Create or replace a text file with exactly the given content; missing folders are created.

        Args:
            path: The file, like /out/report.txt.
            content: The whole new content of the file.
        """
        file = normalise_path(path)
        if not isinstance(content, str):
            raise ToolError(f"the content of a file is text, got {type(content).__name__}")
        if len(content) > MAX_FILE_CHARS:
            raise ToolError(f"the content is too long ({len(content)} characters; at most {MAX_FILE_CHARS})")
        if file == "/" or file in self.dirs:
            raise ToolError(f"{file} is a folder")
        if file not in self.files and len(self.files) >= MAX_FILES:
            raise ToolError(f"the file system is full ({MAX_FILES} files)")
        folder = parent(file)
        while folder not in self.dirs:  # missing folders are created, unless a file is in the way
            if folder in self.files:
                raise ToolError(f"{folder} is a file, not a folder")
            folder = parent(folder)
        self._make_dirs(parent(file))
        self.files[file] = content
        return f"wrote {len(content)} characters to {file}"

    @tool
    def fs_delete(self, path: str) -> str:
        """Delete a file, or an empty folder.

        Args:
            path: The file or folder to delete.
        """
        target = normalise_path(path)
        if target in self.files:
            del self.files[target]
            return f"deleted {target}"
        if target == "/":
            raise ToolError("the root folder cannot be deleted")
        if target in self.dirs:
            if any(parent(p) == target for p in [*self.files, *self.dirs]):
                raise ToolError(f"the folder {target} is not empty")
            self.dirs.remove(target)
            return f"deleted {target}"
        raise ToolError(f"no file or folder {target}")

    @tool
    def fs_mkdir(self, path: str) -> str:
        """Create a folder, and any missing folders above it.

        Args:
            path: The folder to create, like /archive/2026.
        """
        folder = normalise_path(path)
        probe = folder
        while probe != "/":
            if probe in self.files:
                raise ToolError(f"{probe} is a file, not a folder")
            probe = parent(probe)
        if folder in self.dirs:
            return f"{folder} already exists"
        if len(self.dirs) >= MAX_FILES:
            raise ToolError(f"the file system is full ({MAX_FILES} folders)")
        self._make_dirs(folder)
        return f"created {folder}"

    def _make_dirs(self, folder: str) -> None:
        while folder not in self.dirs:
            self.dirs.add(folder)
            folder = parent(folder)

    @tool
    def fs_move(self, source: str, destination: str) -> str:
        """Move or rename a file. If the destination is an existing folder, the file keeps its name inside it.

        Args:
            source: The file to move.
            destination: The new path, or a folder to move it into.
        """
        src, dst = normalise_path(source), normalise_path(destination)
        if src not in self.files:
            raise ToolError(f"no file {src}" + (" (only files can be moved)" if src in self.dirs else ""))
        if dst in self.dirs:
            dst = dst.rstrip("/") + "/" + src.rsplit("/", 1)[1]
        if dst in self.dirs:
            raise ToolError(f"{dst} is a folder")
        if dst == src:
            return f"{src} is already there"
        content = self.files[src]
        self.fs_write(dst, content)
        del self.files[src]
        return f"moved {src} to {dst}"

    @tool
    def fs_search(self, text: str, path: str = "/") -> str:
        """Find the files under a folder whose content contains a text (case-sensitive), one path per line.

        Args:
            text: The text to look for.
            path: The folder to search in, with its subfolders (default: everything).
        """
        folder = normalise_path(path)
        if not isinstance(text, str) or not text:
            raise ToolError("the text to search for must be a non-empty string")
        if folder not in self.dirs:
            raise ToolError(f"no folder {folder}")
        prefix = folder.rstrip("/") + "/"
        found = sorted(p for p, content in self.files.items() if p.startswith(prefix) and text in content)
        return "\n".join(found) or "no file contains it"

    # ---- database --------------------------------------------------------------------------------------
    @tool
    def db_schema(self) -> str:
        """List the database's tables with their columns and types, one table per line."""
        lines = []
        for name, table in self.snapshot()["db"].items():
            lines.append(f"{name}({', '.join(f'{c} {t}' for c, t in table['columns'])})")
        return "\n".join(lines) or "(no tables)"

    @tool
    def sql_query(self, sql: str) -> str:
        """Run one read-only SQL query (SELECT) on the SQLite database; rows come back as `a|b` lines under a header.

        Args:
            sql: One SELECT statement, like SELECT name FROM employees WHERE dept = 'sales'.
        """
        return run_sql(self.db, sql, write=False)

    @tool
    def sql_execute(self, sql: str) -> str:
        """Run one SQL statement that changes the rows of a table: INSERT, UPDATE or DELETE.

        Args:
            sql: One statement, like UPDATE products SET stock = 5 WHERE sku = 'A1'.
        """
        return run_sql(self.db, sql, write=True)

    # ---- calendar --------------------------------------------------------------------------------------
    @tool
    def cal_list(self, date: str) -> str:
        """List the calendar's events on a day, in time order, as `#id start-end title` lines.

        Args:
            date: The day, written YYYY-MM-DD.
        """
        day = parse_date(date).isoformat()
        events = sorted((e for e in self.events if e["date"] == day), key=lambda e: (e["start"], e["end"], e["id"]))
        return "\n".join(f"#{e['id']} {e['start']}-{e['end']} {e['title']}" for e in events) or f"no events on {day}"

    @tool
    def cal_add(self, title: str, date: str, start: str, end: str) -> str:
        """Add an event to the calendar; its id comes back.

        Args:
            title: What the event is, like Team sync.
            date: The day, written YYYY-MM-DD.
            start: The start time, HH:MM (24-hour).
            end: The end time, HH:MM, after the start.
        """
        if not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE_CHARS or "\n" in title:
            raise ToolError(f"the title must be one line of 1 to {MAX_TITLE_CHARS} characters, got {title!r}")
        day = parse_date(date)
        begin, finish = parse_time(start, "start time"), parse_time(end, "end time")
        if finish <= begin:
            raise ToolError(f"the event must end after it starts ({start} - {end})")
        if len(self.events) >= MAX_EVENTS:
            raise ToolError(f"the calendar is full ({MAX_EVENTS} events)")
        event_id = max((e["id"] for e in self.events), default=0) + 1
        self.events.append({"id": event_id, "title": title, "date": day.isoformat(),
                            "start": clock(begin), "end": clock(finish)})
        return f"added event #{event_id}"

    @tool
    def cal_delete(self, event_id: int) -> str:
        """Delete a calendar event.

        Args:
            event_id: The event's id, as cal_list shows it (#7 is 7).
        """
        for i, event in enumerate(self.events):
            if event["id"] == event_id:
                del self.events[i]
                return f"deleted event #{event_id}"
        raise ToolError(f"no event #{event_id}")

    @tool
    def cal_free_slots(self, date: str, minutes: int) -> str:
        """List the free periods of at least some length in a working day (09:00-17:00), as start-end lines.

        Args:
            date: The day, written YYYY-MM-DD.
            minutes: The shortest free period wanted, in minutes.
        """
        day = parse_date(date).isoformat()
        if not 1 <= minutes <= 24 * 60:
            raise ToolError(f"minutes must be between 1 and 1440, got {minutes}")
        return "\n".join(f"{clock(a)}-{clock(b)}" for a, b in free_slots(self.events, day, minutes)) \
            or f"no free period of {minutes} minutes on {day}"

    # ---- key-value store -------------------------------------------------------------------------------
    @tool
    def kv_get(self, key: str) -> str:
        """Read the value stored under a key of the key-value store.

        Args:
            key: The key, like user:42:email.
        """
        if key not in self.kv:
            raise ToolError(f"no key {key!r}")
        return self.kv[key]

    @tool
    def kv_set(self, key: str, value: str) -> str:
        """Store a text value under a key, replacing any value it had.

        Args:
            key: The key.
            value: The value to store (numbers are stored as text).
        """
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS or any(ord(c) < 32 for c in key):
            raise ToolError(f"a key is 1 to {MAX_KEY_CHARS} printable characters, got {key!r}")
        if not isinstance(value, str) or len(value) > MAX_VALUE_CHARS:
            raise ToolError(f"a value is text of at most {MAX_VALUE_CHARS} characters")
        if key not in self.kv and len(self.kv) >= MAX_KEYS:
            raise ToolError(f"the store is full ({MAX_KEYS} keys)")
        self.kv[key] = value
        return f"stored {key}"

    @tool
    def kv_delete(self, key: str) -> str:
        """Delete a key and its value from the key-value store.

        Args:
            key: The key to delete.
        """
        if key not in self.kv:
            raise ToolError(f"no key {key!r}")
        del self.kv[key]
        return f"deleted {key}"

    @tool
    def kv_list(self, prefix: str = "") -> str:
        """List the keys that start with a prefix, with their values, as key=value lines in key order.

        Args:
            prefix: The start of the keys wanted (default: every key).
        """
        items = sorted((k, v) for k, v in self.kv.items() if k.startswith(prefix))
        return "\n".join(f"{k}={v}" for k, v in items) or f"no keys start with {prefix!r}"

    # ---- clock and arithmetic --------------------------------------------------------------------------
    @tool
    def now(self) -> str:
        """The current date, time and weekday, like 2026-03-02 09:00 Monday (the world's clock does not move)."""
        return self.now_.strftime("%Y-%m-%d %H:%M %A")

    @tool
    def date_add(self, date: str, days: int) -> str:
        """The date a number of days after (or, if negative, before) a date, with its weekday.

        Args:
            date: The date, written YYYY-MM-DD.
            days: How many days to add; negative goes back.
        """
        try:
            return (parse_date(date) + dt.timedelta(days=days)).strftime("%Y-%m-%d %A")
        except OverflowError:
            raise ToolError(f"{days} days from {date} is outside the calendar (years 1 to 9999)") from None

    @tool
    def date_diff(self, start: str, end: str) -> str:
        """The number of days from one date to another (negative if the end comes first).

        Args:
            start: The first date, YYYY-MM-DD.
            end: The second date, YYYY-MM-DD.
        """
        return str((parse_date(end, "end date") - parse_date(start, "start date")).days)

    @tool
    def calculate(self, expression: str) -> str:
        """Evaluate arithmetic exactly: whole numbers, + - * / and parentheses.

        Args:
            expression: The expression, like (12 + 30) * 2.
        """
        try:
            value = parse(expression, allow_unary=True).value
        except ExprError as error:
            raise ToolError(f"not an expression I can compute: {error}") from None
        return format_value(Fraction(value))


TOOL_NAMES: tuple[str, ...] = tuple(name for name, f in vars(ToolWorld).items() if getattr(f, "is_tool", False))


@functools.cache
def _schemas() -> dict[str, dict[str, Any]]:
    # from its own module: transformers' lazy re-export is invisible to type checkers
    from transformers.utils.chat_template_utils import get_json_schema

    world = ToolWorld.__new__(ToolWorld)  # bound methods without a database: only their signatures are read
    out = {}
    for name in TOOL_NAMES:
        schema = get_json_schema(getattr(world, name))
        schema["function"].pop("return", None)  # not part of OpenAI's format
        schema["function"]["parameters"]["additionalProperties"] = False
        out[name] = schema
    return out


@functools.cache
def _schema_texts() -> dict[str, str]:
    return {name: json.dumps(schema) for name, schema in _schemas().items()}


def tool_schemas(names: list[str] | tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """The OpenAI function-calling schemas of the tools `names` (all by default), generated from the
    methods' signatures and Google-style docstrings (fresh copies: changing them changes nothing here)."""
    texts = _schema_texts()
    return [json.loads(texts[name]) for name in (names or TOOL_NAMES)]


@functools.cache
def tool_parameters(name: str) -> tuple[str, ...]:
    """The parameter names of tool `name`, in signature order."""
    return tuple(_schemas()[name]["function"]["parameters"]["properties"])


@functools.cache
def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(_schemas()[name]["function"]["parameters"])


def unknown_tool_message(name: Any) -> str:
    from sparring.errors import unknown_name_message

    return unknown_name_message("tool", name if isinstance(name, str) else str(name)[:60], TOOL_NAMES)


def check_arguments(name: str, arguments: Any) -> str | None:
    """Why `arguments` do not fit tool `name`'s schema, in words (None when they do)."""
    if not isinstance(arguments, dict):
        return f"the arguments of {name} must be a JSON object, got {type(arguments).__name__}"
    errors = sorted(_validator(name).iter_errors(arguments), key=lambda e: list(e.path))
    if not errors:
        return None
    error = errors[0]
    where = f"argument {error.path[0]!r}" if error.path else "the arguments"
    params = _schemas()[name]["function"]["parameters"]
    signature = ", ".join(f"{p}: {s['type']}" + ("" if p in params.get("required", []) else " (optional)")
                          for p, s in params["properties"].items())
    message = error.message if len(error.message) <= 200 else error.message[:197] + "..."
    return f"bad arguments for {name}: {where}: {message}. {name} takes ({signature})"


def coerce_arguments(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Whole-valued numbers such as 3.0 as `int` where the schema asks for an integer."""
    properties = _schemas()[name]["function"]["parameters"]["properties"]
    return {k: int(v) if properties[k]["type"] == "integer" and isinstance(v, float) else v for k, v in arguments.items()}
