"""Click flags built from a settings dataclass, and --help that lists them by section.

Flags default to None so that `apps.config.resolve` can tell a typed flag from a
default: the help text shows the task's real default, and only typed flags override
`--config`.
"""

from __future__ import annotations

import dataclasses

import click

from apps.settings import field_metadata

SECTIONS = ("data", "tokenizer", "model", "decoding", "training", "hardware", "run")
SECTION_TITLES = {"data": "Data", "tokenizer": "Tokenizer", "model": "Model",
                  "decoding": "Decoding", "training": "Training", "hardware": "Hardware",
                  "run": "Run"}


class SectionedCommand(click.Command):
    """--help with options grouped under Data / Tokenizer / Model / Training / Run."""

    def format_options(self, ctx, formatter):
        groups: dict[str, list] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                section = getattr(param, "section", None) or "run"
                groups.setdefault(section, []).append(record)
        for section in sorted(groups, key=lambda s: SECTIONS.index(s) if s in SECTIONS else 99):
            with formatter.section(SECTION_TITLES.get(section, section.title()) + " options"):
                formatter.write_dl(groups[section])


def _click_type(field: dataclasses.Field, choices):
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    kind = kind.replace("| None", "").strip()
    if choices:
        return click.Choice(choices)
    return {"int": int, "float": float}.get(kind, str)


def option(*declarations, section: str = "run", **attributes):
    """click.option that remembers the --help section it belongs to."""

    def decorate(command):
        command = click.option(*declarations, **attributes)(command)
        command.__click_params__[-1].section = section
        return command

    return decorate


def settings_options(settings_class):
    """Decorator: one flag per field of `settings_class` whose metadata says `flag`."""
    decorators = []
    for field in dataclasses.fields(settings_class):
        meta = field_metadata(settings_class, field.name)
        if not meta["flag"]:
            continue
        name = "--" + field.name.replace("_", "-")
        default = field.default
        if field.type in ("bool", bool):
            decorators.append(option(
                f"{name}/--no-{name[2:]}", field.name, default=None, section=meta["section"],
                help=f"{meta['help']}  [default: {'on' if default else 'off'}]"))
            continue
        shown = "" if default is None else f"  [default: {default}]"
        decorators.append(option(name, field.name, type=_click_type(field, meta["choices"]),
                                 default=None, section=meta["section"],
                                 help=meta["help"] + shown))

    def decorate(command):
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return decorate


def typed_flags(ctx: click.Context) -> dict:
    """Only the parameters the user typed (not defaults), for `apps.config.resolve`."""
    from click.core import ParameterSource

    return {name: value for name, value in ctx.params.items()
            if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE
            and value is not None}
