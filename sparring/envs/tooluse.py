"""ToolUse: offline tool use behind OpenAI function-calling schemas, with tasks in Code-as-Task form.

Each episode is one task in a seeded world (files, SQLite, calendar, key-value store, fixed clock; see
`tooluse_world`). The agent calls tools, one action per turn, and ends with a final answer; the task's
verification function (`tooluse_tasks`) then grades the final state, the answer and the calls. Tasks come
from 44 built-in templates (`tooluse_templates`) at three levels, or from anyone (a proposer) through
`reset(options={"task": ...})`; `validate_task` tells whether a proposed task is sound.

    >>> import gymnasium, sparring
    >>> env = gymnasium.make("ToolUse-v0", difficulty="easy")
    >>> observation, info = env.reset(seed=0)
    >>> info["tools"][0]["function"]["name"]
    'fs_list'
    >>> env.step('{"name": "kv_get", "arguments": {"key": "user:amber"}}')   # doctest: +SKIP

Actions (any of these forms, in any mode):
    {"name": "kv_get", "arguments": {"key": "a"}}                      a tool call as JSON
    {"tool_calls": [{"type": "function", "function": {"name": "kv_get", "arguments": "{\\"key\\": \\"a\\"}"}}]}
    <tool_call>{"name": ...}</tool_call>, or a ```json fenced block     (several calls run in order)
    kv_get("a")  or  kv_get(key="a")                                    the compact form (Python-call syntax,
                                                                        parsed with `ast`, never evaluated)
    <answer>Lima</answer>  or  {"answer": "Lima"}                       the final answer; ends the episode
"""

from __future__ import annotations

import ast
import inspect
import json
import random
import re
import zlib
from dataclasses import dataclass
from typing import Any, cast

from sparring.envs.base import TextEnv, Verdict, check_choice, is_int, item_rng
from sparring.envs.tooluse_tasks import ToolTask, expected_state, replay, run_call, validate_task, verify_outcome
from sparring.envs.tooluse_templates import HELD_OUT, TEMPLATES, TRAINING, instantiate
from sparring.envs.tooluse_world import TOOL_NAMES, ToolWorld, tool_parameters, tool_schemas
from sparring.errors import UnknownNameError, UnsolvableTaskError

__all__ = ["ToolUseConfig", "ToolUseEnv", "ToolTask", "generate_task", "parse_action", "validate_task"]

SPLITS = ("train", "test-seen", "test-unseen")
INSTRUCTIONS = ("full", "compact")
MAX_CALLS_PER_ACTION = 8
COMPACT_RESULT_CHARS = 160
FULL_RESULT_CHARS = 4_000


# ---- generator -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ToolUseConfig:
    """The difficulty knobs. `level` (1..3) scales every template: more items to combine, bigger tables,
    busier days. `distractors` adds unrelated files, keys and events. `templates` limits the templates drawn
    (empty: every template of the split). `max_turns` ends an episode (never below the solution's length + 2)."""

    level: int = 2                 # 1..3: more items to combine, bigger tables, busier days
    distractors: int = 4           # unrelated files, keys and events added, 0..50
    templates: tuple[str, ...] = ()  # template names to draw from (empty: every template of the split)
    max_turns: int = 16            # turn cap of an episode (never below the solution's length + 2)

    def __post_init__(self) -> None:
        if isinstance(self.templates, (list, str)):
            object.__setattr__(self, "templates", (self.templates,) if isinstance(self.templates, str)
                               else tuple(self.templates))
        if not is_int(self.level) or not 1 <= self.level <= 3:
            raise ValueError(f"level must be 1, 2 or 3, got {self.level!r}")
        if not is_int(self.distractors) or not 0 <= self.distractors <= 50:
            raise ValueError(f"distractors must be an integer in 0..50, got {self.distractors!r}")
        if not is_int(self.max_turns) or not 2 <= self.max_turns <= 200:
            raise ValueError(f"max_turns must be an integer in 2..200, got {self.max_turns!r}")
        for name in self.templates:
            if name not in TEMPLATES:
                raise UnknownNameError("ToolUse template", name, TEMPLATES)


PRESETS = {
    "easy": ToolUseConfig(level=1, distractors=2, max_turns=8),
    "medium": ToolUseConfig(level=2, distractors=4, max_turns=16),
    "hard": ToolUseConfig(level=3, distractors=10, max_turns=24),
}


def split_of(task: dict[str, Any]) -> str:
    """`test-unseen` for the held-out templates; otherwise a fixed hash of the task's instruction and world puts
    one task in ten in `test-seen`, so `train` and the test splits never share a task."""
    if task.get("template") in HELD_OUT:
        return "test-unseen"
    key = json.dumps([task["instruction"], task["world"]], sort_keys=True).encode()
    return "test-seen" if zlib.crc32(key) % 10 == 0 else "train"


def templates_of(config: ToolUseConfig, split: str) -> tuple[str, ...]:
    """The templates `split` draws from under `config`."""
    pool = HELD_OUT if split == "test-unseen" else TRAINING
    if not config.templates:
        return pool
    chosen = tuple(t for t in config.templates if t in pool)
    if not chosen:
        raise UnknownNameError(f"ToolUse template for the {split!r} split", ", ".join(config.templates), pool,
                               hint="(held-out templates make test-unseen; the others make train and test-seen)")
    return chosen


def sample_task(config: ToolUseConfig, split: str, rng: random.Random) -> ToolTask:
    """A task of `split` drawn with `rng`: a template, then a world, redrawn until the task belongs to `split`."""
    names = templates_of(config, split)
    for _ in range(1000):
        task = instantiate(rng.choice(names), rng, config.level, config.distractors, config.max_turns)
        if split_of(task) == split:
            return ToolTask.from_dict(task)
    raise RuntimeError(f"no {split} task in 1000 draws")  # one in ten lands in test-seen: never happens


def generate_task(config: ToolUseConfig, split: str = "train", seed: int = 0, index: int = 0) -> ToolTask:
    """Item `index` of `split` for `seed`: a pure function of its arguments."""
    return sample_task(config, split, item_rng("ToolUse", split, SPLITS, seed, index))


# ---- actions -------------------------------------------------------------------------------------------

@dataclass
class Action:
    """A parsed action: `calls` [(name, arguments)], or a final `answer`, or why it is neither (`invalid`)."""

    calls: list[tuple[Any, Any]] | None = None
    answer: str | None = None
    invalid: str | None = None


FORMAT_HINT = ('write a tool call as JSON, like {"name": "kv_get", "arguments": {"key": "a"}}, or kv_get("a"); '
               "or a final answer as <answer>...</answer>")
_FENCE = re.compile(r"```[a-zA-Z]*\s*\n?(.*?)```", re.S)
_CALL_SYNTAX = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\s*\(.*\)", re.S)
_LITERAL_NAMES = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


def _tagged(text: str, open_tag: str, close_tag: str) -> tuple[list[str], str]:
    """The contents of the complete `open_tag...close_tag` blocks of `text`, and the text without them.
    A linear scan (a lazy regex is quadratic on many unclosed tags)."""
    blocks, rest, position = [], [], 0
    while (start := text.find(open_tag, position)) >= 0:
        end = text.find(close_tag, start + len(open_tag))
        if end < 0:
            break
        rest.append(text[position:start])
        blocks.append(text[start + len(open_tag):end])
        position = end + len(close_tag)
    rest.append(text[position:])
    return blocks, "".join(rest)


def _answer_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _calls_from_json(value: Any) -> Action:
    """A decoded JSON value as an action: a call, a list of calls, OpenAI's `tool_calls`, or `{"answer": ...}`."""
    if isinstance(value, dict) and "answer" in value and "name" not in value:
        return Action(answer=_answer_text(value["answer"]))
    items = value.get("tool_calls") if isinstance(value, dict) and "tool_calls" in value else value
    items = items if isinstance(items, list) else [items]
    if not items:
        return Action(invalid="an empty list of tool calls")
    if len(items) > MAX_CALLS_PER_ACTION:
        return Action(invalid=f"{len(items)} tool calls in one action (at most {MAX_CALLS_PER_ACTION})")
    calls = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("function"), dict):
            item = item["function"]  # OpenAI's {"type": "function", "function": {...}}
        if not isinstance(item, dict) or "name" not in item:
            return Action(invalid=f"{json.dumps(item)[:80]} is not a tool call (a JSON object with a name and arguments)")
        arguments = item.get("arguments", item.get("parameters", {}))
        if isinstance(arguments, str):  # OpenAI sends the arguments as a JSON string
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except (ValueError, RecursionError):
                return Action(invalid=f"the arguments of {str(item['name'])[:40]} are not valid JSON")
        calls.append((item["name"], arguments))
    return Action(calls=calls)


def _call_syntax(text: str) -> Action | None:
    """`name(arg, key=arg)` with literal arguments, read with `ast` (never evaluated); None if it is not that form."""
    if len(text) > 30_000 or not _CALL_SYNTAX.fullmatch(text):
        return None
    try:
        node = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        return None

    def literal(arg: ast.AST) -> Any:
        if isinstance(arg, ast.Name) and arg.id in _LITERAL_NAMES:
            return _LITERAL_NAMES[arg.id]
        return ast.literal_eval(arg)

    name = node.func.id
    try:
        positional = [literal(a) for a in node.args]
        keywords = {k.arg: literal(k.value) for k in node.keywords if k.arg is not None}
        json.dumps([positional, keywords])  # JSON values only: no tuples as keys, bytes, sets...
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        return Action(invalid=f"the arguments of {name}(...) must be JSON-like literals: text in quotes, numbers, "
                              "true/false, lists, objects")
    if len(keywords) != len(node.keywords):
        return Action(invalid="**arguments are not allowed; name each argument")
    if positional:
        if name not in TOOL_NAMES:
            return Action(calls=[(name, keywords)])  # run_call reports the unknown tool
        params = tool_parameters(name)
        if len(positional) > len(params):
            return Action(invalid=f"{name} takes at most {len(params)} argument(s) ({', '.join(params) or 'none'}), "
                                  f"got {len(positional)}")
        for param, value in zip(params, positional):
            if param in keywords:
                return Action(invalid=f"{name} got the argument {param!r} twice")
            keywords[param] = value
    return Action(calls=[(name, keywords)])


def parse_action(action: str) -> Action:
    """Read one action (see the module docstring for the forms). Never raises."""
    text = _tagged(action, "<think>", "</think>")[1].strip()
    if "<answer>" in text:  # the last answer; an unclosed tag takes the rest of the text
        body = text[text.rfind("<answer>") + len("<answer>"):]
        return Action(answer=body.split("</answer>", 1)[0].strip())
    blocks = _tagged(text, "<tool_call>", "</tool_call>")[0] or _FENCE.findall(text) or [text]
    calls: list[tuple[Any, Any]] = []
    for block in blocks:
        block = block.strip()
        try:
            parsed = _calls_from_json(json.loads(block))
        except (ValueError, RecursionError):
            parsed = _call_syntax(block) or _embedded_json(block)
        if parsed.answer is not None or parsed.invalid is not None:
            return parsed
        calls += parsed.calls or []
    if len(calls) > MAX_CALLS_PER_ACTION:
        return Action(invalid=f"{len(calls)} tool calls in one action (at most {MAX_CALLS_PER_ACTION})")
    return Action(calls=calls)


def _embedded_json(text: str) -> Action:
    """A JSON tool call inside prose (`I will call {"name": ...} now`), or why there is no action."""
    start = text.find("{")
    if start >= 0 and len(text) <= 100_000:
        try:
            value, _ = json.JSONDecoder().raw_decode(text, start)
            return _calls_from_json(value)
        except (ValueError, RecursionError):
            pass
    shown = text if len(text) <= 60 else text[:57] + "..."
    return Action(invalid=f"{shown!r} is neither a tool call nor a final answer")


def format_call(name: str, arguments: dict[str, Any], compact: bool) -> str:
    """A call as an action: `{"name": ..., "arguments": ...}`, or (`compact`) `name(arg, ...)`."""
    if not compact:
        return json.dumps({"name": name, "arguments": arguments})
    parts, positional = [], True
    params = tool_parameters(name) if name in TOOL_NAMES else tuple(arguments)
    for param in params:
        if param not in arguments:
            positional = False
            continue
        value = arguments[param]
        shown = json.dumps(value) if isinstance(value, str) else repr(value)
        parts.append(shown if positional else f"{param}={shown}")
    return f"{name}({', '.join(parts)})"


# ---- the environment -----------------------------------------------------------------------------------

def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 20] + f"... ({len(text)} chars)"


class ToolUseEnv(TextEnv):
    """Offline tool use: call tools on a seeded world, then answer; graded by the task's verification function.

    ## Action Space
    Text: a tool call as JSON (`{"name", "arguments"}`, OpenAI `tool_calls`, `<tool_call>` tags or a fenced
    block; up to 8 calls run in order), the compact form `kv_get("a")`, or a final answer `<answer>...</answer>`
    / `{"answer": ...}`. Anything else is an invalid action, answered with what is accepted.
    ## Observation Space
    Text. First the task: (`full`) the instruction, the tools with their signatures and how to act; (`compact`)
    a one-line instruction such as `get user:amber`. Then each call's result (or `Error: ...`).
    `info["tools"]` (at reset) holds the OpenAI schemas of the tools offered.
    ## Reward
    1.0 when the task's verification function passes on the final world state, the answer and the calls
    (built-in tasks: the answer, and the final state's hash against the solution's); 0 otherwise.
    ## Episode End
    Terminates on a final answer, or after more than `max_invalid` invalid actions or calls (unparseable,
    unknown tool, bad arguments). Truncates after the task's `max_turns` turns. The verdict's details carry
    success, calls, invalid_calls, failed_calls (tool errors), invalid_actions and turns.
    ## Arguments
    - `split`: "train", "test-seen" or "test-unseen" (held-out templates)
    - `difficulty`: "easy" level 1, "medium" level 2, "hard" level 3 with more distractors; the knobs of
      `ToolUseConfig` below refine it
    - `instruction`: "full" (for LLMs) or "compact" (for small models)
    - `max_invalid`: invalid actions or calls allowed before the episode ends (failed); default 3
    - `sandbox`: the `sparring.sandboxes` backend that runs model-written verification ("local")
    ## Version History
    v0: initial version.
    """

    family = "tooluse"
    task_type = ToolTask
    config_class = ToolUseConfig
    presets = PRESETS
    splits = SPLITS

    def proposal_problems(self, task: ToolTask) -> list[str]:
        """Self-Challenging's filter on a proposed task (`validate_task`): well formed, its verification runs, its
        solution replays without a tool error and passes, and every failure case fails."""
        result = validate_task(task.to_dict())
        return [] if result else (list(result.problems) or ["the family's filter rejects it"])

    def __init__(self, render_mode: str | None = None, *, split: str = "train", difficulty: str | None = None,
                 instruction: str = "full", max_invalid: int = 3, sandbox: str = "local", **knobs: Any):
        super().__init__(render_mode, split=split, difficulty=difficulty,
                         env_args=("instruction", "max_invalid", "sandbox"), **knobs)
        self.instruction = check_choice("ToolUse instruction", instruction, INSTRUCTIONS)
        if not is_int(max_invalid) or max_invalid < 0:
            raise ValueError(f"max_invalid must be an integer >= 0, got {max_invalid!r}")
        if not isinstance(sandbox, str):
            raise ValueError(f"sandbox must be a sandbox backend name such as 'local', got {sandbox!r}")
        self.max_invalid, self.sandbox = max_invalid, sandbox
        templates_of(self.config, self.split)  # a clear error now if no template fits the split
        self.world: ToolWorld | None = None
        self.records: list[dict[str, Any]] = []
        self._expected: dict[str, Any] | None = None

    @property
    def compact(self) -> bool:
        return self.instruction == "compact"

    def generate_task(self, index: int, *, seed: int = 0, config: ToolUseConfig | None = None) -> ToolTask:
        return generate_task(config or self.config, self.split, seed, index)

    def sample_task(self, rng: random.Random, config: ToolUseConfig) -> ToolTask:
        return sample_task(config, self.split, rng)

    # ---- an episode ------------------------------------------------------------------------------------
    def _begin(self) -> tuple[str, dict[str, Any]]:
        if self.world is not None:
            self.world.close()
        self.world = ToolWorld.from_snapshot(self.task.world)
        self.records, self._expected = [], None
        self.turns = self.invalid_actions = self.invalid_calls = self.failed_calls = 0
        return self._intro(), {"tools": tool_schemas(self.task.tools)}

    def _intro(self) -> str:
        if self.compact:
            return self.task.compact
        tools = []
        for schema in tool_schemas(self.task.tools):
            function = schema["function"]
            params = function["parameters"]
            defaults = {p.name: p.default for p in inspect.signature(getattr(ToolWorld, function["name"])).parameters.values()}
            signature = ", ".join(f"{p}: {s['type']}" + ("" if p in params.get("required", []) else f" = {defaults[p]!r}")
                                  for p, s in params["properties"].items())
            tools.append(f"- {function['name']}({signature}): {function['description']}")
        return (f"{self.task.instruction}\n\nYou work in an offline world with a file system, a SQLite database, a "
                f"calendar, a key-value store and a clock, through these tools:\n" + "\n".join(tools) + "\n\n"
                'Call a tool by writing JSON, like {"name": "kv_get", "arguments": {"key": "color"}} (OpenAI '
                "tool_calls and <tool_call> tags work too); its result comes back as the next message. When you "
                "are done, write the final answer as <answer>...</answer>; for a task that only asks you to change "
                f"the world, <answer>done</answer>. You have {self.task.max_turns} turns.")

    def _act(self, action: str) -> tuple[str, float, bool, bool, Verdict | None, dict[str, Any]]:
        self.turns += 1
        parsed = parse_action(action)
        if parsed.answer is not None:
            verdict = self._verdict(parsed.answer)
            return verdict.feedback, verdict.reward, True, False, verdict, {}
        if parsed.invalid is not None:
            self.invalid_actions += 1
            observation = f"Invalid action: {parsed.invalid}. Accepted: {FORMAT_HINT}."
        else:
            observation = self._run_calls(parsed.calls or [])
        observation = _cap(observation, COMPACT_RESULT_CHARS if self.compact else FULL_RESULT_CHARS)
        if self.invalid_actions + self.invalid_calls > self.max_invalid:
            verdict = self._end(f"too many invalid actions and calls ({self.invalid_actions + self.invalid_calls}; "
                                f"at most {self.max_invalid})")
            return f"{observation}\n{verdict.feedback}", 0.0, True, False, verdict, {}
        if self.turns >= self.task.max_turns:
            verdict = self._end(f"ran out of turns ({self.task.max_turns}) without a final answer")
            return f"{observation}\n{verdict.feedback}", 0.0, False, True, verdict, {}
        return observation, 0.0, False, False, None, {}

    def _run_calls(self, calls: list[tuple[Any, Any]]) -> str:
        if not calls:
            self.invalid_calls += 1
            return "Error: no tool call found"
        results = []
        for name, arguments in calls:
            status, result = run_call(cast(ToolWorld, self.world), name, arguments, self.task.tools)  # reset made it
            self.records.append({"name": name if isinstance(name, str) else repr(name), "arguments": arguments,
                                 "ok": status == "ok", "result": result})
            self.invalid_calls += status == "invalid"
            self.failed_calls += status == "error"
            text = result if status == "ok" else f"Error: {result}"
            results.append(text if len(calls) == 1 else f"[{name}] {text}")
        return "\n".join(results)

    def _details(self, **extra: Any) -> dict[str, Any]:
        return {"calls": len(self.records), "invalid_calls": self.invalid_calls, "failed_calls": self.failed_calls,
                "invalid_actions": self.invalid_actions, "turns": self.turns, "template": self.task.template, **extra}

    def _end(self, reason: str) -> Verdict:
        return Verdict(0.0, False, reason, self._details(success=False, answer=None))

    def expected(self) -> dict[str, Any]:
        """The final state of the task's solution (computed once per episode)."""
        if self._expected is None:
            self._expected = expected_state(self.task)
        return self._expected

    def _verdict(self, answer: str) -> Verdict:
        state = cast(ToolWorld, self.world).snapshot()  # reset made it
        needs_expected = any(c["kind"] == "state_hash" for c in self.task.checks)
        outcome = verify_outcome(self.task, state, answer, _json_safe(self.records),
                                 expected=self.expected() if needs_expected else None, sandbox=self.sandbox)
        shown = answer if len(answer) <= 80 else answer[:77] + "..."
        details = self._details(success=bool(outcome.passed), answer=shown)
        if outcome.error:
            return Verdict(0.0, False, outcome.error, {**details, "error": "verification_failed"})
        if outcome.passed:
            return Verdict(1.0, True, f"correct: the task is done ({len(self.records)} calls)", details)
        return Verdict(0.0, False, "; ".join(outcome.reasons), details)

    # ---- the expert ------------------------------------------------------------------------------------
    def expert_actions(self) -> list[str]:
        """The rest of the task's solution from here, and the final answer. The solution's calls already made
        (in order) are skipped; if the agent has changed the world otherwise, the remaining calls are tried on a
        copy first, and an `UnsolvableTaskError` says when they no longer solve the task."""
        if self.done:
            return []
        solution, answer = self.task.solution["calls"], self.task.solution["answer"]
        if not self.records:  # only calls change the world: it is as the task set it
            return self._actions(solution, answer)
        done = 0
        for record in self.records:
            if record["ok"] and done < len(solution) and (record["name"], record["arguments"]) == \
                    (solution[done]["name"], solution[done]["arguments"]):
                done += 1
        for plan in (solution[done:], solution):
            if self._solves(plan, answer):
                return self._actions(plan, answer)
        raise UnsolvableTaskError("the world has changed in ways the task's solution cannot repair; reset to start over")

    def _actions(self, calls: list[dict[str, Any]], answer: str | None) -> list[str]:
        return [format_call(c["name"], c["arguments"], self.compact) for c in calls] + [f"<answer>{answer or ''}</answer>"]

    def _solves(self, plan: list[dict[str, Any]], answer: str | None) -> bool:
        state, records = replay(cast(ToolWorld, self.world).snapshot(), plan, self.task.tools)  # reset made it
        needs_expected = any(c["kind"] == "state_hash" for c in self.task.checks)
        outcome = verify_outcome(self.task, state, answer, _json_safe(self.records) + records,
                                 expected=self.expected() if needs_expected else None, sandbox=self.sandbox)
        return bool(outcome.passed)

    def close(self) -> None:
        if self.world is not None:
            self.world.close()
            self.world = None
        super().close()


def _json_safe(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Call records as plain JSON (arguments a model wrote may hold anything `ast` reads, such as tuples or sets)."""
    return json.loads(json.dumps(records, default=repr))

