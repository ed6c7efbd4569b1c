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
