"""Guided traces against plain resampling: how many of the tasks a policy failed does each recover?

    python benchmarks/guided.py --policy runs/x/checkpoints/round-000 \
        --kwargs '{difficulty: easy, max_number: 20, min_target: 1, instruction: compact}'

Draws `--tasks` training tasks, samples `--k` attempts per task with the policy, and keeps the tasks none of
them solved. On those, each guidance kind the env gives (`expert_iteration.guided`: landmarks, hints, prefix)
runs `--samples` guided attempts per task, and the control samples as many more unguided attempts. Prints per
arm the share of failed tasks recovered (a verified trace, graded on the task as posed) and the success rate
of its attempts: what guidance adds over spending the same samples without it.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import gymnasium
import yaml

import sparring  # noqa: F401
from sparring.envs.catalog import draw_tasks
from sparring.policies.policy import SamplingParams, make_policy
from sparring.solver import Solver, by_task
from sparring.trainers.expert_iteration import ExpertIterationConfig, ExpertIterationTrainer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", required=True, help="a checkpoint folder (the hf backend)")
    parser.add_argument("--env", default="Countdown-v0")
    parser.add_argument("--kwargs", default="{}", help="env kwargs as YAML")
    parser.add_argument("--tasks", type=int, default=300, help="training tasks drawn")
    parser.add_argument("--k", type=int, default=8, help="samples per task that decide which tasks failed")
    parser.add_argument("--samples", type=int, default=4, help="guided (and control) attempts per failed task")
    parser.add_argument("--kinds", default="landmarks,hints,prefix", help="guidance kinds to try (those the env gives)")
    parser.add_argument("--max-tokens", type=int, default=40)
    parser.add_argument("--max-turns", type=int, default=32)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    kwargs = yaml.safe_load(args.kwargs) or {}
    env = gymnasium.make(args.env, **kwargs).unwrapped
    tasks = draw_tasks(args.env, kwargs, "train", args.seed, 7 * 10**9, args.tasks)  # a stream no loop round uses
    policy = make_policy("hf", path=args.policy, device=args.device)
    config = ExpertIterationConfig(k=args.k, temperature=args.temperature, guided_samples=args.samples,
                                   max_per_task=args.samples)
    start = time.perf_counter()
    samples = ExpertIterationTrainer(config, args.env, kwargs, max_tokens=args.max_tokens,
                                     max_turns=args.max_turns).collect(policy, tasks, seed=args.seed)
    failed = [i for i, group in enumerate(by_task(samples, args.k)) if not any(t.success for t in group)]
    print(f"{args.env} {kwargs}: {len(tasks)} tasks, pass@{args.k} {1 - len(failed) / len(tasks):.3f}, "
          f"pass@1 {sum(t.success for t in samples) / len(samples):.3f}; {len(failed)} failed tasks "
          f"({time.perf_counter() - start:.0f}s)")
    params = SamplingParams(temperature=args.temperature, max_tokens=args.max_tokens)
    control = Solver(policy, args.env, kwargs, params, max_turns=args.max_turns).run(
        [tasks[i] for i in failed], k=args.samples, seed=args.seed + 1)
    recovered = sum(any(t.success for t in group) for group in by_task(control, args.samples)) if failed else 0
    rows = [{"arm": "unguided resampling", "tasks": len(failed), "recovered": recovered / max(1, len(failed)),
             "attempt_success": sum(t.success for t in control) / max(1, len(control))}]
    for kind in args.kinds.split(","):
        try:
            env.check_guidance(kind)
        except ValueError as error:
            print(f"  {kind}: skipped ({error})")
            continue
        trainer = ExpertIterationTrainer(replace(config, guided=kind), args.env, kwargs,
                                         max_tokens=args.max_tokens, max_turns=args.max_turns)
        _, attempts, metrics = trainer.guided(policy, tasks, samples, seed=args.seed + 1)
        rows.append({"arm": f"guided {kind}", "tasks": metrics["ei/guided_tasks"],
                     "recovered": metrics["ei/guided_recovered"],
                     "attempt_success": sum(t.success for t in attempts) / max(1, len(attempts))})
    print(f"{'arm':<22} {'tasks':>6} {'recovered':>10} {'attempt success':>16}   ({args.samples} attempts per failed task)")
    for row in rows:
        print(f"{row['arm']:<22} {row['tasks']:>6} {row['recovered']:>10.3f} {row['attempt_success']:>16.3f}")
    print(json.dumps({"samples": args.samples, "k": args.k, "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
