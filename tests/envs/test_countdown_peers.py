"""Our Countdown verdicts against reasoning-gym's scorer (a test-only peer) on thousands of answers.

Where we differ, we differ on purpose; `test_deliberate_differences` lists every case:
- reasoning-gym parses with sympy (`parse_expr`, which runs `eval`): it accepts `**`, `^`-free
  sympy syntax such as `2**3`, unary minus and decimals (whose digits it then counts as numbers);
  we accept only integers, + - * / and parentheses, without unary signs.
- it compares floats with `np.isclose` (relative tolerance 1e-5); we compare exact rationals.
- it fails an answer that ends with `= <value>`; we accept it when the value is right.
"""

import random

import pytest

from sparring.envs.countdown_tasks import PRESETS, CountdownTask, expert_solution, generate_tasks, verify

rg = pytest.importorskip("reasoning_gym.games.countdown", reason="reasoning-gym is a test-only peer: pip install -e '.[dev]'")
SCORER = rg.CountdownDataset(rg.CountdownConfig(size=1, seed=0))


def rg_success(task: CountdownTask, expression: str) -> bool:
    entry = {"metadata": {"numbers": list(task.numbers), "target": task.target}}
    return SCORER.score_answer(expression, entry) == 1.0


def perturbations(expression: str, task: CountdownTask, rng: random.Random) -> list[str]:
    """Wrong and right variants: a changed number, a swapped operator, a repeated or missing number."""
    out = []
    digits = [i for i, c in enumerate(expression) if c.isdigit() and (i + 1 == len(expression) or not expression[i + 1].isdigit())]
    i = rng.choice(digits)
    out.append(expression[:i] + str((int(expression[i]) + 1) % 10) + expression[i + 1:])
    ops = [i for i, c in enumerate(expression) if c in "+-*/"]
    if ops:
        i = rng.choice(ops)
        out.append(expression[:i] + rng.choice([o for o in "+-*/" if o != expression[i]]) + expression[i + 1:])
    out.append(f"({expression})*1" if 1 not in task.numbers else f"({expression})+0")
    out.append(f"({expression})+{rng.choice(task.numbers)}-{rng.choice(task.numbers)}")
    out.append(f"{expression}+{task.numbers[0]}")
    return out


@pytest.mark.parametrize("difficulty", ["easy", "medium", "hard"])
def test_verdicts_agree_with_reasoning_gym(difficulty):
    rng = random.Random(difficulty)
    tasks = generate_tasks(PRESETS[difficulty], "train", seed=11, n=150 if difficulty != "hard" else 60)
    compared = disagreements = 0
    for task in tasks:
        solution = expert_solution(task)
        for expression in [solution] + perturbations(solution, task, rng):
            ours = verify(task, f"<answer>{expression}</answer>").success
            compared += 1
            if ours != rg_success(task, expression):
                disagreements += 1
                print("disagree:", task, expression, ours)
    assert compared >= 5 * len(tasks) and disagreements == 0


def test_reasoning_gym_tasks_agree_too():
    dataset = rg.CountdownDataset(rg.CountdownConfig(size=300, seed=5, min_numbers=3, max_numbers=5))
    rng = random.Random(0)
    for entry in dataset:
        task = CountdownTask(tuple(entry["metadata"]["numbers"]), entry["metadata"]["target"])
        assert verify(task, f"<answer>{entry['answer']}</answer>").success, entry
        for expression in perturbations(entry["answer"].replace(" ", ""), task, rng):
            assert verify(task, f"<answer>{expression}</answer>").success == rg_success(task, expression), expression


@pytest.mark.parametrize("numbers, target, expression, ours, theirs", [
    ((2, 3), 8, "2**3", False, True),                  # powers: not a Countdown operation
    ((5, 3), 2, "-3+5", False, True),                  # unary minus: not a Countdown operation
    ((15, 1, 5), 2, "1.5+0.5", False, False),          # decimals: both reject, for different reasons
    ((100000, 3, 1), 33333, "(100000-1)/3", True, True),
    ((999999, 1, 7), 999999, "999999+1/7", False, True),  # 999999.14...: inside np.isclose's 1e-5 tolerance
    ((8, 3), 24, "8*3=24", True, False),               # a trailing '= value' that is right
])
def test_deliberate_differences(numbers, target, expression, ours, theirs):
    task = CountdownTask(numbers, target)
    assert verify(task, f"<answer>{expression}</answer>").success == ours
    assert rg_success(task, expression) == theirs
