import pytest

from sparring.errors import SparringError, UnknownNameError
from sparring.policies.hf import HFPolicy
from sparring.policies.policy import SamplingParams, make_policy, truncate_at_stop
from sparring.policies.tiny import CHARACTERS, build_tokenizer


def test_character_tokenizer_round_trips_and_loads_like_any_checkpoint(tiny_checkpoint):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    text = "8 3 2 -> 22\n<answer>2*(3+8)</answer>"
    ids = tokenizer(text).input_ids
    assert ids[0] == tokenizer.bos_token_id and tokenizer.decode(ids, skip_special_tokens=True) == text
    assert len(ids) == 1 + len("8 3 2 -> 22\n") + 1 + len("2*(3+8)") + 1  # the answer tags are one token each
    assert all(tokenizer.convert_tokens_to_ids(c) != tokenizer.unk_token_id for c in CHARACTERS)
    assert tokenizer.decode(tokenizer("é").input_ids, skip_special_tokens=False).endswith("<unk>")
    assert AutoModelForCausalLM.from_pretrained(tiny_checkpoint).config.vocab_size == len(build_tokenizer())
    assert "message" in (tiny_checkpoint / "chat_template.jinja").read_text()  # transformers 5 saves it beside


def test_generate_returns_n_completions_with_ids_and_logprobs(tiny_checkpoint):
    policy = make_policy("hf", path=tiny_checkpoint)
    out = policy.generate(["8 3 2 -> 22", [{"role": "user", "content": "8 3 2 -> 22"}]],
                          SamplingParams(n=3, max_tokens=12, seed=0))
    assert [len(group) for group in out] == [3, 3]
    for completion in out[0] + out[1]:
        assert len(completion.token_ids) == len(completion.logprobs) <= 12
        assert all(lp <= 0 for lp in completion.logprobs)
        assert completion.finish_reason in ("stop", "length")
    # the raw prompt and the one-message conversation render to the same text for the tiny chat template... almost:
    assert out[1][0].prompt_token_ids[:-1] == out[0][0].prompt_token_ids


def test_greedy_is_deterministic_and_sampling_follows_the_seed(tiny_checkpoint):
    policy = HFPolicy(tiny_checkpoint)
    greedy = SamplingParams(n=2, temperature=0, max_tokens=10)
    first = policy.generate(["abc", "de"], greedy)
    assert first == policy.generate(["abc", "de"], greedy) and first[0][0].text == first[0][1].text
    sampled = SamplingParams(n=4, max_tokens=10, seed=7)
    assert [c.text for c in policy.generate(["abc"], sampled)[0]] == [c.text for c in policy.generate(["abc"], sampled)[0]]
    # batching does not change greedy outputs
    assert policy.generate(["abc"], greedy)[0][0].text == first[0][0].text


def test_stop_strings_end_completions(tiny_checkpoint):
    policy = HFPolicy(tiny_checkpoint)
    out = policy.generate(["x"] * 20, SamplingParams(max_tokens=40, stop=("a", "e"), seed=3))
    assert all("a" not in c[0].text and "e" not in c[0].text for c in out)
    stopped = [c for (c,) in out if c.finish_reason == "stop" and c.token_ids[-1] != policy.tokenizer.eos_token_id]
    assert stopped  # some completions were ended by a stop string (not by the end of sequence, not by the length)
    for completion in stopped:  # generation stopped there: what was generated is the text, then a stop string
        generated = policy.tokenizer.decode(completion.token_ids)
        assert generated.startswith(completion.text) and any(s in generated[len(completion.text):] for s in "ae")
        assert len(completion.token_ids) < 40
    assert truncate_at_stop("hello world", ["o w", "l"]) == ("he", True)
    assert truncate_at_stop("hello", ["z"]) == ("hello", False)


def test_unknown_backend_and_bad_paths_name_the_choices(tmp_path):
    with pytest.raises(UnknownNameError, match="did you mean 'vllm'.*hf, openai, tiny, vllm"):
        make_policy("vlm", path="x")
    with pytest.raises(SparringError, match="not a checkpoint folder.*config.json"):
        make_policy("hf", path=tmp_path / "nothing")
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=-1)


def test_tiny_backend_creates_the_model_once(tmp_path):
    path = tmp_path / "tiny"
    policy = make_policy("tiny", path=path, config={"hidden_size": 32, "num_layers": 1, "num_heads": 1,
                                                    "intermediate_size": 64})
    assert policy.backend == "tiny" and (path / "config.json").exists() and (path / "tiny_config.json").exists()
    mtime = (path / "model.safetensors").stat().st_mtime
    make_policy("tiny", path=path)
    assert (path / "model.safetensors").stat().st_mtime == mtime
