"""Ablations of the self-play agents: the tiny model on Countdown, baseline / +proposer / +reflector / +skills /
all, with the same budget and seeds; a table of held-out success per round.

    python benchmarks/ablations.py                      # the small version (about 15-20 min on 2 free cores)
    python benchmarks/ablations.py --scale 2 --seed 1   # twice the tasks and steps, another seed
    python benchmarks/ablations.py --arms baseline all  # some arms only

Every arm starts from the same bootstrapped solver, so round 0 is shared and the rounds after it differ only
by the agents: the same rounds, training tasks per round, samples per task, fine-tuning steps, evaluation tasks
and seeds. Two bootstraps are made once: a plain one, and one whose demonstrations show retrieved skills (the
prompt format of the skill arms; same steps); the skill arms start from the second and its library.

What the arms turn on (sparring/agents/):
    baseline    expert iteration on generator tasks
    +proposer   half of each round's tasks written by a proposer model (difficulty-aware, trained in the loop)
    +reflector  failed tasks refined by a reflector model with a Reflexion memory; refined attempts are trained on
    +skills     a skill library of verified expression patterns shown to the solver over chains of similar tasks
    all         all three, and the majority-vote and model-judge verifiers measured against the env's

Run directories land in --out (default runs/ablations-seed<seed>); an arm already finished is read back, a
killed one resumes. The table goes to stdout and to <out>/ablations.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def budget(scale: float, rounds: int, eval_tasks: int, threads: int) -> list[str]:
    """The shared budget of every arm (scale 1: the small version)."""
    n = lambda x: str(max(1, round(x * scale)))  # noqa: E731
    return [f"rounds={rounds}", f"tasks_per_round={n(500)}", f"env.eval_tasks={eval_tasks}", "env.extra_eval_splits=[]",
            "eval.k=1",
            "expert_iteration.k=4", f"expert_iteration.sft.steps={n(30)}", "expert_iteration.sft.batch_size=64",
            f"threads={threads}"]


def bootstrap(scale: float) -> list[str]:
    n = lambda x: str(max(1, round(x * scale)))  # noqa: E731
    return [f"bootstrap.sft.steps={n(600)}", "bootstrap.sft.batch_size=64", "bootstrap.eval_every=200",
            "bootstrap.dev_tasks=200"]


def roles(scale: float) -> dict[str, list[str]]:
    n = lambda x: str(max(1, round(x * scale)))  # noqa: E731
    proposer = ["proposer.kind=policy", f"proposer.bootstrap_tasks={n(400)}", f"proposer.bootstrap_sft.steps={n(150)}",
                f"proposer.sft.steps={n(20)}"]
    reflector = ["reflector.enabled=true", f"reflector.bootstrap_tasks={n(300)}", f"reflector.bootstrap_sft.steps={n(150)}",
                 f"reflector.sft.steps={n(20)}", "reflector.trials=2", "reflector.samples=2"]
    skills = ["skills.enabled=true"]
    verifiers = ["verifier.measure=[majority,judge]", f"verifier.judge_bootstrap={n(300)}",
                 f"verifier.judge_bootstrap_sft.steps={n(150)}", f"verifier.judge_sft.steps={n(20)}",
                 "verifier.judge_samples=1000"]
    return {"baseline": [], "+proposer": proposer, "+reflector": reflector, "+skills": skills,
            "all": proposer + reflector + skills + verifiers}


def selfplay(run_dir: Path, overrides: list[str], seed: int) -> list[dict]:
    """Run (or resume, or read back) one self-play run; its metrics rows."""
    from sparring.io import read_jsonl

    rounds = int(next(o.split("=")[1] for o in reversed(overrides) if o.startswith("rounds=")))
    rows = read_jsonl(run_dir / "metrics.jsonl")
    if len(rows) == rounds + 1:
        return rows
    command = [sys.executable, "-m", "sparring.cli", "--width", "160", "selfplay", "--run-dir", str(run_dir),
               "--seed", str(seed), *overrides, *(["--resume"] if rows else [])]
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir.with_suffix(".log"), "a") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
    if result.returncode:
        raise SystemExit(f"{run_dir.name} failed (exit {result.returncode}); see {run_dir.with_suffix('.log')}")
    return read_jsonl(run_dir / "metrics.jsonl")


AGENT_COLUMNS = ["proposer/valid_rate", "proposer/solve_rate", "proposer/learnability", "verifier/majority/agreement",
                 "verifier/judge/agreement", "reflector/accepted", "reflector/accept_rate", "skills/size",
                 "skills/reuse_rate"]


def table(results: dict[str, list[dict]]) -> str:
    rounds = max(len(rows) for rows in results.values())
    lines = ["| arm | " + " | ".join(f"round {r}" for r in range(rounds)) + " | last - round 0 | minutes |",
             "|---|" + "---|" * (rounds + 2)]
    for arm, rows in results.items():
        cells = [f"{100 * row['eval/success']:.1f}" for row in rows] + ["-"] * (rounds - len(rows))
        delta = 100 * (rows[-1]["eval/success"] - rows[0]["eval/success"])
        minutes = sum(row.get("time/round_s", 0) for row in rows[1:]) / 60
        lines.append(f"| {arm} | " + " | ".join(cells) + f" | {delta:+.1f} | {minutes:.1f} |")
    lines += ["", "Agent metrics, mean over rounds 1..:", "",
              "| arm | " + " | ".join(AGENT_COLUMNS) + " |", "|---|" + "---|" * len(AGENT_COLUMNS)]
    for arm, rows in results.items():
        cells = []
        for column in AGENT_COLUMNS:
            values = [row[column] for row in rows[1:] if column in row]
            cells.append(f"{sum(values) / len(values):.3f}" if values else "-")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies tasks per round and training steps")
    parser.add_argument("--arms", nargs="+", default=list(roles(1)), choices=list(roles(1)))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: no oversubscription on a shared machine)")
    parser.add_argument("--eval-tasks", type=int, default=300)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = (args.out or ROOT / "runs" / f"ablations-seed{args.seed}").resolve()
    common = budget(args.scale, args.rounds, args.eval_tasks, args.threads)
    start = time.perf_counter()
    boots = {}
    for name, extra in (("plain", []), ("skills", ["skills.enabled=true"])):
        if name == "skills" and not any("skills" in arm for arm in args.arms) and "all" not in args.arms:
            continue
        print(f"bootstrap ({name})", flush=True)
        selfplay(out / f"boot-{name}", [*common, *bootstrap(args.scale), *extra, "rounds=0"], args.seed)
        boots[name] = out / f"boot-{name}"
    results = {}
    for arm in args.arms:
        overrides = roles(args.scale)[arm]
        boot = boots["skills" if "skills.enabled=true" in overrides else "plain"]
        start_from = [f"policy.backend=hf", f"policy.path={boot / 'checkpoints' / 'round-000'}", "bootstrap.enabled=false"]
        if boot.name == "boot-skills":
            start_from.append(f"skills.load={boot / 'rounds' / '000' / 'skills.jsonl'}")
        print(f"arm {arm}", flush=True)
        results[arm] = selfplay(out / arm, [*common, *start_from, *overrides], args.seed)
    text = (f"Held-out greedy success (%) on {args.eval_tasks} test-seen Countdown tasks (3 numbers in 1..20), tiny model, "
            f"seed {args.seed}, scale {args.scale}; round 0 is the shared bootstrap.\n\n" + table(results) +
            f"\n\nTotal wall time: {(time.perf_counter() - start) / 60:.1f} min (this machine, with whatever else ran).")
    (out / "ablations.md").write_text(text + "\n")
    (out / "ablations.json").write_text(json.dumps(results, indent=1, default=str))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
