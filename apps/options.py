"""Click flags built from a settings dataclass, and --help that lists them by section.

Flags default to None so that `apps.config.resolve` can tell a typed flag from a
default: the help text shows the task's real default, and only typed flags override
`--config`.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Literal

import click

from apps.config import field_types
from apps.settings import field_metadata

SECTIONS = ("data", "tokenizer", "model", "decoding", "training", "hardware",
            "run", "options")
SECTION_TITLES = {"data": "Data options",
                  "tokenizer": "Tokenizer options", "model": "Model options",
                  "decoding": "Decoding options", "training": "Training options",
                  "hardware": "Hardware options", "run": "Run options", "options": "Options"}


def argument(*declarations, help: str, **attributes):  # noqa: A002
    """click.argument whose --help line says what it is (click lists these under
    "Positional arguments")."""
    return click.argument(*declarations, help=help, **attributes)


class SectionedCommand(click.Command):
    """--help with options grouped under Data / Tokenizer / Model / Training / Run (a
    command without sections: one "Options" list); arguments are listed by click."""

    def format_options(self, ctx, formatter):
        groups: dict[str, list] = {}
        for param in self.get_params(ctx):
            record = None if isinstance(param, click.Argument) else param.get_help_record(ctx)
            if record is not None:
                section = getattr(param, "section", None) or "options"
                groups.setdefault(section, []).append(record)
        for section in sorted(groups, key=lambda s: SECTIONS.index(s) if s in SECTIONS else 99):
            with formatter.section(SECTION_TITLES.get(section, section.title() + " options")):
                formatter.write_dl(groups[section])


def examples_for(examples: str, *verbs: str) -> str:
    """The lines of a group's examples that run one of `verbs`, as a command's epilog.

    An example starts with `  apps ...` and may go on over lines ending in a backslash.
    """
    picked, keep = [], False
    for line in examples.strip("\n").splitlines():
        if line.startswith("  apps "):
            words = line.split()
            keep = len(words) > 2 and words[2] in verbs
        elif not line.startswith("    "):
            keep = False
        if keep:
            picked.append(line)
    if not picked:
        return ""
    return "\b\nExamples:\n" + "\n".join(picked)


def _click_type(settings_class, name: str, choices):
    """The click type of a field's flag, from its real type (`apps.config.field_types`)."""
    kind, _optional = field_types(settings_class)[name]
    if choices:
        return click.Choice(choices)
    if typing.get_origin(kind) is Literal:
        return click.Choice([str(choice) for choice in typing.get_args(kind)])
    return {int: int, float: float}.get(kind, str)


def option(*declarations, section: str = "options", **attributes):
    """click.option that remembers the --help section it belongs to."""

    def decorate(command):
        command = click.option(*declarations, **attributes)(command)
        command.__click_params__[-1].section = section
        return command

    return decorate


def field_option(settings_class, name: str, **changes):
    """The flag of one settings field, as `train` declares it (help, type, choices,
    section); `changes` override click attributes (another command may say more)."""
    field = next(f for f in dataclasses.fields(settings_class) if f.name == name)
    meta = field_metadata(settings_class, name)
    flag = "--" + name.replace("_", "-")
    default = field.default
    if field_types(settings_class)[name][0] is bool:
        return option(f"{flag}/--no-{flag[2:]}", name, default=None, section=meta["section"],
                      help=f"{meta['help']}  [default: {'on' if default else 'off'}]",
                      **changes)
    shown = "" if default in (None, "") else f"  [default: {default}]"
    attributes = dict(type=_click_type(settings_class, name, meta["choices"]), default=None,
                      section=meta["section"], help=meta["help"] + shown)
    return option(flag, name, **{**attributes, **changes})


def settings_options(settings_class):
    """Decorator: one flag per field of `settings_class` whose metadata says `flag`."""
    decorators = [field_option(settings_class, field.name)
                  for field in dataclasses.fields(settings_class)
                  if field_metadata(settings_class, field.name)["flag"]]

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
