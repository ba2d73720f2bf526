"""`sparring check` / `sparring.check`: the conformance suite on anyone's env, the README's own example included."""

import importlib
import random
import re
import sys
from pathlib import Path

import gymnasium
import pytest
from gymnasium.envs.registration import register

import sparring
from sparring.cli import main
from sparring.conformance import CHECKS

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def reverse_env(tmp_path, monkeypatch):
    """The README's "write your own env" file, as a user would save it: reverse_env.py on the path."""
    section = README.read_text().split("## Write your own env", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    (tmp_path / "reverse_env.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{':'.join(sys.path)}")  # vector workers import it too
    sys.modules.pop("reverse_env", None)
    yield importlib.import_module("reverse_env")
    sys.modules.pop("reverse_env", None)
    gymnasium.registry.pop("Reverse-v0", None)


def test_the_readme_env_passes_sparring_check(reverse_env, capsys):
    assert main(["--width", "200", "check", "reverse_env:Reverse-v0", "--episodes", "4"]) == 0
    out = capsys.readouterr().out
    assert "every check passed" in out and all(name in out for name in CHECKS)
    report = sparring.check(gymnasium.make("Reverse-v0", difficulty="hard"), episodes=4)
    assert report.passed and [r.status for r in report.results] == ["pass"] * 7 + ["info"]
    assert "the expert solved 4 of 4 tasks" in report.results[CHECKS.index("expert")].detail


def broken_envs(module):
    """Variants of the README env, each breaking one promise."""

    class Lenient(module.ReverseEnv):
        def verify(self, answer):
            return module.Verdict(1.0, True, "anything goes", {})

    class Raising(module.ReverseEnv):
        def verify(self, answer):
            if not answer:
                raise ValueError("empty answer")
            return super().verify(answer)

    class Drifting(module.ReverseEnv):
        def generate_task(self, index, *, seed=0, config=None):
            return module.ReverseTask(str(random.random()))

    class Forgetful(module.ReverseEnv):
        def _begin(self):
            return f"Reverse: {self.task.word} ({self.np_random.integers(1000)})", {}

    class Clueless(module.ReverseEnv):
        def expert_answer(self):
            return self.task.word

    return {"Lenient": (Lenient, "junk", "succeeded"), "Raising": (Raising, "junk", "raised ValueError: empty answer"),
            "Drifting": (Drifting, "determinism", "differ"), "Forgetful": (Forgetful, "task_round_trip", "another observation"),
            "Clueless": (Clueless, "expert", "the expert failed: that is not the word reversed")}


@pytest.mark.parametrize("variant", ["Lenient", "Raising", "Drifting", "Forgetful", "Clueless"])
def test_a_broken_env_fails_the_check_that_names_it(reverse_env, variant):
    cls, failing, reason = broken_envs(reverse_env)[variant]
    report = sparring.check(cls(), episodes=4)
    statuses = {r.name: r for r in report.results}
    assert not report.passed and statuses[failing].status == "fail" and reason in statuses[failing].detail
    assert statuses["vector"].status == "skip"  # an instance without a registered id


def test_cli_exits_1_on_a_failing_env(reverse_env, capsys):
    cls = broken_envs(reverse_env)["Lenient"][0]
    register(id="LenientReverse-v0", entry_point=cls)
    try:
        assert main(["--width", "200", "check", "LenientReverse-v0", "--episodes", "2"]) == 1
        out = capsys.readouterr().out
        assert "1 failed (junk)" in out and "succeeded" in out
    finally:
        gymnasium.registry.pop("LenientReverse-v0")


def test_a_plain_gymnasium_env_is_told_what_it_lacks():
    class Plain(gymnasium.Env):
        observation_space = gymnasium.spaces.Text(100)
        action_space = gymnasium.spaces.Text(100)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return "hi", {}

        def step(self, action):
            return "bye", 1.0, True, False, {}

    results = {r.name: r for r in sparring.check(Plain(), episodes=2).results}
    assert "info has no 'task'" in results["task_round_trip"].detail
    assert "no info['verdict']" in results["verdict"].detail
    assert results["expert"].status == "skip"


@pytest.mark.parametrize("env_id, kwargs", [(env_id, {}) for env_id in sparring.env_ids()
                                            if env_id not in ("ReasoningGym-v0", "TextWorld-v0")]
                         + [("ReasoningGym-v0", {"dataset": "gcd"})])  # TextWorld-v0: tests/envs/test_textworld.py
def test_sparring_envs_pass(env_id, kwargs):
    if env_id == "ReasoningGym-v0":
        pytest.importorskip("reasoning_gym", reason="ReasoningGym-v0 needs the extra: pip install -e '.[reasoning-gym]'")
    report = sparring.check(env_id, env_kwargs=kwargs, episodes=3)
    assert report.passed, report.to_dict()


def test_bad_arguments(capsys):
    with pytest.raises(ValueError, match="episodes must be an integer >= 1"):
        sparring.check("Countdown-v0", episodes=0)
    with pytest.raises(ValueError, match="did you mean 'junk'"):
        sparring.check("Countdown-v0", only=("jnk",))
    with pytest.raises(TypeError, match="an env id"):
        sparring.check(42)
    assert main(["check", "Countdwn-v0"]) == 2
    assert "Did you mean" in capsys.readouterr().err
    assert main(["check", "no_such_module:X-v0"]) == 2
    assert "cannot import 'no_such_module'" in capsys.readouterr().err
