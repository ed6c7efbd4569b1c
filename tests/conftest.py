"""Shared test fixtures: samples the repository carries, and quiet TensorFlow.

Tests run on data in the repository (tests/data, the sentiment sample), so every
clone runs every test; only benchmarks read the data sets in ../shared/data.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

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
