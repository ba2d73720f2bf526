"""GRPO on Countdown from a checkpoint, on every process `accelerate launch` starts (one per GPU).

    accelerate launch --config_file configs/accelerate/multi-gpu.yaml configs/accelerate/train_countdown_grpo.py \\
        --checkpoint runs/x/checkpoints/round-000 --output runs/x/grpo-8gpu --steps 60

Each process loads the checkpoint, draws the same tasks and calls `train_grpo`; TRL's GRPOTrainer then
splits every step's prompts over the processes (DDP, or DeepSpeed with deepspeed-zero2.yaml) and
`grpo.batch_size` completions are generated on each. The main process saves the trained model. The
same script runs without accelerate on one device (`python configs/accelerate/train_countdown_grpo.py ...`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a checkpoint folder (e.g. a self-play round's)")
    parser.add_argument("--output", required=True, help="where the trained model goes (<output>/model)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--tasks", type=int, default=480)
    parser.add_argument("--batch-size", type=int, default=64, help="completions per step on each process")
    parser.add_argument("--num-generations", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from accelerate import PartialState
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sparring.context import save_checkpoint
    from sparring.envs.catalog import draw_tasks
    from sparring.selfplay_config import EnvConfig
    from sparring.trainers.grpo import GRPOSettings, train_grpo

    state = PartialState()  # the process's rank, from accelerate launch (one process without it)
    env = EnvConfig()
    model = AutoModelForCausalLM.from_pretrained(args.checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint)
    tasks = draw_tasks(env.id, env.kwargs, "train", args.seed, 0, args.tasks)  # the same tasks in every process
    settings = GRPOSettings(steps=args.steps, batch_size=args.batch_size, num_generations=args.num_generations,
                            learning_rate=5e-5, max_completion_length=40)
    metrics = train_grpo(model, tokenizer, env.id, env.kwargs, tasks, settings, Path(args.output) / "trainer",
                         seed=args.seed)
    if state.is_main_process:
        save_checkpoint(model, tokenizer, Path(args.output) / "model")
        print(json.dumps({"processes": state.num_processes, **metrics}))


if __name__ == "__main__":
    main()
