"""The `hf` backend: any local transformers checkpoint, batched `generate` with a KV cache, on CPU or GPU."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sparring.errors import SparringError
from sparring.policies.policy import Completion, Policy, Prompt, SamplingParams, truncate_at_stop


def check_checkpoint(path: str | Path) -> Path:
    """The local checkpoint folder (with config.json) that `path` names: a folder, or a Hugging Face model id
    (`Qwen/Qwen2.5-0.5B-Instruct`) found in the local Hugging Face cache, or downloaded into it where this
    machine allows (not with HF_HUB_OFFLINE=1, not without a connection); else an error that says which."""
    folder = Path(path)
    if (folder / "config.json").is_file():
        return folder
    if folder.exists() or not is_model_id(str(path)):
        raise SparringError(f"{str(path)!r} is not a checkpoint folder: expected a folder with config.json, model "
                            "weights and a tokenizer, as written by save_pretrained, or a Hugging Face model id "
                            "such as Qwen/Qwen2.5-0.5B-Instruct (or use the 'tiny' backend to create a model)")
    return hub_checkpoint(str(path))


def is_model_id(text: str) -> bool:
    """Whether `text` can be a Hugging Face model id (`name` or `owner/name`)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def hub_checkpoint(model_id: str) -> Path:
    """Hugging Face model `model_id` from the local cache (HF_HUB_CACHE), downloaded there first where this
    machine allows it; an error that says why not otherwise."""
    import os

    from huggingface_hub import snapshot_download
    from huggingface_hub.constants import ENV_VARS_TRUE_VALUES, HF_HUB_CACHE
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache = os.environ.get("HF_HUB_CACHE", HF_HUB_CACHE)
    try:
        folder = Path(snapshot_download(model_id, local_files_only=True, cache_dir=cache))
    except LocalEntryNotFoundError:
        if os.environ.get("HF_HUB_OFFLINE", "").upper() in ENV_VARS_TRUE_VALUES:
            raise SparringError(f"{model_id!r} is not a local folder, and the Hugging Face model of that id is not in "
                                f"the local cache ({cache}); downloads are off (HF_HUB_OFFLINE=1): download it where "
                                f"there is a connection (`hf download {model_id}`), or unset HF_HUB_OFFLINE here, "
                                "or pass a checkpoint folder") from None
        try:
            folder = Path(snapshot_download(model_id, cache_dir=cache, ignore_patterns=HUB_IGNORED))
        except Exception as error:  # noqa: BLE001 - no connection, unknown or gated repo: all end the same way
            raise SparringError(f"{model_id!r} is not a local folder, not in the local Hugging Face cache ({cache}), "
                                f"and downloading it failed ({type(error).__name__}: {str(error).splitlines()[0]}): "
                                f"check the id, download it where there is a connection (`hf download {model_id}`), "
                                "or pass a checkpoint folder") from None
    if not (folder / "config.json").is_file():
        raise SparringError(f"the Hugging Face model {model_id!r} ({folder}) has no config.json: it is not a "
                            "transformers checkpoint")
    return folder


HUB_IGNORED = ["original/*", "*.pth", "*.onnx", "*.onnx_data", "*.msgpack", "*.h5", "*.gguf", "*.ot"]  # other formats


def render(tokenizer: Any, prompt: Prompt) -> str:
    """A prompt as text: raw prompts as they are, conversations through the tokenizer's chat template."""
    if isinstance(prompt, str):
        return prompt
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    return "".join(f"{m['content']}\n" for m in prompt)


class HFPolicy(Policy):
    backend = "hf"

    def __init__(self, path: str | Path | None = None, *, model: Any = None, tokenizer: Any = None,
                 device: str = "cpu", batch_size: int = 256, dtype: str = "float32", threads: int | None = None):
        """Load the checkpoint at `path` onto `device`, or wrap a `model` and `tokenizer` already in memory
        (during training; it generates on the device it is on)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        if model is None:
            if path is None:
                raise TypeError("HFPolicy needs a checkpoint `path`, or a `model` with its `tokenizer`")
            path = check_checkpoint(path)
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
            # transformers' stubs type `.to` through functools.wraps as an unbound function: `device` taken for self
            model = model.to(device)  # pyright: ignore[reportArgumentType]
        elif tokenizer is None:
            raise ValueError("HFPolicy(model=...) also needs the model's tokenizer")
        else:
            device = str(next(model.parameters()).device)  # a model in memory generates where it is
        self.name = str(path) if path is not None else model.name_or_path
        self.model, self.tokenizer = model, tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device, self.batch_size = device, batch_size
        if path is not None:
            self.spec = {"backend": "hf", "path": str(path), "device": device, "batch_size": batch_size, "dtype": dtype}
        self._never = sorted({t for t in (self.tokenizer.pad_token_id, self.tokenizer.bos_token_id)
                              if t is not None and t != self.tokenizer.eos_token_id})

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        import torch

        texts = [render(self.tokenizer, p) for p in prompts]
        out: list[list[Completion]] = []
        per_call = max(1, self.batch_size // params.n)
        for start in range(0, len(texts), per_call):
            if params.seed is not None:  # each batch its own stream, seed + its first prompt's index: a call on
                torch.manual_seed(params.seed + start)  # prompts[start:] with seed + start draws the same samples
            out += self._generate(texts[start:start + per_call], params)
        return out

    def _generate(self, texts: list[str], params: SamplingParams) -> list[list[Completion]]:
        import torch

        self.model.eval()
        batch = self.tokenizer(texts, return_tensors="pt", padding=True).to(self.device)
        sample = params.temperature > 0
        copies = params.n if sample else 1  # greedy completions are all the same: decode once
        with torch.inference_mode():
            output = self.model.generate(
                **batch, max_new_tokens=params.max_tokens, do_sample=sample, num_return_sequences=copies,
                temperature=params.temperature if sample else None, top_p=params.top_p if sample else None,
                top_k=0 if sample else None, pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id, return_dict_in_generate=True, output_scores=True,
                suppress_tokens=self._never,  # padding must only ever mean "finished"
                stop_strings=list(params.stop) or None, tokenizer=self.tokenizer if params.stop else None)
            logprobs = self.model.compute_transition_scores(output.sequences, output.scores, normalize_logits=True)
        prompt_length = batch["input_ids"].shape[1]
        generated = output.sequences[:, prompt_length:]  # (B * n, T)
        special = {self.tokenizer.pad_token_id, self.tokenizer.eos_token_id}
        results: list[list[Completion]] = [[] for _ in texts]
        for row, (ids, scores) in enumerate(zip(generated.tolist(), logprobs.tolist())):
            prompt = row // copies
            length = next((i for i, t in enumerate(ids) if t in special), len(ids))
            ended = length < len(ids) and ids[length] == self.tokenizer.eos_token_id  # keep the end-of-sequence token
            text, stopped = truncate_at_stop(self.tokenizer.decode(ids[:length], skip_special_tokens=True), params.stop)
            prompt_ids = batch["input_ids"][prompt][batch["attention_mask"][prompt].bool()].tolist()
            completion = Completion(text=text, token_ids=ids[:length + ended], logprobs=scores[:length + ended],
                                    finish_reason="length" if length == len(ids) and not stopped else "stop", prompt_token_ids=prompt_ids)
            results[prompt] += [completion] * (params.n // copies)
        return results
