"""Every command's --help teaches: an example, every argument and option described, and
no empty `[default: ]`."""

from __future__ import annotations

import click
import pytest
from cli_helpers import run_cli

from apps.cli import cli


def commands(group: click.Group = cli, path: tuple[str, ...] = ()):
    """(path, command) for every command and group under `group`, nested ones included."""
    for name, command in sorted(group.commands.items()):
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))


ALL = list(commands())


def test_the_walk_finds_every_task_verb():
    found = {path for path, _ in ALL}
    for task, verb in [("sentiment", "predict"), ("lm", "generate"),
                       ("translation", "translate"), ("speech", "transcribe")]:
        assert {(task, "train"), (task, "evaluate"), (task, "export"), (task, verb)} <= found
    assert {("info",), ("serve",)} <= found


@pytest.mark.parametrize("path, command", ALL, ids=[" ".join(path) for path, _ in ALL])
def test_help_has_an_example_and_describes_everything(path, command):
    result = run_cli(*path, "--help")
    assert result.exit_code == 0, result.output
    text = result.output
    assert "[default: ]" not in text
    assert "Examples:" in text and f"apps {' '.join(path)}" in text.split("Examples:")[1]
    for param in command.params:
        if isinstance(param, click.Argument):
            assert param.help, f"argument {param.name} of apps {' '.join(path)} is undescribed"
            assert param.help in " ".join(text.split())
        elif not param.hidden and param.name != "help":
            assert param.help, f"{param.opts[0]} of apps {' '.join(path)} is undescribed"


def test_speech_dropout_does_not_mention_embeddings():
    text = run_cli("speech", "train", "--help").output
    dropout = text.split("--dropout")[1].split("--")[0]
    assert "embedding" not in dropout and "Dropout rate" in dropout


def test_a_flag_shared_by_commands_is_declared_once():
    """The same flag in train and evaluate has one help text; --beam-size is a positive
    whole number wherever it appears."""
    for task in ("sentiment", "lm", "translation", "speech"):
        group = cli.commands[task]
        train = {p.name: p for p in group.commands["train"].params}
        for verb in group.commands:
            for param in group.commands[verb].params:
                if verb != "train" and param.name in train and param.name.endswith(
                        ("_column", "_lang")):
                    assert param.help == train[param.name].help, (task, verb, param.name)
                if param.name == "beam_size" and verb != "train":
                    assert isinstance(param.type, click.IntRange) and param.type.min == 1, \
                        (task, verb)
