"""Easy-to-hard ablations: from one shared bootstrap on tasks of at most 3 numbers, which self-play recipe
climbs to 4- and 5-number Countdown, where no expert answer is ever shown?

    python benchmarks/easy_to_hard.py                           # every arm, seed 0
    python benchmarks/easy_to_hard.py --seed 1 --arms fixed control
    python benchmarks/easy_to_hard.py --parallel 2 --threads 1  # two arms at once, one torch thread each

The base is configs/countdown-easy-to-hard.yaml. Its round 0 (the bootstrap) runs once (`boot`); every arm then
starts from that checkpoint with the same rounds, tasks per round, samples per task and fine-tuning steps:

    fixed       the config as shipped: 4-number tasks, then 4-5, the exact verifier, expert iteration with search
    no-search   the same without search over first moves: only whole answers sampled from the model
    ladder      a mixed ladder, some harder tasks every round (Self-Improving Transformers): 3-4, 4, 4-5 numbers
    curriculum  the curriculum proposer's ladder (proposer.kind=curriculum) over 3..5 numbers
    proposer    the trained proposer (proposer.kind=policy) writes half the tasks, 3..5 numbers
    majority    label-free: keep answers that win a majority vote over the k samples, not the env's verdict
    grpo        GRPO on the 4-number tasks instead of expert iteration
    control     the same steps spent on more expert demonstrations of at most 3 numbers (control=true)

Run directories land in --out (default runs/easy-to-hard-seed<seed>); a finished arm is read back, a killed one
resumes. The table (4-number held-out greedy success per round, and 5-number and 3-number at the last round)
goes to stdout and to <out>/easy-to-hard.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ablations import ROOT, run_all, write_results

CONFIG = ["--config", str(ROOT / "configs" / "countdown-easy-to-hard.yaml")]
LADDER = ["proposer.knobs={num_numbers: [3, 5]}"]
ARMS = {
    "fixed": [],
    "no-search": ["expert_iteration.search=0"],
    "ladder": ["env.curriculum=[{num_numbers: [3, 4]}, {num_numbers: 4}, {num_numbers: [4, 5]}]"],
    "curriculum": ["proposer.kind=curriculum", "proposer.fraction=1.0",
                   "proposer.levels=[{num_numbers: 3}, {num_numbers: 4}, {num_numbers: 5}]"],
    "proposer": ["proposer.kind=policy", "env.curriculum=[{num_numbers: [3, 5]}]", *LADDER],
    "majority": ["verifier.use=majority"],
    "grpo": ["algorithm=grpo", "grpo.max_completion_length=120"],
}


def table(results: dict[str, list[dict]], k: int) -> str:
    rounds = max(len(rows) for rows in results.values())
    lines = ["| arm | " + " | ".join(f"round {r}" for r in range(rounds)) +
             " | last - round 0 | 5 numbers (last) | 3 numbers (last) | minutes |", "|---|" + "---|" * (rounds + 4)]
    for arm, rows in results.items():
        key = "control/eval" if arm == "control" else "eval"
        values = [rows[0]["eval/success"]] + [row.get(f"{key}/success", float("nan")) for row in rows[1:]]
        cells = [f"{100 * v:.1f}" for v in values] + ["-"] * (rounds - len(rows))
        last = rows[-1]
        minutes = sum(row.get("time/round_s", 0) for row in rows[1:]) / 60
        lines.append(f"| {arm} | " + " | ".join(cells) + f" | {100 * (values[-1] - values[0]):+.1f} | "
                     f"{100 * last.get(f'{key}/5-numbers/success', float('nan')):.1f} | "
                     f"{100 * last.get(f'{key}/3-numbers/success', float('nan')):.1f} | {minutes:.1f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arms", nargs="+", default=[*ARMS, "control"], choices=[*ARMS, "control"])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--parallel", type=int, default=1, help="arms played at once")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every run (e.g. tasks_per_round=300)")
    args = parser.parse_args()
    out = (args.out or ROOT / "runs" / f"easy-to-hard-seed{args.seed}").resolve()
    common = [*CONFIG, f"threads={args.threads}", *args.overrides]
    start = time.perf_counter()
    boot = out / "boot"
    run_all({"boot": (boot, [*common, "rounds=0"])}, args.seed, 1)
    start_from = ["policy.backend=hf", f"policy.path={boot / 'checkpoints' / 'round-000'}", "bootstrap.enabled=false",
                  f"rounds={args.rounds}"]
    arms = {arm: (out / arm, [*common, *start_from, *(ARMS.get(arm) or ["control=true"])]) for arm in args.arms}
    results = run_all(arms, args.seed, args.parallel)
    text = (f"Held-out greedy success (%) on 4-number test-seen Countdown tasks (numbers 1..20), tiny model, seed "
            f"{args.seed}; round 0 is the shared bootstrap on tasks of at most 3 numbers; the control row is the "
            "control's own checkpoints.\n\n" + table(results, 8) +
            f"\n\nTotal wall time: {(time.perf_counter() - start) / 60:.1f} min (this machine, with whatever else ran).")
    return write_results(out, "easy-to-hard", text, results)


if __name__ == "__main__":
    raise SystemExit(main())
