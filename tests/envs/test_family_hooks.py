"""The family hooks on `TextEnv`: their defaults in the base, and each family's overrides in its own file."""

import json
import random
from dataclasses import dataclass

import gymnasium
import pytest
from kit import local_sandbox_or_skip

import sparring  # noqa: F401
from sparring.envs.base import TextEnv
from sparring.envs.catalog import env_class, env_ids
from sparring.envs.countdown import CURRICULUM_LEVELS, CountdownEnv, CountdownStepsEnv
from sparring.envs.countdown_tasks import CountdownTask, expert_solution
from sparring.envs.expr import expression_pattern, instantiate, parse
from sparring.envs.textnav import TextNavEnv

COUNTDOWN = {"difficulty": "easy", "max_number": 20, "min_target": 1, "instruction": "compact"}


@dataclass(frozen=True)
class ToyTask:
    word: str

    @classmethod
    def from_dict(cls, data):
        return cls(data["word"])

    def to_dict(self):
        return {"word": self.word}


@dataclass
class ToyConfig:
    length: int = 3


class ToyEnv(TextEnv):
    """A family that overrides no hook."""

    family = "toy"
    task_type = ToyTask
    config_class = ToyConfig

    def generate_task(self, index, *, seed=0, config=None):
        return ToyTask(f"w{seed}-{index}")


def test_the_base_defaults():
    env = ToyEnv()
    assert ToyEnv.curriculum_levels == () and ToyEnv.proposer_writes_instructions is False
    assert ToyEnv.skill_kind == "macro"
    task = env.generate_task(0)
    assert env.task_problems(task) == [] and env.task_problems(task, ToyConfig(9)) == []
    assert env.proposal_problems(task) == []
    assert env.skill_features(task.to_dict()) == []
    # the answer key: the last action, its whitespace collapsed; no action or a blank one gives no answer
    assert ToyEnv.answer_key({}, ["first", "  go \n north "], {"details": {"final": 3}}) == "go north"
    assert ToyEnv.answer_key({}, [], {}) is None and ToyEnv.answer_key({}, ["x", " \t"], {}) is None
    # chains: the tasks sorted by their key and cut into runs; no draw from the generator
    tasks = [{"word": w} for w in ("delta", "alpha", "echo", "charlie", "bravo")]
    rng = random.Random(0)
    state = rng.getstate()
    chains = env.similar_task_chains(tasks, 2, rng, key=lambda t: t["word"])
    assert chains == [[{"word": "alpha"}, {"word": "bravo"}], [{"word": "charlie"}, {"word": "delta"}], [{"word": "echo"}]]
    assert rng.getstate() == state
    assert env.similar_task_chains([], 3, rng, key=str) == []


def test_countdown_hooks():
    env = gymnasium.make("Countdown-v0", **COUNTDOWN).unwrapped
    steps = gymnasium.make("CountdownSteps-v0", **COUNTDOWN).unwrapped
    for cls in (CountdownEnv, CountdownStepsEnv):
        assert cls.curriculum_levels == CURRICULUM_LEVELS and cls.skill_kind == "expression"
        assert not cls.proposer_writes_instructions
    for level in CURRICULUM_LEVELS:  # every level is a valid set of knobs
        gymnasium.make("Countdown-v0", **{**COUNTDOWN, **level}).unwrapped.generate_task(0)
    assert env.task_problems(CountdownTask((8, 3, 2), 22)) == []
    assert env.task_problems(CountdownTask((8, 3, 2), 2000)) == ["target 2000 is outside 1..100"]
    assert env.proposal_problems(CountdownTask((8, 3, 2), 22)) == []
    features = env.skill_features({"numbers": [9, 4, 6], "target": 30})
    assert {"count3", "t_above_sum", "t_even"} <= set(features) and "has_one" not in features
    assert "has_one" in steps.skill_features({"numbers": [6, 2, 1], "target": 9})


def test_countdown_answer_keys_ignore_the_target():
    task = {"numbers": [8, 3, 2], "target": 22}
    assert CountdownEnv.answer_key(task, ["<answer>8*3-2</answer>"], {}) == "22"
    assert CountdownEnv.answer_key(task, ["<answer>(8+3)*2 = 22</answer>"], {}) == "22"
    assert CountdownEnv.answer_key(task, ["<answer>8/3+2</answer>"], {}) == "14/3"  # wrong, yet an answer
    assert CountdownEnv.answer_key(task, ["<answer>8*3</answer>"], {}) is None        # 2 is not used
    assert CountdownEnv.answer_key(task, ["<answer>8*3-2+1</answer>"], {}) is None    # 1 is not given
    assert CountdownEnv.answer_key(task, ["8*3-2"], {}) is None and CountdownEnv.answer_key(task, [], {}) is None
    assert CountdownEnv.answer_key(task, ["<answer>8*(3-</answer>"], {}) is None      # does not parse
    assert CountdownStepsEnv.answer_key(task, ["8*3", "24-2"], {"details": {"final": 22}}) == "22"
    assert CountdownStepsEnv.answer_key(task, ["8*3"], {"details": {"final": None}}) is None
    assert CountdownStepsEnv.answer_key(task, [], {}) is None


def test_countdown_chains_are_tasks_the_same_pattern_solves():
    env = gymnasium.make("Countdown-v0", **COUNTDOWN).unwrapped
    tasks = [env.generate_task(i).to_dict() for i in range(7)]
    chains = env.similar_task_chains(tasks, 3, random.Random(0), key=lambda t: pytest.fail("no key needed"))
    assert sum(map(len, chains)) == len(tasks) and all(1 <= len(c) <= 3 for c in chains)
    assert [c[0] for c in chains] == tasks[:len(chains)]  # each chain starts from the next given task
    for chain in chains:
        pattern, _ = expression_pattern("".join(expert_solution(CountdownTask.from_dict(chain[0])).split()))
        assert len({json.dumps(t, sort_keys=True) for t in chain}) == len(chain)
        for other in chain[1:]:
            assert parse(instantiate(pattern, other["numbers"])).value == other["target"]
            assert env.task_problems(CountdownTask.from_dict(other)) == []
    again = env.similar_task_chains(tasks, 3, random.Random(0), key=str)
    assert again == chains  # a pure function of the tasks and the generator's seed
    assert env.similar_tasks(tasks[0], 1, random.Random(0)) == [tasks[0]]


def test_textnav_hooks():
    assert TextNavEnv.proposer_writes_instructions and TextNavEnv.skill_kind == "macro"
    assert TextNavEnv.curriculum_levels == ()
    assert TextNavEnv.answer_key({}, ["stop"], {"details": {"final_room": "kitchen"}}) == "kitchen"
    assert TextNavEnv.answer_key({}, ["stop"], {"details": {}}) is None and TextNavEnv.answer_key({}, [], {}) is None


def test_code_families_keep_function_skills_and_the_rest_macros():
    kinds = {env_id: env_class(env_id).skill_kind for env_id in env_ids()}
    assert {env_id for env_id, kind in kinds.items() if kind == "function"} == {"CodeSynth-v0", "CodeRepair-v0",
                                                                                 "HumanEval-v0"}
    assert {env_id for env_id, kind in kinds.items() if kind == "expression"} == {"Countdown-v0", "CountdownSteps-v0"}
    assert {env_id for env_id in kinds if env_class(env_id).proposer_writes_instructions} == {"TextNav-v0"}
    assert {env_id for env_id in kinds if env_class(env_id).curriculum_levels} == {"Countdown-v0", "CountdownSteps-v0"}


def test_tooluse_proposals_go_through_its_filter():
    local_sandbox_or_skip()
    env = gymnasium.make("ToolUse-v0").unwrapped
    task = env.generate_task(0)
    assert env.proposal_problems(task) == []
    bare = env.task_type.from_dict({**task.to_dict(), "failure_cases": []})
    assert "a task needs at least one failure case" in env.proposal_problems(bare)
