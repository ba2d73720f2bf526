"""The reflector: reflections and their memory, Re-ReST refinement kept only when it re-verifies."""

import pytest
from agents_kit import ScriptedPolicy, compact_task, expert_answer

import sparring  # noqa: F401
from sparring.agents.proposer import task_key
from sparring.agents.reflector import (
    Reflection,
    ReflectionMemory,
    Reflector,
    ReflectorConfig,
    reflection_prompt,
    reflection_text,
)
from sparring.policies.policy import SamplingParams
from sparring.policies.tiny import build_tokenizer
from sparring.solver import Solver, by_task

KWARGS = {"instruction": "compact"}
TASKS = [{"numbers": [8, 3, 2], "target": 22}, {"numbers": [5, 4, 2], "target": 18}]


def attempts(answer, tasks=TASKS, k=2):
    return by_task(Solver(ScriptedPolicy(answer), "Countdown-v0", KWARGS, SamplingParams(max_tokens=8)).run(tasks, k=k), k)


def wrong(prompt):
    task = compact_task(prompt)
    return f"<answer>{'+'.join(map(str, task.numbers))}</answer>"


def test_a_reflection_is_the_attempt_and_the_feedback():
    failed = attempts(wrong)[0][0]
    assert reflection_text(failed) == "x <answer>8+3+2</answer> : equals 13, the target is 22"
    reflections = [Reflection("k", reflection_text(failed))]
    assert reflection_prompt("8 3 2 -> 22", reflections) == "8 3 2 -> 22\nx <answer>8+3+2</answer> : equals 13, the target is 22"
    assert "earlier attempts" in reflection_prompt("obs", reflections, "full")
    assert reflection_prompt("obs", []) == "obs"


def test_memory_keeps_the_last_few_per_task_and_persists(tmp_path):
    memory = ReflectionMemory(size=3)
    for i in range(5):
        memory.add(Reflection("a", f"r{i}"))
    memory.add(Reflection("a", "r4"))  # the same text again is not a new reflection
    memory.add(Reflection("b", "other"))
    assert [r.text for r in memory.recent("a")] == ["r2", "r3", "r4"] and len(memory) == 4
    memory.save(tmp_path / "reflections.jsonl")
    again = ReflectionMemory.load(tmp_path / "reflections.jsonl", size=3)
    assert [r.text for r in again.recent("a")] == ["r2", "r3", "r4"] and again.recent("b")[0].text == "other"
    assert not list(tmp_path.glob(".*tmp*"))


def test_refinement_is_kept_only_when_it_reverifies():
    """The reflector answers right only once it has read two reflections: trial 1 fails (and adds its own
    reflection), trial 2 succeeds. A refined attempt shows the plain task and is marked refined."""
    def reflector_answer(prompt):  # wrong in another way than the solver, until it has read two reflections
        return expert_answer(prompt) if prompt.count("\nx ") >= 2 else wrong(prompt).replace("+", "*")

    groups = attempts(wrong, k=1)
    policy = ScriptedPolicy(reflector_answer)
    reflector = Reflector("Countdown-v0", KWARGS, ReflectorConfig(enabled=True, trials=2, samples=1, memory=3))
    refined, metrics = reflector.refine(policy, groups, seed=0, round=1)
    assert metrics["reflector/tasks"] == 2 and metrics["reflector/accepted"] == 2 and metrics["reflector/accept_rate"] == 1
    assert [t.turns[0].observation for t in refined] == ["8 3 2 -> 22", "5 4 2 -> 18"]
    for t in refined:
        assert t.source == "refined" and t.success and t.role == "solver"
        assert t.meta["refined"]["trial"] == 2 and len(t.meta["refined"]["reflections"]) == 2
    assert any(p.count("\nx ") == 1 for p in policy.prompts) and any(p.count("\nx ") == 2 for p in policy.prompts)
    assert len(reflector.memory.recent(TASKS[0])) == 2


def test_a_reflector_that_never_gets_it_right_adds_nothing():
    reflector = Reflector("Countdown-v0", KWARGS, ReflectorConfig(enabled=True, trials=3, samples=2))
    refined, metrics = reflector.refine(ScriptedPolicy(wrong), attempts(wrong), seed=0)
    assert refined == [] and metrics["reflector/accepted"] == 0
    assert len(reflector.memory.recent(TASKS[0])) == 1  # the same wrong answer every time: one reflection


def test_solved_tasks_are_not_refined_unless_asked():
    mixed = attempts(lambda p: expert_answer(p) if "8 3 2" in p else wrong(p))
    assert Reflector("Countdown-v0", KWARGS, ReflectorConfig(enabled=True)).refine(
        ScriptedPolicy(expert_answer), mixed)[1]["reflector/tasks"] == 1


def test_the_reflector_learns_from_groups_with_failures_and_successes():
    answers = iter(["<answer>8+3+2</answer>", "<answer>8*3-2</answer>", "<answer>5+4+2</answer>", "<answer>5+4*2</answer>"])
    groups = attempts(lambda p: next(answers))
    reflector = Reflector("Countdown-v0", KWARGS, ReflectorConfig(enabled=True))
    rows = reflector.examples(groups, build_tokenizer())
    assert rows == [{"prompt": "8 3 2 -> 22\nx <answer>8+3+2</answer> : equals 13, the target is 22\n",
                     "completion": "<answer>8*3-2</answer>"}]


def test_policy_written_reflections():
    reflector = Reflector("Countdown-v0", KWARGS, ReflectorConfig(enabled=True, reflections="policy", prompt="full"))
    writer = ScriptedPolicy(lambda prompt: "I added everything; multiply first.")
    made = reflector.reflect(attempts(wrong)[0], policy=writer)
    assert made[0].text == "I added everything; multiply first." and "The verifier said" in writer.prompts[0]
    assert reflector.memory.recent(task_key(TASKS[0]))[0].text == made[0].text


def test_config_checks():
    with pytest.raises(ValueError, match="reflector.trials"):
        ReflectorConfig(trials=0)
