"""A run interrupted and resumed is the run never interrupted, bit for bit: the same
history.csv (but the seconds) and the same weights, for every task kind, interrupted at
an epoch's end or within an epoch (issue 17 item 6, issue 18 item 3)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from resume_helpers import assert_same_run, interrupted_then_resumed

from apps import runner, training
from apps.lm.task import TASK as LM
from apps.sentiment.task import TASK as SENTIMENT
from apps.translation.task import TASK as TRANSLATION
from apps.translation.task import TranslationSettings


@pytest.mark.slow
def test_sentiment_resumed_after_an_epoch_equals_uninterrupted(tmp_path, sentiment_settings,
                                                               monkeypatch):
    settings = sentiment_settings(epochs=2, dropout=0.3, checkpoint_every="off")
    whole = runner.train(SENTIMENT, settings, tmp_path / "whole", verbose=0)[0]
    resumed = interrupted_then_resumed(SENTIMENT, settings, tmp_path / "cut", 1, monkeypatch)
    assert_same_run(whole, resumed)


def test_sentiment_resumed_within_an_epoch_of_a_stream_equals_uninterrupted(
        tmp_path, sentiment_settings, monkeypatch):
    """Epochs of 10 steps over passes of 15 batches; backups every 4 steps: steps 4 and 8,
    the end of epoch 1, step 4 of epoch 2, then step 8 of epoch 2 (batch 3 of the second
    pass), where the cut falls."""
    settings = sentiment_settings(epochs=2, dropout=0.3, steps_per_epoch=10,
                                  checkpoint_every="4steps")
    whole = runner.train(SENTIMENT, settings, tmp_path / "whole", verbose=0)[0]
    resumed = interrupted_then_resumed(SENTIMENT, settings, tmp_path / "cut", 5, monkeypatch)
    assert_same_run(whole, resumed)
    assert [int(r["epoch"]) for r in assert_same_run.rows(whole)] == [1, 2]


def test_stateful_lm_resumed_within_an_epoch_equals_uninterrupted(tmp_path, lm_settings,
                                                                  monkeypatch):
    """The carried recurrent state and the dropout generators are restored mid-stream."""
    settings = lm_settings(epochs=2, units=16, embedding_dim=8, dropout=0.2,
                           checkpoint_every="40steps")
    whole = runner.train(LM, settings, tmp_path / "whole", verbose=0)[0]
    resumed = interrupted_then_resumed(LM, settings, tmp_path / "cut", 4, monkeypatch)
    assert_same_run(whole, resumed)


@pytest.mark.slow
def test_shuffled_lm_resumed_after_an_epoch_equals_uninterrupted(tmp_path, lm_settings,
                                                                 monkeypatch):
    settings = lm_settings(epochs=2, units=16, embedding_dim=8, stateful=False,
                           checkpoint_every="off")
    whole = runner.train(LM, settings, tmp_path / "whole", verbose=0)[0]
    resumed = interrupted_then_resumed(LM, settings, tmp_path / "cut", 1, monkeypatch)
    assert_same_run(whole, resumed)


def digit_pairs(path: Path, count: int, seed: int) -> Path:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        digits = [str(rng.randrange(10)) for _ in range(rng.randint(2, 5))]
        rows.append(f"{' '.join(digits)}\t{' '.join(reversed(digits))}\n")
    path.write_text("source\ttarget\n" + "".join(rows))
    return path


@pytest.mark.slow
def test_translation_resumed_after_an_epoch_equals_uninterrupted(tmp_path, monkeypatch):
    settings = TranslationSettings(
        data=str(digit_pairs(tmp_path / "train.tsv", 160, 0)),
        valid=str(digit_pairs(tmp_path / "valid.tsv", 20, 1)), tokenizer="word",
        vocab_size=20, units=8, embedding_dim=8, batch_size=16, epochs=2, dropout=0.2,
        learning_rate=1e-2, warmup_steps=5, checkpoint_every="off", seed=3)
    whole = runner.train(TRANSLATION, settings, tmp_path / "whole", verbose=0)[0]
    resumed = interrupted_then_resumed(TRANSLATION, settings, tmp_path / "cut", 1,
                                       monkeypatch)
    assert_same_run(whole, resumed)
    assert "val_bleu" in assert_same_run.rows(whole)[0]


def test_pass_seeds_differ_by_pass_and_seed_and_repeat():
    seeds = {training.pass_seed(seed, p) for seed in (1, 2) for p in range(50)}
    assert len(seeds) == 100
    assert training.pass_seed(7, 3) == training.pass_seed(7, 3)
