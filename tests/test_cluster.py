"""The multi-GPU pieces that can be checked without GPUs: the shipped accelerate configs load and validate
with accelerate's own classes, the README's command lines parse with `accelerate launch`'s parser, and the
training script runs data-parallel over two CPU processes (torchrun, gloo)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "accelerate"
SCRIPT = "configs/accelerate/train_countdown_grpo.py"
# the command lines the README's Cluster section documents (a test below checks that it still does)
COMMANDS = {
    "multi-gpu.yaml": f"accelerate launch --config_file configs/accelerate/multi-gpu.yaml {SCRIPT} "
                      "--checkpoint runs/x/checkpoints/round-000 --output runs/x/grpo-8gpu --steps 60",
    "deepspeed-zero2.yaml": f"accelerate launch --config_file configs/accelerate/deepspeed-zero2.yaml {SCRIPT} "
                            "--checkpoint runs/x/checkpoints/round-000 --output runs/x/grpo-zero2 --steps 60",
}


@pytest.mark.parametrize("name, kind", [("multi-gpu.yaml", "MULTI_GPU"), ("deepspeed-zero2.yaml", "DEEPSPEED")])
def test_the_accelerate_configs_load_and_the_documented_command_validates(name, kind, monkeypatch):
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    config = ClusterConfig.from_yaml_file(CONFIGS / name)  # unknown keys or values are errors here
    assert config.distributed_type.value == kind and config.num_processes == 8 and config.mixed_precision == "bf16"
    if kind == "DEEPSPEED":
        assert config.deepspeed_config["zero_stage"] == 2
    monkeypatch.chdir(ROOT)
    args = launch_command_parser().parse_args(COMMANDS[name].split()[2:])
    _validate_launch_command(args)  # what `accelerate launch` checks before it starts anything
    assert args.num_processes == 8 and args.mixed_precision == "bf16" and args.training_script == SCRIPT
    assert (args.use_deepspeed, args.multi_gpu) == ((True, False) if kind == "DEEPSPEED" else (False, True))
    assert (ROOT / args.training_script).is_file()


def test_the_readme_documents_these_commands():
    readme = " ".join((ROOT / "README.md").read_text().replace("\\\n", " ").split())
    for command in COMMANDS.values():
        assert command in readme


def test_the_training_script_runs_data_parallel_on_two_cpu_processes(tiny_checkpoint, tmp_path):
    """torchrun starts two processes, as accelerate launch does on GPUs; TRL trains with DDP over gloo."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             SCRIPT, "--checkpoint", str(tiny_checkpoint),
                             "--output", str(tmp_path / "out"), "--steps", "1", "--tasks", "8", "--batch-size", "8"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["processes"] == 2 and summary["grpo/steps"] == 1
    assert (tmp_path / "out" / "model" / "config.json").is_file()


def test_the_selfplay_loop_refuses_to_run_as_one_of_several_processes(tmp_path, monkeypatch):
    from sparring.errors import SparringError
    from sparring.selfplay import SelfPlay, load_selfplay_config

    monkeypatch.setenv("WORLD_SIZE", "8")
    with pytest.raises(SparringError, match="WORLD_SIZE=8"):
        SelfPlay(load_selfplay_config(None, ["env.eval_tasks=5", "env.extra_eval_splits=[]"]), tmp_path).run_rounds()
