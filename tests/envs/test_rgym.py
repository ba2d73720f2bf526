"""ReasoningGym-v0: every reasoning-gym dataset as a sparring env, and the guards around its scorers."""

import json
import sys

import gymnasium
import pytest

pytest.importorskip("reasoning_gym", reason="ReasoningGym-v0 needs the extra: pip install -e '.[reasoning-gym]'")

import sparring  # noqa: E402
from sparring.envs.rgym import MissingExtraError, dataset_names, split_of  # noqa: E402
from sparring.envs.rgym_scorer import Scorer, shared_scorer  # noqa: E402

DATASETS = dataset_names()
NO_EXPERT = {"boxnet", "rush_hour"}  # reasoning-gym gives neither an answer nor an example solution
JUNK = ["", " ", "\x00", "<answer></answer>", "9" * 10_000, "\ud800", "None", "null", "[]", "{}", "0", "1", "True",
        "<answer>" + "(" * 5_000 + "</answer>", "__import__('os').system('true')"]
HOSTILE = ["__import__('os').system('touch {marker}')", "[__import__('os').system('touch {marker}')]",
           "(lambda: __import__('os').system('touch {marker}'))()", "exec(\"open('{marker}', 'w')\")",
           "open('{marker}', 'w')", "x.__class__.__bases__[0].__subclasses__()"]
EVAL_DATASETS = ["string_insertion", "spiral_matrix", "binary_matrix", "n_queens", "number_sorting", "bitwise_arithmetic",
                 "countdown", "puzzle24", "simple_integration", "intermediate_integration", "polynomial_multiplication"]


def test_every_reasoning_gym_dataset_is_offered():
    from reasoning_gym.factory import DATASETS as ALL

    assert set(DATASETS) == set(ALL) - {"composite", "codeio"} and len(DATASETS) == 104


@pytest.mark.parametrize("dataset", DATASETS)
def test_dataset_conformance(dataset):
    """Per dataset: seeded items, the task round trip, the expert (where there is one) and junk answers."""
    report = sparring.check("ReasoningGym-v0", env_kwargs={"dataset": dataset}, episodes=2, only=("gymnasium",))
    assert report.passed, report.to_dict()  # Gymnasium's check_env, no warning (sparring check runs the rest on gcd)
    env = gymnasium.make("ReasoningGym-v0", dataset=dataset)
    test = gymnasium.make("ReasoningGym-v0", dataset=dataset, split="test")
    first = env.reset(options={"index": 0, "seed": 5})
    assert env.reset(seed=99, options={"index": 0, "seed": 5}) == first  # a pure function of (seed, index)
    for split_env in (env, test):
        for seed in range(2):
            observation, info = split_env.reset(seed=seed)
            task = json.loads(json.dumps(info["task"]))  # JSON-serialisable
            assert split_of(task["question"]) == split_env.unwrapped.split and observation == task["question"]
            assert split_env.reset(options={"task": task}) == (observation, info)
            if dataset in NO_EXPERT:
                with pytest.raises(NotImplementedError, match="no answer"):
                    split_env.unwrapped.expert_actions()
            else:
                actions = split_env.unwrapped.expert_actions()
                _, reward, terminated, _, info = split_env.step(actions[0])
                assert terminated and info["verdict"]["success"] and reward == 1.0, info["verdict"]
                assert split_env.reset(options={"task": task})[0] == observation
                _, reward, _, _, info = split_env.step(f"Let me think.\n<answer>{actions[0]}</answer>")
                assert info["verdict"]["success"], "the last <answer> is graded"
    _, info = env.reset(seed=3)
    expected = (info["task"]["answer"] or "").strip().lower()
    for junk in JUNK:
        env.reset(seed=3)
        _, reward, terminated, _, info = env.step(junk)
        assert terminated and 0.0 <= reward <= 1.0
        if junk.strip().lower() != expected:  # "0" or "True" may be the answer
            assert not info["verdict"]["success"] and reward < 1.0, (junk, info["verdict"])
        json.dumps(info["verdict"])


@pytest.mark.parametrize("dataset", ["basic_arithmetic", "word_sorting", "graph_color"])
def test_splits_never_share_a_question(dataset):
    train = gymnasium.make("ReasoningGym-v0", dataset=dataset).unwrapped
    test = gymnasium.make("ReasoningGym-v0", dataset=dataset, split="test").unwrapped
    train_questions = {train.generate_task(i, seed=s).question for s in range(2) for i in range(100)}
    test_questions = {test.generate_task(i, seed=s).question for s in range(2) for i in range(100)}
    assert len(train_questions) > 150 and len(test_questions) > 150
    assert not train_questions & test_questions


@pytest.mark.parametrize("dataset", ["spell_backward", "list_functions", "acre"])
def test_items_do_not_depend_on_the_order_they_are_drawn_in(dataset):
    """64 consecutive items share one built dataset (acre: one per item); any order gives the same items."""
    forward = gymnasium.make("ReasoningGym-v0", dataset=dataset).unwrapped
    items = [forward.generate_task(i, seed=2) for i in range(130)]
    backward = gymnasium.make("ReasoningGym-v0", dataset=dataset).unwrapped
    assert [backward.generate_task(i, seed=2) for i in reversed(range(130))] == items[::-1]
    assert len({item.question for item in items}) > 100


@pytest.mark.parametrize("dataset", EVAL_DATASETS)
def test_hostile_answers_and_tasks_never_run(dataset, tmp_path):
    """The datasets whose scorers `eval` or sympy-parse text: answers and proposed tasks written to run code."""
    marker = tmp_path / "ran"
    env = gymnasium.make("ReasoningGym-v0", dataset=dataset)
    _, info = env.reset(seed=0)
    hostile = [h.format(marker=marker) for h in HOSTILE]
    for answer in hostile:
        env.reset(seed=0)
        assert not env.step(answer)[4]["verdict"]["success"]
    task = info["task"]
    task["answer"] = hostile[0]
    task["metadata"] = {k: hostile[0] if isinstance(v, str) else v for k, v in task["metadata"].items()}
    for answer in hostile + ["1", "[1, 2]"]:
        env.reset(options={"task": task})
        env.step(answer)
    assert not marker.exists()


@pytest.mark.parametrize("dataset", ["simple_integration", "intermediate_integration"])
def test_the_unevaluated_integral_cheat_fails(dataset):
    """reasoning-gym's integration scorers differentiate the answer: `Integral(f, x) + C` scores 1.0 there."""
    env = gymnasium.make("ReasoningGym-v0", dataset=dataset)
    for seed in range(5):
        _, info = env.reset(seed=seed)
        metadata = info["task"]["metadata"]
        cheat = f"Integral({metadata['integrand']}, {metadata.get('variable', 'x')}) + C"
        assert env.step(cheat)[4]["verdict"]["reward"] == 0.0
        assert "Integral" not in info["task"]["answer"]


def test_lenient_scorers_need_the_answer_itself():
    env = gymnasium.make("ReasoningGym-v0", dataset="game_of_life_halting")
    _, info = env.reset(seed=0)
    wrong = {"True": "False", "False": "True"}[info["task"]["answer"]]
    for answer in [wrong, "x", "\x00"]:
        env.reset(seed=0)
        assert not env.step(answer)[4]["verdict"]["success"]  # reasoning-gym: 1.0 for any non-empty answer
    env = gymnasium.make("ReasoningGym-v0", dataset="coin_flip")
    for seed in range(5):
        _, info = env.reset(seed=seed)
        if float(info["task"]["answer"]) < 1:
            assert env.step("0")[4]["verdict"]["reward"] == 0.0  # reasoning-gym: 1.0 by a one-character prefix
    env = gymnasium.make("ReasoningGym-v0", dataset="puzzle24")
    for seed in range(5):
        _, info = env.reset(seed=seed)
        if sorted(info["task"]["metadata"]["numbers"]) != [1, 2, 3, 4]:
            assert env.step("1*2*3*4")[4]["verdict"]["reward"] == 0.0  # reasoning-gym: any 4 numbers making 24


def test_a_scorer_that_hangs_is_killed_and_restarted():
    env = gymnasium.make("ReasoningGym-v0", dataset="countdown")
    scorer = shared_scorer()
    timeout, scorer.timeout_s = scorer.timeout_s, 2.0
    try:
        env.reset(seed=0)
        verdict = env.step("<answer>9**9**9**9</answer>")[4]["verdict"]
        assert verdict["reward"] == 0.0 and "no score within 2 s" in verdict["feedback"]
        env.reset(seed=0)
        assert env.step(env.unwrapped.expert_actions()[0])[4]["verdict"]["success"]  # a fresh child scores again
    finally:
        scorer.timeout_s = timeout


def test_scorer_errors_are_a_zero_with_the_reason():
    score, error = Scorer().score("no_such_dataset", None, {"question": "q", "answer": "a", "metadata": {}}, "a")
    assert score == 0.0 and "KeyError" in error


def test_curriculum_levels_and_knobs():
    easy = gymnasium.make("ReasoningGym-v0", dataset="basic_arithmetic", difficulty="easy").unwrapped
    hard = gymnasium.make("ReasoningGym-v0", dataset="basic_arithmetic", level=easy.max_level()).unwrapped
    assert easy.config.max_terms < hard.config.max_terms
    knobs = gymnasium.make("ReasoningGym-v0", dataset="basic_arithmetic", min_terms=2, max_terms=2).unwrapped
    assert knobs.generate_task(0).question.count("+") + knobs.generate_task(0).question.count("-") <= 2
    with pytest.raises(ValueError, match=r"level must be an integer in 0\.\."):
        gymnasium.make("ReasoningGym-v0", dataset="basic_arithmetic", level=99)
    with pytest.raises(ValueError, match="no curriculum"):
        gymnasium.make("ReasoningGym-v0", dataset="acre", level=0)


def test_bad_arguments_name_what_is_accepted():
    with pytest.raises(ValueError, match="needs dataset=NAME, one of: ab, acre"):
        gymnasium.make("ReasoningGym-v0")
    with pytest.raises(ValueError, match="did you mean 'basic_arithmetic'"):
        gymnasium.make("ReasoningGym-v0", dataset="basic_arithmetc")
    with pytest.raises(ValueError, match="mixes other datasets"):
        gymnasium.make("ReasoningGym-v0", dataset="composite")
    with pytest.raises(ValueError, match="does not take seed="):
        gymnasium.make("ReasoningGym-v0", dataset="gcd", seed=3)
    with pytest.raises(ValueError, match="knob 'max_termz'"):
        gymnasium.make("ReasoningGym-v0", dataset="basic_arithmetic", max_termz=3)
    with pytest.raises(ValueError, match="refused this basic_arithmetic config"):
        gymnasium.make("ReasoningGym-v0", dataset="basic_arithmetic", min_terms=5, max_terms=2)
    env = gymnasium.make("ReasoningGym-v0", dataset="gcd")
    with pytest.raises(ValueError, match="exactly the keys"):
        env.reset(options={"task": {"question": "q"}})


def test_a_task_of_another_dataset_or_split_is_named():
    env = gymnasium.make("ReasoningGym-v0", dataset="gcd").unwrapped
    other = gymnasium.make("ReasoningGym-v0", dataset="lcm", split="test").unwrapped.generate_task(0)
    assert len(env.task_problems(other)) == 2
    env.reset(options={"task": other.to_dict()})
    assert env.step(other.answer)[4]["verdict"]["details"]["error"] == "wrong_dataset"


def test_missing_extra_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "reasoning_gym", None)  # `import reasoning_gym` now raises ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'sparring\[reasoning-gym\]'"):
        gymnasium.make("ReasoningGym-v0", dataset="gcd")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_vector_envs(mode):
    envs = gymnasium.make_vec("ReasoningGym-v0", num_envs=2, vectorization_mode=mode, dataset="gcd")
    single = gymnasium.make("ReasoningGym-v0", dataset="gcd")
    try:
        observations, infos = envs.reset(seed=[1, 2])
        assert tuple(observations) == (single.reset(seed=1)[0], single.reset(seed=2)[0])
        answers = [str(answer) for answer in infos["task"]["answer"]]
        _, rewards, terminated, _, infos = envs.step(answers)
        assert rewards.tolist() == [1.0, 1.0] and terminated.all()
    finally:
        envs.close()


def test_the_solver_plays_it_unchanged(tiny_checkpoint):
    from sparring.policies.hf import HFPolicy
    from sparring.policies.policy import SamplingParams
    from sparring.solver import Solver

    env = gymnasium.make("ReasoningGym-v0", dataset="gcd").unwrapped
    tasks = [env.generate_task(i).to_dict() for i in range(2)]
    trajectories = Solver(HFPolicy(tiny_checkpoint), "ReasoningGym-v0", {"dataset": "gcd"},
                          SamplingParams(max_tokens=6, seed=0)).run(tasks, k=2)
    assert len(trajectories) == 4 and all(t.verdict and len(t.turns) == 1 for t in trajectories)
    assert trajectories[0].turns[0].observation == tasks[0]["question"]

