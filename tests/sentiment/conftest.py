"""A tiny sentiment run trained once per session on the bundled sample."""

from __future__ import annotations

import pytest

from apps import runner
from apps.sentiment import task


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, sentiment_settings):
    return runner.train(task.TASK, sentiment_settings(), tmp_path_factory.mktemp("runs") / "tiny",
                        verbose=0)


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory, tiny_run):
    """The tiny run exported once: its version directory."""
    return runner.export(task.TASK, tiny_run[0], tmp_path_factory.mktemp("saved_models"))
