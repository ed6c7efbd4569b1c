"""Shared test fixtures: the real data sets in ../shared/data, and quiet TensorFlow."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
SAMPLE = ROOT / "apps" / "sentiment" / "sample"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or a skip saying why when this checkout has none beside it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data sets not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sentiment_sample() -> Path:
    """The bundled sample (train.tsv, valid.tsv) that `make quickstart` trains on."""
    return SAMPLE
