"""Settings: defaults < config file (YAML or JSON) < flags, validated in one place.

Each task declares its settings as a dataclass with defaults. `resolve` layers a
`--config` file and the flags the user actually typed on top of those defaults,
checks every value, and the result is what `config.json` in the run directory
records.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import yaml

from apps.errors import ConfigError

KIND_WORDS = {"int": "a whole number", "float": "a number", "bool": "true or false",
              "str": "text"}


TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def flag_name(key: str) -> str:
    return "--" + key.replace("_", "-")


def load_config_file(path: Path) -> dict[str, Any]:
    """A mapping from a YAML or JSON file; keys may use dashes or underscores."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file '{path}' does not exist.")
    try:
        text = path.read_text(encoding="utf-8")
        values = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as error:
        reason = str(error).splitlines()[0]
        raise ConfigError(f"Config file '{path}' is not valid YAML or JSON: {reason}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"Config file '{path}' must hold a mapping of setting: value.")
    return {str(key).replace("-", "_"): value for key, value in values.items()}


def _coerce(field: dataclasses.Field, value: Any, source: str) -> Any:
    """`value` as the field's type; an optional field (`float | None`) may also be None."""
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    kind = kind.replace("| None", "").replace("None |", "").strip()
    try:
        if value is None:
            return value
        if kind == "bool":
            if isinstance(value, str):
                word = value.strip().lower()
                if word not in TRUE_WORDS + FALSE_WORDS:
                    raise ValueError
                return word in TRUE_WORDS
            return bool(value)
        if kind == "int":
            if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "str":
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{flag_name(field.name)} in {source} must be {KIND_WORDS.get(kind, kind)}, "
            f"got {value!r}."
        ) from None
    return value


def resolve(settings_class, config_file: Path | None, flags: dict[str, Any]):
    """Defaults, then the config file, then the flags given explicitly."""
    fields = {field.name: field for field in dataclasses.fields(settings_class)}
    values: dict[str, Any] = {}
    if config_file is not None:
        from_file = load_config_file(config_file)
        unknown = sorted(set(from_file) - set(fields))
        if unknown:
            raise ConfigError(
                f"Config file '{config_file}' has unknown setting(s): {', '.join(unknown)} "
                f"(known: {', '.join(sorted(fields))})."
            )
        values.update({k: _coerce(fields[k], v, f"'{config_file}'") for k, v in from_file.items()})
    values.update({k: _coerce(fields[k], v, "the flags") for k, v in flags.items() if k in fields})
    settings = settings_class(**values)
    settings.validate()
    return settings


def to_dict(settings) -> dict[str, Any]:
    return dataclasses.asdict(settings)


def require(condition: bool, key: str, expected: str, value: Any) -> None:
    """Raise a ConfigError naming the flag when `condition` is false."""
    if not condition:
        raise ConfigError(f"{flag_name(key)} must be {expected}, got {value!r}.")
