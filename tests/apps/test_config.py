"""Settings: defaults < config file < typed flags, and one clear error per bad value."""

from __future__ import annotations

import pytest

from apps.config import resolve
from apps.errors import ConfigError
from apps.sentiment.task import SentimentSettings
from apps.settings import parse_duration


def test_flags_override_the_file_which_overrides_defaults(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("units: 64\nbatch-size: 32\ncell: gru\n")
    settings = resolve(SentimentSettings, config, {"units": 16})
    assert (settings.units, settings.batch_size, settings.cell) == (16, 32, "gru")
    assert settings.epochs == SentimentSettings().epochs


def test_json_config_and_coercion(tmp_path):
    config = tmp_path / "c.json"
    config.write_text('{"dropout": "0.25", "bidirectional": "false", "epochs": 3.0}')
    settings = resolve(SentimentSettings, config, {})
    assert settings.dropout == 0.25 and settings.bidirectional is False and settings.epochs == 3


@pytest.mark.parametrize("flags, message", [
    ({"units": -3}, "--units must be a positive whole number, got -3"),
    ({"dropout": 1.5}, "--dropout must be in"),
    ({"pooling": "median"}, "--pooling must be one of"),
    ({"time_budget": "soon"}, "--time-budget must look like"),
    ({"epochs": "many"}, "--epochs in the flags must be a whole number"),
])
def test_bad_values_name_the_flag(flags, message):
    with pytest.raises(ConfigError, match=message):
        resolve(SentimentSettings, None, flags)


@pytest.mark.parametrize("content, message", [
    ("units: [1, 2\n", "is not valid YAML or JSON"),
    ("- a list\n", "must hold a mapping"),
    ("unitz: 3\n", "unknown setting"),
])
def test_broken_config_files(tmp_path, content, message):
    path = tmp_path / "broken.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        resolve(SentimentSettings, path, {})
    with pytest.raises(ConfigError, match="does not exist"):
        resolve(SentimentSettings, tmp_path / "missing.yaml", {})


@pytest.mark.parametrize("content, expected", [
    ('clip_norm: "1.0"\n', 1.0),  # an optional number written as text in YAML
    ("clip_norm: 2\n", 2.0),
    ("clip_norm: null\n", None),
])
def test_optional_numbers_from_a_file_are_converted(tmp_path, content, expected):
    path = tmp_path / "c.yaml"
    path.write_text(content)
    assert resolve(SentimentSettings, path, {}).clip_norm == expected


@pytest.mark.parametrize("content, message", [
    ('clip_norm: "big"\n', "--clip-norm in '.*' must be a number, got 'big'"),
    ('bidirectional: "maybe"\n', "--bidirectional in '.*' must be true or false"),
    ("epochs: true\n", "--epochs in '.*' must be a whole number"),
])
def test_wrong_types_in_a_file_get_one_sentence(tmp_path, content, message):
    path = tmp_path / "c.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        resolve(SentimentSettings, path, {})


def test_durations():
    assert parse_duration("90") == 90 and parse_duration("15m") == 900
    assert parse_duration("1.5h") == 5400 and parse_duration(None) is None
