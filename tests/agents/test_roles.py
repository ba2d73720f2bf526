"""Each role built alone from a run context and the env, its hooks called as the loop calls them; and `Roles`, the
enabled roles in their fixed order. Scripted policies stand in for models (`agents_kit`): seconds each."""

import contextlib
import json

import pytest
from agents_kit import ScriptedPolicy, compact_task, expert_answer

import sparring  # noqa: F401
from sparring.agents.proposer import ProposerRole, task_key
from sparring.agents.reflector import ReflectorRole
from sparring.agents.role import Collected, Role
from sparring.agents.roles import Roles
from sparring.agents.skills_role import SkillsRole
from sparring.agents.verifiers import VerifierRole
from sparring.context import RunContext
from sparring.envs.catalog import make
from sparring.io import read_jsonl
from sparring.policies.policy import SamplingParams
from sparring.policies.tiny import build_tokenizer
from sparring.selfplay_config import load_selfplay_config
from sparring.solver import Solver, by_task
from sparring.trainers.bootstrap import expert_demonstrations

SMALL = ["env.eval_tasks=6", "env.extra_eval_splits=[]", "expert_iteration.k=2"]
TASKS = [{"numbers": [8, 3, 2], "target": 22}, {"numbers": [5, 4, 2], "target": 18}, {"numbers": [6, 2, 1], "target": 13}]


def context(tmp_path, *overrides, policy=None):
    """A run context over `tmp_path` whose every checkpoint generates with `policy`."""
    ctx = RunContext(load_selfplay_config(None, SMALL + list(overrides)), tmp_path / "run")
    if policy is not None:
        ctx.generating = lambda checkpoint, *args, **kwargs: contextlib.nullcontext(policy)
    return ctx


def built(cls, ctx):
    return cls(ctx, make(ctx.env_id, **ctx.env_kwargs).unwrapped)


def wrong(prompt):
    return f"<answer>{'+'.join(map(str, compact_task(prompt).numbers))}</answer>"


def attempts(answer, tasks=TASKS, k=2):
    return by_task(Solver(ScriptedPolicy(answer), "Countdown-v0", {"instruction": "compact", "difficulty": "easy",
                                                                     "max_number": 20, "min_target": 1},
                          SamplingParams(max_tokens=8)).run(tasks, k=k), k)


def records_of(tasks, source="generator"):
    return [{"task": t, "source": source} for t in tasks]


def test_roles_are_the_enabled_ones_in_a_fixed_order(tmp_path):
    assert not Roles.wanted(load_selfplay_config(None, []))
    ctx = context(tmp_path, "reflector.enabled=true", "proposer.kind=curriculum", "skills.enabled=true",
                  "verifier.use=majority")
    roles = Roles(ctx)
    assert [role.name for role in roles.roles] == ["proposer", "skills", "verifier", "reflector"]
    assert roles.models() == ["reflector"]  # the curriculum and the majority vote have no model
    assert [role.name for role in Roles(context(tmp_path, "verifier.measure=[judge]")).roles] == ["verifier"]
    base = Role(ctx, roles.env)  # every hook does nothing by default
    assert base.tasks(1, records_of(TASKS)) == (records_of(TASKS), {}) and base.prompt(TASKS, False) is None
    assert base.after_collect(1, [], [], None) == Collected() and base.train(1) == base.finish(1) == {}


def test_the_curriculum_proposer_poses_its_share_first_and_measures_its_pass_rates(tmp_path):
    role = built(ProposerRole, context(tmp_path, "proposer.kind=curriculum", "proposer.fraction=0.5"))
    role.begin(1)
    generator = records_of(TASKS + TASKS[:1])
    records, metrics = role.tasks(1, generator)
    assert [rec["source"] for rec in records] == ["curriculum"] * 2 + ["generator"] * 2
    assert records[2:] == generator[:2] and metrics == {"proposer/level": records[0]["level"], "proposer/valid_rate": 1.0}
    groups = attempts(expert_answer, [rec["task"] for rec in records])
    out = role.after_collect(1, records, groups, None)
    assert out.metrics["proposer/tasks"] == 2 and out.metrics["proposer/solve_rate"] == 1.0 and out.verified is None


def test_the_policy_proposer_keeps_valid_tasks_writes_its_proposals_and_learns_the_learnable(tmp_path):
    written = iter(["8 3 2 -> 22", "junk", "5 4 2 -> 18", "8 3 2 -> 22"] * 4)
    ctx = context(tmp_path, "proposer.kind=policy", "proposer.fraction=0.5", "proposer.candidates=4",
                  "proposer.prompt=compact", policy=ScriptedPolicy(lambda prompt: next(written)))
    role = built(ProposerRole, ctx)
    assert role.own_model and role.k(1) == 2  # expert iteration's k measures the pass rates
    role.begin(1)
    records, metrics = role.tasks(1, records_of(TASKS + TASKS[:1]))
    assert [rec["source"] for rec in records] == ["proposer", "proposer", "generator", "generator"]
    assert metrics["proposer/aim"] == 0.5 and [p.reason for p in role.proposals].count("duplicate") == 1
    groups = [attempts(expert_answer, [records[0]["task"]])[0], attempts(wrong, [records[1]["task"]])[0]]
    groups[0][1] = attempts(wrong, [records[0]["task"]])[0][0]  # one of two: learnable
    groups += attempts(expert_answer, [rec["task"] for rec in records[2:]])
    out = role.after_collect(1, records, groups, build_tokenizer())
    lines = read_jsonl(ctx.run.round_dir(1) / "proposals.jsonl")
    assert [line["pass_rate"] for line in lines] == [0.5, None, 0.0, None]
    assert out.metrics["proposer/valid_rate"] == 0.5 and out.metrics["proposer/learnable"] == 0.5
    assert [e["completion"] for e in role.examples] == ["8 3 2 -> 22"]  # the learnable task only
    fresh = built(ProposerRole, ctx)
    fresh.load(tmp_path, role.save(tmp_path))
    assert (fresh.proposals, fresh.examples) == (role.proposals, role.examples)
    with pytest.raises(ValueError, match="'proposals' must be a list"):
        fresh.load(tmp_path, {"examples": []})


def test_the_skill_library_is_seeded_shown_chained_and_saved(tmp_path):
    ctx = context(tmp_path, "skills.enabled=true", "skills.chain_length=2", "skills.at_eval=false")
    role = built(SkillsRole, ctx)
    demos = expert_demonstrations(ctx.env_id, ctx.env_kwargs, TASKS, ctx.config.bootstrap.demonstrations)
    assert role.demonstrations(demos) is demos and len(role.library) >= 1  # seeded from the verified answers
    assert all("skills" in t.meta for t in demos)
    role.begin(0)
    assert role.prompt(TASKS, evaluation=True) is None and role.prompt(TASKS, evaluation=False) is not None
    assert role.finish(0)["skills/size"] == len(role.library)
    role.begin(1)  # round 0's library, read back
    assert sorted(role.library.skills) == sorted(json.loads(line)["id"] for line in
                                                (ctx.run.round_dir(0) / "skills.jsonl").read_text().splitlines())
    records, _ = role.tasks(1, [{"task": TASKS[0], "source": "proposer"}] + records_of(TASKS[1:]))
    assert records[0]["source"] == "proposer" and {rec["source"] for rec in records[1:]} <= {"generator", "chain"}
    assert len(records) == 3 and role.chains[0] == [TASKS[0]] and sum(map(len, role.chains)) == 3
    groups = attempts(expert_answer)
    groups[0][0].meta["skill_bonus"] = 0.5
    assert role.after_collect(1, records, groups, None).extra == [groups[0][0]]
    fresh = built(SkillsRole, ctx)
    fresh.load(tmp_path, role.save(tmp_path))
    assert fresh.chains == role.chains and sorted(fresh.library.skills) == sorted(role.library.skills)


def test_without_a_sampling_trainer_the_skill_library_makes_no_chains(tmp_path):
    role = built(SkillsRole, context(tmp_path, "skills.enabled=true", "algorithm=grpo"))
    role.begin(0)
    records, _ = role.tasks(1, records_of(TASKS))
    assert records == records_of(TASKS) and role.chains == [[t] for t in TASKS]
    assert set(role.trainer_hooks(TASKS)) == {"prompt_hook", "extra_rewards"}


def test_the_verifiers_judge_every_attempt_and_the_one_in_use_decides(tmp_path):
    ctx = context(tmp_path, "verifier.use=majority", "verifier.measure=[judge]", "verifier.judge_model=solver",
                  "verifier.judge_samples=0", policy=ScriptedPolicy(lambda prompt: "yes"))
    role = built(VerifierRole, ctx)
    assert not role.own_model and role.checkpoint(0) == ctx.run.checkpoint("round-000")
    groups = attempts(expert_answer) + attempts(wrong, TASKS[:1])
    out = role.after_collect(1, records_of(TASKS + TASKS[:1]), groups, None)
    assert out.verified == [True] * 8  # the two wrong attempts agree with each other: a majority
    assert out.metrics["verifier/judge/positive_rate"] == 1.0 and out.metrics["verifier/agreement"] == 0.75
    assert role.examples == []  # a prompted judge learns nothing


def test_the_reflector_refines_failed_tasks_and_keeps_its_memory(tmp_path):
    ctx = context(tmp_path, "reflector.enabled=true", "reflector.model=solver", policy=ScriptedPolicy(expert_answer))
    role = built(ReflectorRole, ctx)
    role.begin(0)
    assert role.finish(0) == {} and read_jsonl(ctx.run.round_dir(0) / "reflections.jsonl") == []
    role.begin(1)
    groups = attempts(wrong, TASKS[:2]) + attempts(expert_answer, TASKS[2:])
    out = role.after_collect(1, records_of(TASKS), groups, build_tokenizer())
    assert out.metrics["reflector/tasks"] == 2 and out.metrics["reflector/accepted"] == 2
    assert out.extra == out.kept and all(t.source == "refined" and t.success for t in out.kept)
    assert sorted(task_key(t.task) for t in out.kept) == sorted(map(task_key, TASKS[:2]))
    role.finish(1)
    again = built(ReflectorRole, ctx)
    again.begin(2)  # round 1's memory, read back
    assert again.memory.by_task == role.memory.by_task and len(again.memory) == 2  # the same wrong answer twice: one reflection
