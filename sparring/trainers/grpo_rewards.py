"""GRPO's rewards and episodes: single-turn completions graded by the env (`env_reward_function`), and whole
multi-turn episodes played inside TRL's rollout hook (`EpisodeRollout`), their verdicts forwarded as rewards
(`EpisodeReward`). `is_multi_turn` tells the two kinds of env apart from the tasks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sparring.envs.grading import EnvGrader, completion_text
from sparring.errors import SparringError
from sparring.policies.hf import render


def _task_dict(task: Any) -> dict[str, Any]:
    return json.loads(task) if isinstance(task, (str, bytes)) else dict(task)


class EnvRewardFunction:
    """A TRL reward function: the env's verdict reward for each completion on its row's `task`."""

    __name__ = "env_verdict"  # TRL logs rewards under the function's name: rewards/env_verdict/mean

    def __init__(self, env_id: str, env_kwargs: dict[str, Any] | None = None):
        self.grader = EnvGrader(env_id, env_kwargs)
        self.history: list[list[dict[str, Any]]] = []  # the verdicts of every call, for train_grpo's metrics

    def __call__(self, prompts: list[Any] | None = None, completions: list[Any] | None = None,
                 task: list[Any] | None = None, **kwargs: Any) -> list[float]:
        if completions is None or task is None:
            raise ValueError(f"the {self.grader.env_id} reward function needs `completions` and the dataset column "
                             f"`task` (JSON task dicts), got kwargs {sorted(kwargs)}; build the dataset with a "
                             "`task` column, as train_grpo does")
        if len(task) != len(completions):
            raise ValueError(f"got {len(completions)} completions but {len(task)} tasks; pass one task per completion")
        verdicts = [self.grader.grade(_task_dict(t), completion_text(c)) for t, c in zip(task, completions)]
        self.history.append(verdicts)
        if "log_metric" in kwargs and verdicts:
            kwargs["log_metric"]("env/success", sum(bool(v["success"]) for v in verdicts) / len(verdicts))
        return [float(v["reward"]) for v in verdicts]


def env_reward_function(env_id: str, env_kwargs: dict[str, Any]) -> Callable[..., list[float]]:
    """A TRL reward function `(prompts, completions, task=..., **kwargs) -> list[float]`.

    The dataset column `task` (a JSON string of the task dict) arrives as a kwarg; each completion (a
    string, or a conversation whose last message is the answer) is graded by resetting the env with that
    task and stepping it once with the completion's text. Returns the verdicts' rewards.
    """
    return EnvRewardFunction(env_id, env_kwargs)


class EpisodeReward:
    """The reward function of multi-turn training: the verdict reward that `EpisodeRollout` forwarded."""

    __name__ = "env_verdict"

    def __init__(self) -> None:
        self.history: list[list[dict[str, Any]]] = []  # {"reward", "success", "turns"} per episode, per call

    def __call__(self, prompts: list[Any] | None = None, completions: list[Any] | None = None,
                 episode_reward: list[float] | None = None, **kwargs: Any) -> list[float]:
        if episode_reward is None:
            raise ValueError("the multi-turn reward reads `episode_reward` from EpisodeRollout's output, got kwargs "
                             f"{sorted(kwargs)}; pass rollout_func=EpisodeRollout(...) to GRPOTrainer")
        rewards = [float(r) for r in episode_reward]
        successes = kwargs.get("episode_success") or [r >= 1.0 for r in rewards]
        turns = kwargs.get("episode_turns") or [0] * len(rewards)
        self.history.append([{"reward": r, "success": bool(s), "turns": t}
                             for r, s, t in zip(rewards, successes, turns)])
        if "log_metric" in kwargs and rewards:
            kwargs["log_metric"]("env/success", sum(map(bool, successes)) / len(rewards))
            kwargs["log_metric"]("env/turns", sum(turns) / len(rewards))
        return rewards


# ---- single or multi-turn -----------------------------------------------------------------------

def is_multi_turn(env_id: str, env_kwargs: dict[str, Any], tasks: list[dict[str, Any]], probes: int = 8) -> bool:
    """Whether an episode on these tasks can take more than one action.

    Probe: on the first `probes` tasks, does the expert need more than one action, or does its first
    action (or a junk action) leave the episode running? Any yes means multi-turn. An env whose
    episodes all end after one action (Countdown-v0; CountdownSteps-v0 on 2-number tasks with no
    invalid moves allowed) trains single-turn, which is then exactly right.
    """
    from sparring.envs.catalog import make, unwrapped
    from sparring.errors import UnsolvableTaskError

    env = make(env_id, **env_kwargs)
    try:
        for i, task in enumerate(tasks[:probes]):
            env.reset(options={"task": task})
            try:
                actions = unwrapped(env).expert_actions()
            except UnsolvableTaskError:
                actions = []
            if len(actions) > 1:
                return True
            for action in (actions[:1] if i else actions[:1] + ["\x00"]):  # junk once, on the first task
                env.reset(options={"task": task})
                _, _, terminated, truncated, _ = env.step(action)
                if not (terminated or truncated):
                    return True
        return False
    finally:
        env.close()


# ---- multi-turn rollout -------------------------------------------------------------------------

def observation_bridge(tokenizer: Any, observation: str) -> str:
    """The text between the end of an action and the next generation point, as the chat template renders it:
    the end of the assistant turn, the observation as a user message, and the next assistant header.

    Found on a dummy conversation, so templates that rewrite earlier turns (dropping <think> blocks) still agree.
    """
    user = {"role": "user", "content": "u"}
    before = render(tokenizer, [user]) + "A"
    after = render(tokenizer, [user, {"role": "assistant", "content": "A"}, {"role": "user", "content": observation}])
    if not after.startswith(before):
        raise SparringError("the tokenizer's chat template does not render a conversation as an extension of its "
                            f"first turns (rendering [user, assistant 'A', user] gave {after[:200]!r}, which does not "
                            f"start with {before[:200]!r}); multi-turn GRPO appends each observation to the tokens "
                            "generated so far and needs such a template")
    return after[len(before):]


class EpisodeRollout:
    """TRL's `rollout_func`: play each prompt's episode to its end with the model being trained.

    One token sequence per episode, grown as it is played and generated from, so the loss sees exactly
    what the model saw when acting: the prompt, then each action's tokens (env_mask 1) and between them
    what the chat template renders after an action (end of turn, the observation, the next assistant
    header; env_mask 0). The sequence is thus the conversation as `render` shows it to a policy at
    evaluation. An action is at most `max_completion_length` tokens and ends at the end-of-sequence
    token; that token stays where the template renders it at the end of a turn (Qwen's <|im_end|>),
    and is dropped between turns where the template shows none (the tiny model's), so there only the
    episode's last action trains the stop (an empty action keeps it: every action has a token to train).
    An episode still running after `max_turns` actions gets reward 0.
    """

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], tasks_by_prompt: dict[str, dict[str, Any]],
                 tokenizer: Any, max_turns: int):
        self.env_id, self.env_kwargs, self.tasks_by_prompt = env_id, dict(env_kwargs), tasks_by_prompt
        self.tokenizer, self.max_turns = tokenizer, max_turns
        self.envs: list[Any] = []  # a pool, one env per concurrent episode, reused across calls

    def __call__(self, prompts: list[str], trainer: Any) -> dict[str, Any]:
        from sparring.envs.catalog import make

        while len(self.envs) < len(prompts):
            self.envs.append(make(self.env_id, **self.env_kwargs))
        n = len(prompts)
        prompt_ids = self.tokenizer(list(prompts))["input_ids"]  # as TRL tokenizes text prompts
        contexts = [list(ids) for ids in prompt_ids]
        completion_ids: list[list[int]] = [[] for _ in range(n)]
        env_mask: list[list[int]] = [[] for _ in range(n)]
        logprobs: list[list[float]] = [[] for _ in range(n)]
        rewards, successes, turns, done = [0.0] * n, [False] * n, [0] * n, [False] * n
        for i, prompt in enumerate(prompts):
            if prompt not in self.tasks_by_prompt:
                raise SparringError(f"EpisodeRollout got a prompt it has no task for: {prompt[:80]!r}; it plays only "
                                    "the prompts of the dataset train_grpo built")
            self.envs[i].reset(options={"task": self.tasks_by_prompt[prompt]})
        eos = set(getattr(trainer, "eos_token_ids", None) or [self.tokenizer.eos_token_id])
        for turn in range(self.max_turns):
            active = [i for i in range(n) if not done[i]]
            if not active:
                break
            generated, scores = self._generate(trainer, [contexts[i] for i in active])
            for i, ids, lps in zip(active, generated, scores):
                completion_ids[i] += ids
                env_mask[i] += [1] * len(ids)
                logprobs[i] += lps
                contexts[i] += ids
                turns[i] += 1
                action = self.tokenizer.decode(ids, skip_special_tokens=True)
                observation, _, terminated, truncated, info = self.envs[i].step(action)
                if terminated or truncated:
                    done[i] = True
                    rewards[i], successes[i] = float(info["verdict"]["reward"]), bool(info["verdict"]["success"])
                elif turn + 1 < self.max_turns:  # the next action sees this observation
                    stop = ids[-1] if ids and ids[-1] in eos else None
                    bridge, keep_stop = self._bridge(observation, stop)
                    if stop is not None and not keep_stop and len(ids) > 1:  # the template shows no such token here
                        for sequence in (completion_ids[i], env_mask[i], logprobs[i], contexts[i]):
                            sequence.pop()
                    completion_ids[i] += bridge
                    env_mask[i] += [0] * len(bridge)
                    logprobs[i] += [0.0] * len(bridge)
                    contexts[i] += bridge
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": logprobs,
                "env_mask": env_mask, "episode_reward": rewards, "episode_success": successes,
                "episode_turns": turns}

    def _bridge(self, observation: str, stop: int | None) -> tuple[list[int], bool]:
        """The bridge's token ids, and whether the template's end of turn begins with `stop`, the
        end-of-sequence token just sampled (then that token stays and the bridge goes on after it)."""
        text = observation_bridge(self.tokenizer, observation)
        stop_text = self.tokenizer.convert_ids_to_tokens(stop) if stop is not None else ""
        keep_stop = bool(stop_text) and text.startswith(stop_text)
        if keep_stop:
            text = text[len(stop_text):]
        return self.tokenizer(text, add_special_tokens=False)["input_ids"], keep_stop

    def _generate(self, trainer: Any, contexts: list[list[int]]) -> tuple[list[list[int]], list[list[float]]]:
        """One action per context, sampled as TRL samples single-turn completions; with their log-probs."""
        import torch
        from trl.models.utils import unwrap_model_for_generation

        if trainer.use_vllm:
            _, ids, lps, _ = trainer.vllm_generation.generate(prompts=contexts, images=None, num_generations=1)
            return ids, [[lp[0] for lp in seq] for seq in lps]
        device, pad = trainer.accelerator.device, self.tokenizer.pad_token_id
        width = max(len(c) for c in contexts)
        input_ids = torch.tensor([[pad] * (width - len(c)) + c for c in contexts], device=device)  # (B, T) left-padded
        attention_mask = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in contexts], device=device)
        with (unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator,
                                          gather_deepspeed3_params=trainer.args.ds3_gather_for_generation,
                                          generation_kwargs=trainer.generation_kwargs,
                                          gradient_checkpointing_kwargs=trainer.args.gradient_checkpointing_kwargs)
              as model, torch.no_grad()):
            out = model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                 generation_config=trainer.generation_config, return_dict_in_generate=True,
                                 output_scores=True)
        new = out.sequences[:, width:]  # (B, N)
        scores = torch.stack(out.scores, dim=1).float().log_softmax(-1)  # (B, N, V): the sampling distribution
        token_logps = scores.gather(-1, new.unsqueeze(-1)).squeeze(-1)  # (B, N)
        eos = set(getattr(trainer, "eos_token_ids", None) or [self.tokenizer.eos_token_id])
        ids_out, lps_out = [], []
        for ids, lps in zip(new.tolist(), token_logps.tolist()):
            end = next((k + 1 for k, t in enumerate(ids) if t in eos), len(ids))  # keep the end-of-sequence token
            ids_out.append(ids[:end])
            lps_out.append(lps[:end])
        return ids_out, lps_out
