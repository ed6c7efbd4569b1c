"""Fixtures for the speech tests: a synthetic corpus, one tiny trained run, its export."""

from __future__ import annotations

from pathlib import Path

import pytest
from speech_helpers import TINY, write_corpus


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """Training (120 recordings) and test (30) manifests."""
    folder = tmp_path_factory.mktemp("sounds")
    return {"train": write_corpus(folder, 120, 1, name="train.csv"),
            "test": write_corpus(folder, 30, 2, name="test.csv")}


@pytest.fixture(scope="session")
def speech_settings(corpus):
    from apps.speech.task import SpeechSettings

    return lambda **changes: SpeechSettings(**{"data": str(corpus["train"]), **TINY,
                                               **changes})


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, speech_settings):
    """One tiny recogniser trained on the synthetic sounds (about 10 s)."""
    from apps import runner
    from apps.speech.task import TASK

    output = tmp_path_factory.mktemp("speech") / "run"
    run_dir, report = runner.train(TASK, speech_settings(), output, verbose=0)
    return run_dir, report


@pytest.fixture(scope="session")
def exported(tmp_path_factory, tiny_run):
    from apps import runner
    from apps.speech.task import TASK

    base = tmp_path_factory.mktemp("saved_models")
    return runner.export(TASK, tiny_run[0], base, "speech")
