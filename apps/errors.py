"""User-facing errors: one clear sentence, a non-zero exit, no traceback."""

import re

import click


class AppError(click.ClickException):
    """Something the user can fix: say what was wrong, where, and what to do."""

    exit_code = 1


class DataError(AppError):
    """A data file or data set that cannot be read or used as it is."""


class ConfigError(AppError):
    """A setting (flag or config file) with a value that cannot work."""

    exit_code = 2


class ModelPathError(AppError):
    """A path that is neither a run directory nor an exported SavedModel."""


# in a graph, then run eagerly (tf.debugging.Assert words them differently)
_ASSERTIONS = (re.compile(r"assertion failed: \[(.+?)\](?:\s|$)", re.DOTALL),
               re.compile(r"Summarized data: b'(.+?)'(?:\s|$)", re.DOTALL))


def graph_assertion(message: str) -> str | None:
    """The sentence of a failed in-graph assertion (`tf.debugging.Assert`), without
    TensorFlow's "Graph execution error ... [Op: __inference_...]" around it; None when
    `message` holds none."""
    for pattern in _ASSERTIONS:
        found = pattern.search(message or "")
        if found:
            return found.group(1).replace("\\'", "'")
    return None
