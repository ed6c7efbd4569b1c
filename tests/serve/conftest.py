"""Real SavedModels for the serving tests: one tiny sentiment run, exported once a session."""

from __future__ import annotations

import shutil

import pytest

from apps import runner
from apps.sentiment import task

TINY = dict(epochs=1, units=8, embedding_dim=8, vocab_size=100, bidirectional=False)


@pytest.fixture(scope="session")
def serve_run(tmp_path_factory, sentiment_sample):
    """A one-epoch sentiment run directory (the model need not be good, only real)."""
    settings = task.SentimentSettings(
        data=str(sentiment_sample / "train.tsv"), valid=str(sentiment_sample / "valid.tsv"), **TINY
    )
    output = tmp_path_factory.mktemp("serve") / "run"
    run_dir, _ = runner.train(task.TASK, settings, output=output, verbose=0)
    return run_dir


@pytest.fixture(scope="session")
def exported(tmp_path_factory, serve_run):
    """`BASE` holding `sentiment/1` exported from the run (read-only for tests)."""
    base = tmp_path_factory.mktemp("saved_models")
    runner.export(task.TASK, serve_run, base, "sentiment")
    return base


@pytest.fixture
def model_base(tmp_path, exported):
    """A private copy of the exported base that a test may change (new versions, junk)."""
    base = tmp_path / "saved_models"
    shutil.copytree(exported, base)
    return base


@pytest.fixture(scope="session")
def in_process(exported):
    """The exported `serving_default` called directly: the answer both protocols must give."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    signature = tf.saved_model.load(str(exported / "sentiment" / "1")).signatures["serving_default"]

    def call(texts):
        return {k: v.numpy() for k, v in signature(text=tf.constant(texts)).items()}

    return call


@pytest.fixture(scope="session")
def served(exported):
    """One server over the session's export for tests that only read."""
    from serve_helpers import ServerThread, options

    with ServerThread(options(exported, body_limit=64 * 1024)) as server:
        yield server
