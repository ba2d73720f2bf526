"""Any sparring env in a plain TRL script: a reward function, a dataset, and an `environment_factory`.

    >>> from trl import GRPOConfig, GRPOTrainer
    >>> from sparring.integrations import trl as sparring_trl
    >>> trainer = GRPOTrainer(model="Qwen/Qwen3-0.6B", args=GRPOConfig(...),
    ...                       train_dataset=sparring_trl.dataset("Countdown-v0", n=1000),
    ...                       reward_funcs=sparring_trl.reward_function("Countdown-v0"))

Single-turn envs (Countdown-v0, CodeSynth-v0, HumanEval-v0, ReasoningGym-v0) train with `reward_function`:
each completion is graded by the env's verifier on its row's `task`. Multi-turn envs (ToolUse-v0, TextNav-v0,
CountdownSteps-v0, CodeRepair-v0, TextWorld-v0) train with `environment_factory`: TRL makes one instance per
rollout, calls `reset(**row)`, lets the model call the instance's public methods as tools (ToolUse-v0: the
env's own tools and `answer`; the others: `act`, one text action per call) and scores the rollout with
`get_reward()`, the verdict's reward. That path needs a model whose chat template TRL can parse tool calls of
(Qwen, Llama 3.1+, ...); see TRL's docs on `environment_factory`.
"""

# What this file relies on in TRL 1.16 (trl/trainer/grpo_trainer.py):
# - GRPOTrainer calls a reward function as f(prompts=, completions=, completion_ids=, **kwargs) ->
#   list[float | None]; kwargs hold every dataset column except prompt/completion/completion_ids (one value per
#   completion), `trainer_state`, `log_extra(column, values)` (one value per completion: extra columns of the
#   completions table), `log_metric(name, value)` (a scalar averaged per logging step, in the trainer's logs),
#   and `environments` with environment_factory. Completions are `str` for text prompts and
#   `[{"role": "assistant", "content": ...}]` for conversational ones.
# - environment_factory: a zero-argument callable returning an instance; TRL reads the *class*'s functions
#   (`inspect.getmembers(type(instance), inspect.isfunction)`): `reset` is required, `get_reward` (no argument,
#   returns a float) makes the env a reward source logged under the class name, every other public function is
#   a tool whose schema comes from `transformers.utils.get_json_schema` (type hints + Google-style docstring).
#   Per batch, TRL calls `reset(**row)` with the row's columns; a `str` return is appended to the last user
#   message (None: nothing). Instances are pooled and reused across batches. A tool that raises becomes
#   {"error": str(e)} for the model. Needs transformers >= 5.2 and a chat template that renders tool calls.

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable
from typing import Any

from sparring.envs.grading import EnvGrader, completion_text

__all__ = ["dataset", "environment_factory", "reward_function", "SparringEnvironment"]


# ---- reward function ----------------------------------------------------------------------------

class SparringReward:
    """A TRL reward function: the env's verdict on each completion for its row's `task` (see `reward_function`)."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any]):
        self.grader = EnvGrader(env_id, env_kwargs)
        self.__name__ = f"sparring/{env_id}"  # TRL logs rewards under the function's name

    def __call__(self, prompts: list[Any] | None = None, completions: list[Any] | None = None,
                 task: list[Any] | None = None, **kwargs: Any) -> list[float | None]:
        if completions is None or task is None:
            raise ValueError(f"the {self.grader.env_id} reward function needs the dataset column `task` (JSON task "
                             f"dicts, as sparring.integrations.trl.dataset makes); the row had {sorted(kwargs)}")
        if len(task) != len(completions):
            raise ValueError(f"got {len(completions)} completions but {len(task)} tasks; pass one task per completion")
        verdicts = [self._grade(t, c) for t, c in zip(task, completions)]
        if callable(kwargs.get("log_extra")):
            kwargs["log_extra"]("success", [v["success"] if v else None for v in verdicts])
            kwargs["log_extra"]("feedback", [v["feedback"] if v else None for v in verdicts])
            kwargs["log_extra"]("details", [json.dumps(v["details"], default=str, sort_keys=True) if v else None
                                            for v in verdicts])
        graded = [v for v in verdicts if v]
        if callable(kwargs.get("log_metric")) and graded:
            kwargs["log_metric"]("sparring/success", sum(bool(v["success"]) for v in graded) / len(graded))
        return [float(v["reward"]) if v else None for v in verdicts]

    def _grade(self, task: Any, completion: Any) -> dict[str, Any] | None:
        """The verdict, or None (TRL leaves the row out of this reward) for a row with no task of this env."""
        if task is None:  # a row of another env in a multi-task dataset
            return None
        try:
            task = json.loads(task) if isinstance(task, (str, bytes)) else dict(task)
            text = completion_text(completion)
        except (TypeError, ValueError) as error:
            raise ValueError(f"a {self.grader.env_id} row's `task` must be a task dict or its JSON and a completion "
                             f"text or a conversation; got task {task!r:.120} ({error})") from error
        return self.grader.grade(task, text)


def reward_function(env_id: str, **env_kwargs: Any) -> Callable[..., list[float | None]]:
    """A reward function for `GRPOTrainer(reward_funcs=...)`: the verdict reward of `env_id` on each completion.

    The task comes from the dataset column `task` (a task dict or its JSON; None skips the row, for datasets
    that mix envs). The completion's text (a string, or the last message of a conversation) is the env's
    action: the env is reset with the task and stepped once. A multi-turn env's episode that does not end
    after one action scores 0. Model output never makes it raise. Logged through TRL: the metric
    `sparring/success` and the completions-table columns `success`, `feedback` and `details`.
    """
    return SparringReward(env_id, dict(env_kwargs))


# ---- dataset ------------------------------------------------------------------------------------

def dataset(env_id: str, split: str = "train", n: int = 64, seed: int = 0, *, chat: bool = True,
            system_prompt: str | None = None, **env_kwargs: Any) -> Any:
    """A `datasets.Dataset` of `n` prompts of `env_id`'s `split`: item i is the env's task `i` for generator
    seed `seed` (the same rows every time). Columns: `prompt` (the first observation; with `chat`, a
    conversation `[{"role": "user", ...}]`, after `system_prompt` if given) and `task` (the task as JSON)."""
    from datasets import Dataset

    from sparring.envs.catalog import make

    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be an integer >= 1 (the number of rows), got {n!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    env = make(env_id, split=split, **env_kwargs)
    rows = []
    try:
        for index in range(n):
            observation, info = env.reset(options={"index": index, "seed": seed})
            prompt: Any = observation
            if chat:
                prompt = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + \
                    [{"role": "user", "content": observation}]
            elif system_prompt:
                prompt = f"{system_prompt}\n\n{observation}"
            rows.append({"prompt": prompt, "task": json.dumps(info["task"], sort_keys=True)})
    finally:
        env.close()
    return Dataset.from_list(rows)


# ---- environment_factory ------------------------------------------------------------------------

class SparringEnvironment:
    """One sparring env episode per rollout, for TRL's `environment_factory` (see `environment_factory`)."""

    env_id: str = ""
    env_kwargs: dict[str, Any] = {}

    def __init__(self) -> None:
        from sparring.envs.catalog import make

        # without Gymnasium's PassiveEnvChecker: after a first reset that raised, it fails the next step (1.4)
        self.env = make(self.env_id, disable_env_checker=True, **self.env_kwargs)
        self.verdict: dict[str, Any] | None = None
        self.turns = 0

    def reset(self, task: Any = None, prompt: Any = None, **row: Any) -> str | None:
        """Start an episode on the row's `task` (a task dict or its JSON; without one, item `index` for `seed`
        if the row has them, else a task drawn by the env). Returns the first observation for TRL to append to
        the prompt, or None when the row's prompt already shows it (rows from `dataset`)."""
        if task is not None:
            options: dict[str, Any] = {"task": json.loads(task) if isinstance(task, (str, bytes)) else dict(task)}
        elif row.get("index") is not None:
            options = {"index": int(row["index"]), "seed": int(row.get("seed") or 0)}
        else:
            options = {}
        observation, _ = self.env.reset(options=options)
        self.verdict, self.turns = None, 0
        shown = prompt[-1].get("content") if isinstance(prompt, list) and prompt and isinstance(prompt[-1], dict) \
            else prompt
        return None if isinstance(shown, str) and observation in shown else observation

    def get_reward(self) -> float:
        """The verdict's reward; 0 for an episode the model did not finish."""
        return float(self.verdict["reward"]) if self.verdict else 0.0

    def _step(self, action: str) -> str:
        if self.verdict is not None:
            return "The episode is over: no more actions are taken."
        observation, _, terminated, truncated, info = self.env.step(action)
        self.turns += 1
        if terminated or truncated:
            verdict: dict[str, Any] = info["verdict"]
            self.verdict = verdict
            return f"{observation}\n[episode over: reward {verdict['reward']:g}]"
        return observation


# The tools below are plain functions set on each generated class; `self` has no type hint, so that
# get_json_schema leaves it out of the schema. TRL names a tool by its `__name__`.
def _act(self, action: str) -> str:
    """Take one action in the environment and read what it answers.

    Args:
        action: The action, as text (a move, a command, an answer or code, as the task asks).
    """
    return self._step(action)


def _answer(self, answer: str) -> str:
    """Give the final answer to the task; this ends the episode and grades it.

    Args:
        answer: The final answer (an empty string when the task asks for none).
    """
    return self._step(json.dumps({"answer": answer}))


def _tooluse_tool(name: str) -> Callable[..., str]:
    """A method that runs ToolUse-v0's tool `name` as one env step: same signature and docstring as the tool, so
    TRL shows the model the schema the env itself publishes."""
    from sparring.envs.tooluse_world import ToolWorld

    original = getattr(ToolWorld, name)

    def call(self, *args: Any, **kwargs: Any) -> str:
        bound = signature.bind(self, *args, **kwargs)
        arguments = {k: v for k, v in bound.arguments.items() if k != "self"}
        return self._step(json.dumps({"name": name, "arguments": arguments}))

    signature = inspect.signature(original)
    call.__name__ = call.__qualname__ = name
    call.__doc__ = original.__doc__
    call.__signature__ = signature  # type: ignore[attr-defined]
    call.__annotations__ = typing.get_type_hints(original)
    return call


_act.__name__ = _act.__qualname__ = "act"
_answer.__name__ = _answer.__qualname__ = "answer"


def environment_factory(env_id: str, **env_kwargs: Any) -> type[SparringEnvironment]:
    """A class for `GRPOTrainer(environment_factory=...)`: each instance plays one episode of `env_id`.

    Its tools: for ToolUse-v0, the env's tools (fs_list, sql_query, kv_get, ... with the env's own
    schemas) and `answer(answer)`, which ends the episode; for every other env, `act(action)`, one text
    action per call. `reset(**row)` poses the row's `task` (as `dataset` writes it); `get_reward()` is
    the verdict's reward (0 for an unfinished episode). A tool call after the episode ended changes nothing.
    """
    from sparring.envs.catalog import env_class

    env_class(env_id)  # a mistyped id fails here, with the accepted ids
    methods: dict[str, Any] = {"env_id": env_id, "env_kwargs": dict(env_kwargs)}
    if env_id == "ToolUse-v0":
        from sparring.envs.tooluse_world import TOOL_NAMES

        methods.update({name: _tooluse_tool(name) for name in TOOL_NAMES})
        methods["answer"] = _answer
    else:
        methods["act"] = _act
    name = "Sparring" + "".join(part for part in env_id.replace("-", " ").split() if part.isalnum()) + "Environment"
    cls = type(name, (SparringEnvironment,), methods)
    cls.__doc__ = f"{env_id} for TRL's environment_factory: {(environment_factory.__doc__ or '').splitlines()[0]}"
    return cls
