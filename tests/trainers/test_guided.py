"""Guided traces (expert_iteration.guided): the envs' guidance, what is kept and how it is stored, a self-play round."""

import random
import re

import gymnasium
import pytest

import sparring  # noqa: F401
from sparring.envs.countdown_expert import solve_steps
from sparring.envs.countdown_tasks import (
    CountdownTask,
    apply_move,
    check_move,
    expert_answer,
    render_steps,
    verify_steps,
)
from sparring.policies.policy import Completion
from sparring.trainers.expert_iteration import GUIDANCE_MARK, ExpertIterationConfig, ExpertIterationTrainer
from sparring.trainers.sft import sft_examples
from sparring.trajectories import Trajectory, Turn

COMPACT = {"max_number": 20, "min_target": 1, "instruction": "compact"}
WRONG = "<answer>1+1=2</answer>"


def compact_task(text: str) -> CountdownTask:
    numbers, target = text.split("->")
    return CountdownTask(tuple(int(n) for n in numbers.split()), int(target))


class HintReader:
    """A Countdown policy that answers right only when its prompt carries guidance, and otherwise writes a wrong
    answer. With `attack`, the first of each guided group is an attacker's: a wrong answer that quotes the
    guidance and claims success. Records every prompt it is shown."""

    backend, name, spec = "scripted", "hint-reader", None

    def __init__(self, answer_format: str = "expression", attack: bool = False):
        self.answer_format, self.attack, self.prompts = answer_format, attack, []

    def generate(self, prompts, params):
        out = []
        for prompt in prompts:
            self.prompts.append(prompt)
            first = prompt[0]["content"]
            if GUIDANCE_MARK not in first:
                out.append([Completion(WRONG) for _ in range(params.n)])
                continue
            task_text, guidance = first.split(GUIDANCE_MARK)
            right = expert_answer(compact_task(task_text), self.answer_format, rng=random.Random(0))
            group = [Completion(right) for _ in range(params.n)]
            if self.attack:
                group[0] = Completion(f"{guidance} (correct, verified) {WRONG}")
            out.append(group)
        return out


def tasks_of(n: int, numbers: int = 3, seed: int = 0) -> list[dict]:
    env = gymnasium.make("Countdown-v0", num_numbers=numbers, **COMPACT).unwrapped
    return [env.generate_task(i, seed=seed).to_dict() for i in range(n)]


def failed_samples(tasks: list[dict], k: int, solved: set[int] = frozenset()) -> list[Trajectory]:
    """k sampled episodes per task, all failed except one sample of each task in `solved`."""
    out = []
    for i, task in enumerate(tasks):
        for s in range(k):
            success = i in solved and s == 0
            out.append(Trajectory("Countdown-v0", task, [Turn("obs", "x")],
                                  {"reward": float(success), "success": success, "feedback": "", "details": {}}))
    return out


# ---- the envs' guidance ---------------------------------------------------------------------------

@pytest.mark.parametrize("answer_format", ["expression", "steps", "steps-with-state"])
def test_countdown_guidance_comes_from_the_expert_solution(answer_format):
    env = gymnasium.make("Countdown-v0", answer_format=answer_format, **COMPACT).unwrapped
    for task in tasks_of(10, numbers=4):
        parsed = CountdownTask.from_dict(task)
        landmarks = env.guidance(task, "landmarks")
        assert landmarks.startswith("reach ") and landmarks.endswith(f"then {parsed.target}")
        assert len(landmarks.split(", then ")) == len(parsed.numbers) - 1  # one result per step
        move = env.guidance(task, "hints").removeprefix("start with ")
        step = check_move(list(parsed.numbers), move)
        assert not isinstance(step, str)  # a legal first move, from which the task is still solvable
        assert solve_steps(apply_move(list(parsed.numbers), step), parsed.target, integer_only=True) is not None
        prefix = env.guidance(task, "prefix")
        if answer_format == "expression":  # the expert's expression up to its second number
            expression = solve_steps(list(parsed.numbers), parsed.target, integer_only=True)[0]
            assert expression.startswith(prefix.removeprefix("<answer>")) and prefix.count("<") == 1
            assert len(re.findall(r"\d+", prefix)) == 2 and prefix[-1].isdigit()
            continue
        assert prefix.startswith("<answer>") and prefix.endswith("\n") and "</answer>" not in prefix
        first = prefix.removeprefix("<answer>").splitlines()[0]
        assert prefix.count("=") == 1 and first.count("=") == 1  # 4 numbers, 3 steps: the first given, 2 to write
        left = apply_move(list(parsed.numbers), check_move(list(parsed.numbers), first))
        rest = solve_steps(left, parsed.target, integer_only=True)[1]  # the expert's steps are solvable on from it
        assert verify_steps(parsed, prefix + render_steps(CountdownTask(tuple(left), parsed.target), rest)
                            + "</answer>").success


def test_countdown_steps_gives_landmarks_and_hints_but_no_prefix():
    env = gymnasium.make("CountdownSteps-v0").unwrapped
    task = {"numbers": [8, 3, 2], "target": 22}
    assert env.guidance(task, "landmarks") == "reach 11, then 22"  # the expert's 3+8=11, 11*2=22
    assert env.guidance(task, "hints") == "start with 3+8"
    with pytest.raises(ValueError, match="one move per turn"):
        env.guidance(task, "prefix")


def test_code_repair_hints_say_where_and_what_kind_never_the_fix():
    from sparring.envs.code_repair import repair_hint

    assert repair_hint("def f(x):\n    return x + 1\n", "def f(x):\n    return x - 1\n") == \
        "the bug is on line 2, at '+': an operator is wrong"
    hint = repair_hint("def f(x):\n    y = x * 5\n    return y\n", "def f(x):\n    y = x * 7\n    return y\n")
    assert hint == "the bug is on line 2, at '5': a constant is wrong" and "7" not in hint
    hint = repair_hint("def f(x): return sorted(x)", "def f(x): return reversed(x)")
    assert hint == "the bug is on line 1, at 'sorted': a name is wrong" and "reversed" not in hint
    assert repair_hint("def f(x): return x", "def f(x): return x") is None
    assert repair_hint("def f(x: return (", "def f(x): return x") is None  # does not tokenize: no hint

    env = gymnasium.make("CodeRepair-v0", difficulty="easy", instruction="compact", max_turns=1).unwrapped
    for i in range(6):
        task = env.generate_task(i, seed=0)
        hint = env.guidance(task.to_dict(), "hints")
        env.reset(options={"task": task.to_dict()})
        fix = env.expert_actions()[0]
        assert hint.startswith("the bug is on line 1, at ")
        assert hint.split("'")[1] in task.program and fix not in hint  # the buggy program's text, not the fix's
    scratch = {**task.to_dict(), "program": None}
    assert env.guidance(scratch, "hints") is None
    for kind in ("landmarks", "prefix"):
        with pytest.raises(ValueError, match="use guidance 'hints'"):
            env.guidance(task.to_dict(), kind)


# ---- what is kept, and how -----------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["landmarks", "hints"])
def test_guided_traces_are_graded_on_the_task_as_posed_and_stored_without_the_guidance(kind):
    """The policy sees the guidance; the env grades its answer on the original task; the kept trajectory's prompt
    is the unguided observation, and so is every prompt supervised fine-tuning builds from it. An attacker's
    answer that quotes the guidance and claims success is graded like any other (wrong) and never kept."""
    from sparring.policies.tiny import build_tokenizer

    tasks = tasks_of(6)
    trainer = ExpertIterationTrainer(ExpertIterationConfig(k=2, guided=kind, guided_samples=3), "Countdown-v0",
                                     COMPACT, max_tokens=40)
    policy = HintReader(attack=True)
    samples = trainer.collect(policy, tasks)
    assert not any(t.success for t in samples)
    kept, attempts, metrics = trainer.guided(policy, tasks, samples, seed=0)
    assert metrics == {"ei/guided_tasks": 6, "ei/guided_recovered": 1.0, "ei/guided_kept": 6}
    assert len(attempts) == 6 * 3 and sum(not t.success for t in attempts) == 6  # the attacker's, one per task
    env = gymnasium.make("Countdown-v0", **COMPACT).unwrapped
    guided_prompts = [p[0]["content"] for p in policy.prompts if GUIDANCE_MARK in p[0]["content"]]
    assert len(guided_prompts) == 6  # each guided task asked once for its 3 samples
    for trajectory in kept:
        guidance = env.guidance(trajectory.task, kind)
        assert trajectory.source == "guided" and trajectory.meta["guidance"] == guidance
        observation, _ = env.reset(options={"task": trajectory.task})
        assert f"{observation}{GUIDANCE_MARK}{guidance}" in guided_prompts  # what the policy saw
        assert [turn.observation for turn in trajectory.turns] == [observation]  # what training sees
        assert env.step(trajectory.turns[0].action)[1] == 1.0  # graded again from scratch on the task as posed
    for example in sft_examples(kept, build_tokenizer()):
        assert GUIDANCE_MARK.strip() not in example["prompt"] and "reach" not in example["prompt"] \
            and "start with" not in example["prompt"]


def test_only_failed_tasks_are_guided_and_the_share_is_drawn_by_seed():
    tasks = tasks_of(8)
    samples = failed_samples(tasks, 2, solved={0, 3, 5})  # 5 failed tasks: 1, 2, 4, 6, 7
    trainer = ExpertIterationTrainer(ExpertIterationConfig(k=2, guided="hints", guided_share=0.5, guided_samples=1),
                                     "Countdown-v0", COMPACT, max_tokens=40)
    _, attempts, metrics = trainer.guided(HintReader(), tasks, samples, seed=3)
    guided = {t.meta["task_index"] for t in attempts}
    assert metrics["ei/guided_tasks"] == len(guided) == 3 and guided <= {1, 2, 4, 6, 7}  # ceil(5 * 0.5)
    _, again, _ = trainer.guided(HintReader(), tasks, samples, seed=3)
    assert {t.meta["task_index"] for t in again} == guided
    nothing = trainer.guided(HintReader(), tasks, failed_samples(tasks, 2, solved=set(range(8))), seed=0)
    assert nothing == ([], [], {"ei/guided_tasks": 0, "ei/guided_recovered": 0.0, "ei/guided_kept": 0})


class PrefixContinuer:
    """Continues a step answer begun in a raw prompt (`8 3 2 -> 22` newline `<answer>8+3=11` newline): the
    expert's remaining steps; the first of each group is an attacker's, which closes the answer and writes
    another one, wrong."""

    backend, name, spec = "scripted", "prefix-continuer", None

    def __init__(self):
        from sparring.policies.tiny import build_tokenizer

        self.tokenizer, self.prompts = build_tokenizer(), []

    def generate(self, prompts, params):
        out = []
        for prompt in prompts:
            self.prompts.append(prompt)
            task_text, started = prompt.split("<answer>")
            task = compact_task(task_text.strip())
            values = list(task.numbers)
            for line in started.strip().splitlines():
                values = apply_move(values, check_move(values, line))
            rest = solve_steps(values, task.target, integer_only=True)[1]
            shorter = CountdownTask(tuple(values), task.target)
            right = Completion(render_steps(shorter, rest) + "</answer>")
            out.append([Completion(f"</answer>{WRONG}")] + [right] * (params.n - 1))
        return out


def steps_prefix_trainer() -> ExpertIterationTrainer:
    """Prefix guidance on Countdown with step answers: 2 samples decided failure, 2 guided attempts a task."""
    return ExpertIterationTrainer(ExpertIterationConfig(k=2, guided="prefix", guided_samples=2), "Countdown-v0",
                                  {**COMPACT, "answer_format": "steps"}, max_tokens=80)


def test_prefix_traces_are_the_prefix_and_the_continuation():
    tasks = tasks_of(5, numbers=4)
    trainer = steps_prefix_trainer()
    policy = PrefixContinuer()
    kept, attempts, metrics = trainer.guided(policy, tasks, failed_samples(tasks, 2), seed=0)
    assert metrics == {"ei/guided_tasks": 5, "ei/guided_recovered": 1.0, "ei/guided_kept": 5}
    assert len(attempts) == 10 and sum(t.success for t in attempts) == 5
    env = gymnasium.make("Countdown-v0", **trainer.env_kwargs).unwrapped
    for trajectory in kept:
        prefix = env.guidance(trajectory.task, "prefix")
        observation, _ = env.reset(options={"task": trajectory.task})
        assert f"{observation}\n{prefix}" in policy.prompts  # the tiny template: the observation, a newline
        assert trajectory.turns[0].observation == observation and trajectory.turns[0].action.startswith(prefix)
        assert env.step(trajectory.turns[0].action)[1] == 1.0

    with pytest.raises(sparring.errors.SparringError, match="tokenizer"):
        trainer.guided(HintReader("steps"), tasks, failed_samples(tasks, 2), seed=0)


def test_prefix_through_a_real_model_continues_the_rendered_prompt(tmp_path):
    """The tiny model (random weights) through the hf backend: every attempt's answer is the prefix and what the
    model wrote after it, stored with the unguided observation, and graded as that whole answer."""
    from sparring.policies.policy import make_policy
    from sparring.policies.tiny import TinyModelConfig

    policy = make_policy("tiny", path=tmp_path / "tiny", config=TinyModelConfig(32, 1, 1, 64))
    tasks = tasks_of(3)
    trainer = ExpertIterationTrainer(ExpertIterationConfig(k=1, guided="prefix", guided_samples=2), "Countdown-v0",
                                     COMPACT, max_tokens=8)
    _, attempts, metrics = trainer.guided(policy, tasks, failed_samples(tasks, 1), seed=0)
    assert metrics["ei/guided_tasks"] == 3 and len(attempts) == 6
    env = gymnasium.make("Countdown-v0", **COMPACT).unwrapped
    for trajectory in attempts:
        prefix = env.guidance(trajectory.task, "prefix")
        observation, _ = env.reset(options={"task": trajectory.task})
        action = trajectory.turns[0].action
        assert trajectory.turns[0].observation == observation and action.startswith(prefix)
        assert trajectory.verdict == env.step(action)[4]["verdict"]


class StepsHintReader:
    """CountdownSteps-v0 (compact states): the expert's next move when the conversation began with guidance, else
    an invalid one. The first of each guided group is an attacker's: its first move is the guidance itself, which
    the env echoes back as an invalid move, before it plays the right moves."""

    backend, name, spec = "scripted", "steps-hint-reader", None

    def generate(self, prompts, params):
        out = []
        for prompt in prompts:
            first, state = prompt[0]["content"], prompt[-1]["content"].split(GUIDANCE_MARK)[0].splitlines()[-1]
            if GUIDANCE_MARK not in first:
                out.append([Completion("no idea")] * params.n)
                continue
            target, values = state.split(":")
            steps = solve_steps([int(v) for v in values.strip("[]").split(",")], int(target), integer_only=True)[1]
            move = f"{steps[0].left}{steps[0].op}{steps[0].right}"
            group = [Completion(move) for _ in range(params.n)]
            if len(prompt) == 1:  # the first turn
                group[0] = Completion(first.split(GUIDANCE_MARK)[1])
            out.append(group)
        return out


def test_a_guided_episode_whose_observations_echo_the_guidance_is_not_kept():
    kwargs = {"max_number": 20, "min_target": 1, "instruction": "compact"}
    tasks = tasks_of(4)
    trainer = ExpertIterationTrainer(ExpertIterationConfig(k=2, guided="landmarks", guided_samples=2),
                                     "CountdownSteps-v0", kwargs, max_tokens=20, max_turns=8)
    kept, attempts, metrics = trainer.guided(StepsHintReader(), tasks, failed_samples(tasks, 2), seed=0)
    echoed = [t for t in attempts if any(t.meta["guidance"] in turn.observation for turn in t.turns)]
    assert len(echoed) == 4 and all(t.success for t in echoed)  # the attacker's episodes did reach the target
    assert metrics == {"ei/guided_tasks": 4, "ei/guided_recovered": 1.0, "ei/guided_kept": 4}
    for trajectory in kept:
        assert trajectory not in echoed and trajectory.verdict["details"]["invalid_moves"] == 0
        assert all(GUIDANCE_MARK not in turn.observation for turn in trajectory.turns)


# ---- configuration -------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, message", [
    (["expert_iteration.guided=bogus"], "hints, landmarks, none, prefix"),
    (["expert_iteration.guided=hints", "expert_iteration.guided_share=0"], "guided_share"),
    (["expert_iteration.guided=hints", "expert_iteration.guided_share=1.5"], "guided_share"),
    (["expert_iteration.guided=hints", "expert_iteration.guided_samples=0"], "guided_samples"),
    (["expert_iteration.guided=landmarks", "algorithm=grpo"], "needs algorithm=expert_iteration"),
    (["env.id=CountdownSteps-v0", "env.kwargs={}", "expert_iteration.guided=prefix"], "one move per turn"),
    (["env.id=CodeSynth-v0", "env.kwargs={}", "expert_iteration.guided=hints"],
     "CodeSynth-v0 gives none; envs that do: CodeRepair-v0, Countdown-v0, CountdownSteps-v0"),
    (["env.id=CodeRepair-v0", "env.kwargs={}", "expert_iteration.guided=landmarks"], "use guidance 'hints'"),
    (["env.id=CodeRepair-v0", "env.kwargs={start: scratch}", "expert_iteration.guided=hints"], "start='buggy'"),
    (["expert_iteration.guided=prefix", "policy.generation=openai"],
     "policy.generation hf or vllm"),
    # HumanEval's problems are all held out: no guided trace (or any training) on them
    (["env.id=CodeRepair-v0", "env.kwargs={source: HumanEval-v0}", "expert_iteration.guided=hints"],
     "source HumanEval-v0 has no training tasks"),
    (["env.id=CodeRepair-v0", "env.kwargs={}", "env.bootstrap_kwargs={source: HumanEval-v0}"],
     "source HumanEval-v0 has no training tasks"),
])
def test_guided_settings_are_checked(overrides, message):
    from sparring.selfplay import load_selfplay_config

    with pytest.raises(ValueError, match=message):
        load_selfplay_config(None, overrides)


def test_the_shipped_guided_configs_load():
    from pathlib import Path

    from sparring.selfplay import load_selfplay_config

    root = Path(__file__).resolve().parents[2] / "configs"
    assert load_selfplay_config(root / "countdown-guided.yaml", []).expert_iteration.guided == "prefix"
    config = load_selfplay_config(root / "code-repair-guided.yaml", [])
    assert config.env.id == "CodeRepair-v0" and config.expert_iteration.guided == "hints"


# ---- a self-play round ---------------------------------------------------------------------------

TINY = ["rounds=1", "tasks_per_round=12", "env.eval_tasks=10", "env.extra_eval_splits=[]", "eval.k=1",
        "bootstrap.sft.steps=4", "bootstrap.eval_every=4", "bootstrap.dev_tasks=10", "bootstrap.sft.batch_size=8",
        "expert_iteration.sft.steps=2", "expert_iteration.sft.batch_size=8", "expert_iteration.k=2",
        "policy.max_tokens=24", "threads=1", "policy.tiny.hidden_size=32", "policy.tiny.num_layers=1",
        "policy.tiny.num_heads=1", "policy.tiny.intermediate_size=64",
        "expert_iteration.guided=landmarks", "expert_iteration.guided_samples=2"]


def test_a_guided_round_trains_on_its_kept_traces_and_a_resumed_round_does_not_guide_again(tmp_path, monkeypatch):
    """A self-play round with guided=landmarks on the default Countdown: the tasks no sample solved are guided
    (through a hint-reading policy: the barely trained tiny model recovers nothing), the metrics are in the row,
    the guided attempts are saved with the round's trajectories, and the kept ones train. Killed in training and
    resumed, the round trains on the guided traces its sampling stage saved without guiding again."""
    from sparring.io import read_jsonl
    from sparring.selfplay import SelfPlay, load_selfplay_config
    from sparring.trainers.expert_iteration import select_verified
    from sparring.trajectories import load_trajectories

    real_guided, real_fit = ExpertIterationTrainer.guided, ExpertIterationTrainer.fit
    monkeypatch.setattr(ExpertIterationTrainer, "guided",
                        lambda self, policy, *args, **kwargs: real_guided(self, HintReader(), *args, **kwargs))

    class Killed(Exception):
        pass

    def killed(*args, **kwargs):
        raise Killed("killed while training")

    monkeypatch.setattr(ExpertIterationTrainer, "fit", killed)
    config = load_selfplay_config(None, TINY)
    run = tmp_path / "run"
    with pytest.raises(Killed):
        SelfPlay(config, run).run_rounds()
    assert (run / "rounds/001/sampling/search-kept").exists()

    def again(*args, **kwargs):
        raise AssertionError("the resumed round guided again")

    monkeypatch.setattr(ExpertIterationTrainer, "guided", again)
    monkeypatch.setattr(ExpertIterationTrainer, "fit", real_fit)
    rows = SelfPlay(config, run).run_rounds(resume=True)
    saved = load_trajectories(run / "rounds/001/trajectories")
    sampled = [t for t in saved if t.source == "policy"]
    guided = [t for t in saved if t.source == "guided"]
    k = config.expert_iteration.k
    failed = {i for i in range(12) if not any(t.success for t in sampled[i * k:(i + 1) * k])}
    assert rows[1]["ei/guided_tasks"] == len(failed) > 0 and len(guided) == 2 * len(failed)
    assert {t.meta["task_index"] for t in guided} == failed
    assert rows[1]["ei/guided_recovered"] == 1.0 and rows[1]["ei/guided_kept"] == len(failed)
    ei = config.expert_iteration
    _, selected = select_verified(sampled, k, ei.max_per_task, ei.weight_hard_tasks)
    assert rows[1]["ei/examples"] == selected["ei/examples"] + len(failed)
    assert [row for row in read_jsonl(run / "metrics.jsonl")][1]["ei/guided_kept"] == len(failed)
    assert all(GUIDANCE_MARK not in turn.observation for t in saved for turn in t.turns)


# ---- review (adversarial): what an attacker's answer may not carry into training -----------------------------

class HintQuoter(HintReader):
    """Right on every guided prompt, but the first of each group writes the guidance into its own answer before
    the right one (`reach 24, then 22 <answer>...</answer>`, or the hint's marker): a verified answer whose text
    holds what only the guided prompt showed."""

    def generate(self, prompts, params):
        out = super().generate(prompts, params)
        for prompt, group in zip(prompts, out):
            first = prompt[0]["content"]
            if GUIDANCE_MARK in first:
                guidance = first.split(GUIDANCE_MARK)[1]
                group[0] = Completion(f"{guidance} {group[1].text}")
                if params.n > 2:
                    group[1] = Completion(f"{GUIDANCE_MARK.strip()} {group[2].text}")
        return out


@pytest.mark.parametrize("kind", ["landmarks", "hints"])
def test_a_verified_answer_that_quotes_the_guidance_is_not_kept(kind):
    """The guidance must not reach training through the answer either: a completion is trained on, and in a
    multi-turn episode every later turn's prompt replays it. An answer that quotes the guidance (or the marker
    that introduced it) verifies, and is still dropped; the plain right answers of the same task are kept."""
    tasks = tasks_of(4)
    trainer = ExpertIterationTrainer(ExpertIterationConfig(k=2, guided=kind, guided_samples=3), "Countdown-v0",
                                     COMPACT, max_tokens=40)
    kept, attempts, metrics = trainer.guided(HintQuoter(), tasks, failed_samples(tasks, 2), seed=0)
    assert sum(t.success for t in attempts) == 4 * 3  # the quoting answers verify too
    assert metrics["ei/guided_recovered"] == 1.0 and kept
    for trajectory in kept:
        for turn in trajectory.turns:
            assert trajectory.meta["guidance"] not in turn.action and GUIDANCE_MARK.strip() not in turn.action


class PrefixReopener(PrefixContinuer):
    """The first of each group closes the expert's started answer and writes a whole right answer of its own
    after it: it verifies (the env grades the last answer), but what trains would start with the expert's steps
    as a dangling, ungraded answer."""

    def generate(self, prompts, params):
        out = super().generate(prompts, params)
        for prompt, group in zip(prompts, out):
            task = compact_task(prompt.split("<answer>")[0].strip())
            whole = expert_answer(task, "steps", rng=random.Random(0))
            group[0] = Completion(f"</answer> {whole}")
        return out


def test_a_prefix_continuation_that_closes_and_reopens_the_answer_is_not_kept():
    tasks = tasks_of(4, numbers=4)
    kept, attempts, metrics = steps_prefix_trainer().guided(PrefixReopener(), tasks, failed_samples(tasks, 2), seed=0)
    assert sum(t.success for t in attempts) == 8  # the reopened answers verify
    assert metrics["ei/guided_kept"] == 4 and len(kept) == 4
    for trajectory in kept:
        action = trajectory.turns[0].action
        assert action.count("<answer>") == 1 and action.count("</answer>") == 1


def test_a_round_killed_after_its_training_saved_the_checkpoint_trains_on_the_same_guided_traces(tmp_path,
                                                                                                  monkeypatch):
    """Killed at the training stage's record, after its checkpoint was saved: the resumed round trains again,
    and on the same data, the guided traces the sampling stage kept among it (rounds/NNN/sampling/ goes only
    once the training's record is written)."""
    from sparring.selfplay import SelfPlay, load_selfplay_config
    from sparring.stages import RoundRecords

    real_guided, real_fit, real_record = ExpertIterationTrainer.guided, ExpertIterationTrainer.fit, RoundRecords.record
    monkeypatch.setattr(ExpertIterationTrainer, "guided",
                        lambda self, policy, *args, **kwargs: real_guided(self, HintReader(), *args, **kwargs))
    extras = []

    def fit(self, *args, extra=(), **kwargs):
        extras.append(sorted(str(t.turns[0].action) for t in extra if t.source == "guided"))
        return real_fit(self, *args, extra=extra, **kwargs)

    class Killed(Exception):
        pass

    def record(self, stage, metrics):
        if stage == "training" and not extras[1:]:
            raise Killed("killed before the training's record")
        return real_record(self, stage, metrics)

    monkeypatch.setattr(ExpertIterationTrainer, "fit", fit)
    monkeypatch.setattr(RoundRecords, "record", record)
    config = load_selfplay_config(None, TINY)
    run = tmp_path / "run"
    with pytest.raises(Killed):
        SelfPlay(config, run).run_rounds()
    rows = SelfPlay(config, run).run_rounds(resume=True)
    assert len(extras) == 2 and extras[0] and extras[1] == extras[0]
    assert rows[1]["ei/guided_kept"] == len(extras[1])
    assert not (run / "rounds/001/sampling").exists()
