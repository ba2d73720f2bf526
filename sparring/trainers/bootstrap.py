"""Bootstrap: supervised training on the expert's demonstrations until more steps stop helping.

The stopping rule keeps round 0 honest: success is measured every `eval_every` steps on a development
set (training-split tasks never trained on), and training stops once `patience` evaluations in a row
improve on the best before them by less than `min_delta`, or after `sft.steps` steps.
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass, field
from typing import Any, cast

import gymnasium

import sparring.envs  # noqa: F401  (registers the environments)
from sparring.envs.catalog import unwrapped
from sparring.errors import UnknownNameError
from sparring.trainers.sft import SFTSettings
from sparring.trajectories import Trajectory, Turn

DEMONSTRATIONS = ("optimal", "diverse", "trace")


@dataclass
class BootstrapConfig:
    enabled: bool = True           # false: round 0 trains nothing (a checkpoint that already knows the format)
    # "optimal": the expert's solution; "diverse" (Countdown): a random one of the solutions, seeded per task;
    # "trace" (Countdown): a Stream-of-Search search trace
    demonstrations: str = "diverse"
    eval_every: int = 250          # optimizer steps between evaluations on the development set
    patience: int = 2              # stop after this many evaluations without an improvement of min_delta
    min_delta: float = 0.01        # the development-success gain that counts as an improvement
    dev_tasks: int = 500           # development tasks (train split, items never trained on)
    # supervised training settings of the bootstrap
    sft: SFTSettings = field(default_factory=lambda: SFTSettings(steps=2000, learning_rate=2e-3, warmup_steps=50,
                                                                 scheduler="cosine"))

    def __post_init__(self) -> None:
        if self.demonstrations not in DEMONSTRATIONS:
            raise UnknownNameError("bootstrap.demonstrations", self.demonstrations, DEMONSTRATIONS)
        if self.eval_every < 1 or self.patience < 1:
            raise ValueError(f"bootstrap.eval_every and bootstrap.patience must be >= 1, got "
                             f"{self.eval_every} and {self.patience}")


def expert_demonstrations(env_id: str, env_kwargs: dict[str, Any], tasks: list[dict[str, Any]],
                          style: str = "optimal") -> list[Trajectory]:
    """The expert playing each task: its actions and the env's verdict, as trajectories (source "expert")."""
    env = gymnasium.make(env_id, **env_kwargs)
    if style in ("trace", "diverse") and env_id != "Countdown-v0":
        raise ValueError(f"{style!r} demonstrations exist for Countdown-v0 only, not {env_id}; use 'optimal'")
    out, played = [], {}  # the expert is deterministic per task (styles seed by the task): a repeat is played once
    for task in tasks:
        key = json.dumps(task, sort_keys=True)
        if key in played:
            if played[key] is not None:
                out.append(copy.deepcopy(played[key]))
            continue
        observation, _ = env.reset(options={"task": task})
        if style == "trace":
            from sparring.envs.countdown_expert import search_trace

            actions = [search_trace(task["numbers"], task["target"], node_budget=200).text]
        elif style == "diverse":
            from sparring.envs.countdown import CountdownEnv
            from sparring.envs.countdown_tasks import CountdownTask, expert_answer

            countdown = cast(CountdownEnv, env.unwrapped)  # Countdown-v0 (checked above)
            rng = random.Random(key)
            actions = [expert_answer(CountdownTask.from_dict(task), countdown.answer_format,
                                     allow_subset=countdown.allow_subset, rng=rng)]
        else:
            actions = unwrapped(env).expert_actions()
        trajectory = Trajectory(env_id, task, source="expert", env_kwargs=dict(env_kwargs))
        for action in actions:
            next_observation, reward, terminated, truncated, info = env.step(action)
            trajectory.turns.append(Turn(observation, action, float(reward)))
            observation = next_observation
            if terminated or truncated:
                trajectory.verdict = info["verdict"]
        played[key] = trajectory if trajectory.success else None  # a trace may run out of budget: keep what verifies
        if trajectory.success:
            out.append(trajectory)
    env.close()
    return out
