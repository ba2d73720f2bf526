"""The `sparring` command: `sparring envs`, `sparring demo`."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table


def cmd_envs(args: argparse.Namespace) -> int:
    from sparring.envs.catalog import describe, env_ids

    table = Table(title="sparring environments")
    for column in ("id", "family", "description", "knobs (defaults)", "presets", "splits"):
        table.add_column(column, overflow="fold")
    for env_id in env_ids():
        info = describe(env_id)
        knobs = ", ".join(f"{k}={v}" for k, v in info["knobs"].items())
        table.add_row(env_id, info["family"], info["description"], knobs,
                      ", ".join(info["presets"]), ", ".join(info["splits"]))
    Console(width=args.width).print(table)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Countdown end to end: tasks drawn from a split, the expert's answer and some wrong ones, graded."""
    import gymnasium

    import sparring  # noqa: F401

    console = Console(width=args.width)
    env = gymnasium.make("Countdown-v0", difficulty=args.difficulty, split=args.split)
    table = Table(title=f"Countdown-v0 ({args.difficulty}, {args.split}): answers and their verdicts")
    for column in ("task", "answer", "reward", "feedback"):
        table.add_column(column, overflow="fold")
    solved = 0
    for episode in range(args.episodes):
        observation, info = env.reset(seed=args.seed + episode)
        if episode == 0:
            console.print(f"[bold]Observation:[/bold] {observation}\n")
        task = info["task"]
        expert = env.unwrapped.expert_actions()[0]
        numbers = task["numbers"]
        answers = [expert, f"<answer>{'+'.join(map(str, numbers))}</answer>",
                   f"<answer>{numbers[0]}*{numbers[0]}</answer>", "I think the answer is 42."]
        for answer in answers:
            env.reset(options={"task": task})
            _, reward, _, _, info = env.step(answer)
            solved += answer is expert and info["verdict"]["success"]
            table.add_row(f"{task['numbers']} -> {task['target']}", answer, f"{reward:.2f}", info["verdict"]["feedback"])
    console.print(table)
    console.print(f"The expert solved {solved}/{args.episodes} tasks.")
    return 0 if solved == args.episodes else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sparring", description=__doc__)
    parser.add_argument("--width", type=int, default=None, help="terminal width for tables")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("envs", help="list every registered env id with its family, description and knobs").set_defaults(
        func=cmd_envs)
    demo = sub.add_parser("demo", help="grade expert and wrong Countdown answers")
    demo.add_argument("--episodes", type=int, default=5)
    demo.add_argument("--difficulty", default="medium")
    demo.add_argument("--split", default="train")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=cmd_demo)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError) as error:
        print(f"sparring {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
