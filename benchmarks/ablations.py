"""Ablations of the self-play agents: the tiny model on Countdown and on TextNav, baseline / +proposer /
+reflector / +skills / all, with the same budget and seeds; a table of held-out success per round.

    python benchmarks/ablations.py --parallel 5                 # Countdown, the small version: 21-31 min on the shared 2-core machine
    python benchmarks/ablations.py --env textnav --parallel 2   # TextNav (configs/textnav-ei.yaml's houses and goals)
    python benchmarks/ablations.py --scale 1 --seed 1           # 2.5x the tasks and steps, another seed
    python benchmarks/ablations.py --arms baseline all          # some arms only

Every arm starts from the same bootstrapped solver, so the rounds after round 0 differ only by the agents:
the same rounds, training tasks per round, samples per task, fine-tuning steps, evaluation tasks and seeds.
The bootstrap is made once (`boot-base`), then topped up by the same number of steps twice: on plain
demonstrations (`boot-plain`, where the arms without skills start) and on demonstrations that show retrieved
skills (`boot-skills`, the prompt format of the skill arms, which start from it and its library).
`--parallel N` plays N arms at once (one torch thread each).

What the arms turn on (sparring/agents/):
    baseline    expert iteration on generator tasks
    +proposer   half of each round's tasks written by a proposer model, trained in the loop: on Countdown
                difficulty-aware tasks, on TextNav instructions for sampled routes kept when the solver follows them
    +reflector  failed tasks refined by a reflector model with a Reflexion memory; refined attempts are trained on
    +skills     a skill library of verified skills (Countdown: expression patterns; TextNav: command macros)
                shown to the solver over chains of similar tasks
    all         all three, and the majority-vote and model-judge verifiers measured against the env's

Run directories land in --out (default runs/ablations-<env>-seed<seed>; Countdown: runs/ablations-seed<seed>); an
arm already finished is read back, a killed one resumes. The table goes to stdout and to <out>/ablations.md.
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


# Each env's base config and shared budget. Countdown: the embedded default's task family (3 numbers in 1..20).
# TextNav: configs/textnav-ei.yaml (easy houses, route and coarse-to-fine goals), with its env settings.
ENVS = {
    "countdown": {"config": [], "batch_size": 64, "tasks": 500, "steps": 30, "boot_steps": 300, "top_up": 60,
                  "describe": "test-seen Countdown tasks (3 numbers in 1..20)"},
    "textnav": {"config": ["--config", str(ROOT / "configs" / "textnav-ei.yaml")], "batch_size": 32, "tasks": 500,
                "steps": 100, "boot_steps": 400, "top_up": 60,
                "describe": "test-seen TextNav houses (easy, route and coarse-to-fine goals)"},
}


def budget(env: str, scale: float, rounds: int, eval_tasks: int, threads: int) -> list[str]:
    """The shared budget of every arm (the default scale 0.4: 200 tasks per round, 12 fine-tuning steps on Countdown)."""
    n = lambda x: str(max(1, round(x * scale)))  # noqa: E731
    spec = ENVS[env]
    return [f"rounds={rounds}", f"tasks_per_round={n(spec['tasks'])}", f"env.eval_tasks={eval_tasks}",
            "env.extra_eval_splits=[]", "eval.k=1",
            "expert_iteration.k=4", f"expert_iteration.sft.steps={n(spec['steps'])}",
            f"expert_iteration.sft.batch_size={spec['batch_size']}", f"threads={threads}"]


def bootstrap(env: str, steps: int, eval_every: int) -> list[str]:
    return [f"bootstrap.sft.steps={steps}", f"bootstrap.sft.batch_size={ENVS[env]['batch_size']}",
            f"bootstrap.eval_every={eval_every}",
            "bootstrap.dev_tasks=200", "bootstrap.patience=100"]  # a fixed number of steps: the same for every arm


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


def launch(run_dir: Path, overrides: list[str], seed: int) -> subprocess.Popen | None:
    """Start (or resume) one self-play run; None when it already finished."""
    from sparring.io import read_jsonl

    rounds = int(next(o.split("=")[1] for o in reversed(overrides) if o.startswith("rounds=")))
    rows = read_jsonl(run_dir / "metrics.jsonl")
    if len(rows) == rounds + 1:
        return None
    command = [sys.executable, "-m", "sparring.cli", "--width", "160", "selfplay", "--run-dir", str(run_dir),
               "--seed", str(seed), *overrides, *(["--resume"] if rows else [])]
    run_dir.mkdir(parents=True, exist_ok=True)
    log = open(run_dir.with_suffix(".log"), "a")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def run_all(runs: dict[str, tuple], seed: int, parallel: int) -> dict[str, list[dict]]:
    """Run `runs` (name -> (run dir, overrides) or (run dir, overrides, seed)), `parallel` at a time; their
    metrics rows."""
    from sparring.io import read_jsonl

    pending, running = list(runs.items()), {}
    while pending or running:
        while pending and len(running) < parallel:
            name, (run_dir, overrides, *own_seed) = pending.pop(0)
            print(f"start {name}", flush=True)
            process = launch(run_dir, overrides, own_seed[0] if own_seed else seed)
            if process is not None:
                running[name] = (process, run_dir)
        for name, (process, run_dir) in list(running.items()):
            if process.poll() is not None:
                del running[name]
                if process.returncode:
                    raise SystemExit(f"{name} failed (exit {process.returncode}); see {run_dir.with_suffix('.log')}")
                print(f"done {name}", flush=True)
        time.sleep(2)
    return {name: read_jsonl(spec[0] / "metrics.jsonl") for name, spec in runs.items()}


AGENT_COLUMNS = ["proposer/valid_rate", "proposer/solve_rate", "proposer/learnability", "verifier/majority/agreement",
                 "verifier/judge/agreement", "reflector/accepted", "reflector/accept_rate", "skills/size",
                 "skills/reuse_rate"]


def write_results(out: Path, name: str, text: str, results: dict[str, list[dict]]) -> int:
    """Write the table (`NAME.md`) and every run's metrics (`NAME.json`) to `out`, print the table."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(text + "\n")
    (out / f"{name}.json").write_text(json.dumps(results, indent=1, default=str))
    print(text)
    return 0


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
    parser.add_argument("--env", choices=list(ENVS), default="countdown")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=0.4, help="multiplies tasks per round (500) and training steps")
    parser.add_argument("--arms", nargs="+", default=list(roles(1)), choices=list(roles(1)))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--eval-tasks", type=int, default=300)
    parser.add_argument("--boot-steps", type=int, default=None,
                        help="the shared bootstrap's supervised steps (Countdown 300, TextNav 400)")
    parser.add_argument("--top-up", type=int, default=None, help="steps of each top-up (plain, with skills; 60)")
    parser.add_argument("--parallel", type=int, default=1, help="arms played at once")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    spec = ENVS[args.env]
    boot_steps = args.boot_steps or spec["boot_steps"]
    top_up_steps = args.top_up or spec["top_up"]
    name = f"ablations-seed{args.seed}" if args.env == "countdown" else f"ablations-{args.env}-seed{args.seed}"
    out = (args.out or ROOT / "runs" / name).resolve()
    common = [*spec["config"], *budget(args.env, args.scale, args.rounds, args.eval_tasks, args.threads)]
    start = time.perf_counter()
    base = out / "boot-base"
    run_all({"boot-base": (base, [*common, *bootstrap(args.env, boot_steps, max(1, boot_steps // 2)), "rounds=0"])},
            args.seed, 1)
    from_base = ["policy.backend=hf", f"policy.path={base / 'checkpoints' / 'round-000'}"]
    top_up = bootstrap(args.env, top_up_steps, top_up_steps)
    skill_arms = any("skills.enabled=true" in roles(1)[arm] for arm in args.arms)
    boots = {"boot-plain": (out / "boot-plain", [*common, *from_base, *top_up, "rounds=0"])}
    if skill_arms:
        boots["boot-skills"] = (out / "boot-skills", [*common, *from_base, *top_up, "skills.enabled=true", "rounds=0"])
    run_all(boots, args.seed, args.parallel)
    arms = {}
    for arm in args.arms:
        overrides = roles(args.scale)[arm]
        boot = out / ("boot-skills" if "skills.enabled=true" in overrides else "boot-plain")
        start_from = ["policy.backend=hf", f"policy.path={boot / 'checkpoints' / 'round-000'}", "bootstrap.enabled=false"]
        if boot.name == "boot-skills":
            start_from.append(f"skills.load={boot / 'rounds' / '000' / 'skills.jsonl'}")
        arms[arm] = (out / arm, [*common, *start_from, *overrides])
    results = run_all(arms, args.seed, args.parallel)
    text = (f"Held-out greedy success (%) on {args.eval_tasks} {spec['describe']}, tiny model, "
            f"seed {args.seed}, scale {args.scale}, bootstrap {boot_steps} + {top_up_steps} steps; round 0 is "
            "the shared bootstrap.\n\n" + table(results) +
            f"\n\nTotal wall time: {(time.perf_counter() - start) / 60:.1f} min (this machine, with whatever else ran).")
    return write_results(out, "ablations", text, results)


if __name__ == "__main__":
    raise SystemExit(main())
