"""User-facing errors: one clear sentence, a non-zero exit, no traceback."""

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


def carried_by_tensorflow(error: Exception) -> AppError | None:
    """The AppError a tf.data pipeline's Python reader raised (a file that vanished
    while training read it), which TensorFlow hands on wrapped in an op error: its
    sentence, without TensorFlow's frame."""
    import re

    match = re.search(r"\b(\w*(?:Error|Changed)): (.+?)\n", str(error) + "\n")
    if match is None or not hasattr(error, "op") or match.group(1) not in _BY_NAME():
        return None
    return _BY_NAME()[match.group(1)](match.group(2).strip())


def _BY_NAME() -> dict[str, type]:  # noqa: N802 - a lookup table, read lazily
    found, pending = {}, [AppError]
    while pending:
        kind = pending.pop()
        found[kind.__name__] = kind
        pending.extend(kind.__subclasses__())
    return found
