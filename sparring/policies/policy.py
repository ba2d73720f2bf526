"""The one policy interface: batched completions from conversations or raw prompts.

    >>> policy = make_policy("tiny", path="runs/tiny")          # a fresh tiny model, saved like any checkpoint
    >>> policy.generate(["8 3 2 -> 22\\n"], SamplingParams(n=4, max_tokens=32))[0][0].text

Backends: `tiny` (a small transformer trained from scratch, character tokenizer), `hf` (any local
transformers checkpoint), `vllm` (vLLM's offline engine) and `openai` (any OpenAI-compatible server).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from sparring.errors import UnknownNameError

Message = dict[str, str]  # {"role": "user" | "assistant" | "system", "content": "..."}
Prompt = Union[str, list[Message]]  # a raw prompt, or a conversation


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1
    temperature: float = 1.0  # 0 is greedy
    top_p: float = 1.0
    max_tokens: int = 64
    stop: tuple[str, ...] = ()
    seed: int | None = None  # prompt i of a call draws from stream seed + i (hf: its batch's, from the batch's first i)

    def __post_init__(self) -> None:
        if not (isinstance(self.n, int) and self.n >= 1):
            raise ValueError(f"n must be an integer >= 1, got {self.n!r}")
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0 (0 is greedy), got {self.temperature!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if not (isinstance(self.max_tokens, int) and self.max_tokens >= 1):
            raise ValueError(f"max_tokens must be an integer >= 1, got {self.max_tokens!r}")
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        object.__setattr__(self, "stop", tuple(self.stop))


@dataclass
class Completion:
    text: str  # without the stop string that ended it
    token_ids: list[int] | None = None  # what was generated (a stop string's tokens included), where the backend says
    logprobs: list[float] | None = None  # one per token id, under the sampling distribution
    finish_reason: str = "stop"  # "stop" (end of sequence or a stop string) or "length"
    prompt_token_ids: list[int] | None = field(default=None, repr=False)


class Policy(ABC):
    """Turns prompts into completions, in batches."""

    backend: str = ""
    name: str = ""
    # `make_policy(**spec)` builds this policy again in another process (a Ray worker: sparring.executors);
    # None when it cannot be (a model held in memory only)
    spec: dict[str, Any] | None = None

    @abstractmethod
    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        """`params.n` completions for each prompt, in order."""

    def close(self) -> None:
        """Release what the backend holds (processes, servers, memory)."""

    def __enter__(self) -> Policy:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def split_prompts(prompts: Sequence[Prompt]) -> tuple[list[int], list[int]]:
    """The indices of the raw prompts and of the conversations; anything else is a TypeError."""
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, (str, list)):
            raise TypeError(f"prompts[{i}] must be a string or a list of {{'role', 'content'}} messages, got "
                            f"{type(prompt).__name__}")
    return ([i for i, p in enumerate(prompts) if isinstance(p, str)],
            [i for i, p in enumerate(prompts) if not isinstance(p, str)])


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """`text` up to the first stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


BACKENDS = {
    "tiny": ("sparring.policies.tiny", "make_tiny_policy"),
    "hf": ("sparring.policies.hf", "HFPolicy"),
    "vllm": ("sparring.policies.vllm_engine", "VLLMPolicy"),
    "openai": ("sparring.policies.openai_server", "OpenAIPolicy"),
}


def make_policy(backend: str, **kwargs: Any) -> Policy:
    """A policy of `backend` ("tiny", "hf", "vllm" or "openai"); `kwargs` go to the backend."""
    if backend not in BACKENDS:
        raise UnknownNameError("policy backend", backend, BACKENDS)
    module, attribute = BACKENDS[backend]
    return getattr(importlib.import_module(module), attribute)(**kwargs)
