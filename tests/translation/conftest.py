"""A tiny real translation task: reverse short digit strings ("3 1 4" -> "4 1 3").

Made in temporary directories as a prefix pair (train.src / train.tgt), so the tests
read it the way users read Multi30k. One tiny translator is trained once a session.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from apps import runner
from apps.translation import task

TINY = dict(source_lang="src", target_lang="tgt", tokenizer="word", vocab_size=20, units=32,
            embedding_dim=32, batch_size=32, learning_rate=1e-2, dropout=0.0,
            label_smoothing=0.0, warmup_steps=10, seed=1)


def reversed_digits(count: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    sources = [" ".join(str(rng.randrange(10)) for _ in range(rng.randint(3, 6)))
               for _ in range(count)]
    return sources, [" ".join(reversed(s.split())) for s in sources]


def write_pair(prefix: Path, sources, targets, source_lang="src", target_lang="tgt") -> Path:
    Path(f"{prefix}.{source_lang}").write_text("".join(s + "\n" for s in sources),
                                               encoding="utf-8")
    Path(f"{prefix}.{target_lang}").write_text("".join(t + "\n" for t in targets),
                                               encoding="utf-8")
    return prefix


@pytest.fixture(scope="session")
def digits(tmp_path_factory) -> dict[str, Path]:
    """Prefixes of 800 training, 60 validation and 60 test pairs."""
    folder = tmp_path_factory.mktemp("digits")
    return {name: write_pair(folder / name, *reversed_digits(count, seed))
            for name, count, seed in (("train", 800, 0), ("valid", 60, 1), ("test", 60, 2))}


@pytest.fixture(scope="session")
def translation_settings(digits):
    """Settings for a tiny translator on the digits: translation_settings(epochs=1)."""
    files = dict(data=str(digits["train"]), valid=str(digits["valid"]))
    return lambda **changes: task.TranslationSettings(**{**files, **TINY, "epochs": 8,
                                                         **changes})


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, translation_settings):
    """(run directory, validation report) of a Bahdanau GRU trained for 8 short epochs."""
    return runner.train(task.TASK, translation_settings(),
                        tmp_path_factory.mktemp("runs") / "digits", verbose=0)


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory, tiny_run):
    """The tiny run exported with beam size 3: (base path, version path)."""
    base = tmp_path_factory.mktemp("saved_models")
    return base, runner.export(task.TASK, tiny_run[0], base, beam_size=3)
