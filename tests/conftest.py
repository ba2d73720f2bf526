import pytest


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A small random-init tiny model saved like any checkpoint (shared by the tests that only read it)."""
    import torch

    from sparring.agents.tiny import TinyModelConfig, save_tiny_model

    torch.set_num_threads(1)
    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model",
                           TinyModelConfig(hidden_size=64, num_layers=2, num_heads=1, intermediate_size=128))
