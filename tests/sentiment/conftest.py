"""A tiny sentiment run trained once per session on the bundled sample."""

from __future__ import annotations

import pytest

from apps import runner
from apps.sentiment import task

TINY = dict(epochs=8, vocab_size=300, units=32, embedding_dim=32, batch_size=32, seed=1,
            patience=0)


def tiny_settings(sample, **changes):
    files = dict(data=str(sample / "train.tsv"), valid=str(sample / "valid.tsv"))
    return task.SentimentSettings(**{**files, **TINY, **changes})


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, sentiment_sample):
    run_dir, report = runner.train(task.TASK, tiny_settings(sentiment_sample),
                                 tmp_path_factory.mktemp("runs") / "tiny", verbose=0)
    return run_dir, report


@pytest.fixture(scope="session")
def sentiment_settings(sentiment_sample):
    """Settings for a tiny model on the sample, with changes: sentiment_settings(epochs=2)."""
    return lambda **changes: tiny_settings(sentiment_sample, **changes)
