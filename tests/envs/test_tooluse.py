import json
import random
from pathlib import Path

import gymnasium
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kit import local_sandbox_or_skip

import sparring  # noqa: F401
from sparring.envs.tooluse import PRESETS, SPLITS, ToolUseConfig, format_call, generate_task, parse_action, split_of
from sparring.envs.tooluse_checks import ToolError, normalise_path
from sparring.envs.tooluse_state import state_hash
from sparring.envs.tooluse_tasks import answers_match, normalise_answer, replay, run_model_verifications, validate_task
from sparring.envs.tooluse_templates import HELD_OUT, TEMPLATES, TRAINING, instantiate
from sparring.envs.tooluse_world import TOOL_NAMES, ToolWorld, tool_schemas
from sparring.errors import UnknownNameError, UnsolvableTaskError

WORLD = {
    "now": "2026-03-02T09:00",
    "files": {"/docs/a.txt": "hello world\nsecond line", "/docs/b.txt": "other", "/inbox/n.txt": "42"},
    "kv": {"color": "blue", "count:a": "3", "count:b": "4"},
    "calendar": [{"id": 1, "title": "Standup", "date": "2026-03-02", "start": "09:00", "end": "09:30"},
                 {"id": 2, "title": "Lunch", "date": "2026-03-02", "start": "12:00", "end": "13:00"}],
    "db": {"employees": {"columns": [["id", "INTEGER PRIMARY KEY"], ["name", "TEXT"], ["dept", "TEXT"],
                                     ["salary", "INTEGER"]],
                         "rows": [[1, "Ada", "eng", 5000], [2, "Ben", "ops", 4000], [3, "Cy", "eng", 6000]]}},
}


@pytest.fixture
def world():
    w = ToolWorld.from_snapshot(WORLD)
    yield w
    w.close()


@pytest.fixture(scope="module")
def sandbox():
    """The local sandbox that model-written verification runs in, or a skip saying why this host has none."""
    local_sandbox_or_skip()


def kv_task(**changes):
    """A small valid proposed task: copy the value of 'color' into /out/color.txt."""
    task = {"instruction": "Write the value of the key 'color' to /out/color.txt.", "compact": "color > /out/color.txt",
            "world": WORLD, "checks": [{"kind": "state_hash"}],
            "solution": {"calls": [{"name": "kv_get", "arguments": {"key": "color"}},
                                   {"name": "fs_write", "arguments": {"path": "/out/color.txt", "content": "blue"}}],
                         "answer": "done"},
            "failure_cases": [{"calls": [], "answer": "done"},
                              {"calls": [{"name": "fs_write", "arguments": {"path": "/out/color.txt", "content": "red"}}],
                               "answer": "done"}]}
    task.update(changes)
    return task


# ---- schemas -------------------------------------------------------------------------------------------

def test_schemas_are_generated_from_signatures_and_docstrings():
    from transformers.utils import get_json_schema

    schemas = {s["function"]["name"]: s for s in tool_schemas()}
    assert list(schemas) == list(TOOL_NAMES) and len(TOOL_NAMES) >= 20
    for name, schema in schemas.items():
        assert schema["type"] == "function" and set(schema["function"]) == {"name", "description", "parameters"}
        reference = get_json_schema(getattr(ToolWorld.__new__(ToolWorld), name))["function"]
        assert schema["function"]["description"] == reference["description"] and reference["description"]
        params = schema["function"]["parameters"]
        assert params["properties"] == reference["parameters"]["properties"]
        assert params["additionalProperties"] is False
        assert all(p.get("description") for p in params["properties"].values())  # from the Args: section
    cal_add = schemas["cal_add"]["function"]["parameters"]
    assert cal_add["required"] == ["title", "date", "start", "end"]
    assert {p["type"] for p in cal_add["properties"].values()} == {"string"}
    assert schemas["cal_delete"]["function"]["parameters"]["properties"]["event_id"]["type"] == "integer"
    assert schemas["fs_list"]["function"]["parameters"].get("required", []) == []  # path has a default
    assert schemas["now"]["function"]["parameters"]["properties"] == {}


def test_info_lists_the_schemas_of_the_offered_tools():
    env = gymnasium.make("ToolUse-v0")
    _, info = env.reset(seed=0)
    assert info["tools"] == tool_schemas()
    _, info = env.reset(options={"task": kv_task(tools=["kv_get", "fs_write"])})
    assert [t["function"]["name"] for t in info["tools"]] == ["kv_get", "fs_write"]
    observation, *_ = env.step('{"name": "fs_read", "arguments": {"path": "/docs/a.txt"}}')
    assert "not offered" in observation


# ---- tools: happy paths and errors ---------------------------------------------------------------------

HAPPY = [
    ("fs_list", {}, "docs/\ninbox/"), ("fs_list", {"path": "/docs"}, "a.txt\nb.txt"),
    ("fs_read", {"path": "/docs/a.txt"}, "hello world\nsecond line"),
    ("fs_write", {"path": "/new/deep/x.txt", "content": "hi"}, "wrote 2 characters to /new/deep/x.txt"),
    ("fs_delete", {"path": "/docs/b.txt"}, "deleted /docs/b.txt"), ("fs_mkdir", {"path": "/a/b"}, "created /a/b"),
    ("fs_move", {"source": "/docs/b.txt", "destination": "/inbox"}, "moved /docs/b.txt to /inbox/b.txt"),
    ("fs_search", {"text": "world"}, "/docs/a.txt"),
    ("db_schema", {}, "employees(id INTEGER PRIMARY KEY, name TEXT, dept TEXT, salary INTEGER)"),
    ("sql_query", {"sql": "SELECT name FROM employees WHERE dept = 'eng' ORDER BY salary DESC"}, "name\nCy\nAda"),
    ("sql_execute", {"sql": "UPDATE employees SET salary = salary + 1 WHERE dept = 'eng'"}, "ok, 2 row(s) changed"),
    ("cal_list", {"date": "2026-03-02"}, "#1 09:00-09:30 Standup\n#2 12:00-13:00 Lunch"),
    ("cal_add", {"title": "Demo", "date": "2026-03-03", "start": "10:00", "end": "11:00"}, "added event #3"),
    ("cal_delete", {"event_id": 2}, "deleted event #2"),
    ("cal_free_slots", {"date": "2026-03-02", "minutes": 60}, "09:30-12:00\n13:00-17:00"),
    ("kv_get", {"key": "color"}, "blue"), ("kv_set", {"key": "k", "value": "v"}, "stored k"),
    ("kv_delete", {"key": "color"}, "deleted color"), ("kv_list", {"prefix": "count:"}, "count:a=3\ncount:b=4"),
    ("now", {}, "2026-03-02 09:00 Monday"), ("date_add", {"date": "2026-02-27", "days": 2}, "2026-03-01 Sunday"),
    ("date_diff", {"start": "2026-03-02", "end": "2026-03-12"}, "10"), ("calculate", {"expression": "(3 + 4) * 6"}, "42"),
]


def test_happy_paths_cover_every_tool():
    assert {name for name, _, _ in HAPPY} == set(TOOL_NAMES)


@pytest.mark.parametrize("name,arguments,expected", HAPPY)
def test_tool_happy_path(world, name, arguments, expected):
    assert world.call(name, arguments) == expected


def test_tools_change_the_world_as_they_say(world):
    world.call("fs_move", {"source": "/docs/b.txt", "destination": "/inbox"})
    world.call("kv_set", {"key": "color", "value": "red"})
    world.call("cal_add", {"title": "Demo", "date": "2026-03-03", "start": "10:00", "end": "11:00"})
    world.call("sql_execute", {"sql": "INSERT INTO employees (name, dept, salary) VALUES ('Dot', 'ops', 1)"})
    state = world.snapshot()
    assert "/inbox/b.txt" in state["files"] and "/docs/b.txt" not in state["files"]
    assert state["kv"]["color"] == "red" and state["calendar"][-1]["title"] == "Demo"
    assert state["db"]["employees"]["rows"][-1] == [4, "Dot", "ops", 1]
    assert ToolWorld.from_snapshot(state).snapshot() == state  # snapshots round-trip


ERRORS = [
    ("fs_read", {"path": "/docs/missing.txt"}, "no file /docs/missing.txt"), ("fs_read", {"path": "/docs"}, "it is a folder"),
    ("fs_list", {"path": "/docs/a.txt"}, "it is a file"), ("fs_write", {"path": "/docs", "content": "x"}, "is a folder"),
    ("fs_write", {"path": "/docs/a.txt/x", "content": "x"}, "is a file, not a folder"),
    ("fs_write", {"path": "/big", "content": "x" * 20_001}, "too long"),
    ("fs_delete", {"path": "/docs"}, "not empty"), ("fs_delete", {"path": "/"}, "root"),
    ("fs_move", {"source": "/nope", "destination": "/x"}, "no file /nope"), ("fs_search", {"text": ""}, "non-empty"),
    ("sql_query", {"sql": "SELECT * FROM nope"}, "no such table: nope"), ("sql_query", {"sql": "SELEC 1"}, "syntax error"),
    ("sql_query", {"sql": "DELETE FROM employees"}, "DELETE is not allowed in sql_query; use sql_execute"),
    ("sql_execute", {"sql": "DROP TABLE employees"}, "DROP TABLE is not allowed"),
    ("sql_execute", {"sql": "INSERT INTO employees (nope) VALUES (1)"}, "no column named nope"),
    ("cal_list", {"date": "March 2"}, "YYYY-MM-DD"), ("cal_list", {"date": "2026-02-30"}, "not a real date"),
    ("cal_add", {"title": "x", "date": "2026-03-02", "start": "11:00", "end": "10:00"}, "end after it starts"),
    ("cal_add", {"title": "x", "date": "2026-03-02", "start": "25:00", "end": "26:00"}, "not a time of day"),
    ("cal_delete", {"event_id": 99}, "no event #99"), ("cal_free_slots", {"date": "2026-03-02", "minutes": 0}, "between 1"),
    ("kv_get", {"key": "nope"}, "no key 'nope'"), ("kv_delete", {"key": "nope"}, "no key"),
    ("kv_set", {"key": "", "value": "v"}, "a key is 1 to"), ("date_add", {"date": "9999-12-31", "days": 1}, "outside"),
    ("calculate", {"expression": "2 ** 8"}, "powers"), ("calculate", {"expression": "1/0"}, "not an expression"),
    # arguments that do not fit the schema
    ("kv_get", {}, "'key' is a required property"), ("kv_get", {"key": 3}, "3 is not of type 'string'"),
    ("kv_get", {"key": "a", "extra": 1}, "('extra' was unexpected)"), ("cal_delete", {"event_id": True}, "not of type 'integer'"),
    ("kv_get", ["color"], "must be a JSON object"), ("nope", {}, "unknown tool 'nope'"),
]


@pytest.mark.parametrize("name,arguments,message", ERRORS)
def test_tool_errors_are_tool_errors_with_clear_messages(world, name, arguments, message):
    before = world.state_hash()
    with pytest.raises(ToolError, match=None) as error:
        world.call(name, arguments)
    assert message in str(error.value)
    assert world.state_hash() == before  # a failed call changes nothing


# ---- the virtual file system never reaches the host -----------------------------------------------------

@pytest.mark.parametrize("path", ["/../etc/passwd", "../x", "/docs/../../etc", "/a/b/../../../c", ".."])
def test_escapes_are_refused(world, path):
    with pytest.raises(ToolError, match="escapes the virtual file system"):
        normalise_path(path)
    for name, arguments in [("fs_read", {"path": path}), ("fs_write", {"path": path, "content": "x"}),
                            ("fs_list", {"path": path}), ("fs_delete", {"path": path})]:
        with pytest.raises(ToolError, match="escapes"):
            world.call(name, arguments)


def test_paths_are_normalised_and_never_touch_the_host(world, tmp_path):
    assert normalise_path("docs/./x/../a.txt") == "/docs/a.txt" == normalise_path("//docs//a.txt/")
    for bad in ("a\\b", "a\x00b", "x" * 201):
        with pytest.raises(ToolError):
            normalise_path(bad)
    host = tmp_path / "should-not-exist.txt"
    world.call("fs_write", {"path": str(host), "content": "x"})
    assert not host.exists() and world.call("fs_read", {"path": str(host)}) == "x"
    assert world.call("fs_read", {"path": "/docs/a.txt"}).startswith("hello")
    with pytest.raises(ToolError):
        world.call("fs_read", {"path": "/etc/passwd"})  # the host's files are not there


# ---- SQL: injection and errors are observations ----------------------------------------------------------

@pytest.mark.parametrize("sql,message", [
    ("SELECT 1; DROP TABLE employees", "one statement at a time"),
    ("SELECT name FROM employees WHERE name = 'x' OR 1=1; DELETE FROM employees", "one statement at a time"),
    ("PRAGMA table_info(employees)", "PRAGMA is not allowed"),
    ("SELECT load_extension('/tmp/evil')", "load_extension() is not allowed"),
    ("SELECT randomblob(1000000000)", "randomblob() is not allowed"),
    ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c", "ran too long"),
    ("BEGIN", "TRANSACTION is not allowed"),
])
def test_sql_injection_and_runaway_queries_are_refused(world, sql, message):
    for tool in ("sql_query", "sql_execute"):
        with pytest.raises(ToolError, match="SQL error") as error:
            world.call(tool, {"sql": sql})
        assert message in str(error.value)
    assert len(world.snapshot()["db"]["employees"]["rows"]) == 3  # nothing was dropped or deleted


@pytest.mark.parametrize("sql", ["ATTACH DATABASE '{p}' AS x", "VACUUM INTO '{p}'"])
def test_sql_cannot_write_host_files(world, tmp_path, sql):
    target = tmp_path / "escape.db"
    with pytest.raises(ToolError, match="ATTACH is not allowed"):
        world.call("sql_execute", {"sql": sql.format(p=target)})
    assert not target.exists()


def test_values_with_quotes_stay_values(world):
    world.call("sql_execute", {"sql": "INSERT INTO employees (name, dept, salary) VALUES ('x''); DROP TABLE employees; --', 'ops', 1)"})
    assert "x'); DROP TABLE employees; --" in world.call("sql_query", {"sql": "SELECT name FROM employees"})
    assert "employees" in world.call("db_schema", {})


def test_sql_errors_come_back_as_observations_in_the_env():
    env = gymnasium.make("ToolUse-v0")
    env.reset(options={"task": kv_task()})
    observation, reward, terminated, truncated, _ = env.step('sql_query("SELECT 1; DROP TABLE employees")')
    assert observation.startswith("Error: SQL error") and not terminated and not truncated
    observation, *_ = env.step('sql_query("SELECT COUNT(*) FROM employees")')
    assert observation == "COUNT(*)\n3"


# ---- actions -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,calls", [
    ('{"name": "kv_get", "arguments": {"key": "a"}}', [("kv_get", {"key": "a"})]),
    ('{"name": "kv_get", "arguments": "{\\"key\\": \\"a\\"}"}', [("kv_get", {"key": "a"})]),
    ('{"name": "kv_get", "parameters": {"key": "a"}}', [("kv_get", {"key": "a"})]),
    ('{"name": "now"}', [("now", {})]),
    ('{"tool_calls": [{"id": "c1", "type": "function", "function": {"name": "kv_get", "arguments": "{\\"key\\": \\"a\\"}"}},'
     ' {"id": "c2", "type": "function", "function": {"name": "now", "arguments": "{}"}}]}',
     [("kv_get", {"key": "a"}), ("now", {})]),
    ('[{"type": "function", "function": {"name": "now", "arguments": ""}}]', [("now", {})]),
    ('<think>first the key</think>\n<tool_call>\n{"name": "kv_get", "arguments": {"key": "a"}}\n</tool_call>',
     [("kv_get", {"key": "a"})]),
    ('Let me look.\n```json\n{"name": "kv_get", "arguments": {"key": "a"}}\n```', [("kv_get", {"key": "a"})]),
    ('I call {"name": "kv_get", "arguments": {"key": "a"}} now', [("kv_get", {"key": "a"})]),
    ('kv_get("a")', [("kv_get", {"key": "a"})]), ("kv_get(key='a')", [("kv_get", {"key": "a"})]),
    ('fs_write("/x.txt", "line 1\\nline 2")', [("fs_write", {"path": "/x.txt", "content": "line 1\nline 2"})]),
    ("cal_delete(3)", [("cal_delete", {"event_id": 3})]), ("nope(1)", [("nope", {})]),
])
def test_tool_call_forms(text, calls):
    action = parse_action(text)
    assert action.invalid is None and action.answer is None and action.calls == calls


@pytest.mark.parametrize("text,answer", [("<answer>Lima</answer>", "Lima"), ("<think>x</think> <answer> 42 </answer>", "42"),
                                         ('{"answer": "Lima"}', "Lima"), ('{"answer": 42}', "42"), ("<answer>Lima", "Lima")])
def test_final_answer_forms(text, answer):
    assert parse_action(text).answer == answer


@pytest.mark.parametrize("text", ["", "go north", "1+1", "42", "[]", "{}", '{"arguments": {}}', "kv_get(__import__('os'))",
                                  "kv_get(*x)", "os.system('ls')", "(" * 5000 + ")" * 5000, "kv_get(" + "[" * 3000 + "]" * 3000 + ")",
                                  '{"name": "kv_get", "arguments": "{bad json"}', "kv_get(1, 2, 3)", "kv_get('a', key='b')",
                                  "<think>" * 9000, "<tool_call>" * 5000, "```" * 20000 + "`"])
def test_junk_is_invalid_with_a_reason(text):
    action = parse_action(text)
    assert action.invalid and action.calls is None and action.answer is None


def test_format_call_round_trips_through_parse():
    for name, arguments in [("fs_write", {"path": "/a b.txt", "content": 'quote " and \\ and\nnewline'}),
                            ("fs_search", {"text": "x", "path": "/docs"}), ("fs_search", {"text": "x"}),
                            ("fs_list", {}), ("cal_delete", {"event_id": 7}), ("kv_list", {"prefix": "é"})]:
        for compact in (True, False):
            assert parse_action(format_call(name, arguments, compact)).calls == [(name, arguments)]
    assert format_call("fs_write", {"path": "/a", "content": "b"}, True) == 'fs_write("/a", "b")'


def test_openai_tool_calls_play_an_episode():
    env = gymnasium.make("ToolUse-v0")
    env.reset(options={"task": kv_task()})
    call = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "kv_get", "arguments": json.dumps({"key": "color"})}},
        {"id": "call_2", "type": "function",
         "function": {"name": "fs_write", "arguments": json.dumps({"path": "/out/color.txt", "content": "blue"})}}]}
    observation, *_ = env.step(json.dumps(call))
    assert observation == "[kv_get] blue\n[fs_write] wrote 4 characters to /out/color.txt"
    _, reward, terminated, _, info = env.step('{"answer": "done"}')
    assert terminated and reward == 1.0 and info["verdict"]["details"]["calls"] == 2


# ---- episodes and verdicts -------------------------------------------------------------------------------

def test_verdict_details_and_feedback():
    env = gymnasium.make("ToolUse-v0", max_invalid=5)
    env.reset(options={"task": kv_task()})
    env.step("hello")                                                            # invalid action
    env.step('{"name": "kv_gett", "arguments": {"key": "color"}}')              # invalid call
    env.step('fs_read("/missing")')                                              # a tool error
    env.step('fs_write("/out/color.txt", "red")')
    _, reward, terminated, _, info = env.step("<answer>done</answer>")
    verdict = info["verdict"]
    assert terminated and reward == 0.0 and not verdict["success"]
    assert "file /out/color.txt has the wrong content" in verdict["feedback"]
    assert {k: verdict["details"][k] for k in ("calls", "invalid_calls", "failed_calls", "invalid_actions", "turns")} == \
        {"calls": 3, "invalid_calls": 1, "failed_calls": 1, "invalid_actions": 1, "turns": 5}


def test_unknown_tool_feedback_suggests_the_closest():
    env = gymnasium.make("ToolUse-v0")
    env.reset(options={"task": kv_task()})
    observation, *_ = env.step('{"name": "kv_gett", "arguments": {"key": "color"}}')
    assert "did you mean 'kv_get'?" in observation


def test_invalid_actions_end_the_episode_and_max_turns_truncates():
    env = gymnasium.make("ToolUse-v0", max_invalid=2)
    env.reset(options={"task": kv_task()})
    ends = [env.step("junk")[2] for _ in range(3)]
    assert ends == [False, False, True]
    env = gymnasium.make("ToolUse-v0")
    env.reset(options={"task": kv_task(max_turns=3)})
    results = [env.step('now()') for _ in range(3)]
    assert [r[3] for r in results] == [False, False, True] and not any(r[2] for r in results)
    assert "ran out of turns" in results[-1][4]["verdict"]["feedback"]


def test_answer_tasks_check_the_answer_and_the_state():
    task = instantiate("kv_lookup", random.Random(1), 1, 2, 8)
    env = gymnasium.make("ToolUse-v0")
    env.reset(options={"task": task})
    expected = task["solution"]["answer"]
    assert env.step(f"<answer> {expected.upper()}. </answer>")[1] == 1.0  # normalised
    env.reset(options={"task": task})
    env.step('kv_set("x", "1")')
    _, reward, _, _, info = env.step(f"<answer>{expected}</answer>")
    assert reward == 0.0 and "key 'x' should not exist" in info["verdict"]["feedback"]


def test_answer_normalisation():
    assert normalise_answer(" '42.0'. ") == "42" == normalise_answer("84/2") == normalise_answer("+42")
    assert answers_match("Lima", "lima") and not answers_match("Lima", "Lim")
    assert answers_match("a, b, c", "c\nb\na", unordered=True) and not answers_match("a, b", "a", unordered=True)


def test_state_hash_ignores_incidental_differences(world):
    other = ToolWorld.from_snapshot(WORLD)
    other.call("cal_delete", {"event_id": 1})
    other.call("cal_add", {"title": "Standup", "date": "2026-03-02", "start": "09:00", "end": "09:30"})  # id 3 now
    other.call("fs_write", {"path": "/docs/a.txt", "content": "hello world\nsecond line\n"})  # a trailing newline
    assert other.state_hash() == world.state_hash()
    other.call("kv_set", {"key": "color", "value": "blue "})
    assert other.state_hash() != world.state_hash()
    assert state_hash(world.snapshot()) == world.state_hash()


# ---- Code-as-Task validation ---------------------------------------------------------------------------

def test_validate_task_accepts_a_good_task():
    report = validate_task(kv_task())
    assert report.valid and report.problems == [] and bool(report)


@pytest.mark.parametrize("changes,problem", [
    ({"solution": {"calls": [{"name": "fs_write", "arguments": {"path": "/out/color.txt", "content": "red"}}],
                   "answer": "done"}}, "failure case 1 passes"),
    ({"solution": {"calls": [{"name": "kv_get", "arguments": {"key": "nope"}}], "answer": "done"}},
     "solution call 0 (kv_get) fails: no key 'nope'"),
    ({"checks": [{"kind": "answer", "equals": "blue"}]}, "the solution does not pass: the answer 'done' is not right"),
    ({"failure_cases": []}, "at least one failure case"),
    ({"failure_cases": [{"calls": [{"name": "kv_get", "arguments": {"key": "color"}},
                                   {"name": "fs_write", "arguments": {"path": "/out/color.txt", "content": "blue"}}],
                         "answer": "ok"}]}, "failure case 0 passes the verification"),
    ({"checks": [{"kind": "nope"}]}, "malformed task: unknown check kind"),
    ({"checks": []}, "malformed task: a ToolUse task needs 'checks'"),
    ({"world": {"files": {"/a": 3}}}, "malformed task: invalid world"),
    ({"tools": ["kv_get", "rm_rf"]}, "malformed task: unknown tool"),
])
def test_validate_task_rejects_bad_tasks(changes, problem):
    report = validate_task(kv_task(**changes))
    assert not report.valid and any(problem in p for p in report.problems), report.problems


def test_validate_task_rejects_a_task_whose_verification_raises(sandbox):
    raising = "def verify(state, answer, calls):\n    return state['files']['/nope'] == 'x'\n"
    report = validate_task(kv_task(checks=[], verify_src=raising))
    assert not report.valid
    assert "on the solution, the task's verify function did not run: error: KeyError" in report.problems[0]


def test_model_written_verification_runs_in_the_sandbox(sandbox, tmp_path):
    marker = tmp_path / "ran-in-this-process"
    source = (f"import pathlib\ntry:\n    pathlib.Path({str(marker)!r}).write_text('x')  # works outside a sandbox\n"
              "except OSError:\n    pass\n"
              "def verify(state, answer, calls):\n"
              "    print(True)  # what it prints cannot pass for the result\n"
              "    used = [c['name'] for c in calls if c['ok']]\n"
              "    return state['files'].get('/out/color.txt') == state['kv']['color'] and 'kv_get' in used\n")
    report = validate_task(kv_task(checks=[], verify_src=source))
    assert report.valid, report.problems
    assert not marker.exists()  # the source never ran here
    env = gymnasium.make("ToolUse-v0")
    env.reset(options={"task": kv_task(checks=[], verify_src=source)})
    for action in env.unwrapped.expert_actions():
        _, reward, terminated, _, info = env.step(action)
    assert terminated and reward == 1.0
    env.reset(options={"task": kv_task(checks=[], verify_src=source)})
    env.step('fs_write("/out/color.txt", "blue")')  # right file, but never looked the value up
    _, reward, _, _, info = env.step("<answer>done</answer>")
    assert reward == 0.0 and "verify function returned False" in info["verdict"]["feedback"]


def test_model_verification_results_are_data(sandbox):
    cases = [({"x": 1}, None, [])]
    assert run_model_verifications("def verify(state, answer, calls):\n    return state['x'] == 1\n", cases) == [(True, None)]
    assert run_model_verifications("def verify(s, a, c):\n    return 1\n", cases)[0] == (None, "verify returned int, not True or False")
    assert run_model_verifications("def verify(s, a, c):\n    while True: pass\n", cases, timeout_s=1)[0][1].startswith("timeout")
    assert run_model_verifications("def verify(s, a, c):\n    raise SystemExit(0)\n", cases)[0] == (None, "it printed no result")


# A verify that forges the harness's result line with junk, from whatever it can find: the harness's source
# (main.py), the marker and channel in the caller's frames, every fd; then ends the process before the real
# result is written. A filter of model-written tasks must reject it with a reason, never raise.
FORGER = """
import os, re, sys
def verify(state, answer, calls):
    markers = set(re.findall(r"@@verdict-[0-9a-f]+@@", open("main.py").read()))
    fds = {1}
    frame = sys._getframe(1)
    while frame is not None:
        for value in list(frame.f_locals.values()) + list(frame.f_globals.values()):
            if type(value) is str and value.startswith("@@verdict-"):
                markers.add(value.strip())
            if type(value) is int and 0 < value < 64:
                fds.add(value)
        frame = frame.f_back
    for marker in markers:
        for fd in fds:
            try:
                os.write(fd, ("\\n" + marker + PAYLOAD + "\\n").encode())
            except OSError:
                pass
    os._exit(0)
"""


@pytest.mark.parametrize("payload", ["{not json", "{}", "[1]", '"not a bool: x"', "1e999", "true"])
def test_a_verify_that_forges_its_result_line_is_rejected_not_a_crash(sandbox, payload):
    from sparring.agents.proposer import check_task

    source = f"PAYLOAD = {payload!r}\n" + FORGER
    report = validate_task(kv_task(checks=[], verify_src=source))
    assert not report.valid and report.problems, report
    reason = check_task(gymnasium.make("ToolUse-v0").unwrapped, kv_task(checks=[], verify_src=source))
    assert reason is not None and reason[0] == "filter", reason


def test_the_result_reader_never_raises():
    from types import SimpleNamespace

    from sparring.envs.tooluse_tasks import _read_result

    def run(stdout, status="ok"):
        return _read_result(SimpleNamespace(status=status, stdout=stdout, stderr=""), "@@m@@")

    assert run("@@m@@true") == (True, None) and run("x\n@@m@@false\n") == (False, None)
    assert run('@@m@@"not a bool: int"') == (None, "verify returned int, not True or False")
    for junk in ["@@m@@{not json", "@@m@@{}", "@@m@@[1]", "@@m@@1", "@@m@@null", '@@m@@"not a bool: "', "@@m@@" + "[" * 5000]:
        result, why = run(junk)
        assert result is None and "malformed" in why, (junk, why)
    assert run("@@m@@true\n@@m@@true")[1].startswith("its result line was written more than once")
    assert run("@@m@@true", status="killed")[0] is None


# ---- templates, generator, expert ----------------------------------------------------------------------

def test_at_least_30_templates_and_a_held_out_set():
    assert len(TEMPLATES) >= 30 and len(TRAINING) >= 30 and len(HELD_OUT) >= 5
    assert all(t.summary for t in TEMPLATES.values())
    multi_tool = [n for n in TEMPLATES if len({c["name"] for c in instantiate(n, random.Random(0), 2, 0, 8)["solution"]["calls"]}) >= 2]
    assert len(multi_tool) >= 25  # most chain several tools

def test_a_seed_draws_the_same_templates():
    # the order of TEMPLATES (the template modules' definition order) decides which template a seed draws: a
    # reordering, or the template modules registering in another order, would change every generated task
    config = PRESETS["medium"]
    assert [generate_task(config, "train", seed=0, index=i).template for i in range(8)] == [
        "cal_count", "file_copy", "kv_sum", "file_append_line", "file_append_line", "db_count", "folder_count",
        "db_update_from_kv"]
    assert [generate_task(config, "test-unseen", seed=0, index=i).template for i in range(4)] == [
        "db_raise_salary", "db_top_to_calendar", "kv_backup_to_file", "db_raise_salary"]
    assert TRAINING[:2] == ("kv_lookup", "kv_to_file") and TRAINING[-1] == "file_to_calendar_today"



@pytest.mark.parametrize("name", list(TEMPLATES))
def test_every_template_makes_valid_tasks_at_every_level(name):
    for level in (1, 2, 3):
        for seed in range(3):
            task = instantiate(name, random.Random(seed * 10 + level), level, 2 * level, 8)
            report = validate_task(task)
            assert report.valid, (name, level, seed, report.problems)
            assert task["level"] == level and len(task["failure_cases"]) >= 2


@pytest.mark.parametrize("instruction", ["full", "compact"])
def test_expert_solves_every_template_at_every_level(instruction):
    for split in ("train", "test-unseen"):
        for difficulty in PRESETS:
            env = gymnasium.make("ToolUse-v0", split=split, difficulty=difficulty, instruction=instruction)
            for seed in range(12 if split == "train" else 6):
                observation, info = env.reset(seed=seed)
                actions = env.unwrapped.expert_actions()
                for action in actions:
                    observation, reward, terminated, truncated, info = env.step(action)
                    assert not observation.startswith("Error"), (info["task"]["template"], action, observation)
                assert terminated and info["verdict"]["success"], info["verdict"]
                assert info["verdict"]["details"]["invalid_calls"] == info["verdict"]["details"]["failed_calls"] == 0


def test_expert_covers_all_templates_by_name():
    for name in TEMPLATES:
        split = "test-unseen" if name in HELD_OUT else "train"
        env = gymnasium.make("ToolUse-v0", split=split, templates=[name], instruction="compact")
        for seed in range(3):
            env.reset(seed=seed)
            for action in env.unwrapped.expert_actions():
                *_, info = env.step(action)
            assert info["verdict"]["success"] and info["task"]["template"] == name


def test_expert_continues_mid_episode_and_repairs_or_says_it_cannot():
    env = gymnasium.make("ToolUse-v0")
    env.reset(options={"task": kv_task()})
    env.step('kv_get("color")')
    assert env.unwrapped.expert_actions() == ['{"name": "fs_write", "arguments": {"path": "/out/color.txt", "content": "blue"}}',
                                              "<answer>done</answer>"]
    env.step('fs_write("/out/color.txt", "red")')  # a wrong write: rewriting the file repairs it
    actions = env.unwrapped.expert_actions()
    for action in actions:
        *_, info = env.step(action)
    assert info["verdict"]["success"]
    env.reset(options={"task": kv_task()})
    env.step('kv_set("extra", "1")')  # nothing in the solution deletes this key
    with pytest.raises(UnsolvableTaskError, match="cannot repair"):
        env.unwrapped.expert_actions()


def test_item_i_is_a_pure_function_of_seed_and_index():
    config = PRESETS["medium"]
    a = generate_task(config, "train", 5, 17)
    assert a == generate_task(config, "train", 5, 17)
    assert a != generate_task(config, "train", 6, 17) and a != generate_task(config, "train", 5, 18)
    env = gymnasium.make("ToolUse-v0", difficulty="medium")
    assert env.reset(options={"index": 17, "seed": 5})[1]["task"] == a.to_dict()


def test_splits_never_share_tasks_and_hold_out_templates():
    config = PRESETS["easy"]
    train = [generate_task(config, "train", 0, i).to_dict() for i in range(300)]
    seen = [generate_task(config, "test-seen", 0, i).to_dict() for i in range(60)]
    unseen = [generate_task(config, "test-unseen", 0, i).to_dict() for i in range(30)]
    assert all(split_of(t) == "train" for t in train) and all(split_of(t) == "test-seen" for t in seen)
    key = lambda t: json.dumps([t["instruction"], t["world"]], sort_keys=True)  # noqa: E731
    assert not {key(t) for t in train} & {key(t) for t in seen}
    assert {t["template"] for t in unseen} <= set(HELD_OUT) and len({t["template"] for t in unseen}) >= 4
    assert not {t["template"] for t in train + seen} & set(HELD_OUT)
    assert len({t["template"] for t in train}) >= 30  # the training split uses every training template


def test_knobs_presets_and_their_errors():
    assert [PRESETS[d].level for d in ("easy", "medium", "hard")] == [1, 2, 3]
    env = gymnasium.make("ToolUse-v0", templates=["kv_sum"], level=3, distractors=0)
    task = env.reset(seed=0)[1]["task"]
    assert task["template"] == "kv_sum" and task["level"] == 3 and len(task["solution"]["calls"]) == 5
    with pytest.raises(UnknownNameError, match="did you mean 'kv_sum'"):
        gymnasium.make("ToolUse-v0", templates=["kv_summ"])
    with pytest.raises(UnknownNameError, match="test-unseen"):
        gymnasium.make("ToolUse-v0", split="test-unseen", templates=["kv_sum"])
    with pytest.raises(UnknownNameError, match="did you mean 'level'"):
        gymnasium.make("ToolUse-v0", levl=2)
    with pytest.raises(ValueError, match="level must be 1, 2 or 3"):
        ToolUseConfig(level=4)
    with pytest.raises(UnknownNameError, match="instruction"):
        gymnasium.make("ToolUse-v0", instruction="tiny")
    assert SPLITS == ("train", "test-seen", "test-unseen")


def test_malformed_tasks_are_refused_with_reasons():
    env = gymnasium.make("ToolUse-v0")
    with pytest.raises(ValueError, match="missing"):
        env.reset(options={"task": {"instruction": "x"}})
    with pytest.raises(UnknownNameError, match="ToolUse task key"):
        env.reset(options={"task": kv_task(extra=1)})
    with pytest.raises(ValueError, match="table names are identifiers"):
        env.reset(options={"task": kv_task(world={"db": {"x; DROP": {"columns": [["a", "TEXT"]], "rows": []}}})})
    with pytest.raises(ValueError, match="columns are 1 to 20"):
        env.reset(options={"task": kv_task(world={"db": {"t": {"columns": [["a", "BLOB) ; DROP"]], "rows": []}}})})


def test_compact_mode_fits_a_tiny_model():
    env = gymnasium.make("ToolUse-v0", difficulty="easy", instruction="compact")
    longest = 0
    for seed in range(100):
        observation, _ = env.reset(seed=seed)
        conversation = [observation]
        for action in env.unwrapped.expert_actions():
            observation, *_ = env.step(action)
            conversation += [action, observation]
        longest = max(longest, len("\n".join(conversation[:-1])))
    assert longest < 512  # the whole episode, as the tiny model's chat template renders it


def test_runs_never_touch_the_host_file_system(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = gymnasium.make("ToolUse-v0", difficulty="hard")
    for seed in range(5):
        env.reset(seed=seed)
        for action in env.unwrapped.expert_actions() + ['fs_write("x.txt", "y")', 'sql_execute("ATTACH \'y.db\' AS y")']:
            env.step(action)
    assert list(Path(tmp_path).iterdir()) == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.text(max_size=300), st.builds(lambda n, a: json.dumps({"name": n, "arguments": a}),
                                                   st.sampled_from(TOOL_NAMES + ("x",)),
                                                   st.dictionaries(st.sampled_from(["path", "key", "sql", "date", "days",
                                                                                    "minutes", "event_id", "content", "value",
                                                                                    "expression", "text", "title", "start"]),
                                                                   st.one_of(st.text(max_size=30), st.integers(),
                                                                             st.floats(), st.none(), st.booleans()),
                                                                   max_size=4))))
def test_junk_never_raises_and_never_crashes_a_tool(action):
    env = gymnasium.make("ToolUse-v0", max_invalid=100)
    env.reset(options={"task": kv_task()})
    observation, reward, terminated, truncated, info = env.step(action)
    assert isinstance(observation, str) and "bug in sparring" not in observation
    records = env.unwrapped.records
    json.dumps(records)
    replay(WORLD, [{"name": r["name"], "arguments": r["arguments"]} for r in records if isinstance(r["arguments"], dict)])


def test_the_self_play_config_loads_and_makes_the_env():
    from sparring.selfplay import load_selfplay_config

    config = load_selfplay_config(Path(__file__).resolve().parents[2] / "configs" / "tooluse-ei.yaml", [])
    assert config.env.id == "ToolUse-v0" and config.bootstrap.demonstrations == "optimal" and config.threads == 1
    env = gymnasium.make(config.env.id, split=config.env.eval_split, **config.env.kwargs)  # no Countdown knobs leak in
    task = env.reset(seed=0)[1]["task"]
    assert task["template"] in config.env.kwargs["templates"] and env.unwrapped.compact
