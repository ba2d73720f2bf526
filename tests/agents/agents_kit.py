"""Scripted policies for the agents' tests: deterministic answers chosen from the prompt's text."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence

from sparring.envs.countdown_tasks import CountdownTask, expert_solution
from sparring.policies.policy import Completion, Policy, Prompt, SamplingParams


def prompt_text(prompt: Prompt) -> str:
    return prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)


class ScriptedPolicy(Policy):
    """Answers each prompt with `answer(text)`; records every prompt it was given."""

    backend = name = "scripted"

    def __init__(self, answer: Callable[[str], str]):
        self.answer, self.prompts = answer, []

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        out = []
        for prompt in prompts:
            text = prompt_text(prompt)
            self.prompts.append(text)
            out.append([Completion(self.answer(text)) for _ in range(params.n)])
        return out


def compact_task(text: str) -> CountdownTask:
    """The task of a compact Countdown prompt (`8 3 2 -> 22`, possibly followed by more)."""
    match = re.search(r"((?:\d+ )+)-> (\d+)", text)
    return CountdownTask(tuple(int(n) for n in match[1].split()), int(match[2]))


def expert_answer(text: str) -> str:
    return f"<answer>{expert_solution(compact_task(text))}</answer>"


def pattern_user(text: str) -> str:
    """Uses the first shown pattern (`... | a*b-c`) that some order of the numbers makes work, else the expert."""
    task = compact_task(text)
    if " | " in text:
        for pattern in text.split(" | ", 1)[1].split("\n")[0].split():
            for order in itertools.permutations(task.numbers):
                expression = re.sub(r"[a-h]", lambda m: str(order["abcdefgh".index(m[0])]), pattern)
                try:
                    from sparring.envs.expr import parse

                    if parse(expression).value == task.target:
                        return f"<answer>{expression}</answer>"
                except Exception:  # noqa: BLE001 - a pattern that does not fit this many numbers
                    continue
    return expert_answer(text)
