"""TextWorld-v0: games from TextWorld's own generators, cached on disk, played through its interpreter."""

import json
import sys

import gymnasium
import pytest

pytest.importorskip("textworld", reason="TextWorld-v0 needs the extra: pip install -e '.[textworld]'")

import sparring  # noqa: E402
from sparring.envs.rgym import MissingExtraError  # noqa: E402
from sparring.envs.textworld_games import GENERATORS, clean_command  # noqa: E402

GENERATOR_KNOBS = {"custom": {"difficulty": "easy"}, "coin_collector": {"level": 5}, "treasure_hunter": {"level": 3},
                   "cooking": {"recipe": 2, "take": 1, "go": 6, "cut": True, "open": True}, "simple": {"rewards": "sparse"}}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("textworld-games")


def make(cache, **kwargs):
    return gymnasium.make("TextWorld-v0", cache_dir=str(cache), **kwargs)


def test_sparring_check_passes(cache):
    report = sparring.check("TextWorld-v0", env_kwargs={"difficulty": "easy", "cache_dir": str(cache)}, episodes=3)
    assert report.passed, report.to_dict()
    assert [r.status for r in report.results] == ["pass"] * 7 + ["info"]


@pytest.mark.parametrize("generator", GENERATORS)
def test_every_generator_the_walkthrough_wins(cache, generator):
    assert set(GENERATOR_KNOBS) == set(GENERATORS)
    env = make(cache, generator=generator, **GENERATOR_KNOBS[generator])
    for split in ("train", "test"):
        env = make(cache, generator=generator, split=split, **GENERATOR_KNOBS[generator])
        observation, info = env.reset(options={"index": 0})
        assert observation and info["admissible_commands"] and info["task"]["generator"] == generator
        actions = env.unwrapped.expert_actions()
        for i, action in enumerate(actions):
            assert action in info["admissible_commands"]
            _, reward, terminated, truncated, info = env.step(action)
            assert terminated == (i == len(actions) - 1) and not truncated
        assert info["verdict"]["success"] and reward == 1.0 and info["verdict"]["details"]["won"]
        assert info["verdict"]["details"]["walkthrough_length"] == len(actions)


def test_the_expert_continues_from_any_state(cache):
    env = make(cache, difficulty="medium")
    _, info = env.reset(seed=4)
    for _ in range(3):  # wander first
        command = next(c for c in info["admissible_commands"] if c.startswith(("go", "examine", "look")))
        _, _, terminated, _, info = env.step(command)
        if terminated:
            break
    else:
        for action in env.unwrapped.expert_actions():
            _, _, terminated, _, info = env.step(action)
        assert info["verdict"]["success"]


def test_games_are_cached_by_generator_knobs_and_seed(cache, monkeypatch):
    env = make(cache, difficulty="easy")
    first = env.reset(seed=11)
    games = sorted(p.name for p in cache.glob("*.z8"))
    import textworld

    monkeypatch.setattr(textworld, "make", lambda *a, **k: pytest.fail("a cached game was generated again"))
    again = make(cache, difficulty="easy").reset(seed=11)
    assert again == first and sorted(p.name for p in cache.glob("*.z8")) == games
    assert not list(cache.glob(".making-*"))  # no half-written game left behind


def test_splits_never_share_a_game(cache):
    train = make(cache).unwrapped
    test = make(cache, split="test").unwrapped
    train_seeds = {train.generate_task(i, seed=s).seed for s in range(3) for i in range(300)}
    test_seeds = {test.generate_task(i, seed=s).seed for s in range(3) for i in range(300)}
    assert len(train_seeds) == len(test_seeds) == 900 and not train_seeds & test_seeds


def test_commands_outside_the_admissible_ones_never_reach_the_game(cache):
    env = make(cache, difficulty="easy", max_invalid=10)
    _, info = env.reset(seed=0)
    expert = env.unwrapped.expert_actions()
    for junk in ["quit", f"{expert[0]}\nquit", "restart", expert[0] + "; quit", "x" * 10_000]:
        observation, reward, terminated, _, info = env.step(junk)
        assert "does not work here" in observation and not terminated and info["invalid_actions"] >= 1
    for action in env.unwrapped.expert_actions():
        _, _, _, _, info = env.step(action)
    assert info["verdict"]["success"] and info["verdict"]["details"]["invalid_actions"] == 5
    assert clean_command("go\neast\t\x00 now") == "go east now" and len(clean_command("y" * 999)) == 200


def test_invalid_commands_and_the_step_limit_end_an_episode(cache):
    env = make(cache, difficulty="easy", max_invalid=2)
    env.reset(seed=0)
    results = [env.step("fly") for _ in range(3)]
    assert [r[2] for r in results] == [False, False, True] and results[-1][4]["verdict"]["details"]["ended"] == "invalid"
    env = make(cache, difficulty="easy", step_limit_factor=1.0)
    _, info = env.reset(seed=0)
    limit = env.unwrapped.step_limit
    for step in range(limit):
        _, reward, terminated, truncated, info = env.step("look")
    assert truncated and not terminated and info["verdict"]["details"]["ended"] == "step_limit"
    assert reward == 0.5 * info["verdict"]["details"]["score"] / info["verdict"]["details"]["max_score"]


def test_proposed_tasks_are_held_to_the_knobs(cache):
    env = make(cache)
    with pytest.raises(ValueError, match="world_size must be an integer in 1..30"):
        env.reset(options={"task": {"generator": "custom", "knobs": {"world_size": 10**6}, "seed": 1, "split": "train"}})
    with pytest.raises(ValueError, match="unknown TextWorld coin_collector knob 'world_size'"):
        env.reset(options={"task": {"generator": "coin_collector", "knobs": {"world_size": 2}, "seed": 1,
                                    "split": "train"}})
    with pytest.raises(ValueError, match="exactly the keys"):
        env.reset(options={"task": {"generator": "custom"}})
    task = json.loads(json.dumps(make(cache, difficulty="easy").reset(seed=0)[1]["task"]))
    assert env.reset(options={"task": task})[1]["task"] == task


def test_bad_arguments_name_what_is_accepted(cache):
    with pytest.raises(ValueError, match="did you mean 'cooking'"):
        make(cache, generator="cookin")
    with pytest.raises(ValueError, match=r"take \(3\) must be <= recipe \(1\)"):
        make(cache, generator="cooking", take=3)
    with pytest.raises(ValueError, match="treasure_hunter's level must be in 1..30"):
        make(cache, generator="treasure_hunter", level=31)


def test_missing_extra_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "textworld", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'sparring\[textworld\]'"):
        gymnasium.make("TextWorld-v0")


def test_the_solver_plays_it_unchanged(cache, tiny_checkpoint):
    from sparring.policies.hf import HFPolicy
    from sparring.policies.policy import SamplingParams
    from sparring.solver import Solver

    task = make(cache, difficulty="easy").reset(seed=0)[1]["task"]
    solver = Solver(HFPolicy(tiny_checkpoint), "TextWorld-v0", {"cache_dir": str(cache), "max_invalid": 1},
                    SamplingParams(max_tokens=6, seed=0))
    [trajectory] = solver.run([task])
    assert trajectory.task == task and trajectory.verdict and not trajectory.success  # a random model
    assert len(trajectory.turns) >= 2 and "does not work here" in trajectory.turns[1].observation


def test_compact_observations_are_the_game_state_in_short_lines(cache):
    """Compact mode shows the quest's condition and the game's own facts: after each command the state line
    changes as the game did (the thing taken is carried, no longer where it was); the walkthrough still wins."""
    env = make(cache, difficulty="easy", instruction="compact")
    full = make(cache, difficulty="easy")
    for seed in range(4):
        observation, info = env.reset(seed=seed)
        assert full.reset(seed=seed)[1]["task"] == info["task"]  # the same game as the full text
        goal, line = observation.split("\n")
        assert goal.startswith("goal: ") and "carrying:" in line and len(observation) < 160
        for action in env.unwrapped.expert_actions():
            observation, reward, terminated, _, info = env.step(action)
            if not terminated:
                assert "carrying:" in observation and "\n" not in observation
                if action.startswith("take "):
                    thing = action[5:].split(" from ")[0]
                    assert thing in observation.split("carrying: ")[1]
        assert info["verdict"]["success"] and observation.startswith("won")
    env.reset(seed=0)
    assert env.step("dance wildly")[0] == "invalid"


def test_compact_goal_and_state_lines():
    from textworld.logic import Proposition, Variable

    from sparring.envs.textworld_games import goal_text, state_line

    def fact(name, *args):
        return Proposition(name, [Variable(a, t) for a, t in args])

    P, room, hall, chest, stand, hat, key, door = (("P", "P"), ("studio", "r"), ("hall", "r"), ("chest", "c"),
                                                  ("stand", "s"), ("hat", "o"), ("key", "k"), ("oak door", "d"))
    facts = [fact("at", P, room), fact("at", chest, room), fact("at", stand, room), fact("closed", chest),
             fact("in", hat, chest), fact("on", key, stand), fact("east_of", hall, room), fact("west_of", room, hall),
             fact("link", room, door, hall), fact("closed", door)]
    assert state_line(facts) == "studio: e=oak door(closed) | chest(closed) | stand: key | carrying: -"
    opened = [f for f in facts if str(f) != str(fact("closed", chest))] + [fact("in", key, ("I", "I"))]
    assert "chest: hat" in state_line(opened) and "carrying: key" in state_line(opened)
    win = [fact("at", ("P", "P"), ("r_0", "r")), fact("in", ("o_0", "o"), ("I", "I")), fact("locked", ("c_0", "c")),
           fact("on", ("o_1", "o"), ("s_0", "s"))]
    names = {"r_0": "studio", "o_0": "hat", "c_0": "chest", "o_1": "key", "s_0": "stand"}
    assert goal_text(win, names, start={"at(P, studio)"}) == "goal: carry hat; chest locked; key on stand"
    assert goal_text(win, names, start=set()) == "goal: go to studio; carry hat; chest locked; key on stand"


def test_a_fixed_set_of_games_repeats_whatever_the_seed(cache):
    env = make(cache, difficulty="easy", games=3)
    tasks = [env.reset(seed=seed, options={"index": i})[1]["task"] for seed in (0, 7) for i in range(6)]
    assert tasks[:3] == tasks[3:6] == tasks[6:9] == tasks[9:]
    assert len({json.dumps(t, sort_keys=True) for t in tasks}) == 3
    test = make(cache, difficulty="easy", games=3, split="test")
    assert not {json.dumps(test.reset(options={"index": i})[1]["task"], sort_keys=True) for i in range(3)} & \
        {json.dumps(t, sort_keys=True) for t in tasks}
    with pytest.raises(ValueError, match="games must be"):
        make(cache, games=-1)
