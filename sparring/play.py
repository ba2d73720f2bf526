"""`sparring play ENV`: a person plays any sparring text env in the terminal.

    sparring play TextNav-v0 --difficulty easy
    sparring play TextNav-v0 --seed 3 instruction=compact goal_types=[fetch]
    sparring play Countdown-v0 --task '{"numbers": [8, 3, 2], "target": 22}'

It shows the observation, reads a line, steps the env with it and shows what comes back, until the
episode ends; then it shows the verdict (reward, success, feedback and details). `help` lists the
commands that work now (the env's `admissible_commands` where it has them, else what its Action
Space section says); `quit` leaves. `play()` takes its input and output streams, so it is scripted in
tests exactly as a person types.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, TextIO

META = {"help": ("help", "?"), "quit": ("quit", "exit")}


def action_help(env: Any) -> str:
    """The Action Space section of an env's docstring (how to write an action), or a plain fallback."""
    doc = type(env.unwrapped).__doc__ or ""
    match = re.search(r"## Action Space\n(.*?)(?:\n\s*## |\Z)", doc, re.S)
    text = " ".join(match.group(1).split()) if match else "any text"
    return f"What you type is the action: {text}"


def show_verdict(verdict: dict[str, Any], out: TextIO) -> None:
    out.write(f"\n=== {'SUCCESS' if verdict['success'] else 'FAILED'} (reward {verdict['reward']:g}) ===\n")
    out.write(f"{verdict['feedback']}\n")
    for key, value in verdict.get("details", {}).items():
        shown = f"{value:.3f}" if isinstance(value, float) else " > ".join(map(str, value)) \
            if isinstance(value, list) else str(value)
        out.write(f"  {key}: {shown}\n")


def play(env_id: str, *, seed: int | None = None, difficulty: str | None = None, task: dict[str, Any] | None = None,
         env_kwargs: dict[str, Any] | None = None, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Play one episode of `env_id` from `stdin` to `stdout`; returns 0 (finished or quit) like a command, 130
    after Ctrl-C. At a terminal, lines are read with readline's editing and history."""
    from sparring.envs.catalog import make

    source, out = stdin or sys.stdin, stdout or sys.stdout
    kwargs = dict(env_kwargs or {})
    if difficulty is not None:
        kwargs["difficulty"] = difficulty
    env = make(env_id, **kwargs)
    try:
        observation, info = env.reset(seed=seed, options={"task": task} if task is not None else None)
        bare = takes_bare_answers(env)
        out.write(f"{env_id}: type an action and press Enter; 'help' lists the commands, 'quit' leaves.\n")
        if bare:
            out.write("Play mode: a bare expression such as 8*3-2 is your answer (graded as <answer>8*3-2</answer>).\n")
        out.write(f"\n{observation}\n")
        while True:
            line = read_line(source, out)
            if line is None:
                out.write("\n(end of input: the episode is left unfinished)\n")
                return 0
            action = line.rstrip("\r\n")
            word = action.strip().lower()
            if word in META["quit"]:
                out.write("Bye: the episode is left unfinished.\n")
                return 0
            if word in META["help"]:
                commands = info.get("admissible_commands")
                out.write("Commands that work now:\n  " + "\n  ".join(commands) + "\n" if commands
                          else action_help(env) + "\n")
                out.write("Also: help, quit.\n")
                continue
            if bare and "<answer>" not in action:
                action = f"<answer>{action.strip()}</answer>"
            observation, reward, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                if observation != info["verdict"]["feedback"]:  # the verdict's own line is shown once, below
                    out.write(f"{observation}\n")
                show_verdict(info["verdict"], out)
                return 0
            out.write(f"{observation}\n")
    except KeyboardInterrupt:
        out.write("\n")
        return 130
    finally:
        env.close()


def takes_bare_answers(env: Any) -> bool:
    """Countdown-v0 with expression answers: in play mode a person types `8*3-2`, not the answer tags."""
    from sparring.envs.countdown import CountdownEnv

    return isinstance(env.unwrapped, CountdownEnv) and env.unwrapped.answer_format == "expression"


def read_line(stdin: TextIO, out: TextIO) -> str | None:
    """One line after the `> ` prompt, None at the end of input; at a terminal through `input`, which gives
    readline's line editing and history."""
    if stdin is sys.stdin and out is sys.stdout and stdin.isatty():
        try:
            import readline  # noqa: F401  (importing it is what turns line editing on for input())
        except ImportError:  # Windows: plain input
            pass
        try:
            return input("> ")
        except EOFError:
            return None
    out.write("> ")
    out.flush()
    return stdin.readline() or None


def load_task(text: str) -> dict[str, Any]:
    """`--task`: a JSON object, or @path to a file holding one."""
    if text.startswith("@"):
        try:
            with open(text[1:]) as f:
                text = f.read()
        except OSError as error:
            raise ValueError(f"--task {text}: cannot read {text[1:]!r} ({error.strerror or error}); give a JSON "
                             "task inline or @file.json with an existing file") from None
    try:
        task = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--task must be a JSON object (or @file.json), got {text[:60]!r}: {error}") from error
    if not isinstance(task, dict):
        raise ValueError(f"--task must be a JSON object (a task dict), got {type(task).__name__}")
    return task
