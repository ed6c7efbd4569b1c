"""A tiny sentiment run trained once per session on the bundled sample."""

from __future__ import annotations

import contextlib
import io
import logging

import pytest

from apps import runner
from apps.sentiment import task


@contextlib.contextmanager
def debug_records(name: str):
    """The log records of logger `name`, DEBUG included, while the block runs."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    logger, level = logging.getLogger(name), logging.getLogger(name).level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture(scope="session")
def tiny_run_logged(tmp_path_factory, sentiment_settings):
    """((run directory, report), what training printed, the training loop's log records):
    one run, trained verbosely."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), debug_records("apps.training") as records:
        run = runner.train(task.TASK, sentiment_settings(),
                           tmp_path_factory.mktemp("runs") / "tiny", verbose=1)
    return run, printed.getvalue(), records


@pytest.fixture(scope="session")
def tiny_run_printed(tiny_run_logged):
    """((run directory, report), what training printed)."""
    return tiny_run_logged[:2]


@pytest.fixture(scope="session")
def tiny_run(tiny_run_printed):
    return tiny_run_printed[0]


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory, tiny_run):
    """The tiny run exported once: its version directory."""
    return runner.export(task.TASK, tiny_run[0], tmp_path_factory.mktemp("saved_models"))
