"""Settings: defaults < config file (YAML or JSON) < flags, validated in one place.

Each task declares its settings as a dataclass with defaults. `resolve` layers a
`--config` file and the flags the user actually typed on top of those defaults,
checks every value, and the result is what `config.json` in the run directory
records.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from apps.errors import ConfigError

KIND_WORDS = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}
SCALARS = (int, float, bool, str)


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


@functools.cache
def field_types(settings_class) -> dict[str, tuple[Any, bool]]:
    """Each field's real type (`typing.get_type_hints`) as (type, may be None).

    The type is int, float, bool, str or a `Literal[...]` of choices; any other
    (a list, a union of two types) is refused here, when the class is first used,
    rather than read as text.
    """
    found = {}
    for name, hint in typing.get_type_hints(settings_class).items():
        optional = False
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            kinds = [kind for kind in typing.get_args(hint) if kind is not type(None)]
            optional = len(kinds) < len(typing.get_args(hint))
            hint = kinds[0] if len(kinds) == 1 else hint
        if hint not in SCALARS and typing.get_origin(hint) is not Literal:
            raise TypeError(f"{settings_class.__name__}.{name}: a setting must be int, float, "
                            f"bool, str or a Literal (optionally | None), not {hint!r}.")
        found[name] = (hint, optional)
    return found


def _coerce(kind: Any, name: str, value: Any, source: str) -> Any:
    """`value` as the field's type; an optional field (`float | None`) may also be None."""
    try:
        if value is None:
            return value
        if typing.get_origin(kind) is Literal:
            if value not in typing.get_args(kind):
                raise ValueError
            return value
        if kind is bool:
            if isinstance(value, str):
                word = value.strip().lower()
                if word not in TRUE_WORDS + FALSE_WORDS:
                    raise ValueError
                return word in TRUE_WORDS
            if not isinstance(value, (bool, int)):
                raise ValueError
            return bool(value)
        if kind is int:
            if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind is str:
            if isinstance(value, (dict, list)):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        expected = (f"one of {', '.join(map(str, typing.get_args(kind)))}"
                    if typing.get_origin(kind) is Literal else KIND_WORDS.get(kind, str(kind)))
        raise ConfigError(
            f"{flag_name(name)} in {source} must be {expected}, got {value!r}."
        ) from None
    return value


def resolve(settings_class, config_file: Path | None, flags: dict[str, Any]):
    """Defaults, then the config file, then the flags given explicitly."""
    fields = {field.name: field for field in dataclasses.fields(settings_class)}
    kinds = field_types(settings_class)
    values: dict[str, Any] = {}
    if config_file is not None:
        from_file = load_config_file(config_file)
        unknown = sorted(set(from_file) - set(fields))
        if unknown:
            raise ConfigError(
                f"Config file '{config_file}' has unknown setting(s): {', '.join(unknown)} "
                f"(known: {', '.join(sorted(fields))})."
            )
        values.update({k: _coerce(kinds[k][0], k, v, f"'{config_file}'")
                       for k, v in from_file.items()})
    values.update({k: _coerce(kinds[k][0], k, v, "the flags")
                   for k, v in flags.items() if k in fields})
    settings = settings_class(**values)
    settings.validate()
    settings.check_given(set(values))
    return settings


def to_dict(settings) -> dict[str, Any]:
    return dataclasses.asdict(settings)


def require(condition: bool, key: str, expected: str, value: Any) -> None:
    """Raise a ConfigError naming the flag when `condition` is false."""
    if not condition:
        raise ConfigError(f"{flag_name(key)} must be {expected}, got {value!r}.")
