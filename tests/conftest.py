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
