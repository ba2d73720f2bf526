"""Verifiers: the env's, majority vote, a model as judge, and their agreement."""

import pytest
from agents_kit import ScriptedPolicy

import sparring  # noqa: F401
from sparring.agents.verifiers import (
    MajorityVoteVerifier,
    ModelJudgeVerifier,
    ProgrammaticVerifier,
    VerifierConfig,
    agreement,
    answer_key,
    judge_examples,
    judge_prompt,
    read_judgement,
    verifier_metrics,
)
from sparring.policies.policy import SamplingParams
from sparring.solver import Solver, by_task

KWARGS = {"instruction": "compact"}
TASK = {"numbers": [8, 3, 2], "target": 22}


def play(answers, task=TASK, env_id="Countdown-v0"):
    """One group: the env's verdicts on `answers` to `task`."""
    answers = iter(answers)
    policy = ScriptedPolicy(lambda prompt: next(answers))
    return Solver(policy, env_id, KWARGS, SamplingParams(max_tokens=8)).run([task], k=1)[0]


def group(answers, task=TASK):
    return [play([a], task) for a in answers]


def test_the_programmatic_verifier_is_the_envs_verdict():
    g = group(["<answer>8*3-2</answer>", "<answer>8+3+2</answer>"])
    assert ProgrammaticVerifier().judge([g]) == [[True, False]]


def test_answer_keys_ignore_the_target_and_need_the_given_numbers():
    assert answer_key(play(["<answer>8*3-2</answer>"])) == "22"
    assert answer_key(play(["<answer>(8+3)*2 = 22</answer>"])) == "22"
    assert answer_key(play(["<answer>8*3</answer>"])) is None      # 2 is not used
    assert answer_key(play(["<answer>8/3*2+1</answer>"])) is None  # 1 is not given
    assert answer_key(play(["8*3-2"])) is None                     # no answer tag
    assert answer_key(play(["<answer>8/3+2</answer>"])) == "14/3"


def test_majority_vote_marks_the_most_common_answer():
    wrong_majority = group(["<answer>8+3*2</answer>", "<answer>2*3+8</answer>", "<answer>8*3-2</answer>", "junk"])
    right_majority = group(["<answer>8*3-2</answer>", "<answer>(8+3)*2</answer>", "<answer>8+3+2</answer>", "junk"])
    no_majority = group(["<answer>8+3+2</answer>", "<answer>8*3-2</answer>", "<answer>8-3-2</answer>", "x"])
    flags = MajorityVoteVerifier().judge([wrong_majority, right_majority, no_majority])
    assert flags == [[True, True, False, False], [True, True, False, False], [False, False, False, False]]
    truth = ProgrammaticVerifier().judge([wrong_majority, right_majority, no_majority])
    assert agreement(flags, truth) == pytest.approx(8 / 12)  # the wrong majority disagrees 3 times, the last group once
    assert MajorityVoteVerifier(min_votes=0.75).judge([right_majority]) == [[False] * 4]


def test_a_model_judge_reads_the_task_and_the_attempt():
    g = group(["<answer>8*3-2</answer>", "<answer>8+3+2</answer>"])
    assert judge_prompt(g[0]) == "judge 8 3 2 -> 22 : <answer>8*3-2</answer>"
    policy = ScriptedPolicy(lambda prompt: " Yes" if "8*3-2" in prompt else "no, it is wrong")
    assert ModelJudgeVerifier(policy).judge([g, []]) == [[True, False], []]
    assert read_judgement("yes.") and read_judgement("Correct") and not read_judgement("") and not read_judgement("yesterday no")


def test_judge_examples_are_balanced_env_labels():
    from sparring.policies.tiny import build_tokenizer

    g = group(["<answer>8*3-2</answer>", "<answer>8+3+2</answer>", "<answer>8-3-2</answer>", "<answer>8*2</answer>"])
    rows = judge_examples(g, build_tokenizer())
    assert sorted(r["completion"] for r in rows) == ["no"] * 3 + ["yes"] * 3
    assert rows[0]["prompt"] == "judge 8 3 2 -> 22 : <answer>8*3-2</answer>\n"


def test_metrics_report_agreement_with_the_env():
    truth = [[True, False], [False, False]]
    metrics = verifier_metrics({"programmatic": truth, "majority": [[True, True], [False, False]]}, "majority")
    assert metrics["verifier/agreement"] == metrics["verifier/majority/agreement"] == 0.75
    assert metrics["verifier/majority/precision"] == 0.5 and metrics["verifier/programmatic/agreement"] == 1.0
    assert metrics["verifier/true_rate"] == 0.25


def test_majority_on_multi_turn_countdown_votes_with_the_last_number():
    task = {"numbers": [8, 3, 2], "target": 22}
    policy = ScriptedPolicy(lambda prompt: "8*3" if "[8, 3, 2]" in prompt.splitlines()[-1] else "24-2")
    episodes = Solver(policy, "CountdownSteps-v0", KWARGS, SamplingParams(max_tokens=8)).run([task], k=2)
    assert [answer_key(t) for t in episodes] == ["22", "22"]
    assert MajorityVoteVerifier().judge(by_task(episodes, 2)) == [[True, True]]


def test_config_checks():
    assert VerifierConfig(use="majority", measure=["judge", "majority"]).active == ["majority", "judge"]
    with pytest.raises(ValueError, match="did you mean 'majority'"):
        VerifierConfig(measure=["majorty"])


def test_majority_on_textnav_votes_with_the_room_where_episodes_end():
    import gymnasium

    kwargs = {"difficulty": "easy", "instruction": "compact", "goal_types": ["route"]}
    env = gymnasium.make("TextNav-v0", **kwargs).unwrapped
    task = env.generate_task(1).to_dict()
    env.reset(options={"task": task})
    plan = env.expert_actions()
    by_turn = ScriptedPolicy(lambda p: plan[(p.count("\n") - 1) // 2])  # compact: 2 lines, then an action and a line per turn
    episodes = Solver(by_turn, "TextNav-v0", kwargs, SamplingParams(max_tokens=8)).run([task], k=2)
    assert episodes[0].success and answer_key(episodes[0]) == episodes[0].verdict["details"]["goal_room"]
    stay = Solver(ScriptedPolicy(lambda p: "stop"), "TextNav-v0", kwargs, SamplingParams(max_tokens=8)).run([task], k=1)
    assert MajorityVoteVerifier().judge([episodes + stay]) == [[True, True, False]]
