"""CodeSynth-v0: seeded generation, splits, the DSL's rendering, prompts that fit a small model."""

import gymnasium
import pytest

import sparring  # noqa: F401
from sparring.envs.code_harness import same_value
from sparring.envs.codesynth import (
    OPS,
    PRESETS,
    CodeSynthConfig,
    CodeSynthTask,
    Step,
    expert_solution,
    generate_task,
    is_held_out_program,
    program_key,
    prompt,
    render_program,
    run_program,
)


def test_item_i_is_a_pure_function_of_seed_and_index():
    for difficulty in PRESETS:
        config = PRESETS[difficulty]
        assert generate_task(config, "train", 3, 17) == generate_task(config, "train", 3, 17)
        assert generate_task(config, "train", 3, 17) != generate_task(config, "train", 3, 18)
        assert generate_task(config, "train", 3, 17) != generate_task(config, "train", 4, 17)
    env = gymnasium.make("CodeSynth-v0", split="test-seen")
    assert env.unwrapped.generate_task(5, seed=2) == generate_task(CodeSynthConfig(), "test-seen", 2, 5)


def test_splits_hold_out_programs_and_examples():
    config = PRESETS["easy"]
    train = [generate_task(config, "train", 0, i) for i in range(300)]
    unseen = [generate_task(config, "test-unseen", 0, i) for i in range(60)]
    seen = [generate_task(config, "test-seen", 0, i) for i in range(60)]
    train_programs = {program_key(t.program, t.input_type) for t in train}
    assert not train_programs & {program_key(t.program, t.input_type) for t in unseen}
    assert all(is_held_out_program(t.program, t.input_type) for t in unseen)
    assert not any(is_held_out_program(t.program, t.input_type) for t in seen + train)
    assert not {repr(t.examples) for t in train} & {repr(t.examples) for t in seen}


def test_rendered_programs_compute_what_the_dsl_computes():
    # our own generated code (trusted), run here to check the renderer's brackets and templates
    for difficulty in PRESETS:
        for i in range(150):
            task = generate_task(PRESETS[difficulty], "train", 1, i)
            namespace = {}
            exec(render_program(task.program), namespace)  # noqa: S102
            for given, output in task.examples + task.tests:
                assert same_value(namespace["f"](given), output), (render_program(task.program), given)
    assert render_program((Step("double"), Step("reverse"))) == "def f(x): return (x + x)[::-1]"
    assert render_program((Step("sum"), Step("divisible", 3))) == "def f(x): return sum(x) % 3 == 0"


def test_every_op_is_reachable_and_checked_by_its_types():
    used = {step.op for i in range(2000) for step in generate_task(PRESETS["medium"], "train", 0, i).program}
    assert used == set(OPS)


def test_tasks_are_not_degenerate_and_examples_pin_the_op_at_easy():
    for i in range(200):
        task = generate_task(PRESETS["easy"], "train", 0, i)
        outputs = [o for _, o in task.examples + task.tests]
        assert any(not same_value(o, outputs[0]) for o in outputs)  # depends on its input
        assert any(not same_value(i, o) for i, o in task.examples + task.tests)  # not the identity
        for other in OPS.values():  # no other one-op program explains the examples yet fails a test
            if other.source != task.input_type:
                continue
            for k in other.constants or (None,):
                candidate = (Step(other.name, k),)
                try:
                    fits = all(same_value(run_program(candidate, x), y) for x, y in task.examples)
                    right = all(same_value(run_program(candidate, x), y) for x, y in task.tests)
                except Exception:
                    continue
                assert not fits or right


def test_compact_prompts_and_answers_fit_a_512_character_context():
    for difficulty in PRESETS:
        for i in range(300):
            task = generate_task(PRESETS[difficulty], "train", 0, i)
            assert len(prompt(task, "compact")) + len(expert_solution(task)) + 4 < 512
            assert prompt(task, "compact").isascii()
    easy = generate_task(PRESETS["easy"], "train", 0, 0)
    assert expert_solution(easy).startswith("def f(x): return ") and "\n" not in expert_solution(easy)


def test_full_prompt_describes_the_function():
    task = CodeSynthTask.from_dict({"program": ["mul:3", "sort"], "input_type": "ints",
                                    "examples": [[[3, 1], [3, 9]]], "tests": [[[2], [6]]]})
    text = prompt(task, "full")
    assert "multiply each element by 3, then sort it" in text and "f([3, 1]) == [3, 9]" in text
    assert prompt(task, "compact") == "[3, 1] -> [3, 9]"


@pytest.mark.parametrize("data, message", [
    ({"program": ["mul:7"], "input_type": "ints", "examples": [[[1], [7]]], "tests": []}, "takes a constant among"),
    ({"program": ["nope"], "input_type": "ints", "examples": [[[1], [1]]], "tests": []}, "unknown CodeSynth op"),
    ({"program": ["upper"], "input_type": "ints", "examples": [[[1], [1]]], "tests": []}, "takes str, but gets ints"),
    ({"program": ["sort"], "input_type": "ints", "examples": [[[2, 1], [2, 1]]], "tests": []}, "the program computes"),
    ({"program": ["sort"], "input_type": "ints", "examples": [["ab", "ab"]], "tests": []}, "is not of input_type"),
    ({"program": ["max"], "input_type": "ints", "examples": [[[], 0]], "tests": []}, "the program fails on input"),
    ({"program": ["sort"], "input_type": "ints", "examples": []}, "exactly the keys"),
    ({"program": ["sort"], "input_type": "lists", "examples": [], "tests": []}, "did you mean 'ints'"),
])
def test_bad_tasks_are_refused_with_the_reason(data, message):
    with pytest.raises(ValueError, match=message):
        CodeSynthTask.from_dict(data)


def test_knobs_are_checked():
    with pytest.raises(ValueError, match="did you mean 'num_ops'"):
        gymnasium.make("CodeSynth-v0", num_op=2)
    with pytest.raises(ValueError, match="num_ops must be"):
        CodeSynthConfig(num_ops=9)
    with pytest.raises(ValueError, match="unknown ops in excluded_ops"):
        CodeSynthConfig(excluded_ops=("sortt",))
    config = CodeSynthConfig(num_ops=[1, 2], input_types=["str"], excluded_ops=["upper"])
    task = generate_task(config, "train", 0, 0)
    assert task.input_type == "str" and all(s.op != "upper" for s in task.program)


def test_expert_solves_generated_tasks_through_the_sandbox():
    env = gymnasium.make("CodeSynth-v0", difficulty="hard", split="test-unseen", instruction="compact")
    for seed in range(15):
        env.reset(seed=seed)
        _, reward, terminated, _, info = env.step(env.unwrapped.expert_actions()[0])
        assert reward == 1.0 and terminated and info["verdict"]["success"]


def test_trust_reference_skips_the_sandbox_for_the_reference_program_only():
    env = gymnasium.make("CodeSynth-v0", trust_reference=True)
    env.reset(seed=0)
    reference = env.unwrapped.expert_actions()[0]
    verdict = env.step(reference)[4]["verdict"]
    assert verdict["success"] and verdict["details"]["status"] == "reference"
    env.reset(seed=0)
    verdict = env.step(reference.replace("return ", "return  "))[4]["verdict"]  # the same function, other text
    assert verdict["success"] and verdict["details"]["status"] == "ok"
    env.reset(seed=0)
    assert not env.step("def f(x): return x")[4]["verdict"]["success"]
    assert gymnasium.make("CodeSynth-v0").unwrapped.trust_reference is False  # off unless asked for


def test_the_code_selfplay_config_loads_and_its_expert_demonstrations_verify():
    from pathlib import Path

    from sparring.envs.catalog import draw_tasks
    from sparring.selfplay import load_selfplay_config
    from sparring.trainers.bootstrap import expert_demonstrations

    config = load_selfplay_config(Path(__file__).resolve().parents[2] / "configs" / "code-ei.yaml", [])
    assert config.env.id == "CodeSynth-v0" and config.bootstrap.demonstrations == "optimal"
    assert config.env.kwargs["instruction"] == "compact" and "max_number" not in config.env.kwargs
    tasks = draw_tasks(config.env.id, config.env.kwargs, "train", 0, 0, 20)
    demos = expert_demonstrations(config.env.id, config.env.kwargs, tasks, "optimal")
    assert len(demos) == 20 and all(d.success and d.turns[0].action.startswith("def f(x): return ") for d in demos)
