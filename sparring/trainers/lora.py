"""LoRA adapters (PEFT) for the trainers: what users of 0.5B-8B models on one GPU train instead of every weight.

    policy.lora: {rank: 16, alpha: 32, target_modules: [q_proj, v_proj]}    # a self-play config

Each training call (SFT, GRPO, DPO) puts a fresh adapter on the round's starting weights (TRL's
`peft_config`), trains only the adapter, saves it (`adapter/` beside the checkpoint: `PeftModel.from_pretrained`
loads it on the base) and merges it into the weights, so the round's checkpoint is a plain model that vLLM,
the next round and every backend load as any other. The merged model generates what the adapter on its base
generates (tests/trainers/test_lora.py checks the greedy text).
"""

# What this file relies on: peft 0.21 (LoraConfig(r, lora_alpha, lora_dropout, target_modules, task_type),
# PeftModel.save_pretrained / from_pretrained, merge_and_unload) and TRL 1.16's trainers taking `peft_config`
# (they wrap the model with get_peft_model; `trainer.model` is then the PeftModel).

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparring.envs.base import check_at_least
from sparring.errors import SparringError

INSTALL = "pip install 'sparring[lora]'"


@dataclass
class LoRASettings:
    enabled: bool = False          # train a LoRA adapter instead of every weight (needs the lora extra: peft)
    rank: int = 8                  # the adapter's rank r
    alpha: int = 16                # LoRA's alpha: the update is scaled by alpha / rank
    dropout: float = 0.0           # dropout on the adapter's input
    # the modules that get an adapter: names (Llama's q_proj, k_proj, v_proj, o_proj, ...) or "all-linear"
    target_modules: list[str] | str = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])

    def __post_init__(self) -> None:
        check_at_least("lora", self, {"rank": 1, "alpha": 1})
        if not 0 <= self.dropout < 1:
            raise ValueError(f"lora.dropout must be in [0, 1), got {self.dropout!r}")
        modules = self.target_modules
        if not (modules == "all-linear" or isinstance(modules, list) and modules and all(isinstance(m, str) for m in modules)):
            raise ValueError(f"lora.target_modules must be a list of module names (e.g. [q_proj, v_proj]) or "
                             f"'all-linear', got {modules!r}")


def peft_config(settings: LoRASettings | None) -> Any:
    """The PEFT config TRL's trainers take (`peft_config=`), or None when LoRA is off."""
    if settings is None or not settings.enabled:
        return None
    try:
        from peft import LoraConfig
    except ImportError:
        raise SparringError(f"policy.lora needs the peft package: {INSTALL}") from None
    return LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                      target_modules=settings.target_modules, task_type="CAUSAL_LM")


def merge_adapter(trainer: Any, adapter_dir: str | Path | None = None) -> Any:
    """After a LoRA training call: save the adapter to `adapter_dir` (if given) and merge it into the weights.
    Returns the plain model (the same object the trainer was given: PEFT injects its layers in place and
    merging puts plain ones back)."""
    model = trainer.model
    if not hasattr(model, "merge_and_unload"):  # no adapter: nothing to merge
        return model
    if adapter_dir is not None:
        model.save_pretrained(str(adapter_dir))
    return model.merge_and_unload()
