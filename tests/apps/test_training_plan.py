"""Short runs learn (issue 17 item 7) and a run says where it stands (item 13)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from apps import plots, schedule
from apps.baseline import BaselineWatch, unigram_loss
from apps.lm.task import LanguageModelSettings
from apps.progress import RunProgress, duration
from apps.sentiment.task import TASK as SENTIMENT
from apps.sentiment.task import SentimentSettings
from apps.task import TrainingPlan
from pipelines.inputters import LabelsInputter


def test_warmup_is_at_most_a_tenth_of_the_planned_steps():
    assert schedule.planned_warmup(100, 15) == 1
    assert schedule.planned_warmup(100, 5_000) == 100
    assert schedule.planned_warmup(100, None) == 100  # unknown length: as configured
    settings = LanguageModelSettings(epochs=3, warmup_steps=100, learning_rate=0.01)
    optimizer = schedule.adam(settings, TrainingPlan(None, None, 5))
    optimizer.iterations.assign(2)
    # 3 epochs of 5 steps: the rate is near its peak by step 2, not a fraction of it
    assert float(optimizer.learning_rate) > 0.9 * 0.01


def test_unigram_loss_is_the_best_fixed_answer():
    assert unigram_loss([3, 1]) == pytest.approx(-(0.75 * math.log(0.75)
                                                   + 0.25 * math.log(0.25)))
    counts, vocab, smoothing = np.array([5, 3, 2, 0, 0]), 5, 0.1
    p = counts / counts.sum()
    target = (1 - smoothing) * p + smoothing / vocab

    def loss(q):
        return float(-(target * np.log(q)).sum())

    best = unigram_loss(counts, vocab, smoothing)
    q = (1 - smoothing) * p + smoothing / vocab
    assert best == pytest.approx(loss(q))
    rng = np.random.default_rng(0)
    for _ in range(20):  # any other distribution does worse
        other = q * np.exp(rng.normal(0, 0.2, vocab))
        assert loss(other / other.sum()) > best


def test_sentiment_baseline_is_the_label_entropy():
    labels = LabelsInputter()
    labels.fit(["pos"] * 30 + ["neg"] * 10)
    baseline = SENTIMENT.baseline_loss(SentimentSettings(), {"label": labels}, {})
    assert baseline == pytest.approx(unigram_loss([10, 30]))


def test_a_run_at_the_baseline_after_three_epochs_is_warned_about_once(caplog):
    watch = BaselineWatch(baseline=2.0, epochs=10)
    with caplog.at_level(logging.WARNING):
        watch(1, {"val_loss": 2.5})
        watch(2, {"val_loss": 2.1})
        assert "no better than" not in caplog.text  # too early to tell
        watch(3, {"val_loss": 1.99})
        watch(4, {"val_loss": 1.99})
    assert caplog.text.count("no better than that of a model ignoring its input") == 1
    learning = BaselineWatch(baseline=2.0, epochs=2)  # a 2-epoch run is checked at its end
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        learning(2, {"val_loss": 1.2})
    assert "no better" not in caplog.text


class Clock:
    """A tracker whose training time is whatever the test says."""

    def __init__(self, seconds):
        self.seconds = seconds

    def elapsed(self):
        return self.seconds


def test_the_run_line_says_epoch_time_trained_and_time_left():
    progress = RunProgress(epochs=10, steps=100, time_budget=None, tracker=Clock(60.0))
    assert progress.line(3) == "Epoch 3/10: 1m00s trained, about 4m00s left."
    assert progress.line(3, first_step=50) == \
        "Epoch 3/10, from step 51: 1m00s trained, about 3m00s left."
    assert RunProgress(10, 100, None, Clock(0.0)).line(1) == "Epoch 1/10: 0s trained."
    by_epochs = RunProgress(epochs=4, steps=None, time_budget=None, tracker=Clock(30.0))
    assert by_epochs.line(2) == "Epoch 2/4: 30s trained, about 1m30s left."
    budget = RunProgress(epochs=10, steps=100, time_budget=90.0, tracker=Clock(60.0))
    assert budget.line(3).endswith("about 30s left.")
    assert duration(7322) == "2h02m"


def test_history_plot_shows_the_metric_that_picks_the_epoch_first():
    rows = [{"epoch": 1, "loss": 3.0, "accuracy": 0.2, "val_loss": 2.9, "val_accuracy": 0.2,
             "val_bleu": 1.5, "seconds": 2.0}]
    assert plots.history_panels(rows, "val_bleu") == ["bleu", "accuracy", "loss"]
    assert plots.history_panels(rows) == ["accuracy", "bleu", "loss"]
