"""Tree search: proposals from the policy, Monte Carlo values, a beam; verified traces only count."""

from __future__ import annotations

import gymnasium
import pytest
from kit import random_moves_policy as RandomMoves

import sparring  # noqa: F401
from sparring.policies.policy import Completion, Policy, SamplingParams
from sparring.search import SearchConfig, TreeSearch
from sparring.solver import Solver


@pytest.fixture(scope="module")
def tasks():
    env = gymnasium.make("CountdownSteps-v0")
    return [env.reset(seed=s)[1]["task"] for s in range(12)]


def replays_to_success(trajectory) -> bool:
    env = gymnasium.make(trajectory.env_id)
    env.reset(options={"task": trajectory.task})
    for turn in trajectory.turns:
        *_, terminated, truncated, info = env.step(turn.action)
    return bool((terminated or truncated) and info["verdict"]["success"])


def test_search_solves_what_sampling_misses_and_every_success_replays(tasks):
    sampled = Solver(RandomMoves(), "CountdownSteps-v0", params=SamplingParams(max_tokens=16)).run(tasks, k=1)
    search = TreeSearch(RandomMoves(), "CountdownSteps-v0", config=SearchConfig(width=6, beam=4, rollouts=2,
                                                                                node_budget=40), max_tokens=16)
    found = search.run(tasks, seed=0)
    assert len(found) == len(tasks) and [t.task for t in found] == tasks
    assert sum(t.success for t in found) >= sum(t.success for t in sampled) + 4
    for trajectory in found:
        assert trajectory.source == "search" and 1 <= trajectory.meta["nodes"] <= 40 and trajectory.meta["tokens"] > 0
        if trajectory.success:
            assert replays_to_success(trajectory)
        assert [t.observation for t in trajectory.turns][:1] == [gymnasium.make("CountdownSteps-v0").reset(
            options={"task": trajectory.task})[0]]


def test_budget_and_beam_bound_the_work(tasks):
    policy = RandomMoves()
    found = TreeSearch(policy, "CountdownSteps-v0", config=SearchConfig(width=3, beam=2, rollouts=0, node_budget=3),
                       max_tokens=16).run(tasks[:4], seed=1)
    assert all(t.meta["nodes"] <= 3 for t in found)
    # rollouts=0: one policy call per depth for all tasks; depth 0 expands 1 state, then at most beam=2 each
    assert policy.calls <= 3 and policy.prompts <= 4 * (1 + 2)


def test_width_one_without_rollouts_is_one_sampled_episode(tasks):
    found = TreeSearch(RandomMoves(), "CountdownSteps-v0", config=SearchConfig(width=1, beam=1, rollouts=0),
                       max_tokens=16).run(tasks[:6], seed=3)
    for trajectory in found:
        assert len(trajectory.turns) == 3 and trajectory.verdict  # four numbers: three moves end the game
        assert trajectory.meta["nodes"] == 3


def test_junk_actions_and_bad_settings(tasks):
    class Junk(Policy):
        backend = name = "junk"

        def generate(self, prompts, params):
            return [[Completion("\x00<answer>__import__('os')</answer>") for _ in range(params.n)] for _ in prompts]

    found = TreeSearch(Junk(), "CountdownSteps-v0", config=SearchConfig(width=2, node_budget=5), max_turns=6).run(tasks[:2])
    assert not any(t.success for t in found) and all(t.meta["nodes"] <= 5 for t in found)
    for bad, match in [({"width": 0}, "width"), ({"beam": 1.5}, "beam"), ({"rollouts": -1}, "rollouts"),
                       ({"temperature": 0}, "temperature")]:
        with pytest.raises(ValueError, match=match):
            SearchConfig(**bad)
    with pytest.raises(Exception, match="Countdwn"):
        TreeSearch(Junk(), "Countdwn-v0")
