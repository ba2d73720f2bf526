import pytest

from sparring.envs.catalog import draw_tasks
from sparring.trainers.bootstrap import BootstrapConfig, expert_demonstrations

KWARGS = {"difficulty": "easy", "instruction": "compact"}


@pytest.mark.parametrize("style", ["optimal", "diverse", "trace"])
def test_demonstrations_verify(style):
    tasks = draw_tasks("Countdown-v0", KWARGS, "train", 0, 0, 30)
    demos = expert_demonstrations("Countdown-v0", KWARGS, tasks, style)
    assert len(demos) >= 25 and all(d.success and d.source == "expert" for d in demos)
    assert demos[0].turns[0].observation == " ".join(map(str, tasks[0]["numbers"])) + f" -> {tasks[0]['target']}"


def test_diverse_demonstrations_are_seeded_per_task():
    tasks = draw_tasks("Countdown-v0", KWARGS, "train", 0, 0, 40)
    again = expert_demonstrations("Countdown-v0", KWARGS, tasks, "diverse")
    assert [d.turns for d in again] == [d.turns for d in expert_demonstrations("Countdown-v0", KWARGS, tasks, "diverse")]
    optimal = expert_demonstrations("Countdown-v0", KWARGS, tasks, "optimal")
    assert sum(a.turns[0].action != b.turns[0].action for a, b in zip(again, optimal)) >= 5


def test_multi_turn_demonstrations_take_several_steps():
    tasks = draw_tasks("CountdownSteps-v0", KWARGS, "train", 0, 0, 5)
    demos = expert_demonstrations("CountdownSteps-v0", KWARGS, tasks, "optimal")
    assert all(len(d.turns) == 2 and d.success for d in demos)  # 3 numbers: two moves
    with pytest.raises(ValueError, match="Countdown-v0 only"):
        expert_demonstrations("CountdownSteps-v0", KWARGS, tasks, "diverse")


@pytest.mark.parametrize("style", ["optimal", "diverse"])
def test_a_repeated_task_is_played_once_and_demonstrated_alike(style, monkeypatch):
    """Tasks drawn from a fixed set repeat (TextWorld-v0's `games`): each distinct one is played once, every
    repeat gets its own copy of the same demonstration."""
    from sparring.envs.catalog import env_class

    tasks = draw_tasks("Countdown-v0", KWARGS, "train", 0, 0, 4)
    resets, cls = [], env_class("Countdown-v0")
    real = cls.reset
    def counted(self, *, seed=None, options=None):
        resets.append(options["task"])
        return real(self, seed=seed, options=options)

    monkeypatch.setattr(cls, "reset", counted)
    demos = expert_demonstrations("Countdown-v0", KWARGS, tasks * 3, style)
    assert resets == tasks and len(demos) == 12
    for i in range(4):
        assert demos[i].turns == demos[i + 4].turns == demos[i + 8].turns and demos[i].task == tasks[i]
    demos[4].turns.clear()
    assert demos[8].turns and demos[0].turns


def test_unknown_demonstration_style_suggests_the_closest():
    with pytest.raises(ValueError, match="did you mean 'diverse'"):
        BootstrapConfig(demonstrations="divers")


def test_training_examples_fill_the_models_context(tiny_checkpoint):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sparring.trainers.sft import _context_length

    model, tokenizer = AutoModelForCausalLM.from_pretrained(tiny_checkpoint), AutoTokenizer.from_pretrained(tiny_checkpoint)
    assert tokenizer.model_max_length > 10**6  # the char tokenizer sets no limit of its own
    assert _context_length(model, tokenizer) == model.config.max_position_embeddings == 512
