"""A tiny character model trained once per session on a slice of Tiny Shakespeare."""

from __future__ import annotations

import pytest

from apps import runner
from apps.lm import task

TINY = dict(tokenizer="char", units=48, embedding_dim=24, batch_size=8, sequence_length=32,
            epochs=3, learning_rate=1e-2, warmup_steps=10, seed=1)


@pytest.fixture(scope="session")
def corpus(shakespeare_files):
    """(train.txt, valid.txt): 40,000 and 8,000 characters of Tiny Shakespeare."""
    return shakespeare_files


def tiny_settings(corpus, **changes):
    files = dict(data=str(corpus[0]), valid=str(corpus[1]))
    return task.LanguageModelSettings(**{**files, **TINY, **changes})


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, corpus):
    run_dir, report = runner.train(task.TASK, tiny_settings(corpus),
                                 tmp_path_factory.mktemp("runs") / "tiny", verbose=0)
    return run_dir, report


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory, tiny_run):
    return runner.export(task.TASK, tiny_run[0], tmp_path_factory.mktemp("saved_models"))


@pytest.fixture(scope="session")
def lm_settings(corpus):
    """Settings for the tiny model on the corpus slice, with changes: lm_settings(units=8)."""
    return lambda **changes: tiny_settings(corpus, **changes)
