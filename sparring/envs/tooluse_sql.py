"""The tool-use world's database: `sqlite3`'s `:memory:` behind an authorizer that admits plain table statements
only (no ATTACH or VACUUM INTO, no PRAGMA, no extensions), with caps on work, length and result size; and the
loader that checks a snapshot's tables and creates them.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from sparring.envs.tooluse_checks import MAX_VALUE_CHARS, ToolError

MAX_TABLES = 20
MAX_COLUMNS = 20
MAX_ROWS = 2_000
MAX_SQL_CHARS = 2_000
MAX_RESULT_ROWS = 50
MAX_SQL_STEPS = 2_000  # progress-handler calls, each after 1,000 virtual-machine instructions
COLUMN_TYPES = ("INTEGER", "REAL", "TEXT", "INTEGER PRIMARY KEY")

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")

_READ_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
_WRITE_ACTIONS = _READ_ACTIONS | {sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE}
_DENIED_FUNCTIONS = {"load_extension", "randomblob", "zeroblob", "readfile", "writefile", "edit", "fts3_tokenizer"}
_ACTION_NAMES = {getattr(sqlite3, f"SQLITE_{name}"): name.replace("_", " ") for name in (
    "CREATE_INDEX", "CREATE_TABLE", "CREATE_TEMP_INDEX", "CREATE_TEMP_TABLE", "CREATE_TEMP_TRIGGER",
    "CREATE_TEMP_VIEW", "CREATE_TRIGGER", "CREATE_VIEW", "DELETE", "DROP_INDEX", "DROP_TABLE", "DROP_TEMP_INDEX",
    "DROP_TEMP_TABLE", "DROP_TEMP_TRIGGER", "DROP_TEMP_VIEW", "DROP_TRIGGER", "DROP_VIEW", "INSERT", "PRAGMA",
    "READ", "SELECT", "TRANSACTION", "UPDATE", "ATTACH", "DETACH", "ALTER_TABLE", "REINDEX", "ANALYZE",
    "CREATE_VTABLE", "DROP_VTABLE", "FUNCTION", "SAVEPOINT", "RECURSIVE")}
_WRITE_NAMES = {"INSERT", "UPDATE", "DELETE"}


def _show(value: Any) -> str:
    """A database value as the model reads it."""
    if value is None:
        return "NULL"
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return f"{value:.1f}"
    return str(value)


def load_tables(connection: sqlite3.Connection, db: Any, create: bool) -> None:
    """Check the `db` part of a world snapshot, and with `create` make its tables on `connection`."""
    if not isinstance(db, dict) or len(db) > MAX_TABLES:
        raise ToolError(f"'db' must be a dict of at most {MAX_TABLES} tables: name -> {{'columns', 'rows'}}")
    if len({str(name).lower() for name in db}) < len(db):
        raise ToolError("two tables share a name (table names ignore case)")
    for name, table in db.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name.lower().startswith("sqlite"):
            raise ToolError(f"table names are identifiers like orders, got {name!r}")
        if not isinstance(table, dict) or set(table) != {"columns", "rows"}:
            raise ToolError(f"table {name!r} must be {{'columns': [[name, type], ...], 'rows': [[...], ...]}}")
        columns, rows = table["columns"], table["rows"]
        if not isinstance(columns, list) or not 1 <= len(columns) <= MAX_COLUMNS or not all(
                isinstance(c, list) and len(c) == 2 and isinstance(c[0], str) and _NAME.fullmatch(c[0])
                and c[1] in COLUMN_TYPES for c in columns):
            raise ToolError(f"table {name!r}: columns are 1 to {MAX_COLUMNS} [name, type] pairs with a type "
                            f"in {list(COLUMN_TYPES)}, got {columns!r}")
        if not isinstance(rows, list) or len(rows) > MAX_ROWS:
            raise ToolError(f"table {name!r}: rows must be a list of at most {MAX_ROWS} rows")
        for row in rows:
            if not isinstance(row, list) or len(row) != len(columns) or not all(
                    v is None or isinstance(v, str) and len(v) <= MAX_VALUE_CHARS
                    or isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < 2**63 for v in row):
                raise ToolError(f"table {name!r}: each row is a list of {len(columns)} values (text, numbers "
                                f"or null), got {row!r}")
        names = [c.lower() for c, _ in columns]
        if len(set(names)) < len(names):
            raise ToolError(f"table {name!r}: two columns share a name")
        for i, (_, kind) in enumerate(columns):
            keys = [row[i] for row in rows if row[i] is not None]
            if kind == "INTEGER PRIMARY KEY" and (len(set(keys)) < len(keys) or not all(
                    isinstance(k, int) for k in keys)):
                raise ToolError(f"table {name!r}: the INTEGER PRIMARY KEY values must be distinct integers")
        if not create:
            continue
        spec = ", ".join(f'"{c}" {t}' for c, t in columns)
        try:
            connection.execute(f'CREATE TABLE "{name}" ({spec})')
            connection.executemany(f'INSERT INTO "{name}" VALUES ({", ".join("?" * len(columns))})', rows)
        except sqlite3.Error as error:
            raise ToolError(f"table {name!r}: {error}") from None


def run_sql(connection: sqlite3.Connection, sql: str, *, write: bool) -> str:
    """Run `sql` on `connection` for sql_query (`write` False: one SELECT) or sql_execute (`write` True:
    INSERT, UPDATE or DELETE) behind the authorizer and the step limit; rows come back as `a|b` lines."""
    if not isinstance(sql, str) or not sql.strip():
        raise ToolError("the SQL must be a non-empty string")
    if len(sql) > MAX_SQL_CHARS:
        raise ToolError(f"the SQL is too long ({len(sql)} characters; at most {MAX_SQL_CHARS})")
    allowed = _WRITE_ACTIONS if write else _READ_ACTIONS
    denied: list[str] = []

    def authorize(action: int, arg1: Any, arg2: Any, database: Any, trigger: Any) -> int:
        if action == sqlite3.SQLITE_FUNCTION and str(arg2).lower() in _DENIED_FUNCTIONS:
            denied.append(f"the function {arg2}()")
        elif action not in allowed or database not in (None, "main"):
            denied.append(_ACTION_NAMES.get(action, "this kind of statement"))
        else:
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY

    steps = [0]

    def progress() -> int:
        steps[0] += 1
        return steps[0] > MAX_SQL_STEPS

    connection.set_authorizer(authorize)
    connection.set_progress_handler(progress, 1_000)
    try:
        cursor = connection.execute(sql)
        rows = cursor.fetchmany(MAX_RESULT_ROWS + 1) if cursor.description else []
    except (sqlite3.Error, sqlite3.Warning, ValueError, OverflowError) as error:
        message = str(error)
        if denied:
            tool_name = "sql_execute" if write else "sql_query"
            message = f"{denied[0]} is not allowed in {tool_name}"
            if not write and denied[0] in _WRITE_NAMES:
                message += "; use sql_execute to change the database"
        elif "interrupted" in message:
            message = "the query ran too long and was stopped"
        raise ToolError(f"SQL error: {message}") from None
    finally:
        connection.set_authorizer(None)
        connection.set_progress_handler(None, 0)
    if cursor.description is None:
        if not write:
            raise ToolError("sql_query only reads (one SELECT); use sql_execute to change the database")
        return f"ok, {max(cursor.rowcount, 0)} row(s) changed"
    header = "|".join(d[0] for d in cursor.description)
    lines = [header] + ["|".join(_show(v) for v in row) for row in rows[:MAX_RESULT_ROWS]]
    if len(rows) > MAX_RESULT_ROWS:
        lines.append(f"... (more than {MAX_RESULT_ROWS} rows; narrow the query)")
    return "\n".join(lines) if rows else header + "\n(no rows)"
