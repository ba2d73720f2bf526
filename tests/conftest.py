import pytest
from kit import TAUGHT, teach


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A small random-init tiny model saved like any checkpoint (shared by the tests that only read it)."""
    import torch

    from sparring.policies.tiny import TinyModelConfig, save_tiny_model

    torch.set_num_threads(1)
    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model",
                           TinyModelConfig(hidden_size=64, num_layers=2, num_heads=1, intermediate_size=128))


@pytest.fixture(scope="session")
def taught_checkpoint(tiny_checkpoint, tmp_path_factory):
    """The tiny model taught three answers, saved as a checkpoint: greedy completions that vary and end."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint, dtype=torch.float32)
    assert model.config.hidden_size // model.config.num_attention_heads in (32, 64, 80, 96, 112, 128)  # vLLM-CPU's
    assert teach(model, tokenizer, TAUGHT) < 0.05
    path = tmp_path_factory.mktemp("taught") / "model"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
