"""The proposers: task text, validation, difficulty-aware labels, metrics, the curriculum, and a tiny model
bootstrapped on generator-made tasks that then writes valid ones."""

import json
import random

import gymnasium
import pytest
from agents_kit import ScriptedPolicy
from kit import local_sandbox_or_skip

import sparring  # noqa: F401
from sparring.agents.proposer import (
    CurriculumProposer,
    PolicyProposer,
    Proposal,
    ProposerConfig,
    check_task,
    labels_for,
    learnability,
    next_aim,
    proposal_metrics,
    task_to_text,
    text_to_task,
)

KWARGS = {"difficulty": "easy", "max_number": 20, "min_target": 1, "instruction": "compact"}
COUNTDOWN = gymnasium.make("Countdown-v0", **KWARGS).unwrapped


def env():
    return gymnasium.make("Countdown-v0", **KWARGS).unwrapped


def test_learnability_is_absolute_zeros():
    assert [learnability(p) for p in (0.0, 0.25, 0.5, 0.75, 1.0)] == [0.0, 0.75, 0.5, 0.25, 0.0]


def test_task_text_round_trips_and_junk_is_a_value_error():
    task = {"numbers": [8, 3, 2], "target": 22}
    assert task_to_text(task, COUNTDOWN) == "8 3 2 -> 22"
    assert text_to_task("8 3 2 -> 22", COUNTDOWN) == task
    assert text_to_task(' {"numbers": [8, 3, 2], "target": 22} ', COUNTDOWN) == task
    assert json.loads(task_to_text(task, COUNTDOWN, "full")) == task
    for junk in ["", "-> 5", "8 3 2 ->", "__import__('os')", "{not json}", "[1, 2]", "x" * 3000]:
        with pytest.raises(ValueError):
            text_to_task(junk, COUNTDOWN)


@pytest.mark.parametrize("task, reason", [
    ({"numbers": [8, 3, 2], "target": 22}, None),
    ({"numbers": [8, 3], "target": 22}, "knobs"),              # 2 numbers: easy asks for 3
    ({"numbers": [8, 3, 50], "target": 22}, "knobs"),          # 50 > max_number 20
    ({"numbers": [1, 1, 1], "target": 98}, "unsolvable"),
    ({"numbers": [8, "3", 2], "target": 22}, "parse"),
    ({"numbers": [8, 3, 2]}, "parse"),
    ("8 3 2 -> 22", "parse"),
])
def test_check_task_accepts_only_valid_solvable_tasks_within_the_knobs(task, reason):
    problem = check_task(env(), task)
    assert (problem and problem[0]) == reason, problem


def test_a_held_out_task_is_outside_the_train_split():
    e = gymnasium.make("Countdown-v0", split="test-seen", **KWARGS).unwrapped
    held_out = e.generate_task(0).to_dict()
    problem = check_task(env(), held_out)
    assert problem and problem[0] == "knobs" and "split" in problem[1]


def test_labels_average_the_aim_and_the_aim_follows_the_solve_rate():
    labels = labels_for(0.6, 2000, 4, random.Random(0))
    assert set(labels) == {0.5, 0.75} and abs(sum(labels) / len(labels) - 0.6) < 0.02
    assert next_aim(None, None, [0.25, 0.75], 4) == 0.5
    assert next_aim(0.5, 0.9, [0.25, 0.75], 4) < 0.5   # solved too often: ask for harder tasks
    assert next_aim(0.5, 0.1, [0.25, 0.75], 4) > 0.5
    assert 0.25 <= next_aim(0.5, 1.0, [0.25, 0.75], 4) <= 0.75


def test_the_policy_proposer_validates_what_it_is_given():
    texts = iter(["8 3 2 -> 22", "8 3 2 -> 22", "1 1 1 -> 98", "8 3 -> 11", "hello", '{"numbers": [5, 4, 2], "target": 18}'])
    policy = ScriptedPolicy(lambda prompt: next(texts))
    proposer = PolicyProposer("Countdown-v0", KWARGS, ProposerConfig(kind="policy"), k=4)
    proposals = proposer.propose(policy, 6, aim=0.5, seed=0)
    assert policy.prompts[0] == "propose p=0.50" and len(proposals) == 6
    accepted = proposer.accept(proposals)
    assert [p.task for p in accepted] == [{"numbers": [8, 3, 2], "target": 22}, {"numbers": [5, 4, 2], "target": 18}]
    assert [p.reason for p in proposals] == [None, "duplicate", "unsolvable", "knobs", "parse", None]
    metrics = proposal_metrics(proposals, [0.5, 1.0])
    assert metrics["proposer/valid_rate"] == 2 / 6 and metrics["proposer/solve_rate"] == 0.75
    assert metrics["proposer/learnability"] == 0.25 and metrics["proposer/rejected/parse"] == 1 / 6
    forbidden = PolicyProposer("Countdown-v0", KWARGS, ProposerConfig(kind="policy"), k=4,
                               forbidden={json.dumps({"numbers": [8, 3, 2], "target": 22}, sort_keys=True)})
    again = [Proposal("8 3 2 -> 22")]
    assert not forbidden.accept(again) and again[0].reason == "held_out"


def test_the_full_prompt_carries_recent_tasks_and_pass_rates():
    proposer = PolicyProposer("Countdown-v0", KWARGS, ProposerConfig(kind="policy", prompt="full"), k=4)
    text = proposer.prompt_text(0.5, recent=[({"numbers": [8, 3, 2], "target": 22}, 0.75)], solve_rate=0.62)
    assert '{"numbers": [8, 3, 2], "target": 22} -> 0.75' in text and "0.62" in text and "50%" in text


def test_the_curriculum_moves_its_level_to_keep_the_solve_rate_in_the_band():
    curriculum = CurriculumProposer("Countdown-v0", KWARGS, ProposerConfig(kind="curriculum", band=[0.3, 0.7]))
    start = curriculum.start
    assert curriculum.levels[start] == {"num_numbers": 3, "max_number": 20}  # the env's own knobs
    assert curriculum.level(None, None) == start
    assert curriculum.level(start, 0.9) == start + 1 and curriculum.level(start, 0.1) == start - 1
    assert curriculum.level(start, 0.5) == start and curriculum.level(0, 0.0) == 0
    tasks = curriculum.propose(start + 2, seed=0, start=0, n=20)
    assert any(len(t["numbers"]) == 4 for t in tasks) and all(check_task(env(), t, None) is None or
                                                                len(t["numbers"]) == 4 for t in tasks)


def test_a_curriculum_needs_levels_for_a_family_without_a_ladder():
    with pytest.raises(ValueError, match="max_numbr"):
        CurriculumProposer("Countdown-v0", KWARGS, ProposerConfig(kind="curriculum", levels=[{"max_numbr": 3}]))


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match="proposer.fraction"):
        ProposerConfig(fraction=0)
    with pytest.raises(ValueError, match="band"):
        ProposerConfig(band=[0.8, 0.2])
    with pytest.raises(ValueError, match="did you mean 'policy'"):
        ProposerConfig(kind="polcy")


def test_a_tiny_model_bootstrapped_on_generator_tasks_writes_valid_ones(tiny_checkpoint, tmp_path):
    """The tiny proposer learns the compact format from labelled generator tasks: what it then writes parses and
    lies within the knobs, and some of it passes the whole validation (about one random well-formed task in ten
    does; a proposer trained in the loop on its accepted tasks does better, see the self-play runs)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sparring.policies.hf import HFPolicy
    from sparring.trainers.sft import SFTSettings, supervised_finetune

    torch.set_num_threads(1)
    model, tokenizer = AutoModelForCausalLM.from_pretrained(tiny_checkpoint), AutoTokenizer.from_pretrained(tiny_checkpoint)
    proposer = PolicyProposer("Countdown-v0", KWARGS, ProposerConfig(kind="policy"), k=4)
    e = env()
    labelled = [(e.generate_task(i).to_dict(), [0.0, 0.25, 0.5, 0.75, 1.0][i % 5]) for i in range(400)]
    examples = proposer.examples(labelled, tokenizer)
    assert examples[2] == {"prompt": "propose p=0.50\n", "completion": task_to_text(labelled[2][0], COUNTDOWN)}
    proposals = proposer.propose(HFPolicy(model=model, tokenizer=tokenizer), 60, aim=0.5, seed=0)
    proposer.accept(proposals)
    assert sum(p.reason == "parse" for p in proposals) > 50  # untrained: noise
    supervised_finetune(model, tokenizer, examples, SFTSettings(steps=100, batch_size=32, learning_rate=3e-3,
                                                                warmup_steps=10), tmp_path / "sft")
    proposals = proposer.propose(HFPolicy(model=model, tokenizer=tokenizer), 60, aim=0.5, seed=0)
    accepted = proposer.accept(proposals)
    assert sum(p.reason not in ("parse", "duplicate") for p in proposals) >= 50, [p.text for p in proposals][:10]
    assert len(accepted) >= 3


def follow(prompt):
    """A scripted TextNav navigator: the directions of a compact route instruction (`w hall, n study`), then stop."""
    lines = prompt.split("\n")
    steps = [part.split()[0] for part in lines[0].split(", ") if part.split() and part.split()[0] in "nsewud"]
    done = sum(1 for line in lines[1:] if line.strip() in ("n", "s", "e", "w", "u", "d", "stop"))
    return steps[done] if done < len(steps) else "stop"


def test_srdf_instructions_are_kept_when_the_navigator_follows_them():
    from sparring.agents.proposer import InstructionProposer

    kwargs = {"difficulty": "easy", "instruction": "compact"}
    speaker = InstructionProposer("TextNav-v0", kwargs, ProposerConfig(kind="policy", ndtw=0.8))
    routes = speaker.draw(6, seed=0, start=0)
    assert all(t["goal"]["type"] == "route" for t in routes)
    described = speaker.describe(routes[0])
    assert speaker.prompt_text(routes[0]) == f"describe {described}"
    assert described and all(part.split()[0] in ("n", "s", "e", "w", "u", "d") for part in described.split(" ; "))
    # a speaker that says the route right, one that says nothing useful
    honest = ScriptedPolicy(lambda p: ", ".join(step.strip() for step in p.removeprefix("describe ").split(" ; ")))
    proposals = speaker.write(honest, routes, seed=0)
    assert [p.task["goal"]["compact"] for p in proposals] == [r["goal"]["compact"] for r in routes]
    kept = speaker.accept(proposals, ScriptedPolicy(follow), max_tokens=8)
    assert len(kept) == 6 and all(p.task["goal"]["template"] == "route/proposer/0" for p in kept)
    vague = speaker.write(ScriptedPolicy(lambda p: "go somewhere nice"), routes, seed=0)
    assert speaker.accept(vague, ScriptedPolicy(follow), max_tokens=8) == []
    assert all(p.reason == "navigator" for p in vague)
    empty = speaker.write(ScriptedPolicy(lambda p: "   "), routes[:1], seed=0)
    assert empty[0].reason == "parse"
    from sparring.policies.tiny import build_tokenizer

    rows = speaker.examples(routes[:2], build_tokenizer())
    assert rows[0]["completion"] == routes[0]["goal"]["compact"] and rows[0]["prompt"].startswith("describe ")


def test_a_familys_own_filter_runs_before_the_expert(monkeypatch):
    """How ToolUse's Code-as-Task filter plugs in: the env's `proposal_problems` reject the task, after the knobs
    and before the expert."""
    e = env()
    seen = []

    def no_twenties(task):
        seen.append(task.to_dict())
        return ["targets of 20 are banned"] if task.target == 20 else []
    monkeypatch.setattr(e, "proposal_problems", no_twenties)
    assert check_task(e, {"numbers": [8, 3, 2], "target": 22}) is None
    assert check_task(e, {"numbers": [8, 3, 4], "target": 20}) == ("filter", "targets of 20 are banned")
    assert check_task(e, {"numbers": [8, 3, 4], "target": 2000}) == ("knobs", "target 2000 is outside 1..100")
    assert seen == [{"numbers": [8, 3, 2], "target": 22}, {"numbers": [8, 3, 4], "target": 20}]  # not after the knobs


def test_tooluse_tasks_go_through_the_code_as_task_filter():
    """A proposed ToolUse task is held to Self-Challenging's filter: a failure case that passes the task's
    verification (here: the solution itself) rejects it."""
    local_sandbox_or_skip()
    e = gymnasium.make("ToolUse-v0").unwrapped
    task = e.generate_task(0).to_dict()
    assert check_task(e, task) is None
    solution = {"calls": task["solution"]["calls"], "answer": task["solution"]["answer"]}
    problem = check_task(e, {**task, "failure_cases": [solution]})
    assert problem[0] == "filter" and "does not tell right from wrong" in problem[1]
