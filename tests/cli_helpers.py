"""CLI tests: run an `apps ...` command in-process, as a user would type it."""

from __future__ import annotations

from click.testing import CliRunner

from apps.cli import _register, cli

_register()


def run_cli(*args, input=None):
    """The click result of `apps ARGS` (any argument made a string, `input` as stdin);
    whatever happens, the output never holds a traceback."""
    result = CliRunner().invoke(cli, [str(a) for a in args], input=input)
    assert "Traceback" not in result.output, result.output
    return result
