"""Countdown speed, measured in one run: our verifier against reasoning-gym's scorer, env reset+step,
and solvable-task generation.

    python benchmarks/countdown.py            # needs the dev extra (reasoning-gym) for the peer ratio

Goals: our verifier at least 20x reasoning-gym's; reset+step at most 50 microseconds.
"""

from __future__ import annotations

import argparse
import random
import time

import gymnasium

import sparring  # noqa: F401
from sparring.envs.countdown_tasks import PRESETS, CountdownConfig, expert_solution, generate_tasks, verify


def per_second(fn, items, min_seconds: float = 1.0) -> float:
    """Calls per second of `fn` over `items`, repeated until at least `min_seconds` have passed."""
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < min_seconds or calls == 0:
        for item in items:
            fn(item)
        calls += len(items)
    return calls / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=1.0, help="minimum time per measurement")
    args = parser.parse_args()

    # Answers: the expert's, and perturbed ones (wrong value, wrong numbers), on medium tasks.
    rng = random.Random(0)
    cases = []
    for task in generate_tasks(PRESETS["medium"], "train", seed=0, n=200):
        solution = expert_solution(task)
        cases += [(task, solution), (task, solution.replace("+", "-", 1)), (task, f"{solution}+{task.numbers[0]}")]
    rng.shuffle(cases)
    completions = [(task, f"<think>let me try</think> <answer>{expr}</answer>") for task, expr in cases]

    ours = per_second(lambda c: verify(c[0], c[1]), completions, args.seconds)
    print(f"verifier, ours:            {ours:10.0f} verifications/s ({1e6 / ours:.1f} us each)")
    try:
        from reasoning_gym.games.countdown import CountdownConfig as RGConfig
        from reasoning_gym.games.countdown import CountdownDataset
        from reasoning_gym.utils import extract_answer
    except ImportError:
        print("verifier, reasoning-gym:   not installed (pip install -e '.[dev]'): no ratio")
    else:
        scorer = CountdownDataset(RGConfig(size=1, seed=0))

        def theirs(case):
            task, completion = case
            scorer.score_answer(extract_answer(completion),
                                {"metadata": {"numbers": list(task.numbers), "target": task.target}})
        rg = per_second(theirs, completions, args.seconds)
        print(f"verifier, reasoning-gym:   {rg:10.0f} verifications/s ({1e6 / rg:.1f} us each)")
        print(f"verifier ratio (ours / reasoning-gym): {ours / rg:.1f}x   (goal >= 20x)")

    for label, env in (("gymnasium.make", gymnasium.make("Countdown-v0")),
                       ("unwrapped", gymnasium.make("Countdown-v0").unwrapped)):
        env.reset(seed=0)

        def episode(_, env=env):
            env.reset()
            env.step("<answer>(1+2)*3</answer>")
        rate = per_second(episode, range(1000), args.seconds)
        print(f"Countdown-v0 reset+step ({label}): {1e6 / rate:6.1f} us   (goal <= 50 us)")

    configs = {3: PRESETS["easy"], 4: PRESETS["medium"],
               5: CountdownConfig(num_numbers=5, max_number=100, min_target=100, max_target=999)}
    for count, config in configs.items():
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < args.seconds:
            generate_tasks(config, "train", seed=1, n=200, start=n)
            n += 200
        rate = n / (time.perf_counter() - start)
        print(f"solvable tasks generated, {count} numbers: {rate:8.0f} tasks/s (targets {config.min_target}..{config.max_target})")


if __name__ == "__main__":
    main()
