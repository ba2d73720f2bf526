"""A plain TRL GRPO script on a sparring env: sparring gives the dataset and the reward, TRL does the rest.

    python examples/trl_grpo.py --env Countdown-v0 --env-kwargs '{"instruction": "compact", "difficulty": "easy"}'
    python examples/trl_grpo.py --model Qwen/Qwen3-0.6B --steps 200 --output runs/qwen-countdown

Without --model it trains sparring's tiny model (random weights, saved under the output folder), which
runs on a CPU in seconds per step: a smoke run, not a result.
"""

import argparse
import json
from pathlib import Path

import torch
from trl import GRPOConfig, GRPOTrainer

from sparring.integrations import trl as sparring_trl


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Countdown-v0", help="a sparring env id (sparring envs lists them)")
    parser.add_argument("--env-kwargs", type=json.loads, default={"instruction": "compact", "difficulty": "easy"},
                        help="the env's arguments as JSON")
    parser.add_argument("--model", default=None, help="a model id or checkpoint folder (default: the tiny model)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rows", type=int, default=256, help="training prompts (tasks 0..rows-1 of the train split)")
    parser.add_argument("--output", default="runs/trl-grpo")
    args = parser.parse_args(argv)

    model = args.model
    if model is None:  # sparring's tiny model: a character-level Llama, no download
        from sparring.policies.tiny import save_tiny_model

        model = str(save_tiny_model(Path(args.output) / "tiny-init"))

    config = GRPOConfig(output_dir=args.output, max_steps=args.steps, per_device_train_batch_size=8,
                        num_generations=4, max_completion_length=32, learning_rate=1e-4, logging_steps=1,
                        report_to="none", save_strategy="no", use_cpu=not torch.cuda.is_available())
    trainer = GRPOTrainer(
        model=model,
        args=config,
        train_dataset=sparring_trl.dataset(args.env, "train", n=args.rows, **args.env_kwargs),
        reward_funcs=sparring_trl.reward_function(args.env, **args.env_kwargs),
    )
    trainer.train()
    trainer.save_model(args.output)
    return trainer


if __name__ == "__main__":
    main()
