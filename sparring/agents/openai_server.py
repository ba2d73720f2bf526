"""The `openai` backend: any OpenAI-compatible server (vLLM's `vllm serve`, TGI, SGLang, OpenAI itself).

Raw prompts go to `/v1/completions` (one request for the whole batch), conversations to
`/v1/chat/completions` (concurrent requests). The client retries connection errors, 429s and 5xxs
with exponential backoff (`max_retries`) and gives up after `timeout` seconds per request; then a
`SparringError` says what failed and where.

    >>> policy = make_policy("openai", base_url="http://127.0.0.1:8000/v1")
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sparring.agents.policy import Completion, Policy, Prompt, SamplingParams
from sparring.errors import SparringError


class OpenAIPolicy(Policy):
    backend = "openai"

    def __init__(self, base_url: str, model: str | None = None, *, api_key: str = "EMPTY", timeout: float = 60.0,
                 max_retries: int = 3, concurrency: int = 16, token_ids: bool = True):
        """`token_ids`: ask a vLLM server for token ids (`return_tokens_as_token_ids`); other servers ignore it."""
        try:
            import openai
        except ImportError as error:  # pragma: no cover - openai is a dependency of the vllm extras
            raise SparringError('the openai backend needs the openai package: pip install "openai>=1.40"') from error
        self._openai = openai
        self.base_url, self.concurrency, self.token_ids = base_url, concurrency, token_ids
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)
        self.model = model or self._call(lambda: self.client.models.list()).data[0].id
        self.name = f"{base_url}#{self.model}"

    def _call(self, request: Any) -> Any:
        openai = self._openai
        try:
            return request()
        except (openai.APIConnectionError, openai.APITimeoutError) as error:
            raise SparringError(f"cannot reach the OpenAI-compatible server at {self.base_url} (after retries): "
                                f"{error}. Is it running, and is the URL right (it usually ends in /v1)?") from error
        except openai.APIStatusError as error:
            raise SparringError(f"the server at {self.base_url} answered {error.status_code}: {error.message}") from error
        except IndexError as error:
            raise SparringError(f"the server at {self.base_url} serves no model") from error

    def _sampling(self, params: SamplingParams) -> dict[str, Any]:
        extra = {"return_tokens_as_token_ids": True} if self.token_ids else {}
        return {"model": self.model, "n": params.n, "temperature": params.temperature, "top_p": params.top_p,
                "max_tokens": params.max_tokens, "stop": list(params.stop) or None, "seed": params.seed,
                "extra_body": extra}

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        out: list[list[Completion] | None] = [None] * len(prompts)
        raw = [i for i, p in enumerate(prompts) if isinstance(p, str)]
        if raw:
            response = self._call(lambda: self.client.completions.create(
                prompt=[prompts[i] for i in raw], logprobs=1, **self._sampling(params)))
            choices = sorted(response.choices or [], key=lambda c: c.index)
            if len(choices) != len(raw) * params.n:
                raise SparringError(f"the server at {self.base_url} answered {len(choices)} completions for "
                                    f"{len(raw)} prompts x n={params.n}: a malformed response")
            for j, i in enumerate(raw):
                out[i] = [self._completion(c.text, c.finish_reason, _completion_logprobs(c.logprobs))
                          for c in choices[j * params.n:(j + 1) * params.n]]
        chats = [i for i, p in enumerate(prompts) if not isinstance(p, str)]
        if chats:
            def ask(i: int) -> list[Completion]:
                response = self._call(lambda: self.client.chat.completions.create(
                    messages=prompts[i], logprobs=True, **self._sampling(params)))
                if len(response.choices or []) != params.n:
                    raise SparringError(f"the server at {self.base_url} answered {len(response.choices or [])} "
                                        f"choices for n={params.n}: a malformed response")
                return [self._completion(c.message.content or "", c.finish_reason, _chat_logprobs(c.logprobs))
                        for c in sorted(response.choices, key=lambda c: c.index)]
            with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                for i, completions in zip(chats, pool.map(ask, chats)):
                    out[i] = completions
        return out  # type: ignore[return-value]

    def _completion(self, text: str, finish_reason: str | None, tokens: list[tuple[str, float]] | None) -> Completion:
        ids = None
        if tokens and all(t.startswith("token_id:") for t, _ in tokens):
            ids = [int(t.split(":", 1)[1]) for t, _ in tokens]
        return Completion(text=text, token_ids=ids, logprobs=[lp for _, lp in tokens] if tokens else None,
                          finish_reason="length" if finish_reason == "length" else "stop")


def _completion_logprobs(logprobs: Any) -> list[tuple[str, float]] | None:
    if logprobs is None or logprobs.tokens is None:
        return None
    return [(t, float(lp if lp is not None else 0.0)) for t, lp in zip(logprobs.tokens, logprobs.token_logprobs)]


def _chat_logprobs(logprobs: Any) -> list[tuple[str, float]] | None:
    if logprobs is None or not logprobs.content:
        return None
    return [(item.token, float(item.logprob)) for item in logprobs.content]
