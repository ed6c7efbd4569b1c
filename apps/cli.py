"""The `apps` command: one root group with a subgroup per task app."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import click

import apps
from apps.errors import carried_by_tensorflow
from apps.options import SectionedCommand, argument


def _quiet_tensorflow(debug: bool) -> None:
    """Import TensorFlow without its C++ start-up chatter ("Could not find cuda drivers").

    Those lines are written to file descriptor 2 before TensorFlow reads any log
    setting, so stderr is closed for the import and restored right after.
    """
    if debug:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class AppGroup(click.Group):
    """Turns unexpected exceptions into one line unless --debug is given."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            raise click.Abort() from None
        except Exception as error:  # noqa: BLE001 - the last line of defence
            if ctx.meta.get("debug"):
                raise
            carried = carried_by_tensorflow(error)
            if carried is not None:
                raise carried from None
            message = str(error).strip().splitlines()
            reason = message[0] if message else type(error).__name__
            raise click.ClickException(
                f"{type(error).__name__}: {reason} (run with --debug for the traceback)"
            ) from None


@click.group(cls=AppGroup, context_settings={"help_option_names": ["-h", "--help"],
                                             "max_content_width": 100})
@click.version_option(apps.__version__, prog_name="apps")
@click.option("--debug", is_flag=True, help="Show tracebacks and TensorFlow's own logs.")
@click.pass_context
def cli(ctx, debug):
    """RNN apps for language: sentiment, language modelling, translation, speech to text,
    serving.

    Every app trains from your data (files or tfds:NAME), writes a run directory,
    exports a TensorFlow Serving SavedModel, and `apps serve` serves it locally.
    """
    ctx.meta["debug"] = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO,
                        format="%(levelname)s %(message)s")
    if not debug:  # TensorFlow's Python logger repeats what our own lines say
        logging.getLogger("tensorflow").setLevel(logging.ERROR)


INFO_EXAMPLES = """
\b
Examples:
  apps info runs/mr
  apps info saved_models/translation/3 --json
  apps info saved_models/lm              # the newest version
"""


@cli.command(cls=SectionedCommand, epilog=INFO_EXAMPLES)
@argument("path", type=click.Path(path_type=Path),
          help="A run directory, an export's version directory, or a model base directory.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(path, as_json):
    """Describe PATH, a run directory or an exported SavedModel (or a model base
    directory: its newest version).

    The task, the settings and what `auto` became (precision, recurrence, strategy),
    the tokenizers, the validation metrics, the parameter count and layer shapes, and
    every serving signature with its inputs and outputs.
    """
    from apps import info as information

    found = information.describe(path)
    click.echo(json.dumps(found, ensure_ascii=False, indent=2) if as_json
               else information.format_info(found))


def _register() -> None:
    """Attach each app's command group (imported after TensorFlow's start-up noise is hushed)."""
    from apps.lm.cli import lm
    from apps.sentiment.cli import sentiment
    from apps.serve.cli import models, serve
    from apps.speech.cli import speech
    from apps.translation.cli import translation

    for command in (sentiment, lm, translation, speech, serve, models):
        cli.add_command(command)


def main() -> None:
    _quiet_tensorflow("--debug" in sys.argv)
    _register()
    cli(prog_name="apps")
