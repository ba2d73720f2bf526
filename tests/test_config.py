from dataclasses import dataclass, field

import pytest

from sparring.config import dump_yaml, load_config, set_dotted
from sparring.errors import UnknownNameError
from sparring.trainers.sft import SFTSettings


@dataclass
class Section:
    steps: int = 3
    rate: float = 0.5
    name: str | None = None


@dataclass
class Top:
    seed: int = 0
    flag: bool = False
    items: list[str] = field(default_factory=list)
    section: Section = field(default_factory=Section)
    sft: SFTSettings = field(default_factory=SFTSettings)


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("seed: 3\nsection:\n  steps: 7\n")
    config = load_config(Top, path, ["section.rate=2", "flag=true", "items=[a, b]", "sft.steps=9"])
    assert (config.seed, config.section.steps, config.section.rate, config.flag, config.items, config.sft.steps) == \
        (3, 7, 2.0, True, ["a", "b"], 9)
    assert load_config(Top) == Top()


def test_dumped_yaml_loads_back(tmp_path):
    config = load_config(Top, None, ["section.name=x", "sft.learning_rate=0.01"])
    (tmp_path / "c.yaml").write_text(dump_yaml(config))
    assert load_config(Top, tmp_path / "c.yaml") == config


@pytest.mark.parametrize("override, error, message", [
    ("section.step=2", UnknownNameError, "did you mean 'section.steps'"),
    ("sectoin.steps=2", UnknownNameError, "did you mean 'section'"),
    ("seed=abc", ValueError, "seed must be int"),
    ("flag=3", ValueError, "flag must be bool"),
    ("sft.steps=0", ValueError, "sft.steps must be an integer >= 1"),
    ("sft.scheduler=cosin", UnknownNameError, "did you mean 'cosine'"),
    ("seed", ValueError, "key=value"),
])
def test_bad_keys_and_values_are_clear_errors(override, error, message):
    with pytest.raises(error, match=message):
        load_config(Top, None, [override])


def test_set_dotted_refuses_to_descend_into_a_value():
    data = {"seed": 1}
    with pytest.raises(ValueError, match="not a section"):
        set_dotted(data, "seed.x=1")


@dataclass
class Parent:
    # the parent's default for this section differs from the section class's own defaults
    sft: SFTSettings = field(default_factory=lambda: SFTSettings(steps=1000, learning_rate=2e-3, scheduler="cosine"))


def test_a_partial_section_keeps_the_parents_defaults():
    config = load_config(Parent, None, ["sft.steps=2000"])
    assert config.sft == SFTSettings(steps=2000, learning_rate=2e-3, scheduler="cosine")


def test_exponent_floats_without_a_dot_are_numbers(tmp_path):
    # YAML 1.1 (PyYAML) reads `1e-4` as a string; a float key takes it as the number people mean
    path = tmp_path / "run.yaml"
    path.write_text("section:\n  rate: 3e-4\n")
    assert load_config(Top, path).section.rate == 3e-4
    assert load_config(Top, None, ["sft.learning_rate=1E-5"]).sft.learning_rate == 1e-5
    with pytest.raises(ValueError, match="rate must be float"):
        load_config(Top, None, ["section.rate=1e-4x"])
    assert load_config(Top, None, ["section.name=1e-4"]).section.name == "1e-4"  # a str key keeps the text


@dataclass
class WithKwargs:
    kwargs: dict = field(default_factory=lambda: {"difficulty": "easy", "max_number": 20})
    sft: SFTSettings = field(default_factory=lambda: SFTSettings(steps=1000, learning_rate=2e-3))


@dataclass
class Outer:
    env: WithKwargs = field(default_factory=WithKwargs)


def test_a_dict_value_in_a_partial_section_is_replaced_not_merged(tmp_path):
    """Another env's kwargs must not inherit the default env's (max_number is no TextNav knob)."""
    path = tmp_path / "c.yaml"
    path.write_text("env:\n  kwargs: {instruction: compact}\n  sft: {steps: 5}\n")
    config = load_config(Outer, path)
    assert config.env.kwargs == {"instruction": "compact"}
    assert config.env.sft == SFTSettings(steps=5, learning_rate=2e-3)  # dataclass sections still merge


@dataclass
class Env:
    kwargs: dict = field(default_factory=lambda: {"max_number": 20})


@dataclass
class WithEnv:
    env: Env = field(default_factory=Env)


def test_a_partial_section_replaces_a_plain_dict_whole():
    assert load_config(WithEnv, None, ["env.kwargs={difficulty: easy}"]).env.kwargs == {"difficulty": "easy"}


@dataclass
class Documented:
    plain: int = 1  # the inline comment
    # the block above,
    # two lines of it
    above: str = "# not a comment"
    told: float = field(default=0.5, metadata={"help": "metadata wins"})  # not this
    bare: bool = False


def test_field_help_reads_metadata_then_comments():
    from sparring.config import field_help

    assert field_help(Documented, "plain") == "the inline comment"
    assert field_help(Documented, "above") == "the block above, two lines of it"
    assert field_help(Documented, "told") == "metadata wins"
    assert field_help(Documented, "bare") == ""


def test_every_selfplay_key_has_help_and_the_annotated_yaml_loads_back():
    import yaml

    from sparring.config import annotated_yaml, from_dict
    from sparring.selfplay import SelfPlayConfig, load_selfplay_config

    config = load_selfplay_config(None, ["rounds=7", "env.kwargs={difficulty: hard}", "expert_iteration.k=3",
                                         "bootstrap.sft.steps=11", "proposer.band=[0.1, 0.9]"])
    text = annotated_yaml(config)
    assert from_dict(SelfPlayConfig, yaml.safe_load(text)) == config
    lines = text.splitlines()
    keys = [i for i, line in enumerate(lines) if not line.lstrip().startswith("#")]
    assert len(keys) > 150  # every key of every section
    for i in keys:  # each key is preceded by its help, which says more than the type
        help_line = lines[i - 1].strip()
        assert help_line.startswith("# ") and not help_line.startswith("# ("), (lines[i], help_line)
    assert "# self-play rounds after round 0 (the bootstrap) (int)\nrounds: 7\n" in text


def test_a_missing_or_malformed_config_file_is_one_clear_line(tmp_path):
    with pytest.raises(ValueError, match=r"config file '.*missing.yaml' does not exist"):
        load_config(Top, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: [1\nflag: true\n")
    with pytest.raises(ValueError, match=r"bad.yaml' is not valid YAML at line 2, column 5"):
        load_config(Top, bad)
