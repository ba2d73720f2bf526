"""CodeRepair-v0: the multi-turn repair flow, its feedback, rewards and shaping, and its task sources."""

import ast
import random

import gymnasium
import pytest

import sparring  # noqa: F401
from sparring.envs.code_grading import grade_many, shared_sandbox
from sparring.envs.code_repair import CodeRepairTask, codesynth_mutants, humaneval_mutants
from sparring.envs.codesynth import PRESETS, CodeSynthTask, expert_solution, generate_task
from sparring.envs.humaneval import HumanEvalTask

TASK = {"source": "CodeSynth-v0",
        "task": {"program": ["mul:5"], "input_type": "ints", "examples": [[[7, 11], [35, 55]], [[1], [5]]],
                 "tests": [[[2, 3, 4], [10, 15, 20]], [[9, 8], [45, 40]]]},
        "program": "def f(x):\n    return [v * 4 for v in x]\n"}
HALF = "def f(x):\n    return [v * 5 for v in x] if len(x) > 1 else x\n"  # right on 3 of 4
RIGHT = "def f(x):\n    return [v * 5 for v in x]\n"


def test_repair_flow_shows_failures_then_ends_on_success():
    env = gymnasium.make("CodeRepair-v0", max_turns=3)
    observation, info = env.reset(options={"task": TASK})
    assert "[v * 4 for v in x]" in observation and "3 of 3 visible tests failed" in observation
    assert "f([7, 11]): expected [35, 55], got [28, 44]" in observation
    assert "[9, 8]" not in observation and "[45, 40]" not in observation  # the held-out test
    observation, reward, terminated, truncated, info = env.step("def f(x):\n    return x\n")
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert "f([1]): expected [5], got [1]" in observation and "2 attempts left" in observation
    observation, reward, terminated, _, info = env.step(f"```python\n{RIGHT}```")
    assert terminated and reward == 1.0 and info["verdict"]["success"]
    assert info["verdict"]["details"]["turns"] == 2 and info["verdict"]["details"]["fractions"] == [0.0, 0.0, 1.0]


def test_episode_ends_after_max_turns_with_the_last_attempts_verdict():
    env = gymnasium.make("CodeRepair-v0", max_turns=2)
    env.reset(options={"task": TASK})
    assert env.step("junk")[2] is False
    _, reward, terminated, _, info = env.step(HALF)
    assert terminated and reward == 0.0 and not info["verdict"]["success"]
    assert "1 of 3 visible tests failed" in info["verdict"]["feedback"]
    env.reset(options={"task": TASK})
    observation = env.step("def f(x):\n    return [v * 5 for v in x] if x != [9, 8] else x\n")[0]
    assert observation.startswith("all 3 visible tests pass, but the program fails held-out tests")
    _, _, terminated, _, info = env.step("def f(x):\n    return [v * 5 for v in x] if x != [9, 8] else x\n")
    assert terminated and not info["verdict"]["success"] and "[9, 8]" not in info["verdict"]["feedback"]
    assert info["verdict"]["details"]["failures"] == [] and info["verdict"]["details"]["held_out"] == 1
    env = gymnasium.make("CodeRepair-v0", max_turns=1, reward="fraction")
    env.reset(options={"task": TASK})
    assert env.step(HALF)[1] == pytest.approx(0.75)


def test_improvement_shaping_rewards_the_gain():
    env = gymnasium.make("CodeRepair-v0", max_turns=4, shaping="improvement")
    env.reset(options={"task": TASK})  # the buggy program passes 0 of 4
    rewards = []
    for answer in [HALF, "def f(x): return x", RIGHT]:
        _, reward, terminated, _, info = env.step(answer)
        rewards.append(reward)
    assert rewards == pytest.approx([0.75, -0.75, 1.0]) and terminated
    assert info["verdict"]["reward"] == pytest.approx(sum(rewards)) and info["verdict"]["success"]


def test_scratch_start_and_the_expert():
    env = gymnasium.make("CodeRepair-v0", start="scratch", difficulty="medium")
    observation, info = env.reset(seed=4)
    assert info["task"]["program"] is None and "attempts" in observation
    _, reward, terminated, _, _ = env.step(env.unwrapped.expert_actions()[0])
    assert reward == 1.0 and terminated


def test_generated_buggy_programs_fail_and_the_expert_fixes_them():
    env = gymnasium.make("CodeRepair-v0", difficulty="hard")
    for seed in range(8):
        observation, info = env.reset(seed=seed)
        assert "visible tests failed" in observation or "fails held-out tests" in observation
        assert env.unwrapped.fractions[0] < 1.0
        _, reward, terminated, _, _ = env.step(env.unwrapped.expert_actions()[0])
        assert reward == 1.0 and terminated
    first = gymnasium.make("CodeRepair-v0").unwrapped.generate_task(9, seed=1)
    assert first == gymnasium.make("CodeRepair-v0").unwrapped.generate_task(9, seed=1)


def test_codesynth_mutants_all_fail_a_test():
    task = generate_task(PRESETS["medium"], "train", 0, 11)  # one of its one-step changes passes all its tests anyway
    mutants = codesynth_mutants(task, random.Random(0))
    assert mutants and all(m.startswith("def f(x): return ") for m in mutants)
    grades = grade_many(shared_sandbox("local"), [(mutant, task.suite()) for mutant in mutants])  # every one
    assert [mutant for mutant, g in zip(mutants, grades) if g.success or g.status == "sandbox_error"] == []
    assert grade_many(shared_sandbox("local"), [(expert_solution(task), task.suite())])[0].success  # the suite works
    env = gymnasium.make("CodeSynth-v0")  # and the env's verdict agrees
    for mutant in mutants[:3]:
        env.reset(options={"task": task.to_dict()})
        assert env.step(mutant)[4]["verdict"]["success"] is False


def test_humaneval_source_repairs_a_mutated_canonical_solution():
    env = gymnasium.make("CodeRepair-v0", source="HumanEval-v0", source_difficulty="easy", max_turns=2)
    observation, info = env.reset(seed=0)
    assert info["task"]["source"] == "HumanEval-v0"
    assert "visible tests failed" in observation or "fails held-out tests" in observation
    _, reward, terminated, _, info = env.step(env.unwrapped.expert_actions()[0])
    assert reward == 1.0 and terminated
    mutants = humaneval_mutants(HumanEvalTask("HumanEval/53"), random.Random(0))
    assert "return x - y" in "\n".join(mutants)


def lookup_table_attack(env, task, turns, name="f", source="CodeSynth-v0", seen=None):
    """The attack of a model that learns nothing: a program mapping every (call -> expected value) it has
    seen, in the prompt's examples (`seen`) and in the feedback, and nothing else. Returns the last verdict."""
    seen = dict(seen or {})
    observation, _ = env.reset(options={"task": {"source": source, "task": task,
                                                 "program": f"def {name}(*args):\n    return None\n"}})
    for _ in range(turns):
        for line in observation.splitlines():
            if line.startswith(f"- {name}(") and ": expected " in line:
                call, _, rest = line[2:].partition(": expected ")
                try:
                    seen[call] = ast.literal_eval(rest.split(", got ")[0].split(", error: ")[0])
                except (ValueError, SyntaxError):
                    pass
        program = (f"T = {seen!r}\ndef {name}(*args):\n"
                   f"    return T.get('{name}(' + ', '.join(map(repr, args)) + ')')\n")
        observation, _, terminated, _, info = env.step(program)
        if terminated:
            return info["verdict"]
    raise AssertionError("the episode did not end")


def test_a_lookup_table_of_the_feedback_never_succeeds():
    env = gymnasium.make("CodeRepair-v0", max_turns=4)
    for index in range(6):
        task = generate_task(PRESETS["easy"], "train", 0, index)
        verdict = lookup_table_attack(env, task.to_dict(), 4, seen={f"f({i!r})": o for i, o in task.examples})
        assert not verdict["success"], (index, verdict)
        shown = "\n".join([verdict["feedback"]] + [str(f) for f in verdict["details"]["failures"]])
        for given, output in task.tests[len(task.tests) // 2:]:  # nothing of the held-out tests was ever shown
            assert f"f({given!r})" not in shown


def test_a_lookup_table_of_the_feedback_never_succeeds_on_humaneval():
    env = gymnasium.make("CodeRepair-v0", source="HumanEval-v0", max_turns=4)
    for task_id, name in [("HumanEval/0", "has_close_elements"), ("HumanEval/2", "truncate_number"),
                          ("HumanEval/12", "longest"), ("HumanEval/23", "strlen"), ("HumanEval/53", "add")]:
        verdict = lookup_table_attack(env, {"task_id": task_id}, 4, name, "HumanEval-v0")
        assert not verdict["success"], (task_id, verdict)


def test_bad_tasks_and_arguments():
    with pytest.raises(ValueError, match="did you mean 'HumanEval-v0'"):
        CodeRepairTask.from_dict({**TASK, "source": "HumanEva-v0"})
    with pytest.raises(ValueError, match="exactly the keys"):
        CodeRepairTask.from_dict({"source": "CodeSynth-v0", "task": TASK["task"]})
    with pytest.raises(ValueError, match="did you mean 'improvement'"):
        gymnasium.make("CodeRepair-v0", shaping="improvment")
    with pytest.raises(ValueError, match="max_turns"):
        gymnasium.make("CodeRepair-v0", max_turns=0)
    with pytest.raises(ValueError, match="source_difficulty"):
        gymnasium.make("CodeRepair-v0", source_difficulty="brutal")
    assert isinstance(CodeRepairTask.from_dict(TASK).task, CodeSynthTask)
