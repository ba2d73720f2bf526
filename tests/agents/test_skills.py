"""The skill library: admission only when verified, BM25 retrieval, counts, pruning, persistence, chains of
similar tasks played in sequence (SAGE) and the skill-integrated reward."""

import json

import gymnasium
import pytest
from agents_kit import ScriptedPolicy, expert_answer, pattern_user
from kit import local_sandbox_or_skip

import sparring  # noqa: F401
from sparring.agents.skills import (
    ExpressionSkills,
    MacroSkills,
    Skill,
    SkillLibrary,
    SkillRewardFunction,
    SkillsConfig,
    chain_rollout,
    make_chains,
)
from sparring.agents.skills import skill_kind_for as skill_kind_for_env
from sparring.envs.expr import expression_pattern, instantiate, parse
from sparring.policies.policy import SamplingParams
from sparring.solver import Solver, by_task
from sparring.trajectories import Trajectory, Turn

KWARGS = {"difficulty": "easy", "max_number": 20, "min_target": 1, "instruction": "compact"}


def env(env_id="Countdown-v0"):
    return gymnasium.make(env_id, **KWARGS).unwrapped


def expression_skills():
    """Countdown's kind of skill, retrieved by its env's features of a task."""
    return ExpressionSkills(env().skill_features)


def solved(task, answer):
    return Solver(ScriptedPolicy(lambda p: answer), "Countdown-v0", KWARGS, SamplingParams(max_tokens=8)).run([task])[0]


def test_patterns():
    assert expression_pattern("8*3-2") == ("a*b-c", [8, 3, 2])
    assert expression_pattern("(10+2)/3") == ("(a+b)/c", [10, 2, 3])
    assert instantiate("(a+b)/c", [10, 2, 3]) == "(10+2)/3"


def test_a_skill_is_admitted_only_when_it_verifies():
    kind, e = expression_skills(), env()
    library = SkillLibrary(kind, e)
    good = kind.extract(solved({"numbers": [8, 3, 2], "target": 22}, "<answer>8 * 3 - 2</answer>"))
    assert good.body == "a*b-c" and good.tests == [{"task": {"numbers": [8, 3, 2], "target": 22}, "args": [8, 3, 2]}]
    assert library.add(good) is not None and "expression:a*b-c" in library
    assert kind.extract(solved({"numbers": [8, 3, 2], "target": 22}, "<answer>8+3+2</answer>")) is None  # failed
    forged = Skill("expression:a+b+c", "expression", "a+b+c", ["count3"], [{"task": {"numbers": [8, 3, 2], "target": 22},
                                                                            "args": [8, 3, 2]}])
    assert library.add(forged) is None and len(library) == 1
    again = kind.extract(solved({"numbers": [9, 4, 5], "target": 31}, "<answer>9*4-5</answer>"))
    merged = library.add(again)
    assert merged.version == 2 and len(merged.tests) == 2 and len(library) == 1


def test_retrieval_prefers_skills_from_similar_tasks_and_their_success():
    kind = expression_skills()
    library = SkillLibrary(kind, env())
    library.add(kind.extract(solved({"numbers": [8, 3, 2], "target": 22}, "<answer>8*3-2</answer>")))
    library.add(kind.extract(solved({"numbers": [7, 5, 1], "target": 13}, "<answer>7+5+1</answer>")))
    big = {"numbers": [9, 4, 6], "target": 30}    # above the sum, even, one divisor: like 8 3 2 -> 22
    small = {"numbers": [6, 2, 1], "target": 9}   # within the sum, with a one: like 7 5 1 -> 13
    assert [s.body for s in library.retrieve(big, 1)] == ["a*b-c"]
    assert [s.body for s in library.retrieve(small, 1)] == ["a+b+c"]
    assert len(library.retrieve(big, 5)) <= 2 and SkillLibrary(kind).retrieve(big, 2) == []
    assert "t_above_sum" in env().skill_features(big) and "has_one" in env().skill_features(small)
    assert ExpressionSkills().query(big) == []  # a kind built without the env's features retrieves nothing


def test_usage_counts_pruning_and_persistence(tmp_path):
    kind = expression_skills()
    library = SkillLibrary(kind, env())
    skill = library.add(kind.extract(solved({"numbers": [8, 3, 2], "target": 22}, "<answer>8*3-2</answer>")))
    dud = library.add(kind.extract(solved({"numbers": [7, 5, 1], "target": 13}, "<answer>7+5+1</answer>")))
    used = library.record([skill, dud], solved({"numbers": [9, 4, 5], "target": 31}, "<answer>9*4-5</answer>"))
    assert used == [skill] and (skill.n_retrieved, skill.n_used, skill.n_success) == (1, 1, 1)
    for _ in range(9):
        library.record([dud], solved({"numbers": [9, 4, 5], "target": 31}, "<answer>9+4+5</answer>"))
    assert (dud.n_retrieved, dud.n_used, dud.n_success) == (10, 9, 0)  # used 9 times, never right
    assert library.prune(min_uses=8, min_rate=0.05) == 1 and list(library.skills) == ["expression:a*b-c"]
    library.save(tmp_path / "skills.jsonl")
    again = SkillLibrary.load(tmp_path / "skills.jsonl", kind)
    assert again.skills == library.skills and again.retrieve({"numbers": [9, 4, 5], "target": 31}, 1)[0].n_success == 1


def test_chains_hold_tasks_the_same_pattern_solves():
    e = env()
    task = e.generate_task(3).to_dict()
    import random

    chain = e.similar_tasks(task, 4, random.Random(0))
    assert chain[0] == task and len(chain) == 4 and len({json.dumps(t) for t in chain}) == 4
    pattern, _ = expression_pattern("".join(expert_answer(" ".join(map(str, task["numbers"])) + f" -> {task['target']}")
                                            [8:-9].split()))
    for other in chain[1:]:
        assert not e.task_problems(e.task_type.from_dict(other))
        assert parse(instantiate(pattern, other["numbers"])).value == other["target"]
    chains = make_chains([e.generate_task(i).to_dict() for i in range(10)], 4, e, expression_skills(), seed=0)
    assert sum(map(len, chains)) == 10


def test_sequential_rollout_reuses_skills_along_a_chain_and_rewards_them():
    """The first task of a chain is solved without skills; its skill is admitted and shown first to the later
    tasks of the chain, which use it: both the maker and the users get the skill-integrated bonus."""
    e = env()
    chains = make_chains([e.generate_task(i).to_dict() for i in range(6)], 3, e, expression_skills(), seed=0)
    library = SkillLibrary(expression_skills(), e)
    policy = ScriptedPolicy(pattern_user)
    config = SkillsConfig(enabled=True, top_k=2, reward_bonus=0.5)
    trajectories, metrics = chain_rollout(policy, "Countdown-v0", KWARGS, library, chains, 2,
                                          SamplingParams(max_tokens=16), config)
    assert len(trajectories) == 6 * 2 and all(t.success for t in trajectories)
    assert [t.task for t in trajectories[::2]] == [t for chain in chains for t in chain]
    firsts = [by_task(trajectories, 2)[0][0]]
    assert firsts[0].meta["skills"] == [] and firsts[0].meta["skill_bonus"] == 0.5  # its skill was reused
    later = by_task(trajectories, 2)[1][0]
    assert later.meta["skills"][0] == f"expression:{library.kind.extract(firsts[0]).body}"
    assert " | " in later.turns[0].observation and later.meta["plain_observation"] in later.turns[0].observation
    assert later.meta["skill_bonus"] == 0.5 and metrics["skills/reuse_rate"] > 0.5 and len(library) >= 1


@pytest.mark.parametrize("cut", [1, 2])
def test_a_rollout_cut_inside_a_position_continues_after_the_last_one_saved(tmp_path, cut):
    """Each position's end is saved (the library, each chain's skills and their makers, the attempts so far): a
    rollout cut inside position `cut` plays, called again, only that position and the ones after it, and ends as
    an uninterrupted one: attempts (their skill bonuses too, set on earlier positions' makers after the cut),
    metrics, library. A solver that fails some tasks, so that skills are made and reused unevenly."""
    import zlib

    from agents_kit import compact_task

    from sparring.agents.skills import POSITION_DIR

    e = env()
    chains = make_chains([e.generate_task(i).to_dict() for i in range(9)], 3, e, expression_skills(), seed=0)
    assert [len(chain) for chain in chains] == [3, 3, 3]
    config = SkillsConfig(enabled=True, top_k=2, reward_bonus=0.5)

    def answer(text):
        return "<answer>1</answer>" if zlib.crc32(text.encode()) % 3 == 0 else pattern_user(text)

    def rollout(policy, folder):
        library = SkillLibrary(expression_skills(), e)
        trajectories, metrics = chain_rollout(policy, "Countdown-v0", KWARGS, library, chains, 2,
                                              SamplingParams(max_tokens=16), config, seed=3, folder=folder)
        return [t.to_row() for t in trajectories], metrics, library.skills

    plain = rollout(ScriptedPolicy(answer), None)
    whole = rollout(ScriptedPolicy(answer), tmp_path / "whole")
    assert whole == plain  # saving and reading back each position changes nothing
    rows, metrics, skills = whole
    assert 0 < metrics["skills/bonus_rate"] < 1 and not all(row["success"] for row in rows)
    firsts = [rows[6 * c + i] for c in range(3) for i in range(2)]  # position 0's attempts, k=2 a task
    assert any(json.loads(row["meta"])["skill_bonus"] for row in firsts)  # makers rewarded at a later position

    class Cut(Exception):
        pass

    cut_tasks = {json.dumps(chain[cut], sort_keys=True) for chain in chains}

    def cut_answer(text):
        task = compact_task(text)
        if json.dumps({"numbers": list(task.numbers), "target": task.target}, sort_keys=True) in cut_tasks:
            raise Cut  # the process dies inside position `cut`
        return answer(text)
    with pytest.raises(Cut):
        rollout(ScriptedPolicy(cut_answer), tmp_path / "cut")
    assert [p.name for p in (tmp_path / "cut").iterdir()] == [f"{POSITION_DIR}{cut - 1}"]
    again = ScriptedPolicy(answer)
    assert rollout(again, tmp_path / "cut") == whole
    asked = [compact_task(text) for text in again.prompts]
    played = {json.dumps({"numbers": list(t.numbers), "target": t.target}, sort_keys=True) for t in asked}
    assert played == {json.dumps(task, sort_keys=True) for chain in chains for task in chain[cut:]}
    assert [p.name for p in (tmp_path / "cut").iterdir()] == [f"{POSITION_DIR}2"]



@pytest.mark.parametrize("damage", ["state.json not JSON", "state.json {}", "a made skill missing", "no trajectories"])
def test_a_damaged_resume_point_of_the_rollout_is_one_clear_error(tmp_path, damage):
    """A resume point damaged outside the rollout (its folder is written atomically) stops with one line that names
    it and what to delete, never a traceback, and leaves the library as it was."""
    import shutil

    from sparring.agents.skills import POSITION_DIR, load_position, save_position
    from sparring.errors import SparringError

    e = env()
    chains = make_chains([e.generate_task(i).to_dict() for i in range(4)], 2, e, expression_skills(), seed=0)
    library = SkillLibrary(expression_skills(), e)
    attempt = solved({"numbers": [8, 3, 2], "target": 22}, "<answer>8*3-2</answer>")
    skill = library.add(expression_skills().extract(attempt))
    played = [[[attempt, attempt]] for _ in chains]
    path = tmp_path / f"{POSITION_DIR}0"
    save_position(path, 0, chains, library, [[skill], []], {(0, skill.id): attempt}, played,
                  {"shown": 1, "used": 0, "admitted": 1})
    fresh = SkillLibrary(expression_skills(), e)
    made, makers, again, counts = load_position(path, chains, 2, fresh)  # whole: read back as saved
    assert [[s.id for s in chain] for chain in made] == [[skill.id], []] and counts["admitted"] == 1
    if damage == "state.json not JSON":
        (path / "state.json").write_text('{"position": 0, "cha')
    elif damage == "state.json {}":
        (path / "state.json").write_text("{}")
    elif damage == "a made skill missing":
        (path / "skills.jsonl").write_text("")
    else:
        shutil.rmtree(path / "trajectories")
    untouched = SkillLibrary(expression_skills(), e)
    with pytest.raises(SparringError, match=f"{POSITION_DIR}0, the skill chains' resume point, is damaged .*delete it"):
        load_position(path, chains, 2, untouched)
    assert len(untouched) == 0

def test_command_macros_for_multi_turn_envs():
    e = gymnasium.make("CountdownSteps-v0", **KWARGS).unwrapped
    moves = iter(["8*3", "24-2"])
    episode = Solver(ScriptedPolicy(lambda p: next(moves)), "CountdownSteps-v0", KWARGS,
                     SamplingParams(max_tokens=8)).run([{"numbers": [8, 3, 2], "target": 22}])[0]
    kind = MacroSkills()
    skill = kind.extract(episode)
    assert skill.body == "8*3; 24-2" and kind.verify(skill, e) and kind.used(skill, episode)
    library = SkillLibrary(kind, e)
    assert library.add(skill) is not None
    broken = Skill("macro:x", "macro", "8*3; 24-3", [], [{"task": {"numbers": [8, 3, 2], "target": 22}, "args": ["8*3", "24-3"]}])
    assert library.add(broken) is None


def test_the_skill_reward_for_grpo():
    kind = expression_skills()
    library = SkillLibrary(kind, env())
    skill = library.add(kind.extract(solved({"numbers": [8, 3, 2], "target": 22}, "<answer>8*3-2</answer>")))
    reward = SkillRewardFunction("Countdown-v0", KWARGS, library, bonus=0.5)
    task = json.dumps({"numbers": [9, 4, 5], "target": 31})
    shown = json.dumps([skill.id])
    assert reward(completions=["<answer>9*4-5</answer>", "<answer>5+9*4-9</answer>", "<answer>(9+4)*5</answer>"],
                  task=[task] * 3, skills=[shown] * 3) == [0.5, 0.0, 0.0]
    assert reward(completions=["<answer>9*4-5</answer>"], task=[task], skills=["[]"]) == [0.0]
    with pytest.raises(ValueError, match="skills"):
        reward(completions=["x"], task=[task])


def test_textnav_gets_command_macros_that_verify_in_the_house_they_came_from():
    from sparring.agents.skills import skill_kind_for

    kwargs = {"difficulty": "easy", "instruction": "compact"}
    e = gymnasium.make("TextNav-v0", **kwargs).unwrapped
    task = e.generate_task(2).to_dict()
    e.reset(options={"task": task})
    plan = iter(e.expert_actions())
    episode = Solver(ScriptedPolicy(lambda p: next(plan)), "TextNav-v0", kwargs, SamplingParams(max_tokens=8)).run([task])[0]
    kind = skill_kind_for(e)
    assert isinstance(kind, MacroSkills) and episode.success
    library = SkillLibrary(kind, e)
    skill = library.add(kind.extract(episode))
    assert skill is not None and skill.body == "; ".join(t.action for t in episode.turns)
    assert library.retrieve(task, 1) == [skill]
    short = skill.tests[0]["args"][:-1]  # the macro without its last command does not finish the task
    assert library.add(Skill("macro:short", "macro", "; ".join(short), [], [{"task": task, "args": short}])) is None


class ToyCodeEnv:
    """Stands in for a code env: an answer passes when it defines `solve` and the helper the task names."""

    family = "code"
    skill_kind = "function"

    def reset(self, *, options):
        self.task = options["task"]
        return self.task["prompt"], {}

    def step(self, action):
        ok = "def solve(" in action and f"{self.task['helper']}(" in action
        return "", float(ok), True, False, {"verdict": {"success": ok, "reward": float(ok)}}


def test_code_skills_are_functions_a_verified_answer_defined():
    from sparring.agents.skills import FunctionSkills, defined_functions, skill_kind_for
    from sparring.trajectories import Trajectory, Turn

    answer = "```python\ndef digits_sum(n):\n    return sum(map(int, str(n)))\n\ndef solve(n):\n    return digits_sum(n)\n```"
    assert [name for name, _ in defined_functions(answer)] == ["digits_sum", "solve"]
    assert defined_functions("def broken(:\n") == [] and defined_functions("x" * 30_000) == []
    task = {"prompt": "sum the digits of n", "helper": "digits_sum"}
    trajectory = Trajectory("Toy-v0", task, [Turn("sum the digits of n", answer)], {"success": True, "reward": 1.0})
    kind = skill_kind_for(ToyCodeEnv())
    assert isinstance(kind, FunctionSkills)
    library = SkillLibrary(kind, ToyCodeEnv())
    skill = library.add(kind.extract(trajectory))
    assert skill.body.startswith("def digits_sum(n):") and skill.id.startswith("function:digits_sum:")
    assert library.retrieve({"prompt": "sum the digits of m", "helper": "digits_sum"}, 1) == [skill]
    reuse = Trajectory("Toy-v0", task, [Turn("", "def solve(n):\n    return digits_sum(n) + 1")], {"success": True})
    copy_only = Trajectory("Toy-v0", task, [Turn("", "def digits_sum(n):\n    return 0")], {"success": False})
    assert kind.used(skill, reuse) and not kind.used(skill, copy_only)
    assert "Functions that solved similar tasks" in kind.render("obs", [skill])
    failing = Trajectory("Toy-v0", {**task, "helper": "other"}, trajectory.turns, {"success": True, "reward": 1.0})
    assert library.add(kind.extract(failing)) is skill and len(skill.tests) == 1  # replayed there, it fails: not merged


def test_codesynth_skills_are_verified_in_the_sandbox_and_retrieved_by_what_the_solver_sees():
    local_sandbox_or_skip()
    e = gymnasium.make("CodeSynth-v0").unwrapped
    task = e.generate_task(0).to_dict()
    e.reset(options={"task": task})
    answer = e.expert_actions()[0]
    episode = Solver(ScriptedPolicy(lambda p: answer), "CodeSynth-v0", {}, SamplingParams(max_tokens=8)).run([task])[0]
    library = SkillLibrary(skill_kind_for_env(e), e)
    skill = library.add(library.kind.extract(episode))
    assert episode.success and skill is not None and skill.kind == "function"
    observation, _ = e.reset(options={"task": task})
    # described by what the solver saw and the function's name, never by the hidden program (task["program"])
    assert set(skill.description) <= set(library.kind.query(task, observation)) | {"f"}
    wrong = Trajectory("CodeSynth-v0", task, [Turn(observation, "def f(x):\n    return x - 1")], {"success": True})
    assert library.add(library.kind.extract(wrong)) is None  # replayed in the sandbox, it fails its tests
