"""The `openai` backend: any OpenAI-compatible server (vLLM's `vllm serve`, TGI, SGLang, OpenAI itself).

Raw prompts go to `/v1/completions` (one request for the whole batch; one request per prompt when a
seed is given, see below), conversations to `/v1/chat/completions` (concurrent requests, one per
conversation). The client retries connection errors, 429s and 5xxs with exponential backoff
(`max_retries`) and gives up after `timeout` seconds per request; then a `SparringError` says what
failed and where. `model=None` asks the server which model it serves (`/v1/models`).

    >>> policy = make_policy("openai", base_url="http://127.0.0.1:8000/v1")

Serving a local checkpoint with vLLM (CPU: add `VLLM_CPU_KVCACHE_SPACE=1` to the environment):

    python -m vllm.entrypoints.openai.api_server --model runs/tiny --served-model-name tiny \\
        --host 127.0.0.1 --port 8000 --dtype float32 --max-model-len 512 --enforce-eager

Notes on what a vLLM server answers:
- `vllm_extensions=True` (the default) sends two fields of vLLM's that other servers may reject (turn it
  off for them; completions then carry no token ids): `return_token_ids`, for the token ids, and, for
  conversations, `add_special_tokens`, so that the chat template's text is tokenized as the `hf` backend
  and TRL tokenize it (the tiny model's template has no <bos>; its tokenizer adds one).
- Log-probs are the server's: vLLM's default (`--logprobs-mode raw_logprobs`) scores tokens before
  temperature and top-p; start it with `--logprobs-mode processed_logprobs` for log-probs under the
  sampling distribution, as the `hf` and `vllm` backends report them.
- With one `seed` for several prompts in one request, vLLM gives every prompt the same random stream,
  so a seeded call sends each prompt in its own request with seed `seed + i` (i: its place in the batch).
- Greedy decoding (temperature 0) asks for one completion and copies it `n` times (vLLM refuses n > 1).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, cast

from sparring.errors import SparringError
from sparring.policies.policy import Completion, Policy, Prompt, SamplingParams, split_prompts

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam


class OpenAIPolicy(Policy):
    backend = "openai"

    def __init__(self, base_url: str, model: str | None = None, *, api_key: str = "EMPTY", timeout: float = 60.0,
                 max_retries: int = 3, concurrency: int = 16, vllm_extensions: bool = True):
        """`vllm_extensions`: send vLLM's `return_token_ids` and `add_special_tokens` (see above); turn off for
        servers that reject unknown fields."""
        try:
            import openai
        except ImportError as error:  # pragma: no cover - openai is a dependency
            raise ImportError('the openai backend needs the openai package: pip install "openai>=1.40"') from error
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL such as 'http://127.0.0.1:8000/v1', got {base_url!r}")
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            raise ValueError(f"concurrency must be an integer >= 1 (requests in flight at once), got {concurrency!r}")
        self._openai = openai
        self.base_url, self.concurrency, self.vllm_extensions = base_url, concurrency, vllm_extensions
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)
        self.model = model or self._served_model()
        self.name = f"{base_url}#{self.model}"
        self.spec = {"backend": "openai", "base_url": base_url, "model": self.model, "api_key": api_key,
                     "timeout": timeout, "max_retries": max_retries, "concurrency": concurrency,
                     "vllm_extensions": vllm_extensions}

    def _served_model(self) -> str:
        models = self._call(lambda: self.client.models.list())
        ids = [m.id for m in (getattr(models, "data", None) or []) if getattr(m, "id", None)]
        if not ids:
            raise SparringError(f"the server at {self.base_url} lists no model at /models; pass model=... "
                                "(the name it serves, e.g. vLLM's --served-model-name)")
        return ids[0]

    def _call(self, request: Any) -> Any:
        openai = self._openai
        try:
            return request()
        except (openai.APIConnectionError, openai.APITimeoutError) as error:
            raise SparringError(f"cannot reach the OpenAI-compatible server at {self.base_url} (after "
                                f"{self.client.max_retries} retries): {error}. Is it running, and is the URL right "
                                "(it usually ends in /v1)?") from error
        except openai.APIStatusError as error:
            hint = (f" (the served models: ask GET {self.base_url}/models, or pass model=None to use the first)"
                    if error.status_code == 404 else "")
            raise SparringError(f"the server at {self.base_url} answered {error.status_code} to a request for model "
                                f"{getattr(self, 'model', None)!r}: {error.message}{hint}") from error
        except openai.APIError as error:  # an answer the client could not read
            raise SparringError(f"the server at {self.base_url} sent an answer the OpenAI client cannot read: "
                                f"{error}") from error

    def _sampling(self, kind: str, params: SamplingParams, seed: int | None) -> dict[str, Any]:
        greedy = params.temperature == 0
        extra = {}
        if self.vllm_extensions:
            extra = {"return_token_ids": True, **({"add_special_tokens": True} if kind == "chat" else {})}
        return {"model": self.model, "n": 1 if greedy else params.n, "temperature": params.temperature,
                "top_p": params.top_p, "max_tokens": params.max_tokens, "stop": list(params.stop) or None,
                "seed": seed, "extra_body": extra}

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        raw, chats = split_prompts(prompts)
        out: list[list[Completion] | None] = [None] * len(prompts)
        seed = (lambda i: None) if params.seed is None else (lambda i: params.seed + i)  # one stream per prompt
        # requests: (kind, the indices of the prompts they answer); seeded raw prompts go one per request
        requests = ([("raw", raw)] if raw and params.seed is None else [("raw", [i]) for i in raw])
        requests += [("chat", [i]) for i in chats]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, max(1, len(requests)))) as pool:
            answers = pool.map(lambda r: self._ask(r[0], r[1], prompts, params, seed(r[1][0])), requests)
            for (_, indices), groups in zip(requests, answers):
                for i, group in zip(indices, groups):
                    out[i] = group
        return out  # type: ignore[return-value]

    def _ask(self, kind: str, indices: list[int], prompts: Sequence[Prompt], params: SamplingParams,
             seed: int | None) -> list[list[Completion]]:
        """One request for `prompts[indices]`; its completions, grouped by prompt."""
        sampling = self._sampling(kind, params, seed)
        if kind == "raw":
            response = self._call(lambda: self.client.completions.create(
                prompt=[cast(str, prompts[i]) for i in indices], logprobs=1, **sampling))  # raw: strings
        else:
            response = self._call(lambda: self.client.chat.completions.create(
                messages=cast("list[ChatCompletionMessageParam]", prompts[indices[0]]), logprobs=True, **sampling))
        choices = sorted(getattr(response, "choices", None) or [], key=lambda c: c.index)
        per_prompt = sampling["n"]
        if len(choices) != len(indices) * per_prompt:
            raise SparringError(f"the server at {self.base_url} answered {len(choices)} completions for "
                                f"{len(indices)} prompt(s) x n={per_prompt}: a malformed response")
        groups = []
        for j in range(len(indices)):
            mine = choices[j * per_prompt:(j + 1) * per_prompt]
            group = [self._completion(kind, choice, response) for choice in mine]
            groups.append(group + [dataclasses.replace(group[0]) for _ in range(params.n - len(group))])
        return groups

    def _completion(self, kind: str, choice: Any, response: Any) -> Completion:
        if kind == "raw":
            text, logprobs = choice.text, _completion_logprobs(choice.logprobs)
            prompt_ids = getattr(choice, "prompt_token_ids", None)
        else:
            text, logprobs = choice.message.content or "", _chat_logprobs(choice.logprobs)
            prompt_ids = getattr(response, "prompt_token_ids", None)
        if not isinstance(text, str):
            raise SparringError(f"the server at {self.base_url} answered a completion whose text is "
                                f"{type(text).__name__}, not a string: a malformed response")
        ids = getattr(choice, "token_ids", None)
        return Completion(text=text, token_ids=list(ids) if ids is not None else None, logprobs=logprobs,
                          finish_reason="length" if choice.finish_reason == "length" else "stop",
                          prompt_token_ids=list(prompt_ids) if prompt_ids is not None else None)


def _completion_logprobs(logprobs: Any) -> list[float] | None:
    if logprobs is None or logprobs.token_logprobs is None:
        return None
    return [float(lp if lp is not None else 0.0) for lp in logprobs.token_logprobs]


def _chat_logprobs(logprobs: Any) -> list[float] | None:
    if logprobs is None or not logprobs.content:
        return None
    return [float(item.logprob) for item in logprobs.content]
