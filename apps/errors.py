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


def carried_by_tensorflow(error: Exception) -> AppError | None:
    """The AppError a tf.data pipeline's Python reader raised (a file that vanished
    while training read it), which TensorFlow hands on wrapped in an op error: its
    sentence, without TensorFlow's frame."""
    match = re.search(r"\b(\w*(?:Error|Changed)): (.+?)\n", str(error) + "\n")
    if match is None or not hasattr(error, "op") or match.group(1) not in _error_classes():
        return None
    return _error_classes()[match.group(1)](match.group(2).strip())


def _error_classes() -> dict[str, type]:
    """AppError and its subclasses by name (read when needed: subclasses live elsewhere)."""
    found, pending = {}, [AppError]
    while pending:
        kind = pending.pop()
        found[kind.__name__] = kind
        pending.extend(kind.__subclasses__())
    return found
