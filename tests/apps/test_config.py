"""Settings: defaults < config file < typed flags, and one clear error per bad value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import click
import pytest
from click.testing import CliRunner

from apps.config import field_types, resolve
from apps.errors import ConfigError
from apps.options import settings_options, typed_flags
from apps.sentiment.task import SentimentSettings
from apps.settings import Settings, parse_duration, setting


@dataclass
class Sample(Settings):
    mode: Literal["fast", "slow"] = setting("fast", "How.")
    rate: float | None = setting(None, "How much.")
    steps: int = setting(3, "How many.")


@dataclass
class Listed(Settings):
    names: list[str] = setting(None, "Several.")


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


def test_settings_types_are_read_from_the_real_annotations(tmp_path):
    """Flags and config values follow `typing.get_type_hints`, not annotation strings: a
    Literal becomes a choice, and a type with no flag is refused instead of read as text."""
    assert field_types(Sample) == {"mode": (Literal["fast", "slow"], False),
                                   "rate": (float, True), "steps": (int, False)}
    config = tmp_path / "c.yaml"
    config.write_text("mode: slow\nrate: '0.5'\n")
    assert resolve(Sample, config, {}) == Sample("slow", 0.5, 3)
    config.write_text("mode: medium\n")
    with pytest.raises(ConfigError, match="--mode in .* must be one of fast, slow"):
        resolve(Sample, config, {})

    @click.command()
    @settings_options(Sample)
    @click.pass_context
    def command(ctx, **_):
        click.echo(repr(resolve(Sample, None, typed_flags(ctx))))

    assert "Sample(mode='slow', rate=0.25, steps=3)" in CliRunner().invoke(
        command, ["--mode", "slow", "--rate", "0.25"]).output
    refused = CliRunner().invoke(command, ["--mode", "medium"])
    assert refused.exit_code == 2 and "'medium' is not one of 'fast', 'slow'" in refused.output

    with pytest.raises(TypeError, match="Listed.names: a setting must be"):
        field_types(Listed)
