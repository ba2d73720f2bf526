"""The README's "Add an env family, a trainer or a role": each file saved as a user would, run through a round."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from kit import SMALL_RUN

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_files(folder: Path) -> list[str]:
    """Every python block of the README that opens with `# NAME.py: ...`, saved as folder/NAME.py."""
    names = []
    for code in re.findall(r"```python\n(# (\w+)\.py: .*?)```", README.read_text(), re.DOTALL):
        (folder / f"{code[1]}.py").write_text(code[0])
        names.append(code[1])
    return names


def selfplay(tmp_path: Path, *overrides: str) -> list[dict]:
    """`sparring selfplay` on SMALL_RUN with the README's files on the Python path; the run's metrics."""
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "sparring.cli", "--width", "160", "selfplay", "--run-dir", str(run),
                           *SMALL_RUN, *overrides], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "OMP_NUM_THREADS": "1",
                               "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])})
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_the_readme_names_its_files(tmp_path):
    assert {"reverse_env", "verified_sft"} <= set(readme_files(tmp_path))


def test_an_env_family_in_one_file_runs_a_self_play_round(tmp_path):
    readme_files(tmp_path)
    rows = selfplay(tmp_path, "env.id=reverse_env:Reverse-v0", "env.kwargs={difficulty: easy}", "env.eval_split=test",
                    "bootstrap.demonstrations=optimal")
    assert [row["round"] for row in rows] == [0, 1]
    assert 0 <= rows[1]["eval/success"] <= 1 and rows[1]["ei/pass@1"] >= 0
    episodes = next((tmp_path / "run" / "rounds" / "001" / "trajectories").glob("*.parquet"))
    assert episodes.stat().st_size > 0


def test_a_trainer_in_one_file_trains_a_self_play_round(tmp_path):
    readme_files(tmp_path)
    rows = selfplay(tmp_path, "algorithm=verified_sft:VerifiedSFT", "expert_iteration.k=4")
    assert [row["round"] for row in rows] == [0, 1]
    assert "verified_sft/kept" in rows[1] and "ei/kept" not in rows[1]


def test_a_trainer_that_is_not_one_is_a_clear_error(tmp_path):
    from sparring.selfplay import load_selfplay_config

    (tmp_path / "not_a_trainer.py").write_text("class Plain:\n    pass\n")
    sys.path.insert(0, str(tmp_path))
    try:
        for name, message in [("not_a_trainer:Plain", "is not a RoundTrainer"), ("not_a_trainer:Gone", "cannot load"),
                              ("expert_iteraton", "did you mean 'expert_iteration'?")]:
            try:
                load_selfplay_config(None, [f"algorithm={name}"])
            except Exception as error:  # noqa: BLE001 - the config loader wraps what __post_init__ raised
                assert message in str(error), str(error)
            else:
                raise AssertionError(f"algorithm={name} was accepted")
    finally:
        sys.path.remove(str(tmp_path))
