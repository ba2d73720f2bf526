import itertools
import json
import re

import gymnasium
import pytest

import sparring  # noqa: F401
from sparring.envs.countdown_expert import solve
from sparring.envs.countdown_tasks import (
    PRESETS,
    SPLITS,
    CountdownConfig,
    CountdownTask,
    expert_solution,
    generate_task,
    generate_tasks,
    is_held_out_target,
    split_of,
    verify,
)
from sparring.errors import UnknownNameError, UnsolvableTaskError

T24 = CountdownTask((8, 3, 2, 1), 24)


# ---- generator --------------------------------------------------------------------------------

@pytest.mark.parametrize("difficulty", list(PRESETS))
@pytest.mark.parametrize("split", SPLITS)
def test_generated_tasks_are_solvable_in_range_and_in_their_split(difficulty, split):
    config = PRESETS[difficulty]
    low, high = config.count_range
    for task in generate_tasks(config, split, seed=3, n=40 if difficulty != "hard" else 15):
        assert low <= len(task.numbers) <= high
        assert all(config.min_number <= n <= config.max_number for n in task.numbers)
        assert config.min_target <= task.target <= config.max_target
        assert split_of(task) == split
        assert verify(task, f"<answer>{expert_solution(task)}</answer>").success


def test_item_i_depends_only_on_seed_and_index():
    config = PRESETS["medium"]
    assert generate_task(config, "train", 5, 17) == generate_task(config, "train", 5, 17)
    assert generate_tasks(config, "train", 5, n=10, start=10)[7] == generate_task(config, "train", 5, 17)
    assert generate_task(config, "train", 5, 17) != generate_task(config, "train", 6, 17)
    assert generate_task(config, "train", 5, 17) != generate_task(config, "test-seen", 5, 17)
    tasks = generate_tasks(config, "train", 0, n=300)
    assert len(set(tasks)) > 295


def test_splits_hold_out_targets_and_never_share_tasks():
    held = [t for t in range(10, 101) if is_held_out_target(t)]
    assert 5 <= len(held) <= 15  # about 10% of targets
    assert 70 <= sum(is_held_out_target(t) for t in range(100, 1000)) <= 110
    config = PRESETS["medium"]
    train = generate_tasks(config, "train", 0, n=2000)
    seen = generate_tasks(config, "test-seen", 0, n=200)
    unseen = generate_tasks(config, "test-unseen", 0, n=200)
    assert not {t.target for t in train} & set(held)
    assert all(is_held_out_target(t.target) for t in unseen)
    assert {t.target for t in seen} <= {t.target for t in train} | {t for t in range(10, 101) if not is_held_out_target(t)}
    assert not set(train) & set(seen) and not set(train) & set(unseen)


def test_knobs_and_presets():
    env = gymnasium.make("Countdown-v0", num_numbers=(2, 3), min_number=1, max_number=9, min_target=1, max_target=20)
    for seed in range(30):
        task = env.reset(seed=seed)[1]["task"]
        assert 2 <= len(task["numbers"]) <= 3 and max(task["numbers"]) <= 9 and 1 <= task["target"] <= 20
    hard = gymnasium.make("Countdown-v0", difficulty="hard")
    assert len(hard.reset(seed=0)[1]["task"]["numbers"]) in (5, 6)
    easy = gymnasium.make("Countdown-v0", difficulty="easy", max_number=20)  # preset plus a knob
    task = easy.reset(seed=0)[1]["task"]
    assert len(task["numbers"]) == 3 and max(task["numbers"]) <= 20


@pytest.mark.parametrize("kwargs, message", [
    ({"num_number": 3}, "did you mean 'num_numbers'"),
    ({"difficulty": "medum"}, "did you mean 'medium'"),
    ({"split": "tests-seen"}, "did you mean 'test-seen'"),
    ({"format_rewrd": 0.5}, "did you mean 'format_reward'"),
])
def test_mistyped_knobs_suggest_the_closest(kwargs, message):
    with pytest.raises(UnknownNameError, match=message):
        gymnasium.make("Countdown-v0", **kwargs)


@pytest.mark.parametrize("kwargs", [
    {"num_numbers": 1}, {"num_numbers": 9}, {"num_numbers": (4, 3)}, {"min_number": 0},
    {"min_number": 50, "max_number": 10}, {"min_target": 90, "max_target": 10}, {"format_reward": 2.0},
    {"allow_subset": "yes"}, {"num_numbers": 4.5},
])
def test_bad_knob_values_are_clear_errors(kwargs):
    with pytest.raises((ValueError, TypeError), match=next(iter(kwargs))):
        gymnasium.make("Countdown-v0", **kwargs)


def test_unreachable_targets_are_a_clear_error():
    config = CountdownConfig(num_numbers=2, min_number=1, max_number=2, min_target=500, max_target=600)
    with pytest.raises(ValueError, match="widen"):
        generate_task(config)


@pytest.mark.parametrize("bad", [
    {"numbers": [1, 2]}, {"numbers": "1 2", "target": 3}, {"numbers": [1, 2], "target": 3.5},
    {"numbers": [True, 2], "target": 3}, {"numbers": [], "target": 3}, {"numbers": [1] * 9, "target": 3},
    {"numbers": [1, 2], "target": 3, "extra": 1}, [1, 2, 3],
])
def test_posed_tasks_are_validated(bad):
    env = gymnasium.make("Countdown-v0")
    with pytest.raises(ValueError, match="task"):
        env.reset(options={"task": bad})


# ---- verifier ---------------------------------------------------------------------------------

@pytest.mark.parametrize("answer, reward, feedback", [
    ("<answer>(8 * 3) * (2 - 1)</answer>", 1.0, "correct"),
    ("<think>8*3=24</think><answer> 8*3*(2-1) </answer>", 1.0, "correct"),
    ("<answer>8*3*(2-1) = 24</answer>", 1.0, "correct"),
    ("<answer>1</answer> then <answer>8*3*(2-1)</answer>", 1.0, "correct"),
    ("<answer>8*3*(2-1)</answer> no wait <answer>8+3+2+1</answer>", 0.1, "equals 14, the target is 24"),
    ("<answer>8×3÷(2−1)</answer>", 1.0, "correct"),
    ("<answer>8*3*2/2</answer>", 0.1, "uses 2 twice; does not use 1"),
    ("<answer>8*3*(7-1)</answer>", 0.1, "uses 7, which is not one of the given numbers"),
    ("<answer>8*3</answer>", 0.1, "does not use 1, 2"),
    ("<answer>8*3+2-1</answer>", 0.1, "equals 25, the target is 24"),
    ("<answer>8*3/(2+1)</answer>", 0.1, "equals 8, the target is 24"),
    ("<answer>8/3+2-1</answer>", 0.1, "equals 11/3, the target is 24"),
    ("<answer>8*3*(2-1) = 25</answer>", 0.1, "claims = 25"),
    ("<answer>8*3/(2-2+0)*1</answer>", 0.0, "divides by zero"),
    ("<answer>8**3</answer>", 0.0, "powers are not allowed"),
    ("<answer>-8+3</answer>", 0.0, "unary"),
    ("<answer>eval('24')</answer>", 0.0, "contains 'e'"),
    ("<answer></answer>", 0.0, "empty"),
    ("<answer>(8*3</answer>", 0.0, "never closed"),
    ("24", 0.0, "no <answer> tag"),
    ("<answer>24", 0.0, "never closed with </answer>"),
])
def test_verdicts(answer, reward, feedback):
    verdict = verify(T24, answer)
    assert verdict.reward == reward and feedback in verdict.feedback, verdict
    assert verdict.success == (reward == 1.0)
    json.dumps(verdict.to_dict())


def test_repeated_numbers_and_subsets():
    task = CountdownTask((7, 7, 2), 16)
    assert verify(task, "<answer>7+7+2</answer>").success
    assert "uses 7 3 times (it is given twice)" in verify(task, "<answer>7+7+7-5</answer>").feedback
    assert verify(CountdownTask((10, 2, 7), 10), "<answer>10</answer>", allow_subset=True).success
    assert not verify(CountdownTask((10, 2, 7), 10), "<answer>10</answer>").success
    assert not verify(CountdownTask((10, 2, 7), 10), "<answer>10+10</answer>", allow_subset=True).success


def test_format_reward_is_configurable():
    assert verify(T24, "<answer>1+2</answer>", format_reward=0.0).reward == 0.0
    env = gymnasium.make("Countdown-v0", format_reward=0.25)
    env.reset(options={"task": T24.to_dict()})
    assert env.step("<answer>1+2+3+8</answer>")[1] == 0.25


def test_exact_arithmetic_no_float_tolerance():
    task = CountdownTask((1, 3, 3), 1)
    assert verify(task, "<answer>1/3*3</answer>").success  # a float sum of thirds would be 0.999...
    big = CountdownTask((999999, 999998, 1), 999999 * 999998 + 1)
    assert verify(big, "<answer>999999*999998+1</answer>").success
    assert not verify(big, "<answer>999999*999998-1</answer>").success


# ---- expert -----------------------------------------------------------------------------------

def test_expert_on_hand_made_tasks():
    assert solve([1, 5, 5, 5], 24) is not None  # needs a fraction: 5*(5-1/5)
    assert solve([1, 5, 5, 5], 24, integer_only=True) is None
    assert solve([3, 7], 100) is None
    with pytest.raises(UnsolvableTaskError):
        expert_solution(CountdownTask((3, 7), 100))
    env = gymnasium.make("Countdown-v0")
    env.reset(options={"task": {"numbers": [1, 5, 5, 5], "target": 24}})
    assert env.step(env.unwrapped.expert_actions()[0])[4]["verdict"]["success"]


# ---- CountdownSteps-v0 ------------------------------------------------------------------------

def test_steps_env_plays_like_stream_of_search():
    env = gymnasium.make("CountdownSteps-v0")
    obs, info = env.reset(options={"task": {"numbers": [8, 3, 2, 1], "target": 24}})
    assert "Current State: 24:[8, 3, 2, 1], Operations: []" in obs
    assert {"8*3", "8-3", "8/2", "2-1"} <= set(info["admissible_commands"]) and "3-8" not in info["admissible_commands"]
    obs, reward, terminated, _, info = env.step("8*3")
    assert obs == "Current State: 24:[2, 1, 24], Operations: ['8*3=24']" and not terminated and reward == 0
    obs, reward, terminated, _, info = env.step("2 - 1 = 1")
    assert "Operations: ['8*3=24', '2-1=1']" in obs
    obs, reward, terminated, _, info = env.step("<answer>24*1</answer>")
    assert terminated and reward == 1.0 and info["verdict"]["success"]
    assert info["verdict"]["details"]["operations"] == ["8*3=24", "2-1=1", "24*1=24"]


@pytest.mark.parametrize("move, reason", [
    ("3-8", "goes below zero"), ("8/3", "not an exact division"), ("8*9", "not both among"),
    ("8*8", "not both among"), ("8*3=25", "is 24, not 25"), ("multiply", "is not a move"),
])
def test_steps_env_rejects_illegal_moves(move, reason):
    env = gymnasium.make("CountdownSteps-v0", max_invalid_moves=1)
    env.reset(options={"task": {"numbers": [8, 3, 2, 1], "target": 24}})
    obs, reward, terminated, _, info = env.step(move)
    assert obs.startswith("Invalid move") and reason in obs and not terminated
    obs, reward, terminated, _, info = env.step(move)
    assert terminated and not info["verdict"]["success"] and info["verdict"]["details"]["invalid_moves"] == 2


def test_steps_env_failure_and_expert_from_the_middle():
    env = gymnasium.make("CountdownSteps-v0")
    env.reset(options={"task": {"numbers": [8, 3, 2, 1], "target": 24}})
    env.step("8-3")  # 5, 2, 1: 5*2+1 = 11 ... can still reach? 24 is not reachable
    with pytest.raises(UnsolvableTaskError):
        env.unwrapped.expert_actions()
    env.step("5+2")
    _, reward, terminated, _, info = env.step("7+1")
    assert terminated and reward == 0.0 and "the last number is 8, the target is 24" in info["verdict"]["feedback"]
    env.reset(options={"task": {"numbers": [8, 3, 2, 1], "target": 24}})
    env.step("2-1")
    for action in env.unwrapped.expert_actions():
        *_, info = env.step(action)
    assert info["verdict"]["success"]


def test_admissible_moves_are_exactly_the_legal_ones():
    """Every `a op b` on two of the current numbers, tried on the env: the ones its step accepts are exactly the
    admissible commands it lists (up to the order of + and *'s operands), at the start and after a move."""
    env = gymnasium.make("CountdownSteps-v0", max_invalid_moves=100)

    def canonical(move):
        a, op, b = re.fullmatch(r"(\d+)([-+*/])(\d+)", move).groups()
        return (op, *sorted((int(a), int(b)))) if op in "+*" else (op, int(a), int(b))

    def replay(task, moves):
        observation, info = env.reset(options={"task": task})
        for move in moves:
            observation, _, _, _, info = env.step(move)
        return observation, info

    tasks = [env.reset(seed=seed)[1]["task"] for seed in range(5)] + [{"numbers": [6, 6, 3, 1], "target": 13}]
    for seed, task in enumerate(tasks):  # the last with a repeated number (6-6, 6/6)
        listed: list[str] = []  # the first state's admissible moves, read on the first pass
        for played in ([], None):  # the first state, then the state after one admissible move
            if played is None:
                played = [listed[seed % len(listed)]]
            observation, info = replay(task, played)
            listed = info["admissible_commands"]
            values = ([int(v) for v in re.findall(r"Current State: \d+:\[([\d, ]*)\]", observation)[-1].split(",")]
                      if played else task["numbers"])
            accepted = set()
            for i, j in itertools.permutations(range(len(values)), 2):
                for op in "+-*/":
                    move = f"{values[i]}{op}{values[j]}"
                    replay(task, played)
                    if not env.step(move)[0].startswith("Invalid move"):
                        accepted.add(canonical(move))
            assert accepted == {canonical(m) for m in listed}, (task, played)
            assert len(listed) == len(set(map(canonical, listed)))  # each legal move listed once


@pytest.mark.parametrize("answer_format", ["expression", "steps", "steps-with-state"])
@pytest.mark.parametrize("instruction", ["full", "compact"])
def test_answer_formats_expert_verifies_and_prompt_says_the_format(answer_format, instruction):
    env = gymnasium.make("Countdown-v0", difficulty="medium", answer_format=answer_format, instruction=instruction)
    for seed in range(20):
        observation, info = env.reset(seed=seed)
        task = info["task"]
        if instruction == "compact":
            assert observation == f"{' '.join(map(str, task['numbers']))} -> {task['target']}"
        else:
            assert ("one operation per line" in observation) == (answer_format != "expression")
        answer = env.unwrapped.expert_answer()
        lines = answer.removeprefix("<answer>").removesuffix("</answer>").splitlines()
        if answer_format == "expression":
            assert len(lines) == 1 and "=" not in answer
        else:
            states = [line for line in lines if "->" in line]
            assert len(lines) - len(states) == len(task["numbers"]) - 1
            assert len(states) == (len(task["numbers"]) - 1 if answer_format == "steps-with-state" else 0)
            if states:  # the numbers in their places, `_` for those used up; the last state holds the target alone
                assert all(len(state.split()) == len(task["numbers"]) + 2 for state in states)
                assert states[-1].split()[:-2].count("_") == len(task["numbers"]) - 1
        _, reward, terminated, _, info = env.step(answer)
        assert reward == 1.0 and terminated and info["verdict"]["success"]


@pytest.mark.parametrize("answer, reward, feedback", [
    ("<answer>9-6=3\n16-3=13</answer>", 1.0, "correct"),
    ("<answer>9-6=3\n16 3 -> 13\n16-3=13</answer>", 1.0, "correct"),
    ("<answer>9-6=3\n16 3 _ -> 13\n16-3=13\n13 _ _ -> 13</answer>", 1.0, "correct"),
    ("<answer>9-6=3\n16 _ 3 -> 13\n16-3=13\n_ 12 _ -> 13</answer>", 0.1, "line 4 ('_ 12 _ -> 13'): the numbers left"),
    ("<answer>9-6=3\n16-3=12</answer>", 0.1, "line 2 ('16-3=12'): 16-3 is 13, not 12"),
    ("<answer>9-6=3\n16 4 -> 13\n16-3=13</answer>", 0.1, "line 2 ('16 4 -> 13'): the numbers left are 16 3 -> 13"),
    ("<answer>9-6=3\n9-3=6</answer>", 0.1, "line 2 ('9-3=6'): 9 and 3 are not both among the current numbers [16, 3]"),
    ("<answer>9-6=3</answer>", 0.1, "does not use 16; the last result is 3, the target is 13"),
    ("<answer>9-6\n16-3=13</answer>", 0.1, "line 1 ('9-6'): 9-6 does not give its result; write 9-6=3"),
    ("<answer>6-9=-3\n16+3=13</answer>", 0.0, "line 1 ('6-9=-3'): '6-9=-3' is not a move"),
    ("<answer>9/6=1\n16-1=15</answer>", 0.1, "line 1 ('9/6=1'): 9/6 is not an exact division"),
    ("<answer>16-9=7\n6+7=13\n13-0=13</answer>", 0.1, "line 3 ('13-0=13'): 13 and 0 are not both"),
    ("<answer></answer>", 0.0, "the answer holds no steps"),
    ("16-9=7", 0.0, "no <answer> tag"),
    ("<answer>16-9=7\n6+7=13", 0.0, "the <answer> tag is never closed"),
])
def test_step_answers_are_checked_line_by_line(answer, reward, feedback):
    env = gymnasium.make("Countdown-v0", answer_format="steps")
    env.reset(options={"task": {"numbers": [16, 9, 6], "target": 13}})
    _, got, _, _, info = env.step(answer)
    assert got == reward and info["verdict"]["feedback"].startswith(feedback), info["verdict"]["feedback"]


def test_step_answers_with_subsets_and_a_bad_format_name():
    env = gymnasium.make("Countdown-v0", answer_format="steps", allow_subset=True)
    env.reset(options={"task": {"numbers": [16, 9, 6, 2], "target": 13}})
    assert env.step("<answer>16-9=7\n7+6=13</answer>")[1] == 1.0
    with pytest.raises(ValueError, match="answer_format.*'steps'.*'expression'|answer_format.*expression"):
        gymnasium.make("Countdown-v0", answer_format="step")
