"""TextNav-v0: the generator's invariants, splits, commands, the expert, and the metrics on hand-made houses."""

import json
import math
import random
import re
from pathlib import Path

import gymnasium
import pytest

import sparring  # noqa: F401
from sparring.envs.textnav import PRESETS, TextNavConfig, dtw, generate_task, ndtw, spl, split_of
from sparring.envs.textnav_commands import Command, parse
from sparring.envs.textnav_lexicon import held_out_words
from sparring.envs.textnav_task import DELTA, GOAL_TYPES, OPPOSITE, TextNavTask
from sparring.envs.textnav_world import World
from sparring.errors import UnknownNameError, UnsolvableTaskError


def house(goal=None, **changes):
    """A 2x2 house with a loop: hall (0,0) -n-> study (0,1) through a closed oak door, hall -e-> kitchen (1,0)
    -n-> den (1,1), and study -e-> den through a pine door locked by the brass key on the kitchen floor."""
    task = {
        "rooms": [{"name": "hall", "floor": 0, "x": 0, "y": 0}, {"name": "study", "floor": 0, "x": 0, "y": 1},
                  {"name": "kitchen", "floor": 0, "x": 1, "y": 0}, {"name": "den", "floor": 0, "x": 1, "y": 1}],
        "edges": [{"a": 0, "direction": "north", "b": 1, "door": 0}, {"a": 0, "direction": "east", "b": 2},
                  {"a": 2, "direction": "north", "b": 3}, {"a": 1, "direction": "east", "b": 3, "door": 1}],
        "doors": [{"name": "oak door", "state": "closed"}, {"name": "pine door", "state": "locked", "key": 2}],
        "receptacles": [{"name": "table", "room": 0, "kind": "on"}, {"name": "fridge", "room": 2, "kind": "in",
                                                                     "closed": True},
                        {"name": "desk", "room": 1, "kind": "on"}],
        "objects": [{"kind": "mug", "colour": "red", "material": "ceramic", "receptacle": 1},
                    {"kind": "mug", "colour": "blue", "material": "ceramic", "receptacle": 0},
                    {"kind": "key", "material": "brass", "room": 2}],
        "start": 0,
        "goal": goal or {"type": "route", "text": "Go east to the kitchen, then north to the den. Stop in the den.",
                         "compact": "e kitchen, n den", "room": 3, "path": [0, 2, 3]},
    }
    task.update(changes)
    return task


def play(actions, task=None, **kwargs):
    env = gymnasium.make("TextNav-v0", **kwargs)
    observation, info = env.reset(options={"task": task or house()})
    for action in actions:
        observation, reward, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    return observation, reward, terminated, truncated, info


def reachable_with_keys(task: TextNavTask) -> set[int]:
    """Rooms reachable from the start, picking up every key seen on the way (independent of the env's code)."""
    held: set[int] = set()
    while True:
        unlocked = {i for i, d in enumerate(task.doors) if d.state != "locked" or d.key in held}
        reached, todo = {task.start}, [task.start]
        for room in todo:
            for e in task.edges:
                if e.door is None or e.door in unlocked:
                    for a, b in ((e.a, e.b), (e.b, e.a)):
                        if a == room and b not in reached:
                            reached.add(b)
                            todo.append(b)
        new = {d.key for d in task.doors if d.key is not None and _room(task, d.key) in reached} - held
        if not new:
            return reached
        held |= new


def _room(task, obj):
    item = task.objects[obj]
    return item.room if item.room is not None else task.receptacles[item.receptacle].room


# ---- the generator ----------------------------------------------------------------------------------

@pytest.mark.parametrize("difficulty", ["easy", "medium", "hard"])
def test_generated_houses_keep_their_invariants(difficulty):
    config = PRESETS[difficulty]
    for index in range(60):
        task = generate_task(config, "train", seed=3, index=index)
        assert TextNavTask.from_dict(json.loads(json.dumps(task.to_dict()))) == task  # JSON round trip, checked
        low, high = config.room_range
        assert low <= len(task.rooms) <= high and len({r.floor for r in task.rooms}) == min(config.n_floors, low)
        for e in task.edges:  # exits agree with the grid: a compass move is one cell that way, stairs change floor
            a, b = task.rooms[e.a], task.rooms[e.b]
            if e.direction in DELTA:
                assert a.floor == b.floor and (b.x - a.x, b.y - a.y) == DELTA[e.direction]
            else:
                assert e.direction == "up" and b.floor == a.floor + 1
        world = World(task)
        for room, exits in enumerate(world.exits):
            for direction, (target, _) in exits.items():
                assert world.exits[target][OPPOSITE[direction]][0] == room  # every exit leads back
        assert reachable_with_keys(task) == set(range(len(task.rooms)))  # keys before their doors, all connected
        assert sum(d.state == "locked" for d in task.doors) == min(config.n_locked, len(task.edges))
        target = task.objects[0] if config.n_objects else None
        if config.n_distractors:
            assert any(o.kind == target.kind or (o.colour, o.material, o.size) == (target.colour, target.material,
                                                                                     target.size)
                       for o in task.objects[1:] if o.kind != "key")
        moves = len(World(task).expert_rooms()) - 1
        assert config.min_path <= moves <= config.max_path and moves >= 1


def test_items_are_pure_functions_of_seed_and_index():
    config = PRESETS["medium"]
    assert generate_task(config, "train", 5, 17) == generate_task(config, "train", 5, 17)
    assert generate_task(config, "train", 5, 17) != generate_task(config, "train", 5, 18)
    assert generate_task(config, "train", 5, 17) != generate_task(config, "train", 6, 17)
    env = gymnasium.make("TextNav-v0", difficulty="medium")
    first = env.reset(seed=1, options={"index": 17, "seed": 5})[1]["task"]
    assert first == env.reset(seed=2, options={"index": 17, "seed": 5})[1]["task"] == \
        generate_task(config, "train", 5, 17).to_dict()


def test_goal_types_and_knobs_select_what_is_drawn():
    for goal_type in GOAL_TYPES:
        config = TextNavConfig(goal_types=(goal_type,))
        assert {generate_task(config, "train", 0, i).goal.type for i in range(10)} == {goal_type}
    mixed = {generate_task(PRESETS["medium"], "train", 0, i).goal.type for i in range(80)}
    assert mixed == set(GOAL_TYPES)
    env = gymnasium.make("TextNav-v0", n_rooms=6, n_floors=3, loops=0, p_door=1.0, n_locked=0, goal_types=["fetch"])
    task = TextNavTask.from_dict(env.reset(seed=0)[1]["task"])
    assert len(task.rooms) == 6 and {r.floor for r in task.rooms} == {0, 1, 2}
    assert len(task.edges) == 5 and len(task.doors) == 3  # a tree; every passage on a floor has a door
    assert task.goal.type == "fetch"


def test_bad_knobs_are_clear_errors():
    with pytest.raises(UnknownNameError, match="did you mean 'n_rooms'"):
        gymnasium.make("TextNav-v0", n_room=3)
    with pytest.raises(UnknownNameError, match="goal type 'reverie'"):
        gymnasium.make("TextNav-v0", goal_types=["reverie"])
    with pytest.raises(ValueError, match="min_path <= max_path"):
        gymnasium.make("TextNav-v0", min_path=5, max_path=2)
    with pytest.raises(ValueError, match="n_objects >= 1"):
        gymnasium.make("TextNav-v0", n_objects=0)
    with pytest.raises(ValueError, match="widen it or add rooms"):
        generate_task(TextNavConfig(n_rooms=2, n_floors=1, min_path=5, max_path=9), "train", 0, 0)


# ---- splits -----------------------------------------------------------------------------------------

def words_of(task_dict) -> set[str]:
    text = json.dumps(task_dict).lower()
    return set(re.findall(r"[a-z]+", text))


def test_train_never_uses_held_out_words_or_templates():
    held = held_out_words()
    assert {"conservatory", "teapot", "purple", "marble", "tiny", "pewter", "teak"} <= held
    for difficulty in ("easy", "medium", "hard"):
        for index in range(40):
            task = generate_task(PRESETS[difficulty], "train", 0, index)
            assert not words_of(task.to_dict()) & held, task.to_dict()
            assert "/seen/" in task.goal.template


def test_test_unseen_goals_use_held_out_words_and_templates():
    held = held_out_words()
    for index in range(60):
        task = generate_task(PRESETS["medium"], "test-unseen", 0, index)
        assert "/held_out/" in task.goal.template and split_of(task) == "test-unseen"
        goal_words = set(re.findall(r"[a-z]+", task.goal.text.lower()))
        compact_words = set(re.findall(r"[a-z]+", task.goal.compact.lower()))
        assert goal_words & held and compact_words & held, task.goal
        if task.goal.type == "route":  # it ends in a held-out room
            assert set(task.rooms[task.goal.room].name.split()) & held
        else:  # its target is a held-out kind of thing
            assert task.objects[task.goal.object].kind in held


def test_train_and_test_seen_are_disjoint():
    config = PRESETS["easy"]
    train = {json.dumps(generate_task(config, "train", 0, i).to_dict(), sort_keys=True) for i in range(150)}
    test = [generate_task(config, "test-seen", 0, i) for i in range(150)]
    assert all(split_of(t) == "test-seen" for t in test)
    assert not train & {json.dumps(t.to_dict(), sort_keys=True) for t in test}
    assert all(split_of(TextNavTask.from_dict(json.loads(t))) == "train" for t in train)


# ---- commands ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["n", "N", "north", "go north", "Go  North.", "walk to the north", "GO N!",
                                  "  go\tnorth  ", "head north", "move n"])
def test_direction_synonyms_normalise_to_one_command(text):
    assert parse(text) == Command("go", ("north",))


@pytest.mark.parametrize("text, command", [
    ("u", Command("go", ("up",))), ("go upstairs", Command("go", ("up",))), ("climb up the stairs", Command("go", ("up",))),
    ("l", Command("look")), ("Look around", Command("look")), ("i", Command("inventory")), ("INV", Command("inventory")),
    ("stop", Command("stop")), ("Stop here.", Command("stop")), ("done", Command("stop")),
    ("take the Red Mug", Command("take", ("red mug",))), ("pick up a red mug", Command("take", ("red mug",))),
    ("pick red mug up", Command("take", ("red mug",))), ("get red mug from the fridge", Command("take", ("red mug", "fridge"))),
    ("take red mug out of fridge", Command("take", ("red mug", "fridge"))),
    ("put the red mug on the table", Command("put", ("red mug", "table"))),
    ("place red mug onto table", Command("put", ("red mug", "table"))),
    ("put red mug on top of table", Command("put", ("red mug", "table"))),
    ("drop red mug", Command("drop", ("red mug",))), ("put down red mug", Command("drop", ("red mug",))),
    ("open the oak door", Command("open", ("oak door",))), ("shut fridge", Command("close", ("fridge",))),
    ("unlock pine door with brass key", Command("unlock", ("pine door", "brass key"))),
    ("unlock e", Command("unlock", ("e",))), ("x red mug", Command("examine", ("red mug",))),
    ("look at the desk", Command("examine", ("desk",))),
])
def test_commands_parse_with_articles_case_and_synonyms(text, command):
    assert parse(text) == command


@pytest.mark.parametrize("text", ["", "   ", "go to the kitchen", "dance", "take", "put red mug", "9" * 1000,
                                  "\ud800", "go north south", "pick red mug"])
def test_junk_is_not_a_command(text):
    assert isinstance(parse(text), str)


def test_commands_act_on_the_world_and_invalid_ones_say_why():
    world = World(TextNavTask.from_dict(house()))
    assert world.act("go north") == (None, "the oak door is closed")
    assert world.act("unlock oak door")[0] is None
    assert world.act("open n")[0] == "open" and world.act("go north")[0] == "go" and world.room == 1
    assert world.act("east") == (None, "the pine door is locked")
    assert world.act("unlock door to the east") == (None, "you have no key that fits the pine door")
    assert world.act("s")[0] == "go" and world.act("e")[0] == "go" and world.room == 2
    assert world.act("take red mug") == (None, "you see no 'red mug' here")  # it is in the closed fridge
    assert world.act("open fridge")[0] == "open"
    assert world.act("take mug")[0] == "take" and world.act("take brass key")[0] == "take"
    assert world.act("w")[0] == "go" and world.room == 0
    verb, message = world.act("take mug")  # the blue one on the table: the only mug in view
    assert verb == "take"
    assert world.act("drop mug")[0] is None and "which one do you mean" in world.act("drop mug")[1]
    assert world.act("put red mug on table")[0] == "put" and world.where[0] == ("rec", 0)
    assert world.act("n")[0] == "go" and world.act("unlock e")[0] == "unlock" and world.act("open e")[0] == "open"
    assert world.act("go east")[0] == "go" and world.room == 3


def test_admissible_commands_all_work_and_nothing_else_is_listed_twice():
    rng = random.Random(0)
    for index in range(30):
        task = generate_task(PRESETS["hard"], "train", 1, index)
        world = World(task)
        for _ in range(25):
            commands = world.admissible()
            assert len(commands) == len(set(commands)) and commands[-3:] == ["look", "inventory", "stop"]
            for command in commands:
                assert world.clone().act(command)[0] is not None, command
            choice = rng.choice([c for c in commands if c != "stop"])
            world.act(choice)


# ---- the expert -------------------------------------------------------------------------------------

@pytest.mark.parametrize("difficulty", ["easy", "medium", "hard"])
@pytest.mark.parametrize("goal_type", GOAL_TYPES)
def test_the_expert_solves_every_goal_type(difficulty, goal_type):
    config = {**PRESETS[difficulty].__dict__, "goal_types": (goal_type,)}
    for index in range(100):
        env = gymnasium.make("TextNav-v0", instruction="compact" if index % 2 else "full", **config)
        env.reset(options={"index": index, "seed": 7})
        actions = env.unwrapped.expert_actions()
        for i, action in enumerate(actions):
            _, reward, terminated, truncated, info = env.step(action)
            assert terminated == (i == len(actions) - 1) and not truncated
        details = info["verdict"]["details"]
        assert reward == 1.0 and details["spl"] == 1.0 and details["ndtw"] == 1.0 and details["nav_error"] == 0


@pytest.mark.parametrize("difficulty", ["medium", "hard"])
def test_the_expert_solves_from_any_state(difficulty):
    rng = random.Random(1)
    for index in range(40):
        env = gymnasium.make("TextNav-v0", difficulty=difficulty, step_limit_factor=50, max_invalid=100)
        _, info = env.reset(options={"index": index})
        for _ in range(rng.randrange(15)):  # wander: move, take and drop things, open and close
            action = rng.choice([c for c in info["admissible_commands"] if c != "stop"] + ["junk"])
            _, _, terminated, _, info = env.step(action)
            if terminated:  # a fetch delivered by chance
                break
        else:
            actions = env.unwrapped.expert_actions()
            for action in actions:
                _, reward, terminated, _, info = env.step(action)
            assert terminated and reward == 1.0


def test_an_unsolvable_task_is_refused():
    task = house()
    task["edges"] = task["edges"][:2] + [task["edges"][3]]  # the den only behind the locked pine door
    task["objects"][2]["room"] = 3  # and the key inside the den
    task["goal"]["path"] = []
    with pytest.raises(UnsolvableTaskError, match="cannot be reached"):
        gymnasium.make("TextNav-v0").reset(options={"task": task})


@pytest.mark.parametrize("change, message", [
    ({"start": 9}, "start must be an index"),
    ({"rooms": []}, "at least one room"),
    ({"edges": [{"a": 0, "direction": "north", "b": 1, "door": 0}, {"a": 0, "direction": "east", "b": 2}],
      "doors": [{"name": "oak door", "state": "closed"}], "goal": {"type": "route", "text": "", "compact": "", "room": 1}},
     "every room must be reachable"),
    ({"edges": [{"a": 0, "direction": "east", "b": 2}]}, "is on no edge"),
    ({"edges": [{"a": 0, "direction": "east", "b": 2}, {"a": 0, "direction": "east", "b": 1}]}, "two exits east"),
    ({"doors": [{"name": "oak door", "state": "closed"}, {"name": "pine door", "state": "locked"}]}, "names no key"),
    ({"doors": [{"name": "oak door", "state": "ajar"}, {"name": "pine door", "state": "closed"}]}, "state must be"),
    ({"objects": [{"kind": "mug", "colour": "red", "receptacle": 0}] * 2 + [{"kind": "key", "room": 2}]},
     "object names must be unique"),
    ({"objects": [{"kind": "Mug!", "receptacle": 0}]}, "objects\\[0\\].kind must be a lower-case name"),
    ({"goal": {"type": "teleport", "text": "", "compact": "", "room": 1}}, "goal.type must be one of"),
    ({"goal": {"type": "route", "text": "", "compact": "", "room": 3, "path": [0, 3]}}, "adjacent rooms"),
    ({"extra": 1}, "exactly the keys"),
])
def test_bad_task_dicts_are_clear_errors(change, message):
    with pytest.raises(ValueError, match=message):
        TextNavTask.from_dict(house(**change))


# ---- metrics ----------------------------------------------------------------------------------------

def test_spl_on_hand_made_cases():
    assert spl(True, 3, 3) == 1.0 and spl(True, 3, 6) == 0.5 and spl(True, 4, 5) == 0.8
    assert spl(False, 3, 3) == 0.0 and spl(True, 0, 0) == 1.0 and spl(True, 3, 2) == 1.0  # p < l caps at 1


def test_dtw_and_ndtw_on_a_line():
    line = [[abs(a - b) for b in range(5)] for a in range(5)]
    assert dtw([0, 1, 2], [0, 1, 2], line) == 0 and ndtw([0, 1, 2], [0, 1, 2], line) == 1.0
    assert dtw([0, 1, 2], [0, 1, 1, 2], line) == 0  # lingering costs nothing
    assert dtw([0, 1, 2], [0, 3], line) == 2  # worked out by hand: 0 + 1 + 1 along the best warping
    assert ndtw([0, 1, 2], [0, 3], line) == pytest.approx(math.exp(-2 / 3))
    assert ndtw([0, 1, 2], [0, 3], line, threshold=2.0) == pytest.approx(math.exp(-1 / 3))
    assert ndtw([0, 1, 2], [], line) == 0.0


def test_a_detour_costs_spl_and_ndtw_but_not_success():
    _, reward, terminated, _, info = play(["e", "w", "e", "n", "stop"])
    details = info["verdict"]["details"]
    assert terminated and reward == 1.0 and details["success"]
    assert details["moves"] == 4 and details["expert_moves"] == 2 and details["spl"] == 0.5
    assert details["nav_error"] == 0 and details["oracle_success"] is True
    assert details["path"] == ["hall", "kitchen", "hall", "kitchen", "den"]
    assert details["ndtw"] == pytest.approx(math.exp(-1 / 3))  # DTW 1 against [hall, kitchen, den], by hand
    assert details["sdtw"] == details["ndtw"]


def test_stopping_in_the_wrong_room_fails_with_the_navigation_error():
    _, reward, _, _, info = play(["open oak door", "n", "stop"])
    details = info["verdict"]["details"]
    assert reward == 0.0 and not details["success"] and details["spl"] == 0.0 and details["sdtw"] == 0.0
    assert details["nav_error"] == 1  # study to den through the (locked) pine door: doors do not count
    assert details["oracle_success"] is False and "1 moves from the goal, the den" in info["verdict"]["feedback"]


def test_oracle_success_counts_passing_through_the_goal():
    _, _, _, _, info = play(["e", "n", "s", "stop"])
    details = info["verdict"]["details"]
    assert not details["success"] and details["oracle_success"] is True and details["nav_error"] == 1


def test_invalid_commands_are_counted_and_end_the_episode_past_the_limit():
    env = gymnasium.make("TextNav-v0", max_invalid=2, step_limit_factor=10)
    env.reset(options={"task": house()})
    _, _, _, _, info = env.step("fly away")
    assert info["invalid_actions"] == 1 and info["last_action_valid"] is False
    _, _, _, _, info = env.step("e")
    assert info["invalid_actions"] == 1 and info["last_action_valid"] is True
    _, _, terminated, _, info = env.step("take the moon")
    assert not terminated and info["invalid_actions"] == 2
    observation, reward, terminated, truncated, info = env.step("n")  # kitchen -> den
    assert not terminated
    observation, reward, terminated, truncated, info = env.step("north")  # no exit north of the den
    assert terminated and not truncated and reward == 0.0
    details = info["verdict"]["details"]
    assert details["ended"] == "invalid" and details["invalid_actions"] == 3 and details["invalid_rate"] == 3 / 5
    assert "too many invalid commands" in info["verdict"]["feedback"]


@pytest.mark.parametrize("factor, limit", [(1.0, 3), (2.0, 6), (2.5, 8)])
def test_episodes_are_truncated_at_a_multiple_of_the_expert_path(factor, limit):
    env = gymnasium.make("TextNav-v0", step_limit_factor=factor)
    env.reset(options={"task": house()})  # the expert: e, n, stop (3 commands)
    for step in range(1, limit + 1):
        _, reward, terminated, truncated, info = env.step("look")
        assert terminated is False and truncated == (step == limit)
    details = info["verdict"]["details"]
    assert details["ended"] == "step_limit" and details["step_limit"] == limit and details["expert_actions"] == 3
    assert "out of steps" in info["verdict"]["feedback"]


def test_fetch_succeeds_on_delivery():
    goal = {"type": "fetch", "text": "Put the red ceramic mug on the desk in the study.",
            "compact": "put red mug on desk in study", "room": 1, "object": 0, "receptacle": 2}
    env = gymnasium.make("TextNav-v0", instruction="compact")
    observation, _ = env.reset(options={"task": house(goal=goal)})
    assert observation.splitlines()[0] == "put red mug on desk in study"
    actions = env.unwrapped.expert_actions()
    assert actions == ["e", "open fridge", "take red mug", "w", "open n", "n", "put red mug on desk"]
    for action in actions:
        _, reward, terminated, _, info = env.step(action)
    assert terminated and reward == 1.0 and info["verdict"]["details"]["path"] == ["hall", "kitchen", "hall", "study"]
    _, reward, terminated, _, info = play(["e", "stop"], task=house(goal=goal))
    assert terminated and reward == 0.0 and "before putting" in info["verdict"]["feedback"]


# ---- observations -----------------------------------------------------------------------------------

def test_full_observations_are_textworld_style():
    env = gymnasium.make("TextNav-v0")
    observation, info = env.reset(options={"task": house()})
    assert observation.startswith("Your task: Go east to the kitchen")
    assert "-= Hall =-" in observation and "On the table you see a blue ceramic mug." in observation
    assert "Exits: north: a closed oak door; east to the kitchen." in observation
    assert "You are carrying nothing." in observation
    assert info["admissible_commands"][:2] == ["go east", "open oak door"] and info["location"] == "hall"
    observation, *_ = env.step("Go East")
    assert "-= Kitchen =-" in observation and "There is a closed fridge here." in observation
    assert "On the floor you see a brass key." in observation


def test_compact_observations_are_one_short_line():
    env = gymnasium.make("TextNav-v0", instruction="compact")
    observation, _ = env.reset(options={"task": house()})
    assert observation == "e kitchen, n den\nhall: n=(closed) e=kitchen | table: blue mug"
    assert env.step("e")[0] == "kitchen: n=den w=hall | fridge(closed) | floor: key"
    assert env.step("dance")[0] == "invalid"
    assert env.step("take key")[0] == "kitchen: n=den w=hall | fridge(closed) | have: key"


def test_compact_easy_episodes_fit_the_tiny_models_context():
    """The learning config relies on it: route and coarse-to-fine episodes stay under 256 characters."""
    from sparring.trainers.bootstrap import expert_demonstrations

    kwargs = {"difficulty": "easy", "instruction": "compact", "goal_types": ["route", "coarse_to_fine"]}
    env = gymnasium.make("TextNav-v0", **kwargs).unwrapped
    tasks = [env.generate_task(i).to_dict() for i in range(200)]
    for demo in expert_demonstrations("TextNav-v0", kwargs, tasks):
        text = "".join(f"{turn.observation}\n{turn.action}\n" for turn in demo.turns)
        assert len(text) < 256, text


def test_the_shipped_config_loads_and_names_this_env():
    from sparring.selfplay import load_selfplay_config

    config = load_selfplay_config(Path(__file__).resolve().parents[2] / "configs" / "textnav-ei.yaml", [])
    assert config.env.id == "TextNav-v0" and config.env.eval_tasks >= 500
    assert config.bootstrap.demonstrations == "optimal"
    gymnasium.make(config.env.id, **config.env.kwargs)  # the kwargs are all TextNav's (none of Countdown's)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_vector_envs_stack_infos_of_mixed_goal_types(mode):
    """Gymnasium stacks `info["task"]` field by field: no field may be an int in one env and None in another. The
    vector env's infos carry each slot's goal exactly as a plain env with that seed poses it, every goal type met."""
    def nones(x):
        if isinstance(x, dict):
            return any(v is None or nones(v) for v in x.values())
        return isinstance(x, list) and any(nones(v) for v in x)

    single = gymnasium.make("TextNav-v0", difficulty="medium")
    envs = gymnasium.make_vec("TextNav-v0", num_envs=4, vectorization_mode=mode, difficulty="medium")
    types = set()
    try:
        for seed in range(0, 40, 4):
            _, infos = envs.reset(seed=list(range(seed, seed + 4)))
            goals = infos["task"]["goal"]
            for slot in range(4):
                goal = single.reset(seed=seed + slot)[1]["task"]["goal"]
                assert {key: goals[key][slot] for key in goal} == goal, (seed + slot, goal)
                assert all(goals[f"_{key}"][slot] for key in goal)
                types.add(goals["type"][slot])
            for _ in range(3):
                _, _, _, _, infos = envs.step(["look", "n", "stop", "take all"])
        assert types == set(GOAL_TYPES)
        assert not any(nones(generate_task(PRESETS["hard"], "train", 0, i).to_dict()) for i in range(20))
    finally:
        envs.close()
