"""Verifiers: what decides that an attempt is right, and how often each one agrees with the env's.

- `ProgrammaticVerifier`: the env's own verdict (exact; the reference).
- `MajorityVoteVerifier` (SeRL): for tasks without ground truth. The k attempts at a task vote with their
  final answers (`answer_key`, the env family's hook of that name); an attempt is judged right when its
  answer is the majority's. For Countdown the answer is the value of the expression, when it uses exactly
  the given numbers; the target is never looked at.
- `ModelJudgeVerifier` (Self-Rewarding LMs' LLM-as-a-judge): a policy reads the task and an attempt and
  answers yes or no. A small model learns to judge from attempts the env has labelled (`judge_examples`,
  Self-Rewarding's evaluation fine-tuning seed data).

Every verifier judges groups of trajectories (the k attempts at each task) and returns one flag per
attempt; `agreement` compares two such judgements.

    >>> flags = MajorityVoteVerifier().judge(groups)
    >>> agreement(flags, ProgrammaticVerifier().judge(groups))
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sparring.policies.policy import Policy, SamplingParams
from sparring.envs.base import check_choice
from sparring.envs.grading import answer_key
from sparring.trainers.sft import SFTSettings
from sparring.trajectories import Trajectory

VERIFIERS = ("programmatic", "majority", "judge")
Groups = list[list[Trajectory]]


@dataclass
class VerifierConfig:
    use: str = "programmatic"          # the verifier whose judgements decide what the solver trains on
    measure: list[str] = field(default_factory=list)  # verifiers also run for their agreement with the env's
    min_votes: float = 0.5             # majority: the winning answer needs this share of the k votes (at least 2)
    judge_model: str = "own"           # own: a judge model of its own, trained on env-labelled attempts; solver: prompted
    judge_prompt: str = "compact"      # compact (`judge 8 3 2 -> 22 : <answer>8*3-2</answer>`) or full
    judge_samples: int = 2000          # attempts the judge reads per round (a random subset; 0: all)
    judge_bootstrap: int = 600         # round 0: tasks whose attempts seed the judge's training
    # each round's training of the judge
    judge_sft: SFTSettings = field(default_factory=lambda: SFTSettings(steps=40, batch_size=64, learning_rate=3e-4))
    # round 0 training of the judge
    judge_bootstrap_sft: SFTSettings = field(default_factory=lambda: SFTSettings(
        steps=300, batch_size=64, learning_rate=1e-3, warmup_steps=20, scheduler="cosine"))

    def __post_init__(self) -> None:
        check_choice("verifier.use", self.use, VERIFIERS)
        for name in self.measure:
            check_choice("verifier.measure entry", name, VERIFIERS)
        check_choice("verifier.judge_model", self.judge_model, ("own", "solver"))
        check_choice("verifier.judge_prompt", self.judge_prompt, ("compact", "full"))
        if not 0 < self.min_votes <= 1:
            raise ValueError(f"verifier.min_votes must be in (0, 1] (a share of the k votes), got {self.min_votes!r}")
        for name in ("judge_samples", "judge_bootstrap"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"verifier.{name} must be an integer >= 0, got {getattr(self, name)!r}")

    @property
    def active(self) -> list[str]:
        """Every verifier that runs: the one in use, then the measured ones."""
        return list(dict.fromkeys([self.use, *self.measure]))


def agreement(flags: list[list[bool]], reference: list[list[bool]]) -> float:
    """The share of attempts on which two judgements agree."""
    pairs = [(a, b) for group, ref in zip(flags, reference) for a, b in zip(group, ref)]
    return sum(a == b for a, b in pairs) / len(pairs) if pairs else 1.0


class Verifier(ABC):
    name: str = ""

    @abstractmethod
    def judge(self, groups: Groups) -> list[list[bool]]:
        """One flag per attempt: judged right or not."""


class ProgrammaticVerifier(Verifier):
    """The env's verdict, as the solver's episode recorded it."""

    name = "programmatic"

    def judge(self, groups: Groups) -> list[list[bool]]:
        return [[t.success for t in group] for group in groups]


# ---- majority vote ------------------------------------------------------------------------------

class MajorityVoteVerifier(Verifier):
    """SeRL's majority vote: an attempt is right when its answer is the one most of the k attempts gave."""

    name = "majority"

    def __init__(self, min_votes: float = 0.5, key: Callable[[Trajectory], str | None] = answer_key):
        self.min_votes, self.key = min_votes, key

    def judge(self, groups: Groups) -> list[list[bool]]:
        out = []
        for group in groups:
            keys = [self.key(t) for t in group]
            votes = Counter(k for k in keys if k is not None)
            winner, count = votes.most_common(1)[0] if votes else (None, 0)
            needed = max(2, math.ceil(self.min_votes * len(group)))
            out.append([winner is not None and count >= needed and k == winner for k in keys])
        return out


# ---- a model as judge ---------------------------------------------------------------------------

def judge_prompt(trajectory: Trajectory, style: str = "compact") -> str:
    """The question put to a judge: the task as the solver saw it and the attempt."""
    first = trajectory.turns[0].observation if trajectory.turns else ""
    actions = " | ".join(turn.action for turn in trajectory.turns)
    if style == "compact":
        return f"judge {first} : {actions}"
    return (f"A solver was given this task:\n{first}\n\nIt answered:\n{actions}\n\nIs the answer correct? "
            "Reply with yes or no.")


def read_judgement(text: str) -> bool:
    """A judge's reply: yes (or y, true, correct) at its start means right; anything else means wrong."""
    match = re.match(r"\s*(yes|y|true|correct)\b", text, flags=re.IGNORECASE)
    return match is not None


class ModelJudgeVerifier(Verifier):
    """A policy as judge: greedy yes/no on each attempt (Self-Rewarding's LLM-as-a-judge)."""

    name = "judge"

    def __init__(self, policy: Policy, style: str = "compact", max_tokens: int = 4):
        self.policy, self.style, self.max_tokens = policy, style, max_tokens

    def judge(self, groups: Groups) -> list[list[bool]]:
        flat = [t for group in groups for t in group]
        prompts = [[{"role": "user", "content": judge_prompt(t, self.style)}] for t in flat]
        outputs = self.policy.generate(prompts, SamplingParams(temperature=0.0, max_tokens=self.max_tokens)) if flat else []
        flags = iter(read_judgement(group[0].text) for group in outputs)
        return [[next(flags) for _ in group] for group in groups]


def judge_examples(trajectories: list[Trajectory], tokenizer: Any, style: str = "compact",
                   balance: bool = True) -> list[dict[str, str]]:
    """Supervised pairs for a judge: each attempt -> "yes" or "no" as the env judged it. With `balance`, the
    rarer verdict is repeated so both answers weigh the same."""
    from sparring.policies.hf import render

    rows = {True: [], False: []}
    for t in trajectories:
        if t.turns:
            rows[t.success].append({"prompt": render(tokenizer, [{"role": "user", "content": judge_prompt(t, style)}]),
                                    "completion": "yes" if t.success else "no"})
    if balance and rows[True] and rows[False]:
        many = max(len(rows[True]), len(rows[False]))
        for flag in (True, False):
            rows[flag] = [rows[flag][i % len(rows[flag])] for i in range(many)]
    return rows[True] + rows[False]


def verifier_metrics(judgements: dict[str, list[list[bool]]], use: str) -> dict[str, float]:
    """`verifier/agreement` (the verifier in use against the env's) and, for each verifier, its agreement,
    precision (judged right and really right) and share judged right."""
    reference = judgements["programmatic"]
    truth = [b for group in reference for b in group]
    metrics: dict[str, float] = {}
    for name, flags in judgements.items():
        flat = [b for group in flags for b in group]
        judged = sum(flat)
        metrics[f"verifier/{name}/agreement"] = agreement(flags, reference)
        metrics[f"verifier/{name}/positive_rate"] = judged / max(1, len(flat))
        if judged:
            metrics[f"verifier/{name}/precision"] = sum(a and b for a, b in zip(flat, truth)) / judged
    metrics["verifier/agreement"] = metrics[f"verifier/{use}/agreement"]
    metrics["verifier/true_rate"] = sum(truth) / max(1, len(truth))
    return metrics
