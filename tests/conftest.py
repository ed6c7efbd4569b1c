"""Shared test fixtures: samples the repository carries, and quiet TensorFlow.

Tests run on data in the repository (tests/data, the sentiment sample), so every
clone runs every test; only benchmarks read the data sets in ../shared/data.

`make test` runs the suite on two pytest-xdist workers (`-n 2 --dist loadgroup`).
Each worker is given one TensorFlow thread per op, so two workers do not fight over
two cores; the tests that share a trained model (a session or module fixture) are
sent to one worker together, so each model is trained once (`pytest_collection_modifyitems`;
tests/worker_groups.py hands the groups to xdist's scheduler, which pytest 9.2 and
pytest-xdist 3.8 no longer do by themselves).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if os.environ.get("PYTEST_XDIST_WORKER"):  # set before TensorFlow is imported
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
SAMPLE = ROOT / "apps" / "sentiment" / "sample"


@pytest.fixture(scope="session")
def sentiment_sample() -> Path:
    """The bundled sample (train.tsv, valid.tsv) that `make quickstart` trains on."""
    return SAMPLE


@pytest.fixture(scope="session")
def shakespeare_files() -> tuple[Path, Path]:
    """40,000 and 8,000 characters of Tiny Shakespeare (public domain), cut at line ends."""
    return DATA / "shakespeare_train.txt", DATA / "shakespeare_valid.txt"


@pytest.fixture(scope="session")
def shakespeare(shakespeare_files) -> tuple[str, str]:
    return tuple(path.read_text(encoding="utf-8") for path in shakespeare_files)


SENTIMENT_TINY = dict(epochs=8, vocab_size=300, units=32, embedding_dim=32, batch_size=32, seed=1,
                      patience=0)
LM_TINY = dict(tokenizer="char", units=48, embedding_dim=24, batch_size=8, sequence_length=32,
               epochs=3, learning_rate=1e-2, warmup_steps=10, seed=1)


@pytest.fixture(scope="session")
def sentiment_settings(sentiment_sample):
    """Settings for a tiny classifier on the sample, with changes: sentiment_settings(epochs=2)."""
    from apps.sentiment.task import SentimentSettings

    files = dict(data=str(sentiment_sample / "train.tsv"),
                 valid=str(sentiment_sample / "valid.tsv"))
    return lambda **changes: SentimentSettings(**{**files, **SENTIMENT_TINY, **changes})


@pytest.fixture(scope="session")
def lm_settings(shakespeare_files):
    """Settings for a tiny character model on the Shakespeare slice: lm_settings(units=8)."""
    from apps.lm.task import LanguageModelSettings

    files = dict(data=str(shakespeare_files[0]), valid=str(shakespeare_files[1]))
    return lambda **changes: LanguageModelSettings(**{**files, **LM_TINY, **changes})


def pytest_configure(config):
    """Groups that hold under xdist whatever the pytest version (tests/worker_groups.py)."""
    import worker_groups

    worker_groups.register(config)


# Session fixtures that train models for many seconds. (The serving tests' one-epoch
# sentiment export is cheaper to make on each worker than to keep its ~90 tests on one.)
SHARED_MODELS = {"tiny_run", "tiny_run_logged", "tiny_export", "all_kinds", "kinds_server"}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    """Under xdist, tests that use the same costly fixture instance run on one worker.

    Two tests belong together when they use the same session fixture of SHARED_MODELS
    (the same definition: each task folder has its own `tiny_run`) or the same module
    fixture in the same file; togetherness is transitive, and each group becomes one
    `xdist_group`. Tests that share nothing go to whichever worker is free, the slow
    ones first.
    """
    if not config.pluginmanager.hasplugin("xdist"):
        return
    parent: dict = {}

    def root(key):
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    keys_of = {}
    for item in items:
        keys = []
        for name, definitions in item._fixtureinfo.name2fixturedefs.items():
            definition = definitions[-1]
            if definition.scope == "session" and name in SHARED_MODELS:
                keys.append(("session", id(definition)))
            elif definition.scope == "module":
                keys.append(("module", id(definition), str(item.path)))
        for key in keys[1:]:
            parent[root(key)] = root(keys[0])
        keys_of[item] = keys
    names: dict = {}
    for item, keys in keys_of.items():
        if keys:
            group = names.setdefault(root(keys[0]), f"{item.path.parent.name}-{len(names)}")
            item.add_marker(pytest.mark.xdist_group(group))
    # xdist hands out the groups largest first, then single tests in this order: the
    # slow ones (end-to-end runs in fresh processes), then the other long ones (marked
    # `long`), so that the run ends on short tests and no worker is left alone with a
    # long one.
    items.sort(key=lambda item: (item.get_closest_marker("slow") is None,
                                 item.get_closest_marker("long") is None))
