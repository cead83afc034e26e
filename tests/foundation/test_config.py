"""Configuration: defaults stated once, overrides, and errors that name the key and value."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from keisei.config import Config, ConfigError, config_hash, config_to_dict, dump_config, load_config

REPO = Path(__file__).resolve().parents[2]


def test_default_yaml_lists_exactly_the_model_defaults():
    listed = yaml.safe_load((REPO / "configs" / "default.yaml").read_text())
    assert listed == config_to_dict(Config())
    assert load_config(REPO / "configs" / "default.yaml") == Config()


def test_overrides_are_typed_and_applied(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  steps_per_epoch: 512\n")
    config = load_config(path, ["training.total_timesteps=1000", "evaluation.async_mode=true"])
    assert config.training.steps_per_epoch == 512
    assert config.training.total_timesteps == 1000
    assert config.evaluation.async_mode is True


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("training.steps_per_epoch=0", "'training.steps_per_epoch' = 0"),
        ("training.steps_per_epoch=-3", "'training.steps_per_epoch' = -3"),
        (
            "training.checkpoint_interval_timesteps=0",
            "'training.checkpoint_interval_timesteps' = 0",
        ),
        (
            "evaluation.evaluation_interval_timesteps=-1",
            "'evaluation.evaluation_interval_timesteps'",
        ),
        ("training.steps_per_epoch=abc", "'training.steps_per_epoch' = 'abc'"),
        ("training.steps_per_epoch=true", "'training.steps_per_epoch' = True"),
        ("training.steps_per_epoch=2.5", "'training.steps_per_epoch' = 2.5"),
        ("evaluation.async_policy=maybe", "'evaluation.async_policy' = 'maybe'"),
        ("training.stepz_per_epoch=5", "unknown key 'training.stepz_per_epoch'"),
        ("trainer.steps_per_epoch=5", "unknown key 'trainer'"),
    ],
)
def test_bad_values_name_the_key_path_and_value(override: str, fragment: str):
    with pytest.raises(ConfigError) as caught:
        load_config(overrides=[override])
    assert fragment in str(caught.value)


def test_malformed_override_is_explained():
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(overrides=["training.steps_per_epoch"])
    with pytest.raises(ConfigError, match="'training' is a value"):
        load_config(overrides=["training=3", "training.seed=1"])


def test_bad_files_are_named(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml is not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listy)


def test_assignment_is_validated_too():
    config = Config()
    with pytest.raises(ValueError, match="greater than 0"):
        config.training.steps_per_epoch = 0


def test_dump_round_trips_and_hash_is_stable(tmp_path: Path):
    config = load_config(overrides=["training.seed=7"])
    dump_config(config, tmp_path / "effective.yaml")
    again = load_config(tmp_path / "effective.yaml")
    assert again == config
    assert config_hash(again) == config_hash(config)
    assert config_hash(Config()) != config_hash(config)


def test_cross_field_rules_name_both_keys():
    with pytest.raises(
        ConfigError, match="training.steps_per_epoch = 100 must be a multiple of env.num_envs = 32"
    ):
        load_config(overrides=["training.steps_per_epoch=100"])
    with pytest.raises(ConfigError, match="ppo.minibatch_size = 4096 exceeds"):
        load_config(overrides=["ppo.minibatch_size=4096"])
    with pytest.raises(ConfigError, match="'ppo.gamma' = 1.5"):
        load_config(overrides=["ppo.gamma=1.5"])


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_is_valid(path: Path):
    config = load_config(path)
    assert config.training.steps_per_epoch % config.env.num_envs == 0
