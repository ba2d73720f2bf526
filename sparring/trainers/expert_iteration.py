"""Expert iteration (ReST-EM / STaR / rejection fine-tuning): sample k per task, keep what verifies, fine-tune.

One iteration: the current policy samples `k` attempts per task (`ExpertIterationTrainer.collect`), the env's
verifier keeps the correct ones (at most `max_per_task` distinct answers per task), and the model is fine-tuned
on them with TRL's SFTTrainer, on the actions only (`fit`). With
`restart_from_base` each round fine-tunes the base model (ReST-EM, which limits drift); otherwise it
continues from the current one (Stream of Search's STaR).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from sparring.context import RunContext
from sparring.envs.base import check_at_least, check_choice
from sparring.errors import SparringError
from sparring.policies.policy import Policy, SamplingParams
from sparring.search import SearchConfig, TreeSearch
from sparring.solver import EpisodeExecutor, Solver, by_task
from sparring.trainers.base import RoundTrainer
from sparring.trainers.sft import SFTSettings, sft_examples, supervised_finetune
from sparring.trajectories import Trajectory, Turn

GUIDED = ("none", "landmarks", "hints", "prefix")
GUIDANCE_MARK = "\n\nHint (from a worked solution): "  # what precedes the guidance appended to a guided prompt
BALANCE_TARGET = 8  # B-STaR's n*: distinct correct answers per query that count as fully explored


@runtime_checkable
class GuidedEnv(Protocol):
    """An env whose expert gives guidance on a task (`guided`): Countdown-v0, CountdownSteps-v0, CodeRepair-v0."""

    def check_guidance(self, kind: str) -> None:
        """A ValueError when this env cannot give guidance of `kind`."""
        ...

    def guidance(self, task: dict[str, Any], kind: str) -> str | None:
        """Guidance of `kind` (one of GUIDED but none) for `task`; None if none."""
        ...


@runtime_checkable
class SplittableEnv(Protocol):
    """An env that splits a task after a first move and puts the answer back together (`search`): Countdown-v0."""

    def decompose(self, task: dict[str, Any], n: int, rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
        """Up to `n` first moves on `task`, each with the smaller task it leaves: `[(move, subtask), ...]`."""
        ...

    def compose(self, task: dict[str, Any], move: str, sub_answer: str) -> str | None:
        """The whole answer to `task` from `move` and an answer to the smaller task; None if that does not verify."""
        ...


@dataclass
class ExpertIterationConfig:
    k: int = 8  # samples per task
    max_per_task: int = 2  # distinct correct answers kept per task (m)
    temperature: float = 1.0       # sampling temperature
    top_p: float = 1.0             # nucleus sampling
    restart_from_base: bool = False  # True: ReST-EM; False: continue (STaR)
    weight_hard_tasks: bool = True  # repeat a task's kept answers k - c + 1 times (c of k correct): rarely solved tasks count more
    max_invalid: int | None = None  # keep an attempt only if it made at most this many invalid actions (multi-turn envs)
    # search over first moves (envs with decompose/compose, e.g. Countdown-v0 with step answers): per task, up to
    # `search` random legal first moves; the policy finishes each smaller task `search_samples` times; whole answers
    # that verify are kept (at most max_per_task per task) beside the sampled ones. 0: no search
    search: int = 0
    search_samples: int = 1        # finishes sampled per first move of the search
    # expert demonstrations replayed in each round's training data, on the bootstrap's tasks (env.bootstrap_kwargs
    # in easy-to-hard runs), as Self-Improving Transformers keeps its labelled data: what the rounds learn does not
    # wash out what the bootstrap taught. 0: none
    replay: int = 0
    # tree search (ReST-MCTS*) on the tasks none of the k samples solved: the policy proposes actions, rollouts
    # value the states, a beam keeps the best (multi-turn envs); its verified traces train beside the samples
    tree_search: bool = False
    tree: SearchConfig = field(default_factory=SearchConfig)  # the tree search's width, beam, rollouts, budget
    # guided traces (Guided-ReST, Socratic-guided sampling) on the tasks none of the k samples solved: the env's
    # expert gives landmarks (the results its solution passes through), a hint, or a prefix of the answer; the
    # policy writes its own trace with it, the env grades that on the task as posed, and verified traces train
    # with the prompt as posed (never the guidance). none | landmarks | hints | prefix
    guided: str = "none"
    guided_share: float = 1.0      # share of the failed tasks that get guidance
    guided_samples: int = 2        # guided attempts per guided task
    # fine-tuning settings of each round
    sft: SFTSettings = field(default_factory=lambda: SFTSettings(steps=60, learning_rate=1e-4, scheduler="cosine"))

    def __post_init__(self) -> None:
        check_at_least("expert_iteration", self, {"search": 0, "search_samples": 1, "replay": 0, "guided_samples": 1,
                                                  "k": 1, "max_per_task": 1})
        check_choice("expert_iteration.guided", self.guided, GUIDED)
        if isinstance(self.guided_share, bool) or not isinstance(self.guided_share, (int, float)) \
                or not 0 < self.guided_share <= 1:
            raise ValueError(f"expert_iteration.guided_share is the share of failed tasks that get guidance, a number "
                             f"in (0, 1], got {self.guided_share!r}")
        if not self.temperature > 0:
            raise ValueError(f"expert_iteration.temperature must be > 0 (sampling needs it), got {self.temperature!r}")
        if self.max_invalid is not None and (isinstance(self.max_invalid, bool) or not isinstance(self.max_invalid, int)
                                             or self.max_invalid < 0):
            raise ValueError(f"expert_iteration.max_invalid must be null or an integer >= 0, got {self.max_invalid!r}")


def guidance_envs() -> list[str]:
    """The registered env ids whose family gives guidance (a `guidance(task, kind)` method)."""
    from sparring.envs.catalog import env_class, env_ids

    return [i for i in env_ids() if hasattr(env_class(i), "guidance")]


def check_guidance(env: Any, env_id: str, kind: str) -> GuidedEnv:
    """`env` (an env instance of `env_id`), or a ValueError when it cannot give guidance of `kind`, naming what can."""
    if not isinstance(env, GuidedEnv):
        raise ValueError(f"expert_iteration.guided={kind!r} needs guidance from the env's expert, and {env_id} gives "
                         f"none; envs that do: {', '.join(guidance_envs())}. Set expert_iteration.guided=none")
    try:
        env.check_guidance(kind)
    except ValueError as error:
        raise ValueError(f"expert_iteration.guided={kind!r} on {env_id}: {error}") from None
    return env


def carries_guidance(trajectory: Trajectory, guidance: str, kind: str) -> bool:
    """Whether a guided trace would carry its guidance into training, where the prompt is the task as posed: an
    observation holds the guidance or its marker (an env that echoes the policy's text), an answer quotes them
    (a completion trains, and every later turn's prompt replays it), or, for a prefix, the continuation opens
    another answer (`<answer>` again): the env grades the last one, so the expert's started answer would train
    as text left dangling before an answer that never used it."""
    mark = GUIDANCE_MARK.strip()
    if any(guidance in turn.observation or mark in turn.observation for turn in trajectory.turns):
        return True
    if kind != "prefix":
        return any(guidance in turn.action or mark in turn.action for turn in trajectory.turns)
    opening = guidance[:guidance.find(">") + 1] if guidance.startswith("<") and ">" in guidance else None
    answer = trajectory.turns[0].action if trajectory.turns else ""
    return not answer.startswith(guidance) or (opening is not None and opening in answer[len(guidance):])


def invalid_actions(trajectory: Trajectory) -> int:
    """The invalid actions (unknown commands, malformed calls) the env counted in an episode; 0 where it counts none."""
    details = trajectory.verdict.get("details") or {}
    value = details.get("invalid_actions", 0) if isinstance(details, dict) else 0
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def select_verified(trajectories: list[Trajectory], k: int, max_per_task: int, weight_hard: bool = False,
                    verified: list[bool] | None = None, max_invalid: int | None = None
                    ) -> tuple[list[Trajectory], dict[str, float]]:
    """Keep at most `max_per_task` distinct successful trajectories per task (the `k` consecutive samples of
    a task), and measure exploration: pass@1, pass@k, distinct correct answers, and B-STaR's balance score.
    With `weight_hard`, a task solved by c of its k samples has its kept answers repeated k - c + 1 times
    (weight proportional to 1 - c/k + 1/k), so training leans towards what the policy rarely gets right.
    `verified` (one flag per trajectory) replaces the env's verdicts in deciding what is kept, for a verifier
    other than the env's (majority vote, a model judge); the exploration metrics stay the env's. With
    `max_invalid`, an accepted episode with more invalid actions than that is not kept (a successful TextNav
    episode may hold invalid commands, and training on them teaches them; `ei/rejected_invalid` counts these)."""
    if verified is not None and len(verified) != len(trajectories):
        raise ValueError(f"verified has {len(verified)} flags for {len(trajectories)} trajectories; give one per trajectory")
    flags = iter(verified if verified is not None else [t.success for t in trajectories])
    accepted = {id(t) for t in trajectories if next(flags)}
    too_sloppy = {id(t) for t in trajectories
                  if id(t) in accepted and max_invalid is not None and invalid_actions(t) > max_invalid}
    accepted -= too_sloppy
    kept: list[Trajectory] = []
    tasks = by_task(trajectories, k)
    distinct_counts, balance = [], []
    for samples in tasks:
        correct = [t for t in samples if t.success]
        distinct: dict[tuple[str, ...], Trajectory] = {}
        for t in (t for t in samples if id(t) in accepted):
            distinct.setdefault(tuple(turn.action for turn in t.turns), t)
        distinct_counts.append(len(distinct))
        # B-STaR: min(n'/n*, 1) * n'/n, with n' distinct correct among the n selected (verified) samples
        balance.append(min(len(distinct) / BALANCE_TARGET, 1.0) * len(distinct) / len(correct) if correct else 0.0)
        repeats = k - len([t for t in samples if id(t) in accepted]) + 1 if weight_hard else 1
        kept += [t for t in list(distinct.values())[:max_per_task] for _ in range(repeats)]
    n = max(1, len(tasks))
    return kept, {
        "ei/pass@1": sum(t.success for t in trajectories) / max(1, len(trajectories)),
        f"ei/pass@{k}": sum(c > 0 for c in distinct_counts) / n,
        "ei/distinct_correct": sum(distinct_counts) / n,
        "ei/balance": sum(balance) / n,
        "ei/kept": len({id(t) for t in kept}),
        "ei/examples": len(kept),
        **({"ei/rejected_invalid": len(too_sloppy)} if max_invalid is not None else {}),
    }


class ExpertIterationTrainer(RoundTrainer):
    """Expert iteration on one env: `collect`, the searches (`search`, `tree_search`, `guided`) and `fit` work on
    their own; built `for_round` of a self-play run it is that run's `RoundTrainer` (`searched`, `train`)."""

    def __init__(self, config: ExpertIterationConfig, env_id: str, env_kwargs: dict[str, Any], *,
                 max_tokens: int = 64, max_turns: int = 32, executor: EpisodeExecutor | None = None):
        """`executor` (a `sparring.executors.Executor`): where the sampled episodes run; None: here."""
        self.config, self.env_id, self.env_kwargs, self.executor = config, env_id, dict(env_kwargs), executor
        self.max_tokens, self.max_turns = max_tokens, max_turns

    @classmethod
    def for_round(cls, ctx: RunContext, r: int) -> ExpertIterationTrainer:
        cfg = ctx.config
        trainer = cls(cfg.expert_iteration, ctx.env_id, ctx.round_kwargs(r), max_tokens=cfg.policy.max_tokens,
                      max_turns=cfg.env.max_turns, executor=ctx.executor)
        trainer.ctx, trainer.r = ctx, r
        return trainer

    @property
    def k(self) -> int:
        return self.config.k

    def searched(self, sampler: Policy, tasks: list[dict[str, Any]], trajectories: list[Trajectory]
                 ) -> tuple[list[Trajectory], list[Trajectory], dict[str, float]]:
        """The round's searches after its samples, as configured: first moves (`search`), tree search on the tasks
        no sample solved (`tree_search`, ReST-MCTS*), guided traces on them (`guided`, trained without the
        guidance). Returns the traces that train, every attempt, and the metrics."""
        ei, ctx, r = self.config, self.ctx, self.r
        seed = ctx.seeds.round(r)
        searched: list[Trajectory] = []
        attempts: list[Trajectory] = []
        metrics: dict[str, float] = {}
        if ei.search:  # first moves tried, the policy finishing each smaller task
            searched, attempts, found_metrics = self.search(
                sampler, tasks, seed=seed,
                on_turn=ctx.bars.episodes("search: finishing after first moves", len(tasks) * ei.search),
                parts=lambda smaller, play: ctx.collect_parts(r, smaller, play, "search-part"))
            metrics.update(found_metrics)
        if ei.tree_search:
            found, tried, found_metrics = self.tree_search(sampler, tasks, trajectories, seed=seed)
            searched, attempts = searched + found, attempts + tried
            metrics.update(found_metrics)
        if ei.guided != "none":
            found, tried, found_metrics = self.guided(
                sampler, tasks, trajectories, seed=seed,
                on_turn=ctx.bars.episodes(f"guided ({ei.guided})", len(tasks) * ei.guided_samples))
            searched, attempts = searched + found, attempts + tried
            metrics.update(found_metrics)
        return searched, attempts, metrics

    def train(self, model: Any, tokenizer: Any, tasks: list[dict[str, Any]], previous: Path, state: dict[str, Any],
              lora: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """`fit` on the round's sampled attempts, the searched traces the sampling stage kept
        (`rounds/NNN/sampling/search-kept`), `replay` fresh expert demonstrations, and the agents' extra traces."""
        from sparring.envs.catalog import draw_tasks
        from sparring.trainers.bootstrap import expert_demonstrations
        from sparring.trajectories import load_trajectories

        ei, ctx, r = self.config, self.ctx, self.r
        round_dir = ctx.run.round_dir(r)
        trajectories = [t for t in load_trajectories(round_dir / "trajectories") if t.source == "policy"]
        kept = round_dir / "sampling" / "search-kept"
        extra = load_trajectories(kept) if kept.exists() else []
        if ei.replay:  # the bootstrap's kind of demonstrations, fresh tasks each round
            replayed = draw_tasks(ctx.env_id, ctx.expert_kwargs, "train", *ctx.seeds.replay_tasks(r), ei.replay)
            extra += expert_demonstrations(ctx.env_id, ctx.expert_kwargs, replayed, ctx.config.bootstrap.demonstrations)
        return self.fit(model, tokenizer, ctx.run.checkpoint("round-000"), trajectories, ctx.trainer_dir(r, "training"),
                        seed=ctx.seeds.round(r), verified=state.get("verified"), extra=extra + state.get("extra", []),
                        callbacks=[ctx.bars.steps("training on verified samples", ei.sft.steps)], **lora)

    def collect(self, policy: Policy, tasks: list[dict[str, Any]], *, seed: int = 0,
                on_turn: Callable[[int, int], None] | None = None, first_task: int = 0) -> list[Trajectory]:
        """`k` sampled episodes per task from the current policy (`first_task`: the index of `tasks[0]` when a
        larger batch is collected part by part; the parts then draw what the whole batch draws)."""
        params = SamplingParams(temperature=self.config.temperature, top_p=self.config.top_p, max_tokens=self.max_tokens)
        solver = Solver(policy, self.env_id, self.env_kwargs, params, max_turns=self.max_turns, executor=self.executor)
        return solver.run(tasks, k=self.config.k, seed=seed, on_turn=on_turn, first_task=first_task)

    def search(self, policy: Policy, tasks: list[dict[str, Any]], *, seed: int = 0,
               on_turn: Callable[[int, int], None] | None = None,
               parts: Callable[[list[dict[str, Any]], Callable[..., list[Trajectory]]], list[Trajectory]] | None = None
               ) -> tuple[list[Trajectory], list[Trajectory], dict[str, float]]:
        """Search over first moves: the env's `decompose` gives up to `config.search` random legal first moves per
        task and the smaller task each leaves; the policy solves those (`search_samples` each); `compose` joins a
        move and a verified finish into a whole answer, which the env grades on the whole task. Returns the kept
        whole answers (at most `max_per_task` distinct per task), every whole attempt, and metrics.
        `parts(smaller_tasks, play)`: how the smaller tasks are played, e.g. part by part, each saved
        (`RunContext.collect_parts`), with `play(part, first_task)`; None: in one call."""
        from sparring.envs.catalog import text_env

        env = text_env(self.env_id, **self.env_kwargs)
        if not isinstance(env, SplittableEnv):
            raise ValueError(f"expert_iteration.search needs an env that can split a task after a first move "
                             f"(decompose/compose); {self.env_id} cannot: set expert_iteration.search=0")
        rng = random.Random(seed)
        pieces = [(i, move, sub) for i, task in enumerate(tasks) for move, sub in env.decompose(task, self.config.search, rng)]
        params = SamplingParams(temperature=self.config.temperature, top_p=self.config.top_p, max_tokens=self.max_tokens)
        solver = Solver(policy, self.env_id, self.env_kwargs, params, max_turns=self.max_turns, executor=self.executor)

        def play(part: list[dict[str, Any]], first_task: int = 0) -> list[Trajectory]:
            return solver.run(part, k=self.config.search_samples, seed=seed + 1, on_turn=on_turn, first_task=first_task)
        smaller = [sub for _, _, sub in pieces]
        finishes = parts(smaller, play) if parts is not None else play(smaller)
        attempts: list[Trajectory] = []
        kept: dict[int, dict[str, Trajectory]] = {}
        for (i, move, _), group in zip(pieces, by_task(finishes, self.config.search_samples)):
            for finish in group:
                action = finish.turns[-1].action if finish.turns else ""
                whole = env.compose(tasks[i], move, action) if finish.success else None
                if whole is None:
                    continue
                trajectory = self.graded(env, tasks[i], whole, source="search",
                                         meta={"task_index": i, "first_move": move})
                attempts.append(trajectory)
                if trajectory.success and len(kept.setdefault(i, {})) < self.config.max_per_task:
                    kept[i].setdefault(whole, trajectory)
        chosen = [t for answers in kept.values() for t in answers.values()]
        n = max(1, len(tasks))
        return chosen, attempts, {"ei/search_solved": len(kept) / n, "ei/search_kept": len(chosen),
                                  "ei/search_finishes": sum(t.success for t in finishes) / max(1, len(finishes))}

    def failed_tasks(self, trajectories: list[Trajectory]) -> list[int]:
        """The indices of the tasks none of their `k` samples in `trajectories` (task by task) solved."""
        return [i for i, group in enumerate(by_task(trajectories, self.config.k)) if not any(t.success for t in group)]

    def graded(self, env: Any, task: dict[str, Any], answer: str, **fields: Any) -> Trajectory:
        """`answer` to `task` on the single-turn `env` (unwrapped), graded by the env on the task as posed: a
        one-turn trajectory (`fields`: its source, meta)."""
        observation, _ = env.reset(options={"task": task})
        _, reward, _, _, info = env.step(answer)
        trajectory = Trajectory(self.env_id, task, env_kwargs=dict(self.env_kwargs), **fields)
        trajectory.turns.append(Turn(observation, answer, float(reward)))
        trajectory.verdict = info["verdict"]
        return trajectory

    def clean(self, trajectory: Trajectory) -> bool:
        """Whether a verified trace may train: at most `max_invalid` invalid actions (the filter the samples pass,
        applied to the traces of tree search and guidance too)."""
        return self.config.max_invalid is None or invalid_actions(trajectory) <= self.config.max_invalid

    def tree_search(self, policy: Policy, tasks: list[dict[str, Any]], trajectories: list[Trajectory], *,
                    seed: int = 0) -> tuple[list[Trajectory], list[Trajectory], dict[str, float]]:
        """Tree search (`config.tree`) on the tasks none of their `k` samples in `trajectories` solved. Returns the
        verified traces (one per task found), every search's trajectory, and metrics: the share of failed tasks
        it recovered, states expanded and tokens generated per searched task."""
        failed = self.failed_tasks(trajectories)
        if not failed:
            return [], [], {"ei/tree_searched": 0, "ei/tree_recovered": 0.0}
        search = TreeSearch(policy, self.env_id, self.env_kwargs, self.config.tree, max_tokens=self.max_tokens,
                            max_turns=self.max_turns)
        found = search.run([tasks[i] for i in failed], seed=seed)
        for i, trajectory in zip(failed, found):
            trajectory.meta["task_index"] = i
        solved = [t for t in found if t.success and self.clean(t)]
        return solved, found, {"ei/tree_searched": len(failed), "ei/tree_recovered": len(solved) / len(failed),
                               "ei/tree_nodes": sum(t.meta["nodes"] for t in found) / len(found),
                               "ei/tree_tokens": sum(t.meta["tokens"] for t in found) / len(found)}

    def guided(self, policy: Policy, tasks: list[dict[str, Any]], trajectories: list[Trajectory], *,
               seed: int = 0, on_turn: Callable[[int, int], None] | None = None
               ) -> tuple[list[Trajectory], list[Trajectory], dict[str, float]]:
        """Guided traces on the tasks none of their `k` samples in `trajectories` solved (`guided_share` of them,
        drawn with `seed`): the env's `guidance(task, kind)` is appended to the first prompt (landmarks, hints)
        or starts the answer (prefix: the policy continues it, the answer is the prefix and the continuation);
        `guided_samples` attempts per task. The env grades every attempt on the task as posed, and a trajectory
        records the observations as posed: the guidance is only ever in what the policy was shown, never in a
        stored prompt or answer (`carries_guidance`: a trace whose observations or answers hold it anyway, or whose
        continuation of a prefix opens an answer of its own, is dropped).
        Returns the verified traces (at most `max_per_task` distinct per task), every attempt, and metrics."""
        import math

        from sparring.envs.catalog import text_env

        kind = self.config.guided
        env = check_guidance(text_env(self.env_id, **self.env_kwargs), self.env_id, kind)
        failed = self.failed_tasks(trajectories)
        chosen = sorted(random.Random(seed).sample(failed, math.ceil(len(failed) * self.config.guided_share)))
        guides = {i: guide for i in chosen if (guide := env.guidance(tasks[i], kind))}  # the tasks given some
        guided = list(guides)
        n = self.config.guided_samples
        if not guided:
            return [], [], {"ei/guided_tasks": 0, "ei/guided_recovered": 0.0, "ei/guided_kept": 0}
        params = SamplingParams(temperature=self.config.temperature, top_p=self.config.top_p, max_tokens=self.max_tokens)
        if kind == "prefix":
            attempts = self._continue_prefixes(policy, env, [(tasks[i], guides[i]) for i in guided], params, seed)
        else:
            hint = {json.dumps(tasks[i], sort_keys=True): guides[i] for i in guided}

            def prompt(trajectory: Trajectory, observation: str) -> list[dict[str, str]]:
                messages = trajectory.conversation() + [{"role": "user", "content": observation}]
                first = messages[0]["content"] + GUIDANCE_MARK + hint[json.dumps(trajectory.task, sort_keys=True)]
                return [{"role": "user", "content": first}, *messages[1:]]

            solver = Solver(policy, self.env_id, self.env_kwargs, params, max_turns=self.max_turns, prompt=prompt)
            attempts = solver.run([tasks[i] for i in guided], k=n, seed=seed, on_turn=on_turn)
        kept: dict[int, dict[tuple[str, ...], Trajectory]] = {}
        for i, group in zip(guided, by_task(attempts, n)):
            for trajectory in group:
                trajectory.source = "guided"
                trajectory.meta.update({"task_index": i, "guided": kind, "guidance": guides[i]})
                if (trajectory.success and self.clean(trajectory) and not carries_guidance(trajectory, guides[i], kind)
                        and len(kept.setdefault(i, {})) < self.config.max_per_task):
                    kept[i].setdefault(tuple(turn.action for turn in trajectory.turns), trajectory)
        chosen_traces = [t for answers in kept.values() for t in answers.values()]
        return chosen_traces, attempts, {"ei/guided_tasks": len(guided),
                                         "ei/guided_recovered": sum(bool(a) for a in kept.values()) / len(guided),
                                         "ei/guided_kept": len(chosen_traces)}

    def _continue_prefixes(self, policy: Policy, env: Any, guided: list[tuple[dict[str, Any], str]],
                           params: SamplingParams, seed: int) -> list[Trajectory]:
        """`guided_samples` continuations of each (task, prefix): the policy's prompt is the task's first
        observation rendered by its chat template with the prefix after it (an assistant turn already begun), and
        the answer graded and stored is the prefix followed by the continuation. Single-turn envs only."""
        from dataclasses import replace

        from sparring.envs.base import SingleTurnEnv
        from sparring.policies.hf import render

        if not isinstance(env, SingleTurnEnv):
            raise ValueError(f"expert_iteration.guided=prefix starts a single answer, and {self.env_id} is multi-turn: "
                             "use guided landmarks or hints")
        tokenizer = getattr(policy, "tokenizer", None)
        if tokenizer is None:
            raise SparringError(f"expert_iteration.guided=prefix writes the start of the policy's answer into its "
                                f"prompt, which needs the policy's tokenizer; the {policy.backend or 'given'} backend "
                                "has none: use policy.generation hf or vllm, or guided landmarks or hints")
        observations = [env.reset(options={"task": task})[0] for task, _ in guided]
        prompts = [render(tokenizer, [{"role": "user", "content": o}]) + prefix for o, (_, prefix) in zip(observations, guided)]
        n = self.config.guided_samples
        outputs = policy.generate(prompts, replace(params, n=n, seed=seed))
        return [self.graded(env, task, prefix + completion.text, meta={"policy": policy.name})
                for (task, prefix), group in zip(guided, outputs) for completion in group]

    def fit(self, model: Any, tokenizer: Any, base_path: str | Path, trajectories: list[Trajectory],
            output_dir: str | Path, *, seed: int = 0, callbacks: list[Any] | None = None,
            verified: list[bool] | None = None, extra: Sequence[Trajectory] = (), lora: Any = None,
            adapter_dir: str | Path | None = None) -> tuple[Any, dict[str, float]]:
        """The training half of a round: keep what verifies among `trajectories` (`k` per task; `verified`
        overrides the env's verdicts, see `select_verified`), add `extra` (refined attempts, skill bonuses)
        and fine-tune (with `lora`: an adapter, saved to `adapter_dir` and merged). Returns the fine-tuned model
        and the metrics."""
        kept, metrics = select_verified(trajectories, self.config.k, self.config.max_per_task,
                                        self.config.weight_hard_tasks, verified, self.config.max_invalid)
        kept += list(extra)
        metrics["ei/examples"] = len(kept)
        if self.config.restart_from_base:
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(base_path)
        if kept:
            metrics.update(supervised_finetune(model, tokenizer, sft_examples(kept, tokenizer),
                                               self.config.sft, output_dir, seed=seed, callbacks=callbacks,
                                               lora=lora, adapter_dir=adapter_dir))
        return model, metrics
