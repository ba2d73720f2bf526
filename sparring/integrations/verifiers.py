"""Any sparring env as a `verifiers` environment: a taskset of the env's split, the env's verdict as the reward.

    $ vf-eval sparring-verifiers --env.taskset.env-id Countdown-v0 --env.taskset.n 20 \\
          --env.taskset.env-kwargs '{"difficulty": "easy"}' --env.player.harness.id null \\
          --model my-model --client.base-url http://127.0.0.1:8000/v1

verifiers loads a taskset by the name of an installed package that exports one `Taskset` subclass (and, where
the taskset runs its own episodes, one `Env` subclass) in `__all__`; `sparring_verifiers` is that package (a
dotted module path is not an id verifiers can load). Each task is item `i` of the env's split for generator
seed `seed` (or one of the task dicts given as `tasks`). An episode: the model answers the env's first observation; for a multi-turn env every reply is
one action and the env's next observation is the next user turn, until the episode ends or `max_turns`. The
verdict's reward is recorded on the trace as `sparring_verdict`; its success, feedback and turns go to
`trace.info`.
"""

# What this file relies on in verifiers 0.4.0 (verifiers/v1, as its own tasksets/textarena does):
# - `vf.TasksetConfig` (pydantic; fields become `--env.taskset.<field>` flags), `vf.Taskset[TaskT, ConfigT]`
#   with `load() -> Iterable[Task]` and the class flag `INFINITE`; `vf.TaskData` (name, prompt,
#   system_prompt; subclass fields carry our task), `vf.Task[Data, vf.State, vf.TaskConfig](data, config)`.
# - `vf.EnvConfig` with an `AgentConfig` field per role (`player`), `vf.Env[EnvConfig]` with
#   `async run(task, agents)`: `agents.player.interaction(task)` -> `interaction.turn(message=None)` ->
#   Segment(`last_reply`, `terminated`); `interaction.trace.record_reward(name, value, weight)`, `trace.info`.
# - Loading: `verifiers.v1.utils.loaders.taskset_class(id)` / `environment_class(taskset_id)` import the
#   package named by the id and take the Taskset / Env subclass it exports in `__all__`.

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sparring.integrations import require

require("verifiers.v1", "verifiers")
import verifiers.v1 as vf  # noqa: E402  (a module, not require's Any: its classes annotate the fields below)
from verifiers.v1.harnesses.null import NullHarnessConfig  # noqa: E402

__all__ = ["SparringConfig", "SparringData", "SparringEnv", "SparringEnvConfig", "SparringTask", "SparringTaskset"]


class SparringConfig(vf.TasksetConfig):
    env_id: str = "Countdown-v0"
    """The sparring env id (`sparring envs` lists them)."""
    env_kwargs: dict[str, Any] = {}
    """The env's arguments (difficulty, knobs, instruction...)."""
    split: str = "train"
    """Which items of the env's generator (held-out splits never meet train)."""
    n: int = 100
    """Tasks: items 0..n-1 of the split."""
    seed: int = 0
    """The generator seed: item i of a split is a pure function of (seed, i)."""
    max_turns: int = 32
    """Model replies per episode at most (a multi-turn episode still running then scores 0)."""
    system_prompt_text: str | None = None
    """A system prompt for every task (None: none; the env's observation says what to do)."""
    tasks: list[dict[str, Any]] = []
    """Given task dicts to pose instead of the split's items (e.g. proposed tasks); `n` is then ignored."""


class SparringData(vf.TaskData):
    env_id: str
    env_kwargs: dict[str, Any]
    task: dict[str, Any]
    """The env's task as a dict: what the env is reset with."""
    max_turns: int


class SparringTask(vf.Task[SparringData, vf.State, vf.TaskConfig]):
    pass


class SparringEnvConfig(vf.EnvConfig):
    # A text env needs a plain chat agent (the `null` harness) run locally (`subprocess`), not verifiers' default
    # bash agent in a remote sandbox; `--env.player.harness.id` / `--env.player.runtime.type` still choose.
    # (The pyright ignores below: verifiers gives some fields' defaults positionally, `Field(600.0, gt=0)`, which
    # pyright's reading of pydantic models does not see, so it takes `tool_timeout`, `artifact_max_bytes` as required.)
    player: vf.AgentConfig = vf.AgentConfig(harness=NullHarnessConfig(id="null"),  # pyright: ignore[reportCallIssue]
                                            runtime=vf.SubprocessConfig())


class SparringEnv(vf.Env[SparringEnvConfig]):
    """Plays one sparring episode per task: the env answers each reply, the verdict is the reward."""

    async def run(self, task: SparringTask, agents: Any) -> None:
        from sparring.envs.catalog import make

        data = task.data
        env = make(data.env_id, disable_env_checker=True, **data.env_kwargs)
        env.reset(options={"task": data.task})
        verdict, turns, unfinished = None, 0, ""
        try:
            async with agents.player.interaction(task) as interaction:
                segment = await interaction.turn()  # the prompt is the env's first observation
                while True:
                    if segment.terminated:  # the agent's run ended (its own limits, an error) first
                        unfinished = "the agent stopped before the episode ended"
                        break
                    observation, _, terminated, truncated, info = env.step(segment.last_reply or "")
                    turns += 1
                    if terminated or truncated:
                        verdict = info["verdict"]
                        break
                    if turns >= data.max_turns:
                        unfinished = f"the episode did not end in max_turns={data.max_turns} replies"
                        break
                    segment = await interaction.turn(observation)
            trace = interaction.trace
            trace.record_reward("sparring_verdict", float(verdict["reward"]) if verdict else 0.0, 1.0)
            trace.info["sparring"] = {"success": bool(verdict and verdict["success"]), "turns": turns,
                                      "feedback": verdict["feedback"] if verdict else unfinished,
                                      "details": json.loads(json.dumps(verdict["details"], default=str))
                                      if verdict else {}}
        finally:
            env.close()


class SparringTaskset(vf.Taskset[SparringTask, SparringConfig]):
    INFINITE = False

    def load(self) -> Iterator[SparringTask]:
        from sparring.envs.catalog import make

        config = self.config
        if config.n < 1 or config.seed < 0 or config.max_turns < 1:
            raise ValueError(f"n and max_turns must be >= 1 and seed >= 0, got n={config.n}, seed={config.seed}, "
                             f"max_turns={config.max_turns}")
        env = make(config.env_id, split=config.split, **config.env_kwargs)
        items = [{"task": task} for task in config.tasks] or \
            [{"index": index, "seed": config.seed} for index in range(config.n)]
        try:
            for index, options in enumerate(items):
                observation, info = env.reset(options=options)
                yield SparringTask(
                    SparringData(  # pyright: ignore[reportCallIssue]  (artifact_max_bytes has a default: see above)
                        name=f"{config.env_id}/{config.split}#{index}", prompt=observation,
                        system_prompt=config.system_prompt_text, env_id=config.env_id,
                        env_kwargs=dict(config.env_kwargs), task=json.loads(json.dumps(info["task"])),
                        max_turns=config.max_turns),
                    config.task,
                )
        finally:
            env.close()
