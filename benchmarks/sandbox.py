"""Sandbox speed, measured in one run: per-run overhead against a bare `python3 -c` subprocess, and runs
per second with 1 and 2 workers, for every backend (and local tier) that works here, on the warm path (a
fork server per slot) and the cold one (`warm=False`: a fresh sandbox and python3 per run).

    python benchmarks/sandbox.py              # --runs 40 per measurement; Docker needs an engine and the image

Each row: median wall time of one small program (`print(sum(range(1000)))`), its ratio to a bare
`python3 -c` of the same program measured in this same run, and throughput of a batch with `run_many`.
Below the table, the ratios the warm path is held to, all from this same run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
import warnings

from rich.console import Console
from rich.table import Table

from sparring.sandboxes import SandboxError, make_sandbox
from sparring.sandboxes.tiers import available_tiers, sandbox_python

PROGRAM = "print(sum(range(1000)))"


def bare_run_s(runs: int) -> float:
    """Median wall seconds of `python3 -c PROGRAM` as a plain subprocess (the baseline)."""
    python = sandbox_python()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([python, "-c", PROGRAM], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(backend: str, isolation: str | None, runs: int, warm: bool) -> dict:
    kwargs = {"isolation": isolation, "warm": warm} if isolation else {"warm": warm}
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the rlimits tier warns that it is insecure
        with make_sandbox(backend, workers=1, **kwargs) as sandbox:
            sandbox.run(PROGRAM)  # warm up
            for _ in range(runs):
                start = time.perf_counter()
                result = sandbox.run(PROGRAM)
                times.append(time.perf_counter() - start)
                if result.stdout != "499500\n":
                    raise SandboxError(f"{backend}: unexpected result {result}")
            isolation_used = sandbox.isolation
            per_second = {1: runs / sum(times)}
        with make_sandbox(backend, workers=2, **kwargs) as sandbox:
            sandbox.run_many([{"code": PROGRAM}] * 2)
            start = time.perf_counter()
            results = sandbox.run_many([{"code": PROGRAM}] * runs)
            per_second[2] = runs / (time.perf_counter() - start)
            if any(r.stdout != "499500\n" for r in results):
                raise SandboxError(f"{backend}: unexpected results")
    return {"median_s": statistics.median(times), "per_second": per_second, "isolation": isolation_used}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=40, help="programs per measurement")
    args = parser.parse_args()

    console = Console(width=150)
    bare = bare_run_s(args.runs)
    kinds = ([("local", "bwrap", True)] if "bwrap" in available_tiers() else []) + [
        ("local", tier, False) for tier in available_tiers()] + [("docker", None, True), ("docker", None, False)]
    table = Table(title=f"sandbox overhead: median of {args.runs} runs of {PROGRAM!r}; "
                        f"bare python3 subprocess {bare * 1000:.1f} ms")
    for column in ("backend", "path", "isolation", "ms / run", "x bare", "runs/s, 1 worker", "runs/s, 2 workers"):
        table.add_column(column)
    rows = {}
    for backend, tier, warm in kinds:
        path = "warm" if warm else "cold"
        try:
            row = measure(backend, tier, args.runs, warm)
        except SandboxError as error:
            table.add_row(backend, path, f"unavailable: {str(error)[:80]}", "-", "-", "-", "-")
            continue
        if warm and "fork-server" not in row["isolation"]:
            table.add_row(backend, path, f"unavailable: ran cold ({row['isolation']})", "-", "-", "-", "-")
            continue
        rows[backend, tier or backend, path] = row
        table.add_row(backend, path, row["isolation"], f"{row['median_s'] * 1000:.1f}",
                      f"{row['median_s'] / bare:.2f}", f"{row['per_second'][1]:.0f}", f"{row['per_second'][2]:.0f}")
    console.print(table)
    local_warm, local_cold = rows.get(("local", "bwrap", "warm")), rows.get(("local", "bwrap", "cold"))
    docker_warm = rows.get(("docker", "docker", "warm"))
    if local_warm:
        console.print(f"local warm: {local_warm['median_s'] / bare:.2f}x a bare python3 -c per run (target <= 1.0)")
    if local_warm and local_cold:
        console.print(f"local warm: {local_warm['per_second'][2] / local_cold['per_second'][2]:.2f}x the cold path's "
                      f"runs/s with 2 workers (target >= 2)")
    if local_warm and docker_warm:
        console.print(f"docker warm: {docker_warm['median_s'] / local_warm['median_s']:.2f}x the local warm path "
                      f"per run (target <= 3)")


if __name__ == "__main__":
    main()
