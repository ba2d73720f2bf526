"""Preference pairs from a task's attempts, and TRL's DPOTrainer on them."""

import pytest

from sparring.trainers.dpo import DPOSettings, mark_pairs, pair_example, preference_pairs, train_dpo
from sparring.trajectories import Trajectory, Turn


def attempt(task, actions, reward, observations=None):
    observations = observations or [f"obs{i}" for i in range(len(actions))]
    return Trajectory("Countdown-v0", task, [Turn(o, a) for o, a in zip(observations, actions)],
                      {"reward": reward, "success": reward == 1.0, "feedback": "", "details": {}})


def test_pairs_best_against_worst_never_equal_scores_or_actions():
    a, b = {"numbers": [1, 2], "target": 3}, {"numbers": [2, 2], "target": 4}
    group_a = [attempt(a, ["x"], 0.0), attempt(a, ["1+2"], 1.0), attempt(a, ["y"], 0.1), attempt(a, ["2+1"], 1.0)]
    group_b = [attempt(b, ["z"], 0.0), attempt(b, ["w"], 0.0), attempt(b, ["z"], 0.0), attempt(b, ["q"], 0.0)]
    trajectories = group_a + group_b
    pairs, stats = preference_pairs(trajectories, 4, [t.reward for t in trajectories], max_pairs_per_task=3)
    assert [(c.turns[0].action, r.turns[0].action) for c, r in pairs] == [("1+2", "x"), ("2+1", "y")]
    assert stats == {"dpo/pairs": 2, "dpo/tasks_paired": 0.5, "dpo/verdict_agreement": 1.0}
    # other scores (a majority vote's shares): the ranking is theirs; where they contradict the verdicts, the
    # agreement metric says so
    votes = [0.25, 0.25, 0.5, 0.5, 1, 1, 1, 1]  # "y" and "2+1" share the majority answer here
    pairs, stats = preference_pairs(trajectories, 4, votes)
    assert [(c.turns[0].action, r.turns[0].action) for c, r in pairs] == [("y", "x")]
    assert stats["dpo/verdict_agreement"] == 1.0 and stats["dpo/pairs"] == 1
    pairs, stats = preference_pairs(group_a, 4, [1.0, 0.0, 0.5, 0.5])
    assert stats["dpo/verdict_agreement"] == 0.0
    with pytest.raises(ValueError, match="groups of k=4"):
        preference_pairs(group_a[:3], 4, [0, 0, 0])


def test_multi_turn_pairs_part_where_the_actions_differ(tiny_checkpoint):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    task = {"numbers": [1, 2, 3], "target": 6}
    chosen = attempt(task, ["1+2", "3+3"], 1.0, ["s0", "s1"])
    rejected = attempt(task, ["1+2", "3*3"], 0.0, ["s0", "s1"])
    example = pair_example(chosen, rejected, tokenizer)
    assert example["chosen"] == "3+3" and example["rejected"] == "3*3"
    assert "s0" in example["prompt"] and "1+2" in example["prompt"] and example["prompt"].rstrip().endswith("s1")
    saved = mark_pairs([(chosen, rejected)])
    assert [t.meta["preference"] for t in saved] == ["chosen", "rejected"] and {t.meta["pair"] for t in saved} == {0}
    assert chosen.meta == {}  # the originals are untouched


def test_dpo_killed_after_a_checkpoint_continues_from_it(tiny_checkpoint, tmp_path):
    """A DPO call stopped after its step-2 checkpoint, called again on the same folder, trains steps 3-4 only,
    from the saved weights, optimizer and RNG state: weights and metrics equal the uninterrupted call's."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    from sparring.trainers.sft import last_checkpoint

    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    tasks = [{"numbers": [n, n + 1], "target": 2 * n + 1} for n in range(1, 9)]
    pairs = [(attempt(t, [f"<answer>{t['numbers'][0]}+{t['numbers'][1]}</answer>"], 1.0, [f"{t['numbers'][0]} {t['numbers'][1]} -> {t['target']}"]),
              attempt(t, ["<answer>0</answer>"], 0.0, [f"{t['numbers'][0]} {t['numbers'][1]} -> {t['target']}"])) for t in tasks]
    settings = DPOSettings(steps=4, batch_size=4, learning_rate=1e-3, save_steps=2)

    def call(folder, callbacks=None):
        model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
        reference = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
        return model, train_dpo(model, tokenizer, reference, pairs, settings, folder, seed=0, callbacks=callbacks)

    whole, expected = call(tmp_path / "whole")

    class Killed(Exception):
        pass

    class KillAfterSave(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            raise Killed  # what a kill -9 leaves: the checkpoint, and nothing after it

    with pytest.raises(Killed):
        call(tmp_path / "cut", [KillAfterSave()])
    assert last_checkpoint(tmp_path / "cut").name == "checkpoint-2"
    starts = []

    class Start(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            starts.append(state.global_step)

    resumed, metrics = call(tmp_path / "cut", [Start()])
    assert starts == [2]  # it continued, it did not start over
    assert metrics == expected and metrics["train/steps"] == 4
    assert all(a.equal(b) for a, b in zip(whole.parameters(), resumed.parameters()))


def test_dpo_moves_the_policy_towards_the_chosen_answers(tiny_checkpoint, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    reference = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    tasks = [{"numbers": [n, n + 1], "target": 2 * n + 1} for n in range(1, 9)]
    pairs = [(attempt(t, [f"<answer>{t['numbers'][0]}+{t['numbers'][1]}</answer>"], 1.0, [f"{t['numbers'][0]} {t['numbers'][1]} -> {t['target']}"]),
              attempt(t, ["<answer>0</answer>"], 0.0, [f"{t['numbers'][0]} {t['numbers'][1]} -> {t['target']}"])) for t in tasks]

    def margin():
        with torch.no_grad():
            total = 0.0
            for c, r in pairs:
                e = pair_example(c, r, tokenizer)
                for side, sign in (("chosen", 1), ("rejected", -1)):
                    ids = tokenizer(e["prompt"] + e[side], return_tensors="pt")["input_ids"]
                    n = len(tokenizer(e["prompt"])["input_ids"])
                    logps = model(ids).logits[0, :-1].log_softmax(-1).gather(1, ids[0, 1:, None])[:, 0]
                    total += sign * float(logps[n - 1:].sum())
            return total / len(pairs)

    before = margin()
    metrics = train_dpo(model, tokenizer, reference, pairs, DPOSettings(steps=8, batch_size=8, learning_rate=1e-3),
                        tmp_path / "dpo", seed=0)
    assert metrics["train/steps"] == 8 and metrics["dpo/examples"] == 8
    assert margin() > before + 1.0 and metrics["dpo/reward_margin"] > 0
    with pytest.raises(ValueError, match="no preference pairs"):
        train_dpo(model, tokenizer, reference, [], DPOSettings(), tmp_path / "dpo")
    for bad, match in [({"pairs_from": "vibes"}, "pairs_from"), ({"loss_type": "dpo"}, "loss_type"),
                       ({"steps": 0}, "steps"), ({"beta": 0}, "beta")]:
        with pytest.raises(ValueError, match=match):
            DPOSettings(**bad)
