"""Training config: strict, and errors name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from recommender.config import ConfigError, TrainConfig, load_config

DEFAULT = Path(__file__).resolve().parents[2] / "training" / "configs" / "default.yaml"


def test_default_yaml_is_valid_and_matches_the_model_defaults():
    config = load_config(DEFAULT)
    assert isinstance(config, TrainConfig)
    assert config.promotion.registered_model == "nudge-ranker"


def test_none_gives_defaults():
    assert load_config(None) == TrainConfig()


def test_unknown_key_fails_naming_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("split:\n  eval_fractoin: 0.2\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert str(path) in message
    assert "split.eval_fractoin: unknown key" in message


def test_out_of_range_value_names_the_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("evaluation:\n  n_bootstrap: 3\n")
    with pytest.raises(ConfigError, match=r"evaluation\.n_bootstrap"):
        load_config(path)


def test_unknown_outcome_weight_is_refused(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("objective:\n  weights:\n    delta_happiness: 1.0\n")
    with pytest.raises(ConfigError, match=r"objective\.weights: .*delta_happiness"):
        load_config(path)


def test_missing_file_and_non_mapping_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(path)


def test_flat_params_use_dotted_keys():
    flat = TrainConfig().flat()
    assert flat["split.eval_fraction"] == "0.3"
    assert flat["objective.weights.delta_360"] == "1.0"
