"""Local vs Ray from one run: Countdown episodes per second with the tiny policy, and sandbox runs per second.

    python benchmarks/scale.py [--checkpoint DIR] [--tasks 256] [--k 4] [--programs 60]

Episodes: `--tasks` Countdown tasks x `--k` samples at temperature 1 (as expert iteration samples), played
by the solver in this process (torch with 1 and with 2 threads) and through the Ray executor with 1 and 2
workers (one CPU each) on a Ray started here with 2 CPUs. Sandbox runs: `--programs` small Python programs
through the local executor (one sandbox, 2 slots) and through Ray (2 workers, one slot each).

Ray's rates are steady state: Ray's start and each worker's first load of the policy are timed apart
(`startup`), as a long run pays them once while every round pays the rest. The overhead ratio is the
local rate over the Ray rate for the same CPUs (1 thread vs 1 worker; 2 slots vs 2 workers): 1.0 means
Ray costs nothing, 1.2 means 20% slower per CPU.
"""

from __future__ import annotations

import argparse
import tempfile
import time

KWARGS = {"difficulty": "easy", "max_number": 20, "min_target": 1, "instruction": "compact"}


def timed(run, repeats: int) -> float:
    """The best wall time of `repeats` calls (the machine is shared: the best is the least disturbed)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="a local checkpoint (default: a fresh tiny model)")
    parser.add_argument("--tasks", type=int, default=256)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=40)
    parser.add_argument("--programs", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import torch

    from sparring.envs.catalog import draw_tasks
    from sparring.executors import connect_ray, make_executor
    from sparring.policies.hf import HFPolicy
    from sparring.policies.policy import SamplingParams
    from sparring.solver import Solver

    path = args.checkpoint
    if path is None:
        from sparring.policies.tiny import save_tiny_model

        path = save_tiny_model(tempfile.mkdtemp(prefix="sparring-bench-") + "/tiny")
    tasks = draw_tasks("Countdown-v0", KWARGS, "train", 0, 0, args.tasks)
    params = SamplingParams(temperature=1.0, max_tokens=args.max_tokens)
    policy = HFPolicy(path)
    episodes = args.tasks * args.k
    rates, startup = {}, {}

    def play(executor=None):
        return Solver(policy, "Countdown-v0", KWARGS, params, executor=executor).run(tasks, k=args.k, seed=1)

    for threads in (1, 2):
        torch.set_num_threads(threads)
        play()  # warm up
        rates[f"local, {threads} thread{'s' * (threads > 1)}"] = episodes / timed(play, args.repeats)

    start = time.perf_counter()
    connect_ray(num_cpus=2)
    startup["ray.init"] = time.perf_counter() - start
    for workers in (1, 2):
        with make_executor(kind="ray", num_workers=workers) as executor:
            start = time.perf_counter()
            play(executor)  # starts the workers, loads the policy in each
            startup[f"first round, {workers} worker{'s' * (workers > 1)}"] = time.perf_counter() - start
            rates[f"ray, {workers} worker{'s' * (workers > 1)}"] = episodes / timed(lambda: play(executor), args.repeats)

    programs = [{"code": f"print(sum(range({1000 + i})))"} for i in range(args.programs)]
    sandbox_rates = {}
    with make_executor(kind="local", num_workers=2) as local:
        local.run_sandboxes(programs[:2])
        sandbox_rates["local, 2 slots"] = args.programs / timed(lambda: local.run_sandboxes(programs), args.repeats)
    with make_executor(kind="ray", num_workers=2) as executor:
        executor.run_sandboxes(programs[:4])  # each worker opens its sandbox once
        sandbox_rates["ray, 2 workers"] = args.programs / timed(lambda: executor.run_sandboxes(programs),
                                                                args.repeats)

    print(f"tiny model at {path}; {args.tasks} Countdown tasks x k={args.k} at temperature 1, "
          f"{args.max_tokens} tokens at most; best of {args.repeats}")
    for name, rate in rates.items():
        print(f"  {name:<22} {rate:9.1f} episodes/s")
    for name, rate in sandbox_rates.items():
        print(f"  {name:<22} {rate:9.1f} sandbox runs/s")
    for name, seconds in startup.items():
        print(f"  startup: {name:<26} {seconds:6.1f} s")
    print(f"overhead ratio, episodes (local 1 thread / ray 1 worker):   {rates['local, 1 thread'] / rates['ray, 1 worker']:.2f}")
    print(f"speed-up, episodes (ray 2 workers / ray 1 worker):          {rates['ray, 2 workers'] / rates['ray, 1 worker']:.2f}")
    print(f"ray 2 workers vs local 2 threads, episodes:                 {rates['ray, 2 workers'] / rates['local, 2 threads']:.2f}")
    print(f"overhead ratio, sandbox runs (local 2 slots / ray 2 workers): "
          f"{sandbox_rates['local, 2 slots'] / sandbox_rates['ray, 2 workers']:.2f}")


if __name__ == "__main__":
    main()
