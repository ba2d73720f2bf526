"""LoRA: an adapter trains (only it), saves, loads on its base, and the merged model generates the same."""

import pytest

pytest.importorskip("peft", reason="LoRA needs the extra: pip install 'sparring[lora]'")

from sparring.trainers.lora import LoRASettings, peft_config  # noqa: E402
from sparring.trainers.sft import SFTSettings, supervised_finetune  # noqa: E402

EXAMPLES = [{"prompt": f"{a} {b} -> {a + b}\n", "completion": f"<answer>{a}+{b}</answer>"}
            for a in range(1, 7) for b in range(1, 7)]


def greedy(model, tokenizer, prompts):
    import torch

    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=16, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)


def test_an_adapter_trains_saves_loads_and_merges_to_the_same_text(tiny_checkpoint, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    lora = LoRASettings(enabled=True, rank=4, alpha=8, target_modules="all-linear")
    metrics = supervised_finetune(model, tokenizer, EXAMPLES, SFTSettings(steps=30, batch_size=12, learning_rate=5e-3),
                                  tmp_path / "sft", seed=0, lora=lora, adapter_dir=tmp_path / "adapter")
    assert metrics["train/steps"] == 30
    # merged back into the same plain model: no LoRA layer left, every linear weight moved, embeddings untouched
    names = dict(model.named_parameters())
    assert set(names) == set(before) and not any("lora" in n for n in names)
    assert not torch.equal(names["model.layers.0.self_attn.q_proj.weight"], before["model.layers.0.self_attn.q_proj.weight"])
    assert torch.equal(names["model.embed_tokens.weight"], before["model.embed_tokens.weight"])
    # the adapter alone, loaded on a fresh base, generates what the merged model does
    prompts = [e["prompt"] for e in EXAMPLES[:6]]
    merged_text = greedy(model, tokenizer, prompts)
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_checkpoint), str(tmp_path / "adapter"))
    assert greedy(adapted, tokenizer, prompts) == merged_text
    assert greedy(AutoModelForCausalLM.from_pretrained(tiny_checkpoint), tokenizer, prompts) != merged_text
    assert sum(t.startswith("<answer>") or "+" in t for t in merged_text) >= 3  # it learned something of the format
    assert (tmp_path / "adapter" / "adapter_config.json").exists()


def test_lora_settings_are_checked_and_off_by_default():
    assert peft_config(LoRASettings()) is None and peft_config(None) is None
    assert peft_config(LoRASettings(enabled=True, rank=2)).r == 2
    for bad, match in [({"rank": 0}, "rank"), ({"alpha": 1.5}, "alpha"), ({"dropout": 1.0}, "dropout"),
                       ({"target_modules": []}, "target_modules"), ({"target_modules": "q_proj"}, "target_modules")]:
        with pytest.raises(ValueError, match=match):
            LoRASettings(**bad)
