"""The training methods against plain expert iteration, each arm from the same round 0 (issue 18's comparisons):
held-out greedy success per round, per seed and their mean, and a plot of the curves.

    python benchmarks/methods.py --rounds 4 --parallel 2                # Countdown: EI, DPO, guided traces, LoRA
    python benchmarks/methods.py --env textnav --rounds 3 --parallel 2  # TextNav: EI against EI + tree search

The README's "Training methods compared" holds what these printed (seeds 0 and 1, the default --seeds).

Round 0 is one bootstrap per seed, the env's own config with `rounds=0` (Countdown: the embedded default, whose
bootstrap trains to its plateau; TextNav: configs/textnav-ei.yaml). Every arm then loads that checkpoint
(`policy.backend=hf`, `bootstrap.enabled=false`) and plays the same rounds on the same tasks with the same seeds;
the arms differ only by their overrides below. Run directories land in --out (default runs/methods-<env>), one
folder per seed (`boot`, then one per arm); a finished arm is read back, a killed one resumes. The table goes to
stdout and to <out>/methods.md, the curves to <out>/methods.png.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablations import ROOT, run_all, write_results  # noqa: E402

# Each env's base config, budget and arms (name -> overrides on top of the shared start).
ENVS = {
    "countdown": {
        "config": [],
        "budget": ["tasks_per_round=1000", "env.extra_eval_splits=[]", "eval.k=1"],  # a third of the default's tasks
        "describe": "500 test-seen Countdown tasks (3 numbers in 1..20)",
        "arms": {
            "expert iteration": [],
            "DPO, env verdict": ["algorithm=dpo", "dpo.pairs_from=verdict"],
            "DPO, majority (ScPO)": ["algorithm=dpo", "dpo.pairs_from=majority"],
            "DPO, env verdict, lr 1e-5": ["algorithm=dpo", "dpo.pairs_from=verdict", "dpo.learning_rate=1e-5"],
            "EI + guided (prefix)": ["expert_iteration.guided=prefix"],
            "EI + LoRA r8": ["policy.lora.enabled=true", "expert_iteration.sft.learning_rate=0.001"],
        },
    },
    "textnav": {
        "config": ["--config", str(ROOT / "configs" / "textnav-ei.yaml")],
        "budget": ["env.extra_eval_splits=[]"],
        "describe": "500 test-seen TextNav houses (easy, route and coarse-to-fine goals)",
        "arms": {
            "expert iteration": [],
            "EI + tree search": ["expert_iteration.tree_search=true"],
        },
    },
}


def curves(results: dict[int, dict[str, list[dict]]], path: Path, title: str) -> None:
    """Held-out success per round: each arm's mean over seeds (thick) and each seed (thin)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(next(iter(results.values())))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, arm in enumerate(arms):
        color = f"C{i}"
        runs = [seeded[arm] for seeded in results.values()]
        for rows in runs:
            ax.plot([100 * row["eval/success"] for row in rows], color=color, alpha=0.3, linewidth=1)
        n = min(len(rows) for rows in runs)
        mean = [sum(100 * rows[r]["eval/success"] for rows in runs) / len(runs) for r in range(n)]
        ax.plot(mean, color=color, linewidth=2.2, marker="o", label=arm)
    ax.set_xlabel("round (0: the shared bootstrap)")
    ax.set_ylabel("held-out greedy success (%)")
    ax.set_title(title, fontsize=10)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def table(results: dict[int, dict[str, list[dict]]]) -> str:
    """One row per arm: each seed's success by round, then the mean gain over round 0 and over expert iteration."""
    seeds = sorted(results)
    arms = list(results[seeds[0]])
    rounds = max(len(rows) for seeded in results.values() for rows in seeded.values())
    lines = ["| arm | seed | " + " | ".join(f"round {r}" for r in range(rounds)) + " | last - round 0 | last - EI's last |",
             "|---|---|" + "---|" * (rounds + 2)]
    for arm in arms:
        gains, over_ei = [], []
        for seed in seeds:
            rows, ei = results[seed][arm], results[seed]["expert iteration"]
            cells = [f"{100 * row['eval/success']:.1f}" for row in rows] + ["-"] * (rounds - len(rows))
            gains.append(100 * (rows[-1]["eval/success"] - rows[0]["eval/success"]))
            over_ei.append(100 * (rows[-1]["eval/success"] - ei[-1]["eval/success"]))
            lines.append(f"| {arm} | {seed} | " + " | ".join(cells) + f" | {gains[-1]:+.1f} | {over_ei[-1]:+.1f} |")
        lines.append(f"| **{arm}** | mean | " + " | ".join([""] * rounds) +
                     f" | **{sum(gains) / len(gains):+.1f}** | **{sum(over_ei) / len(over_ei):+.1f}** |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", choices=list(ENVS), default="countdown")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--arms", nargs="+", default=None, help="some arms only (default: all of the env's)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=1, help="runs played at once")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    spec = ENVS[args.env]
    names = args.arms or list(spec["arms"])
    unknown = [arm for arm in names if arm not in spec["arms"]]
    if unknown or "expert iteration" not in names:
        parser.error(f"--arms must include 'expert iteration' and be among {list(spec['arms'])}, got {names}")
    out = (args.out or ROOT / "runs" / f"methods-{args.env}").resolve()
    common = [*spec["config"], *spec["budget"], f"threads={args.threads}"]
    start = time.perf_counter()
    boots = {seed: out / f"seed{seed}" / "boot" for seed in args.seeds}
    run_all({f"seed {seed}: bootstrap": (base, [*common, "rounds=0"], seed) for seed, base in boots.items()},
            args.seeds[0], args.parallel)
    runs = {}
    for seed, base in boots.items():
        start_from = ["policy.backend=hf", f"policy.path={base / 'checkpoints' / 'round-000'}",
                      "bootstrap.enabled=false", f"rounds={args.rounds}"]
        for arm in names:
            folder = "-".join("".join(c if c.isalnum() or c == "." else " " for c in arm.lower()).split())
            runs[(seed, arm)] = (out / f"seed{seed}" / folder, [*common, *start_from, *spec["arms"][arm]], seed)
    played = run_all({f"seed {seed}: {arm}": run for (seed, arm), run in runs.items()}, args.seeds[0], args.parallel)
    results = {seed: {arm: played[f"seed {seed}: {arm}"] for arm in names} for seed in args.seeds}
    title = f"{spec['describe']}, tiny model, seeds {', '.join(map(str, args.seeds))}"
    curves(results, out / "methods.png", title)
    text = (f"Held-out greedy success (%) on {title}; round 0 is each seed's shared bootstrap.\n\n" + table(results) +
            f"\n\nCurves: {out / 'methods.png'}. Total wall time: {(time.perf_counter() - start) / 60:.1f} min "
            "(this machine, with whatever else ran).")
    return write_results(out, "methods", text, {str(seed): rows for seed, rows in results.items()})


if __name__ == "__main__":
    raise SystemExit(main())
