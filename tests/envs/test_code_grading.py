"""The grading harness of the code envs: the value codec, the result parser, code extraction, and the
reward hacks a program may try from inside the sandbox (all against the real local sandbox)."""

import json

import gymnasium
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kit import docker_image_or_skip, sandbox_cgroups

import sparring  # noqa: F401
from sparring.envs.code_grading import (
    Call,
    IOTestSuite,
    extract_code,
    grade,
    grade_many,
    parse_results,
    resolve_sandbox,
    run_calls,
    shared_sandbox,
)
from sparring.envs.code_harness import decode_value, encode_value, same_value
from sparring.sandboxes import SandboxError, make_sandbox

# f(x) = [v * 5 for v in x]: the expected outputs (35, 55, ...) appear nowhere in the inputs
TASK = {"program": ["mul:5"], "input_type": "ints", "examples": [[[7, 11], [35, 55]], [[1], [5]]],
        "tests": [[[2, 3, 4], [10, 15, 20]], [[9, 8], [45, 40]], [[6], [30]]]}
RIGHT = "def f(x):\n    return [v * 5 for v in x]\n"


def play(answer, task=TASK, **kwargs):
    env = gymnasium.make("CodeSynth-v0", **kwargs)
    env.reset(options={"task": task})
    _, reward, terminated, _, info = env.step(answer)
    assert terminated
    return reward, info["verdict"]


# ---- the codec --------------------------------------------------------------------------------

plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner)
    | st.dictionaries(st.integers() | st.text(max_size=3) | st.tuples(st.integers()), inner, max_size=3)
    | st.frozensets(st.integers() | st.text(max_size=3), max_size=3),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(plain)
def test_codec_round_trips_exact_types(value):
    decoded = decode_value(json.loads(json.dumps(encode_value(value))))
    assert same_value(decoded, value) and decoded == value


@pytest.mark.parametrize("value", [True, 1.0, (1,), [1], {1: 1}, {1}, "1", None])
def test_same_value_is_strict_about_types(value):
    assert same_value(value, value)
    assert not same_value(1, value)


@pytest.mark.parametrize("a, b", [
    ({True}, {1}), ({1.0: "a"}, {1: "a"}), (-0.0, 0.0), ([-0.0], [0.0]), (frozenset({(1, 2.0)}), frozenset({(1, 2)})),
    ({1: {0.0}}, {1: {-0.0}}), ({(True, 1): 1}, {(1, 1): 1}), ({1, 2}, {1, 2, 3}), ({1: 1}, {1: 1, 2: 2}),
    (float("nan"), 1.0),
])
def test_same_value_is_strict_inside_sets_dict_keys_and_for_signed_zero(a, b):
    assert not same_value(a, b) and not same_value(b, a)
    assert same_value(a, a) and same_value(b, b)


def test_same_value_keeps_what_is_equal():
    assert same_value({1, "a", (2, 3.5)}, {(2, 3.5), "a", 1}) and same_value({"k": [1.5]}, {"k": [1.5]})
    assert same_value(float("nan"), float("nan")) and same_value(frozenset(), frozenset())
    assert not same_value({1: 2}, {1: 3})


def test_encoder_refuses_subclasses_and_objects():
    class Int(int):
        pass

    class Rigged:
        __class__ = int  # spoofs isinstance, not type()

        def __eq__(self, other):
            return True

    for value in [Int(3), Rigged(), [1, Int(2)], {"k": Rigged()}, (x for x in []), type("S", (str,), {})("a"),
                  type("L", (list,), {})([1])]:
        with pytest.raises(TypeError):
            encode_value(value)


def _deep(levels):
    value = [1]
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize("data", [{"tuple": [1], "set": [2]}, {"x": 1}, {"dict": [[1]]}, {"set": [[1]]},
                                  {"dict": [[[1], 2]]}, {"tuple": 5}, _deep(100)])
def test_decoder_refuses_malformed_data(data):
    with pytest.raises(ValueError):
        decode_value(data)


# ---- the result parser -------------------------------------------------------------------------

def test_parser_never_trusts_lines_it_cannot_read():
    marker = "@@m@@"
    stdout = "\n".join([
        "@@m@@{\"i\": 0, \"value\": [1, 2]}",
        "@@m@@{\"i\": 0, \"value\": [1, 2]}",  # a repeat of the same result is harmless
        "@@m@@{\"i\": 1, \"value\": 5}", "@@m@@{\"i\": 1, \"value\": 6}",  # conflicting results: a failure
        "@@m@@{\"i\": 2, \"passed\": true}",  # not a result
        "@@m@@{\"i\": 3, \"value\": {\"rigged\": 1}}",  # malformed value
        "@@m@@{\"i\": 4, \"value\": " + "9" * 5000 + "}",  # past Python's int-parsing limit
        "@@m@@{\"i\": 99, \"value\": 1}", "@@m@@[1, 2]", "@@m@@{broken", "{\"i\": 5, \"value\": 7}",  # no marker
        "@@m@@{\"i\": 5, \"error\": \"ZeroDivisionError: x\"}",
    ])
    execution = parse_results(stdout, marker, 7, "ok", 0)
    results = execution.results
    assert results[0].value == [1, 2] and results[0].ok
    assert not results[1].ok and "conflicting" in results[1].error
    assert not results[2].ok and "no result" in results[2].error
    assert not results[3].ok and "malformed" in results[3].error
    assert not results[4].ok
    assert results[5].error == "ZeroDivisionError: x"
    assert "no result" in results[6].error


@pytest.mark.parametrize("status", ["timeout", "memory", "output_limit", "killed", "sandbox_error"])
def test_results_of_a_run_that_did_not_end_on_its_own_never_count(status):
    # what a forger outside the harness would write before killing it: right values, then the harness dies
    stdout = '@@m@@{"i": 0, "value": 4}\n@@m@@{"i": 1, "error": "ValueError: no"}'
    execution = parse_results(stdout, "@@m@@", 3, status, -9)
    assert not any(result.ok for result in execution.results)
    assert "not counted" in execution.results[0].error and execution.results[1].error == "ValueError: no"
    assert IOTestSuite("f", [Call([2])] * 3, [4, 4, 4]).judge(execution.results)[0].passed is False
    assert parse_results(stdout, "@@m@@", 3, "error", 1).results[0].value == 4  # it exited: its results count


def test_a_forged_load_error_only_fails_everything():
    execution = parse_results('@@m@@{"i": 0, "value": 1}\n@@m@@{"load_error": "x"}', "@@m@@", 1, "ok")
    assert execution.load_error == "x" and not execution.results[0].ok


# ---- code in answers ----------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("def f(x): return x", "def f(x): return x"),
    ("Here you go:\n```python\ndef f(x):\n    return x\n```\nDone.", "def f(x):\n    return x\n"),
    ("```py\ndef g(): pass\n```\n```python\ndef f(x): return 1\n```\n```python\nprint(f(2))\n```",
     "def f(x): return 1\n"),  # the last block that defines the entry point
    ("```\ndef f(x): return 2\n```", "def f(x): return 2\n"),
    ("```python\ndef f(x): return 3\n", "def f(x): return 3\n"),  # an unclosed fence (cut off)
    ("```text\nno code\n```", "no code\n"),
])
def test_extract_code(text, expected):
    assert extract_code(text, "f") == expected


def test_fenced_and_unfenced_answers_grade_alike():
    assert play(RIGHT)[0] == play(f"Sure!\n```python\n{RIGHT}```\n")[0] == 1.0


# ---- reward hacks ------------------------------------------------------------------------------

HACKS = {
    "exit(0) before the function": "import sys\nsys.exit(0)\n" + RIGHT.replace("5", "4"),
    "os._exit(0) in the call": "import os\ndef f(x):\n    os._exit(0)\n",
    "raise SystemExit": "def f(x):\n    raise SystemExit(0)\n",
    "print pass markers": ("print('ALL TESTS PASSED'); print('passed'); print('{\"i\": 0, \"value\": [35, 55]}')\n"
                           "def f(x):\n    print('ok', 'passed')\n    return None\n"),
    "rigged __eq__": "class A:\n    def __eq__(self, o): return True\n    __hash__ = None\ndef f(x):\n    return A()\n",
    "list subclass with rigged __eq__": ("class L(list):\n    def __eq__(self, o): return True\n"
                                         "def f(x):\n    return L()\n"),
    "rigged elements in a real list": ("class A(int):\n    def __eq__(self, o): return True\n"
                                       "def f(x):\n    return [A(0) for _ in x]\n"),
    "int subclass": "class I(int):\n    pass\ndef f(x):\n    return I(5)\n",
    "spoofed __class__": "class A:\n    __class__ = list\n    def __eq__(self, o): return True\ndef f(x): return A()\n",
    "monkeypatched builtins and json": ("import builtins, json\nbuiltins.type = lambda *a: list\nbuiltins.isinstance = "
                                        "lambda *a: True\njson.dumps = lambda *a, **k: '[35, 55]'\n"
                                        "def f(x):\n    return object()\n"),
    "forged result lines through the private channel": (
        "import os, sys\n"
        "def f(x):\n"
        "    frame = sys._getframe()\n"
        "    while frame and 'marker' not in frame.f_locals: frame = frame.f_back\n"
        "    marker, channel = frame.f_locals['marker'], frame.f_locals['channel']\n"
        "    for i in range(10):\n"
        "        os.write(channel, (marker + '{\"i\": %d, \"passed\": true}\\n' % i).encode())\n"
        "        os.write(channel, (marker + '{\"i\": %d, \"value\": [0]}\\n' % i).encode())\n"
        "    os._exit(0)\n"),
    "read every file it can see": ("import os\ndef f(x):\n    seen = ''\n    for root, _, names in os.walk('.'):\n"
                                   "        for n in names: seen += open(os.path.join(root, n)).read()\n"
                                   "    return [int(t) for t in seen.replace(',', ' ').replace(']', ' ').split() "
                                   "if t.isdigit()][:len(x)]\n"),
    "infinite loop": "def f(x):\n    while True:\n        pass\n",
    "swallowed timeouts": "def f(x):\n    while True:\n        try:\n            while True: pass\n        except BaseException: pass\n",
    "huge output": "import os\ndef f(x):\n    os.write(1, b'x' * 5_000_000)\n    print('y' * 5_000_000)\n    return None\n",
    "huge return value": "def f(x):\n    return [0] * 10_000_000\n",
    "memory bomb": "def f(x):\n    return ' ' * 10**10\n",
    "deep nesting": "def f(x):\n    v = []\n    for _ in range(100_000): v = [v]\n    return v\n",
}


@pytest.mark.parametrize("name", sorted(HACKS))
def test_reward_hacks_earn_nothing(name):
    reward, verdict = play(HACKS[name])
    assert reward == 0.0 and verdict["success"] is False and verdict["details"]["passed"] == 0, verdict


def test_a_correct_program_passes_despite_its_own_flood_of_output():
    reward, verdict = play("import os\ndef f(x):\n    print('noise' * 100_000)\n    os.write(1, b'x' * 2_000_000)\n"
                           "    return [v * 5 for v in x]\n")
    assert reward == 1.0, verdict


def test_the_sandbox_never_sees_expected_outputs():
    seen = []
    real = shared_sandbox("local")

    class Recording:
        backend = "recording"

        def run(self, code, **kwargs):
            seen.append((code, kwargs))
            return real.run(code, **kwargs)

    reward, verdict = play(RIGHT, sandbox=Recording())
    assert reward == 1.0 and len(seen) == 1
    code, kwargs = seen[0]
    config = json.loads(kwargs["stdin"])
    assert set(config) == {"marker", "entry_point", "calls", "call_timeout_s", "max_result_chars", "max_timeouts"}
    assert [call["args"] for call in config["calls"]] == [[given] for given, _ in TASK["examples"] + TASK["tests"]]
    assert set(kwargs["files"]) == {"solution.py"}
    payload = code + json.dumps(kwargs)
    for _, expected in TASK["examples"] + TASK["tests"]:
        assert json.dumps(expected) not in payload


def test_timeouts_fail_only_their_tests():
    code = "def f(x):\n    while x == [1]: pass\n    return [v * 5 for v in x]\n"  # loops on one input only
    reward, verdict = play(code)
    assert verdict["details"]["passed"] == 4 and not verdict["success"]  # 4 of 5, the one on [1] failed
    assert any("timed out" in (f["error"] or "") for f in verdict["details"]["failures"])
    assert reward == pytest.approx(4 / 5)


def test_run_calls_caches_deterministic_runs_only():
    sandbox = shared_sandbox("local")
    first = run_calls(sandbox, "def g(a, b=0): return a + b", "g", [Call([1], {"b": 2})])
    assert first.results[0].value == 3
    assert run_calls(sandbox, "def g(a, b=0): return a + b", "g", [Call([1], {"b": 2})]) is first
    slow = "def g(a, b=0):\n    while True: pass\n"
    assert run_calls(sandbox, slow, "g", [Call([1])], call_timeout_s=0.2) is not \
        run_calls(sandbox, slow, "g", [Call([1])], call_timeout_s=0.2)


def test_io_suite_feedback_lists_input_expected_got_error():
    suite = IOTestSuite("f", [Call([[1]]), Call([[2]]), Call([[3]])], [[5], [10], [15]])
    result = grade(shared_sandbox("local"), "def f(x):\n    if x == [3]: raise ValueError('three')\n    return [5]\n",
                   suite)
    assert (result.passed, result.total) == (1, 3)
    feedback = result.feedback()
    assert "2 of 3 tests failed" in feedback
    assert "f([2]): expected [10], got [5]" in feedback
    assert "f([3]): expected [15], error: ValueError: three" in feedback


def test_sandbox_argument():
    with pytest.raises(ValueError, match="did you mean 'docker'"):
        gymnasium.make("CodeSynth-v0", sandbox="dokcer")
    with pytest.raises(TypeError, match="sandbox must be"):
        gymnasium.make("CodeSynth-v0", sandbox=42)
    assert resolve_sandbox("local") is shared_sandbox("local")


@pytest.fixture(scope="module")
def docker_backend():
    """The docker backend, with an engine started and the image built offline if needed; or a skip saying why."""
    docker_image_or_skip()
    return "docker"


@pytest.mark.parametrize("name", ["os._exit(0) in the call", "rigged __eq__", "forged result lines through the "
                                  "private channel", "infinite loop", "read every file it can see"])
def test_the_docker_backend_grades_alike(docker_backend, name):
    assert play(RIGHT, sandbox=docker_backend)[0] == 1.0
    reward, verdict = play(HACKS[name], sandbox=docker_backend)
    assert reward == 0.0 and verdict["details"]["isolation"].startswith("docker"), verdict


def test_a_program_that_sleeps_is_stopped_by_the_runs_wall_clock_limit():
    reward, verdict = play("import time\ndef f(x):\n    time.sleep(1000)\n", timeout_s=2.0)
    assert reward == 0.0 and verdict["details"]["status"] == "timeout"
    assert "the run went past its time limit" in verdict["feedback"]


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_async_vector_workers_grade_and_close_their_sandboxes(context):
    cgrouped = "cgroup" in shared_sandbox("local").isolation  # (made first: a new sandbox removes dead owners' cgroups)
    envs = gymnasium.make_vec("CodeSynth-v0", num_envs=2, vectorization_mode="async", vector_kwargs={"context": context})
    envs.reset(options={"task": TASK})
    _, rewards, terminated, _, _ = envs.step((RIGHT, "def f(x): return x"))
    workers = [process.pid for process in envs.processes]
    made = {path for pid in workers for path in sandbox_cgroups(pid)}
    envs.close()
    assert list(rewards) == [1.0, 0.0] and all(terminated)
    if cgrouped:  # where slots get cgroups here, the workers' were seen
        assert {pid for pid in workers if any(f"/sparring-{pid}-" in path for path in made)} == set(workers), made
    # a forked worker ends with os._exit: its sandbox must still be closed (no cgroup of its slots is left,
    # wherever in the tree: they sit under the worker's own cgroup)
    assert not {path for pid in workers for path in sandbox_cgroups(pid)}


def test_grade_many_runs_in_parallel_and_keeps_the_order():
    suite = IOTestSuite("f", [Call([2]), Call([3])], [4, 9])
    programs = ["def f(x): return x * x", "def f(x): return x + 2", "def f(x): return x ** 2", "syntax error("]
    grades = grade_many(shared_sandbox("local"), [(p, suite) for p in programs], use_cache=False)
    assert [g.passed for g in grades] == [2, 1, 2, 0] and grades[3].load_error.startswith("SyntaxError")


# ---- a sandbox that fails: its failure reaches the env's verdict and feedback, never a pass ------------------

@pytest.fixture
def failing_sandbox(monkeypatch):
    """A local sandbox whose launcher fails on every run (an open-files limit the kernel refuses): each run's status
    is "sandbox_error"."""
    import sparring.sandboxes.local as local_backend

    monkeypatch.setattr(local_backend, "OPEN_FILES", 10 ** 12)
    with make_sandbox("local", workers=1, memory_mb=512) as sandbox:
        assert sandbox.run("print(1)").status == "sandbox_error"
        yield sandbox


@pytest.mark.parametrize("env_id, kwargs", [("CodeSynth-v0", {}), ("HumanEval-v0", {}),
                                            ("CodeRepair-v0", {"max_turns": 1})])
def test_a_sandbox_error_reaches_the_verdict_and_the_feedback(env_id, kwargs, failing_sandbox):
    env = gymnasium.make(env_id, sandbox=failing_sandbox, **kwargs)
    env.reset(seed=0)
    right = env.unwrapped.expert_actions()[0]  # a right answer: only the sandbox's failure can fail it
    observation, reward, terminated, _, info = env.step(right)
    verdict = info["verdict"]
    assert terminated and reward == 0.0 and verdict["success"] is False
    assert verdict["details"]["status"] == "sandbox_error" and verdict["details"]["passed"] == 0
    assert "the sandbox failed to run the program" in verdict["feedback"]
    assert "the sandbox failed to run the program" in observation


def test_a_sandbox_error_while_the_sandbox_is_unavailable_stops_grading(failing_sandbox, monkeypatch):
    """When what the sandbox runs on is gone (a Docker engine that stopped), its failures are not the program's: the
    env raises SandboxError instead of grading the answer 0."""
    monkeypatch.setattr(failing_sandbox, "available", lambda: False)
    env = gymnasium.make("CodeSynth-v0", sandbox=failing_sandbox)
    env.reset(seed=0)
    with pytest.raises(SandboxError, match=r"sandbox is unavailable, so 1 program\(s\) could not be graded.*ulimit"):
        env.step(env.unwrapped.expert_actions()[0])
