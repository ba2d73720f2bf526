"""Comparing tool-use world snapshots: tau-bench's state hash, and in words which parts of two states differ."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical(state: dict[str, Any]) -> dict[str, Any]:
    """What a state hash compares: trailing whitespace of files ignored, calendar events without their ids
    (ids depend on the order events were added), table rows as a sorted multiset."""
    return {
        "now": state["now"],
        "files": {p: c.rstrip() for p, c in state["files"].items()},
        "dirs": sorted(state["dirs"]),
        "kv": state["kv"],
        "calendar": sorted([e["date"], e["start"], e["end"], e["title"]] for e in state["calendar"]),
        "db": {name: {"columns": t["columns"], "rows": sorted(json.dumps(r) for r in t["rows"])}
               for name, t in state["db"].items()},
    }


def state_hash(state: dict[str, Any]) -> str:
    """tau-bench's check: the SHA-256 of the canonical JSON of a snapshot."""
    text = json.dumps(canonical(state), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def state_diff(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """In words, which parts of `actual` differ from `expected` (what a failed state check tells the model)."""
    a, b = canonical(expected), canonical(actual)
    out = _mapping_diff(a["files"], b["files"], lambda path: f"file {path}", "has the wrong content")
    if a["dirs"] != b["dirs"]:
        out.append("the folders differ")
    out += _mapping_diff(a["kv"], b["kv"], lambda key: f"key {key!r}", "has the wrong value")
    if a["calendar"] != b["calendar"]:
        out.append("the calendar's events differ")
    for table in sorted(set(a["db"]) | set(b["db"])):
        if a["db"].get(table) != b["db"].get(table):
            out.append(f"table {table} differs")
    return out


def _mapping_diff(expected: dict[str, Any], actual: dict[str, Any], name: Any, wrong: str) -> list[str]:
    """Each entry of two mappings that is missing, extra or different, in words."""
    out = []
    for key in sorted(set(expected) | set(actual)):
        if key not in actual:
            out.append(f"{name(key)} is missing")
        elif key not in expected:
            out.append(f"{name(key)} should not exist")
        elif expected[key] != actual[key]:
            out.append(f"{name(key)} {wrong}")
    return out
