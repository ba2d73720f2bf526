"""The self-play loop's config: `SelfPlayConfig` and its sections, read from YAML with `key=value` overrides.

    config = load_selfplay_config("configs/countdown-grpo.yaml", ["rounds=2", "grpo.steps=20"])

`sparring selfplay --print-config` prints every key with its help (the comments beside each field below).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparring.agents.proposer import ProposerConfig
from sparring.agents.reflector import ReflectorConfig
from sparring.agents.skills import SkillsConfig
from sparring.agents.verifiers import VerifierConfig
from sparring.config import load_config
from sparring.envs.base import check_choice
from sparring.envs.catalog import text_env
from sparring.errors import SparringError
from sparring.executors import ExecutorConfig
from sparring.policies.tiny import TinyModelConfig
from sparring.tracking import LoggingConfig
from sparring.trainers.base import trainer_class
from sparring.trainers.bootstrap import BootstrapConfig
from sparring.trainers.dpo import DPOSettings
from sparring.trainers.expert_iteration import ExpertIterationConfig
from sparring.trainers.grpo import GRPOSettings
from sparring.trainers.lora import LoRASettings


@dataclass
class EnvConfig:
    id: str = "Countdown-v0"       # the env id (sparring envs lists them)
    # env arguments (sparring envs ENV_ID lists them) for training and the held-out evaluation
    kwargs: dict[str, Any] = field(default_factory=lambda: {"difficulty": "easy", "max_number": 20, "min_target": 1,
                                                            "instruction": "compact"})
    eval_split: str = "test-seen"  # the held-out split: tasks never in training
    # more splits evaluated every round (greedy), reported as eval/<split>/success
    extra_eval_splits: list[str] = field(default_factory=lambda: ["test-unseen"])
    eval_tasks: int = 500          # held-out tasks per evaluated split
    max_turns: int = 32            # turn cap of a multi-turn episode
    # easy-to-hard runs: what the expert demonstrates (bootstrap, its development set, the control) and what
    # each round trains on can differ from `kwargs`, which the held-out evaluation uses; each is a dict of
    # overrides of `kwargs`. `curriculum[i]` sets round i + 1's training tasks (the last one repeats).
    bootstrap_kwargs: dict[str, Any] = field(default_factory=dict)
    curriculum: list[dict[str, Any]] = field(default_factory=list)  # round i + 1's training tasks: curriculum[i]
    # more held-out evaluations every round: name -> overrides of `kwargs` (greedy, on `eval_split`),
    # reported as eval/<name>/success with its 95% interval
    eval_sets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from sparring.envs.catalog import env_class

        env_class(self.id)  # a mistyped id is named first, with the closest one
        for name, value in [("env.bootstrap_kwargs", self.bootstrap_kwargs), *[
                (f"env.curriculum[{i}]", c) for i, c in enumerate(self.curriculum)], *[
                (f"env.eval_sets.{k}", v) for k, v in self.eval_sets.items()]]:
            if not isinstance(value, dict):
                raise ValueError(f"{name} must be a mapping of env kwargs overrides (e.g. {{num_numbers: 3}}), "
                                 f"got {value!r}")


GENERATION = ("hf", "vllm", "openai")


@dataclass
class PolicyConfig:
    backend: str = "tiny"  # tiny (created in the run directory), or hf: the checkpoint at `path`
    path: str | None = None  # hf: a checkpoint folder, or a Hugging Face model id (the local cache, downloaded where allowed)
    generation: str = "hf"  # what samples and evaluates: hf, vllm (offline engine), openai (a vLLM server we start)
    max_tokens: int = 40           # tokens per completion (per action in multi-turn envs)
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)  # backend tiny: the model's shape
    server_host: str = "127.0.0.1"  # openai: where the server listens; 0.0.0.0 lets Ray workers on other machines in
    server_args: list[str] = field(default_factory=list)  # openai: more `vllm serve` arguments (they win)
    # the rounds' trainers (expert iteration, GRPO, DPO) train a LoRA adapter, saved in checkpoints/round-NNN/adapter
    # and merged into the checkpoint's weights (the bootstrap trains every weight)
    lora: LoRASettings = field(default_factory=LoRASettings)

    def __post_init__(self) -> None:
        check_choice("policy.backend for self-play training", self.backend, ("tiny", "hf"))
        check_choice("policy.generation", self.generation, GENERATION)
        if self.backend == "hf" and not self.path:
            raise ValueError("policy.backend 'hf' needs policy.path: a checkpoint folder or a Hugging Face model id")
        if self.generation != "openai" and (self.server_host != "127.0.0.1" or self.server_args):
            raise ValueError(f"policy.server_host and policy.server_args set the vLLM server of policy.generation="
                             f"'openai', but policy.generation is {self.generation!r}: set it to 'openai' or drop them")
        if not all(isinstance(a, str) for a in self.server_args):
            raise ValueError("policy.server_args must be a list of strings (vllm serve arguments), got "
                             f"{self.server_args!r}")


@dataclass
class EvalConfig:
    k: int = 4  # pass@k from k samples per held-out task
    temperature: float = 1.0       # sampling temperature of the pass@k samples (greedy success is at 0)


@dataclass
class SelfPlayConfig:
    seed: int = 0                  # seeds the tasks, the tiny model's weights, sampling and training
    threads: int = 2               # torch CPU threads
    rounds: int = 4                # self-play rounds after round 0 (the bootstrap)
    tasks_per_round: int = 3000    # fresh training tasks each round
    algorithm: str = "expert_iteration"  # the trainer: expert_iteration, grpo or dpo
    control: bool = False  # also spend each round's training steps on fresh expert demonstrations, from round 0
    env: EnvConfig = field(default_factory=EnvConfig)  # the env, its held-out evaluation and (easy-to-hard) curriculum
    policy: PolicyConfig = field(default_factory=PolicyConfig)  # the model that is trained, and what generates with it
    # round 0: supervised training on the expert's demonstrations until a plateau
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    # sample k per task, keep what verifies, fine-tune (ReST-EM / STaR)
    expert_iteration: ExpertIterationConfig = field(default_factory=ExpertIterationConfig)
    # GRPO on TRL's GRPOTrainer with the env's verdicts as rewards
    grpo: GRPOSettings = field(default_factory=GRPOSettings)
    # DPO on TRL's DPOTrainer, on pairs of the round's own attempts (sampled as expert_iteration.k, temperature say)
    dpo: DPOSettings = field(default_factory=DPOSettings)
    eval: EvalConfig = field(default_factory=EvalConfig)  # held-out evaluation every round
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)  # where solver episodes run: local or ray
    # the agents around the solver (sparring/agents/: roles.py calls them); all off by default
    proposer: ProposerConfig = field(default_factory=ProposerConfig)  # tasks written at the solver's frontier
    # what decides which attempts count as correct (env, majority vote, judge model)
    verifier: VerifierConfig = field(default_factory=VerifierConfig)
    # reflections on failed attempts and revised attempts kept when they verify
    reflector: ReflectorConfig = field(default_factory=ReflectorConfig)
    skills: SkillsConfig = field(default_factory=SkillsConfig)  # a library of verified skills shown with the tasks
    logging: LoggingConfig = field(default_factory=LoggingConfig)  # experiment trackers (TensorBoard, Trackio, W&B)

    def __post_init__(self) -> None:
        trainer_class(self.algorithm)  # a registered name, or module:Class
        if self.executor.kind == "ray" and self.policy.generation == "vllm":
            raise ValueError("executor.kind=ray with policy.generation=vllm would start one vLLM engine per Ray "
                             "worker; set policy.generation=openai: the loop then starts one vLLM server per "
                             "checkpoint and every worker shares it")
        if (self.executor.kind == "ray" and self.executor.address is not None and self.policy.generation == "openai"
                and self.policy.server_host.startswith("127.")):
            raise ValueError(f"executor.address={self.executor.address!r} runs workers on other machines, which cannot "
                             f"reach a vLLM server on loopback (policy.server_host={self.policy.server_host!r}); set "
                             "policy.server_host=0.0.0.0")
        if self.algorithm == "grpo" and self.verifier.use != "programmatic":
            raise ValueError(f"verifier.use {self.verifier.use!r} decides what expert iteration keeps; GRPO's rewards "
                             "are the env's verdicts: use algorithm=expert_iteration, or list it in verifier.measure")
        if self.algorithm == "grpo" and self.reflector.enabled:
            raise ValueError("reflector.enabled adds refined attempts to supervised training data: it needs "
                             "algorithm=expert_iteration")
        if self.algorithm == "dpo":
            if self.reflector.enabled or self.expert_iteration.search or self.expert_iteration.tree_search:
                raise ValueError("reflector.enabled, expert_iteration.search and expert_iteration.tree_search add "
                                 "supervised examples: they need algorithm=expert_iteration, not dpo")
            if (self.dpo.pairs_from == "judge") != (self.verifier.use == "judge"):
                raise ValueError(f"dpo.pairs_from={self.dpo.pairs_from!r} with verifier.use={self.verifier.use!r}: "
                                 "pairs from the judge need verifier.use=judge, and the judge's verdicts are only "
                                 "used as dpo.pairs_from=judge (verdict and majority need no verifier)")
        if self.expert_iteration.guided != "none":
            from sparring.trainers.expert_iteration import check_guidance

            if self.algorithm != "expert_iteration":
                raise ValueError(f"expert_iteration.guided={self.expert_iteration.guided!r} adds guided traces to "
                                 f"expert iteration's training data: it needs algorithm=expert_iteration, not "
                                 f"{self.algorithm}")
            check_guidance(text_env(self.env.id, **self.env.kwargs), self.env.id,
                           self.expert_iteration.guided)
            if self.expert_iteration.guided == "prefix" and self.policy.generation == "openai":
                raise ValueError("expert_iteration.guided=prefix writes the start of the answer into the rendered "
                                 "prompt, which needs the tokenizer in this process: use policy.generation hf or vllm")
        trained = [self.env.kwargs, {**self.env.kwargs, **self.env.bootstrap_kwargs},
                   *[{**self.env.kwargs, **c} for c in self.env.curriculum]]
        if self.env.id == "CodeRepair-v0" and any(
                text_env(self.env.id, **kwargs).config.source == "HumanEval-v0" for kwargs in trained):
            raise ValueError("CodeRepair-v0 with source HumanEval-v0 has no training tasks: HumanEval's 164 problems "
                             "are one held-out set, and every split repairs the same ones (so training tasks would be "
                             "the held-out tasks, and guided hints come from their reference solutions). Train on "
                             "source CodeSynth-v0 and evaluate HumanEval through env.eval_sets, e.g. "
                             "{humaneval: {source: HumanEval-v0}}")
        if self.bootstrap.demonstrations != "optimal" and self.env.id != "Countdown-v0":
            raise ValueError(f"bootstrap.demonstrations {self.bootstrap.demonstrations!r} exist for Countdown-v0 only, "
                             f"not {self.env.id}: set bootstrap.demonstrations=optimal")
        for name in ("rounds", "tasks_per_round", "threads"):
            if getattr(self, name) < (0 if name == "rounds" else 1):
                raise ValueError(f"{name} must be >= {0 if name == 'rounds' else 1}, got {getattr(self, name)}")


def load_selfplay_config(path: str | Path | None, overrides: list[str], *, seed: int | None = None) -> SelfPlayConfig:
    """The embedded default, then the YAML at `path`, then `overrides`, then `seed` (the CLI's --seed)."""
    return load_config(SelfPlayConfig, path, [*overrides, *([f"seed={seed}"] if seed is not None else [])])


# keys that may change when a run is resumed: how it runs, not what its checkpoints and metrics depend on
RESUMABLE = ("rounds", "threads", "executor", "policy.generation", "policy.server_host", "policy.server_args",
             "logging")


def check_resume(saved_path: Path, config: SelfPlayConfig) -> None:
    """Refuse to continue a run with a config that differs from its saved config.yaml outside `RESUMABLE`: its
    checkpoints, tasks and metrics were made under the saved one."""
    saved = load_config(SelfPlayConfig, saved_path)
    before, after = _flat(saved), _flat(config)
    changed = [key for key in sorted(before.keys() | after.keys()) if before.get(key) != after.get(key)
               and not any(key == r or key.startswith(r + ".") for r in RESUMABLE)]
    if changed:
        shown = ", ".join(f"{key} {before.get(key)!r} -> {after.get(key)!r}" for key in changed)
        raise SparringError(f"--resume continues {saved_path.parent} as it was configured, but this changes {shown}; "
                            f"on resume only these may change: {', '.join(RESUMABLE)}. Start a new --run-dir to "
                            "change the rest")


def _flat(config: Any, prefix: str = "") -> dict[str, Any]:
    """A config's values by dotted key, nested sections walked (dicts such as env.kwargs stay whole)."""
    import dataclasses

    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        out.update(_flat(value, f"{prefix}{f.name}.") if dataclasses.is_dataclass(value) else {f"{prefix}{f.name}": value})
    return out


def default_run_dir(config_name: str, seed: int) -> str:
    return f"runs/{config_name}-seed{seed}"
