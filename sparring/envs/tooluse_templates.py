"""The built-in task templates of ToolUse-v0, and the generator that instantiates them.

The templates live in `tooluse_templates_basic.py` (one part of the world each) and
`tooluse_templates_chains.py` (tools chained across parts); `tooluse_builder.py` holds the `Builder` they
draw a world with, the `Draft` they write and the `TEMPLATES` registry. `build_task` turns a draft into a
`ToolTask` in Code-as-Task form: built-in checks (the answer, and the final state's hash against the
solution's, as tau-bench does), the solution, and failure cases (doing nothing, stopping one call short, a
wrong answer, a collateral change). Every built-in task passes `validate_task`; the tests check that on
every template at every level.

Six templates are held out of training (`HELD_OUT`): they chain tools the training templates use, in new
combinations, and make the `test-unseen` split.
"""

from __future__ import annotations

import random
from typing import Any

from sparring.envs import tooluse_templates_basic, tooluse_templates_chains  # noqa: F401  (they register the templates)
from sparring.envs.tooluse_builder import TEMPLATES, Builder, Call, Draft, Redraw
from sparring.envs.tooluse_world import TOOL_NAMES

DONE = "done"

HELD_OUT = tuple(name for name, t in TEMPLATES.items() if t.held_out)
TRAINING = tuple(name for name, t in TEMPLATES.items() if not t.held_out)


# ---- from a draft to a Code-as-Task task ---------------------------------------------------------------

def _calls(calls: list[Call]) -> list[dict[str, Any]]:
    return [{"name": name, "arguments": dict(arguments)} for name, arguments in calls]


def build_task(name: str, builder: Builder, draft: Draft, max_turns: int) -> dict[str, Any]:
    """The task dict of a draft: checks, solution and failure cases (see the module docstring)."""
    from sparring.envs.tooluse_tasks import normalise_answer

    calls = _calls(draft.calls)
    answer = draft.answer if draft.answer is not None else DONE
    checks: list[dict[str, Any]] = [{"kind": "state_hash"}]
    failures: list[dict[str, Any]] = [{"calls": [], "answer": ""}]  # doing nothing
    if draft.answer is not None:
        checks.insert(0, {"kind": "answer", "equals": draft.answer, **({"unordered": True} if draft.unordered else {})})
        wrong = dict.fromkeys(w for w in draft.wrong_answers if normalise_answer(w) != normalise_answer(draft.answer))
        failures += [{"calls": calls, "answer": w} for w in wrong]
    else:
        failures.append({"calls": calls[:-1], "answer": DONE})  # one call short
    scratch = builder.fresh(lambda: f"scratch:{builder.word()}")
    failures.append({"calls": calls + [{"name": "kv_set", "arguments": {"key": scratch, "value": "1"}}],
                     "answer": answer})  # a change nobody asked for
    failures += [{"calls": _calls(episode), "answer": answer} for episode in draft.wrong_episodes]
    return {"template": name, "level": builder.level, "instruction": draft.instruction, "compact": draft.compact,
            "world": builder.snapshot(), "tools": list(TOOL_NAMES), "checks": checks, "verify_src": None,
            "solution": {"calls": calls, "answer": answer}, "failure_cases": failures,
            "max_turns": max(max_turns, len(calls) + 2)}


def instantiate(name: str, rng: random.Random, level: int, distractors: int, max_turns: int) -> dict[str, Any]:
    """Template `name` on a fresh world drawn with `rng`, as a task dict (draws again on a `Redraw`)."""
    for _ in range(100):
        builder = Builder(rng, level, distractors)
        try:
            draft = TEMPLATES[name].make(builder)
        except Redraw:
            continue
        return build_task(name, builder, draft, max_turns)
    raise RuntimeError(f"template {name} could not be instantiated in 100 draws")  # a bug in the template
