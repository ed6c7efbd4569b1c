"""A tiny sentiment run trained once per session on the bundled sample."""

from __future__ import annotations

import contextlib
import io

import pytest

from apps import runner
from apps.sentiment import task


@pytest.fixture(scope="session")
def tiny_run_printed(tmp_path_factory, sentiment_settings):
    """((run directory, report), what training printed): one run, trained verbosely."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        run = runner.train(task.TASK, sentiment_settings(),
                           tmp_path_factory.mktemp("runs") / "tiny", verbose=1)
    return run, printed.getvalue()


@pytest.fixture(scope="session")
def tiny_run(tiny_run_printed):
    return tiny_run_printed[0]


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory, tiny_run):
    """The tiny run exported once: its version directory."""
    return runner.export(task.TASK, tiny_run[0], tmp_path_factory.mktemp("saved_models"))
