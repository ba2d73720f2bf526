"""The tiny model: a small Llama trained from scratch, with a character tokenizer built in code.

Both are saved with `save_pretrained`, so transformers, TRL and vLLM load the folder like any
checkpoint. Nothing is downloaded.

    >>> path = save_tiny_model("runs/tiny", TinyModelConfig())   # random init
    >>> policy = make_policy("hf", path=path)
"""

from __future__ import annotations

import json
import string
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ["<pad>", "<bos>", "<eos>", "<unk>"]
WORD_TOKENS = ["<answer>", "</answer>", "<think>", "</think>"]  # whole tokens: short sequences for a small model
CHARACTERS = [c for c in string.printable if c not in "\x0b\x0c\r"]  # printable ASCII, space, tab, newline
CHAT_TEMPLATE = "{% for message in messages %}{{ message['content'] }}\n{% endfor %}"


@dataclass(frozen=True)
class TinyModelConfig:
    """A Llama shaped for CPU training in minutes. `head_dim` = hidden_size / num_heads (64 suits vLLM's CPU attention)."""

    hidden_size: int = 128         # width of the tiny Llama
    num_layers: int = 4            # transformer layers
    num_heads: int = 2             # attention heads
    intermediate_size: int = 384   # MLP width
    max_length: int = 512          # longest sequence in tokens (characters)
    seed: int = 0                  # weight initialisation seed (the loop uses the run's seed)


def build_tokenizer():
    """A character-level `PreTrainedTokenizerFast`: one token per character, plus the answer tags."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + CHARACTERS)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A $B",
                                                        special_tokens=[("<bos>", vocab["<bos>"])])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", eos_token="<eos>",
                                        pad_token="<pad>", unk_token="<unk>", padding_side="left")
    tokenizer.add_tokens(WORD_TOKENS)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_model(config: TinyModelConfig, vocab_size: int, tokenizer: Any = None):
    """A randomly initialised `LlamaForCausalLM` of `config`'s shape."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(config.seed)
    model_config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=config.hidden_size, num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads, num_key_value_heads=config.num_heads,
        intermediate_size=config.intermediate_size, max_position_embeddings=config.max_length,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id if tokenizer else None,
        eos_token_id=tokenizer.eos_token_id if tokenizer else None,
        pad_token_id=tokenizer.pad_token_id if tokenizer else None,
    )
    return AutoModelForCausalLM.from_config(model_config)


def save_tiny_model(path: str | Path, config: TinyModelConfig = TinyModelConfig()) -> Path:
    """Build the tokenizer and a random model of `config`, save both to `path`, and return it."""
    from sparring.io import atomic_dir

    tokenizer = build_tokenizer()
    model = build_model(config, len(tokenizer), tokenizer)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    with atomic_dir(path) as tmp:
        tokenizer.save_pretrained(tmp)
        model.save_pretrained(tmp)
        (Path(tmp) / "tiny_config.json").write_text(json.dumps(asdict(config)))
    return Path(path)


def make_tiny_policy(path: str | Path, config: dict[str, Any] | TinyModelConfig | None = None, **hf_kwargs: Any):
    """The `tiny` backend: the checkpoint at `path`, created there (random init) if it does not exist yet."""
    from sparring.policies.hf import HFPolicy

    if not (Path(path) / "config.json").exists():
        config = config if isinstance(config, TinyModelConfig) else TinyModelConfig(**(config or {}))
        save_tiny_model(path, config)
    policy = HFPolicy(path=path, **hf_kwargs)
    policy.backend = "tiny"
    return policy
