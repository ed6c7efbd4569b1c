"""A tiny character model trained once per session on a slice of Tiny Shakespeare."""

from __future__ import annotations

import pytest

from apps import runner
from apps.lm import task


@pytest.fixture(scope="session")
def corpus(shakespeare_files):
    """(train.txt, valid.txt): 40,000 and 8,000 characters of Tiny Shakespeare."""
    return shakespeare_files


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, lm_settings):
    return runner.train(task.TASK, lm_settings(), tmp_path_factory.mktemp("runs") / "tiny",
                        verbose=0)


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory, tiny_run):
    return runner.export(task.TASK, tiny_run[0], tmp_path_factory.mktemp("saved_models"))
