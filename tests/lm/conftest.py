"""A tiny character model trained once per session on a real slice of Tiny Shakespeare."""

from __future__ import annotations

import pytest

from apps.lm import task

TINY = dict(tokenizer="char", units=48, embedding_dim=24, batch_size=8, sequence_length=32,
            epochs=3, learning_rate=1e-2, warmup_steps=10, seed=1)


@pytest.fixture(scope="session")
def shakespeare(shared_data):
    folder = shared_data / "lm" / "tinyshakespeare"
    return (folder / "train.txt").read_text(encoding="utf-8"), \
        (folder / "valid.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def corpus(tmp_path_factory, shakespeare):
    """(train.txt, valid.txt): 40,000 and 8,000 characters, cut at line ends."""
    train, valid = shakespeare
    folder = tmp_path_factory.mktemp("corpus")
    paths = folder / "train.txt", folder / "valid.txt"
    paths[0].write_text(train[: train.index("\n", 40_000) + 1], encoding="utf-8")
    paths[1].write_text(valid[: valid.index("\n", 8_000) + 1], encoding="utf-8")
    return paths


def tiny_settings(corpus, **changes):
    files = dict(data=str(corpus[0]), valid=str(corpus[1]))
    return task.LanguageModelSettings(**{**files, **TINY, **changes})


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, corpus):
    run_dir, report = task.train(tiny_settings(corpus),
                                 tmp_path_factory.mktemp("runs") / "tiny", verbose=0)
    return run_dir, report


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory, tiny_run):
    return task.export(tiny_run[0], tmp_path_factory.mktemp("saved_models"))


@pytest.fixture(scope="session")
def lm_settings(corpus):
    """Settings for the tiny model on the corpus slice, with changes: lm_settings(units=8)."""
    return lambda **changes: tiny_settings(corpus, **changes)
