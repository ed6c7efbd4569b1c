"""Click flags shared by every task's `train`, built from the task's settings dataclass.

Flags default to None so that `resolve` can tell a typed flag from a default: the
help text shows the task's real default, and only typed flags override `--config`.
"""

from __future__ import annotations

from pathlib import Path

import click

from apps.layers import CELLS
from apps.settings import field_defaults
from pipelines.tokenizer import MODEL_TYPES

HELP = {
    "tokenizer": ("SentencePiece model type trained on the training data.",
                  click.Choice(MODEL_TYPES)),
    "vocab_size": ("Upper bound on the vocabulary size (small corpora get fewer pieces).", int),
    "cell": ("Recurrent cell: rnn (SimpleRNN), lstm or gru.", click.Choice(sorted(CELLS))),
    "units": ("Hidden units per direction and layer.", int),
    "layers": ("Stacked recurrent layers.", int),
    "embedding_dim": ("Token embedding size.", int),
    "dropout": ("Dropout rate on embeddings, between layers and before the output.", float),
    "residual": ("Residual connections between recurrent layers of equal size.", None),
    "bidirectional": ("Also read right to left (encoders only).", None),
    "implementation": ("Recurrence: keras (cuDNN on GPU), fused (fast CPU loop), or auto.",
                       click.Choice(["auto", "keras", "fused"])),
    "epochs": ("Passes over the training data.", int),
    "batch_size": ("Sequences per batch.", int),
    "learning_rate": ("Adam learning rate.", float),
    "clip_norm": ("Clip each gradient to this global norm (off when unset).", float),
    "patience": ("Stop after this many epochs without validation improvement (0: never).",
                 int),
    "time_budget": ("Stop cleanly after this much training time, e.g. 90s, 15m, 1h; the "
                    "best epoch so far is kept.", str),
    "seed": ("Random seed: the same seed and data give the same model.", int),
}


def _flag(key: str, default):
    """click.option for one setting; its help shows the task's own default."""
    text, kind = HELP[key]
    name = "--" + key.replace("_", "-")
    if isinstance(default, bool):
        shown = "on" if default else "off"
        return click.option(f"{name}/--no-{name[2:]}", key, default=None,
                            help=f"{text}  [default: {shown}]")
    shown = "" if default is None else f"  [default: {default}]"
    return click.option(name, key, type=kind, default=None, help=text + shown)


def train_options(settings_class, skip: tuple[str, ...] = ()):
    """Decorator adding --config, --output, --overwrite and every shared setting flag."""
    defaults = field_defaults(settings_class)
    options = [_flag(key, defaults[key]) for key in HELP if key in defaults and key not in skip]
    options += [
        click.option("--config", "config_file", type=click.Path(path_type=Path),
                     help="YAML or JSON file of settings (keys as the flags, without dashes); "
                          "flags given on the command line win."),
        click.option("--output", "-o", type=click.Path(path_type=Path),
                     help="Run directory [default: runs/<task>-<time>]. Run the same command "
                          "again to resume an interrupted run."),
        click.option("--overwrite", is_flag=True,
                     help="Replace what --output holds instead of resuming."),
    ]

    def decorate(command):
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def typed_flags(ctx: click.Context) -> dict:
    """Only the parameters the user typed (not defaults), for `apps.config.resolve`."""
    from click.core import ParameterSource

    return {name: value for name, value in ctx.params.items()
            if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE
            and value is not None}
