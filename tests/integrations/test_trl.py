"""sparring.integrations.trl against TRL 1.16 itself: the reward function, the dataset, environment_factory
(driven by GRPOTrainer for a step), and examples/trl_grpo.py run for two steps on the tiny model."""

import importlib.util
import json
import os
from pathlib import Path

import gymnasium
import pytest
import torch
from transformers.utils import get_json_schema

import sparring  # noqa: F401
from sparring.envs.tooluse import parse_action
from sparring.envs.tooluse_world import TOOL_NAMES, tool_schemas
from sparring.integrations import trl as sparring_trl

COMPACT = {"instruction": "compact", "difficulty": "easy"}
TASK = {"numbers": [8, 3, 2], "target": 22}


# ---- reward_function ----------------------------------------------------------------------------

def test_reward_function_grades_as_the_env_does_and_logs_the_verdicts():
    answers = ["<answer>8*3-2</answer>", "<answer>8*3+2</answer>", "8*3-2", "", "\x00" * 100, "<answer>" * 1000]
    expected = []
    for answer in answers:
        env = gymnasium.make("Countdown-v0", **COMPACT)
        env.reset(options={"task": TASK})
        expected.append(env.step(answer)[4]["verdict"])
    extra, metrics = {}, {}
    reward = sparring_trl.reward_function("Countdown-v0", **COMPACT)
    got = reward(prompts=[""] * len(answers), completions=[[{"role": "assistant", "content": a}] for a in answers],
                 task=[json.dumps(TASK)] * len(answers), trainer_state=None,
                 log_extra=lambda column, values: extra.setdefault(column, values),
                 log_metric=lambda name, value: metrics.setdefault(name, value))
    assert got == [v["reward"] for v in expected]
    assert got[:4] == [1.0, 0.1, 0.0, 0.0]
    assert extra["success"] == [v["success"] for v in expected]
    assert extra["feedback"] == [v["feedback"] for v in expected]
    assert [json.loads(d) for d in extra["details"]] == [json.loads(json.dumps(v["details"])) for v in expected]
    assert metrics == {"sparring/success": 1 / len(answers)}
    assert reward.__name__ == "sparring/Countdown-v0"


def test_reward_function_skips_rows_of_other_envs_and_names_a_missing_task_column():
    reward = sparring_trl.reward_function("Countdown-v0", **COMPACT)
    assert reward(prompts=["", ""], completions=["<answer>8*3-2</answer>", "x"], task=[TASK, None]) == [1.0, None]
    with pytest.raises(ValueError, match="dataset column `task`"):
        reward(prompts=[""], completions=["x"], solution=["1"])
    with pytest.raises(ValueError, match="task dict or its JSON"):
        reward(prompts=[""], completions=["x"], task=["not json"])


# ---- dataset ------------------------------------------------------------------------------------

def test_dataset_rows_are_the_splits_items_with_their_first_observation():
    rows = sparring_trl.dataset("Countdown-v0", "test-unseen", n=5, seed=3, **COMPACT)
    again = sparring_trl.dataset("Countdown-v0", "test-unseen", n=5, seed=3, **COMPACT)
    assert rows.column_names == ["prompt", "task"] and len(rows) == 5 and rows.to_list() == again.to_list()
    env = gymnasium.make("Countdown-v0", split="test-unseen", **COMPACT).unwrapped
    for i, row in enumerate(rows):
        assert json.loads(row["task"]) == env.generate_task(i, seed=3).to_dict()
        observation, _ = env.reset(options={"task": json.loads(row["task"])})
        assert row["prompt"] == [{"role": "user", "content": observation}]
    plain = sparring_trl.dataset("Countdown-v0", "test-unseen", n=2, seed=3, chat=False, system_prompt="Solve.", **COMPACT)
    assert plain[0]["prompt"] == "Solve.\n\n" + rows[0]["prompt"][0]["content"]
    assert sparring_trl.dataset("TextNav-v0", n=2)[1]["prompt"][0]["content"].startswith("Your task: ")
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        sparring_trl.dataset("Countdown-v0", n=0)
    with pytest.raises(ValueError, match="Countdown-v0"):
        sparring_trl.dataset("Countdwn-v0")


# ---- environment_factory ------------------------------------------------------------------------

def test_tooluse_environment_has_the_envs_tools_with_the_envs_schemas_and_its_expert_gets_reward_one():
    Environment = sparring_trl.environment_factory("ToolUse-v0", difficulty="easy")
    env = Environment()
    for schema in tool_schemas():
        name = schema["function"]["name"]
        ours = get_json_schema(getattr(env, name))["function"]
        ours.pop("return", None)
        ours["parameters"]["additionalProperties"] = False
        assert ours == schema["function"]
    assert "answer" in get_json_schema(env.answer)["function"]["name"]
    rows = sparring_trl.dataset("ToolUse-v0", n=3, difficulty="easy")
    for row in rows:
        assert env.reset(**row) is None  # the prompt shows the observation already
        plain = {k: v for k, v in row.items() if k != "prompt"}
        assert env.reset(**plain).startswith(row["prompt"][0]["content"][:40])
        reference = gymnasium.make("ToolUse-v0", difficulty="easy").unwrapped
        reference.reset(options={"task": json.loads(row["task"])})
        for action in reference.expert_actions():
            parsed = parse_action(action)
            if parsed.answer is not None:
                assert "[episode over: reward 1]" in env.answer(parsed.answer)
            for name, arguments in parsed.calls or []:
                assert name in TOOL_NAMES
                getattr(env, name)(**arguments)
        assert env.get_reward() == 1.0
        assert env.kv_get("x") == "The episode is over: no more actions are taken."
    env.reset(**rows[0])
    assert "error" in env.kv_get(key="no such key").lower() or env.turns == 1
    assert env.get_reward() == 0.0  # unfinished


def test_text_action_environment_plays_an_episode_with_act():
    Environment = sparring_trl.environment_factory("CountdownSteps-v0", difficulty="easy")
    env = Environment()
    assert [name for name in dir(type(env)) if not name.startswith("_")] == ["act", "env_id", "env_kwargs",
                                                                             "get_reward", "reset"]
    row = sparring_trl.dataset("CountdownSteps-v0", n=1, chat=False, difficulty="easy")[0]
    assert env.reset(task=row["task"]) == row["prompt"]
    reference = gymnasium.make("CountdownSteps-v0", difficulty="easy").unwrapped
    reference.reset(options={"task": json.loads(row["task"])})
    for action in reference.expert_actions():
        env.act(action)
    assert env.get_reward() == 1.0 and env.verdict["success"]
    env.reset(task=row["task"])
    env.act("\x00 nonsense")
    assert env.get_reward() == 0.0
    with pytest.raises(ValueError, match="Countdown-v0"):
        sparring_trl.environment_factory("CountdownStep-v0")


def test_grpo_trainer_runs_a_step_with_the_environment_factory(tiny_checkpoint, tmp_path):
    """TRL's own GRPOTrainer: it resets one instance per rollout with the dataset's rows, scores them with
    get_reward and builds its tool table from our class. The tiny model gets Qwen2.5's chat template (one TRL
    can parse tool calls of); untrained, it writes no tool call, so tools are called here as TRL calls them."""
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer
    from trl.chat_template_utils import qwen2_5_chat_template

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    tokenizer.chat_template = qwen2_5_chat_template
    Environment = sparring_trl.environment_factory("CountdownSteps-v0", difficulty="easy")
    rows = sparring_trl.dataset("CountdownSteps-v0", n=2, difficulty="easy")
    config = GRPOConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=4, num_generations=2,
                        max_completion_length=8, report_to="none", save_strategy="no", logging_steps=1,
                        disable_tqdm=True, use_cpu=not torch.cuda.is_available())
    trainer = GRPOTrainer(model=str(tiny_checkpoint), processing_class=tokenizer, args=config, train_dataset=rows,
                          environment_factory=Environment)
    trainer.train()
    assert trainer.reward_func_names == [Environment.__name__]
    assert f"rewards/{Environment.__name__}/mean" in trainer.state.log_history[0]
    assert sorted(json.loads(e.env.unwrapped.task.to_dict() and json.dumps(e.env.unwrapped.task.to_dict()))["target"]
                  for e in trainer.environments) == sorted(json.loads(r["task"])["target"] for r in rows for _ in (0, 1))
    for environment, tools in zip(trainer.environments, trainer._sync_tool_dicts):
        assert list(tools) == ["act"] and tools["act"].__self__ is environment
        reference = gymnasium.make("CountdownSteps-v0", difficulty="easy").unwrapped
        reference.reset(options={"task": environment.env.unwrapped.task.to_dict()})
        environment.reset(task=environment.env.unwrapped.task.to_dict())
        for action in reference.expert_actions():
            tools["act"](**{"action": action})  # as TRL calls a tool: name -> function(**arguments)
    assert [e.get_reward() for e in trainer.environments] == [1.0] * 4


# ---- the example script -------------------------------------------------------------------------

def test_example_script_trains_the_tiny_model_with_a_plain_trl_script(tiny_checkpoint, tmp_path):
    path = Path(__file__).parents[2] / "examples" / "trl_grpo.py"
    spec = importlib.util.spec_from_file_location("trl_grpo_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    trainer = example.main(["--model", str(tiny_checkpoint), "--steps", "2", "--rows", "8",
                            "--output", str(tmp_path / "run")])
    assert trainer.state.global_step == 2
    assert all("sparring/success" in log and "rewards/sparring/Countdown-v0/mean" in log
               for log in trainer.state.log_history[:2])
    assert (tmp_path / "run" / "model.safetensors").is_file()
    logs = trainer._logs  # the last step's completions, their rewards and the verdict columns we logged
    env = gymnasium.make("Countdown-v0", **COMPACT)
    tasks = {json.dumps(json.loads(row["task"])["numbers"]): json.loads(row["task"])
             for row in sparring_trl.dataset("Countdown-v0", n=8, **COMPACT)}
    assert len(logs["completion"]) == len(logs["extra"]["feedback"]) == 8
    for prompt, completion, reward, feedback in zip(logs["prompt"], logs["completion"],
                                                    logs["rewards"]["sparring/Countdown-v0"], logs["extra"]["feedback"]):
        task = next(t for t in tasks.values() if prompt[-1]["content"].startswith(" ".join(map(str, t["numbers"]))))
        env.reset(options={"task": task})
        verdict = env.step(completion[-1]["content"])[4]["verdict"]
        assert (reward, feedback) == (verdict["reward"], verdict["feedback"])
