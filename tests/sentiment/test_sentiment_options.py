"""Training options that had no test: --patience, --jit, --members > 1, --pooling last."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import tensorflow as tf

from apps import runner, training
from apps.sentiment import task
from apps.sentiment.model import probabilities


def history(run_dir):
    with open(run_dir / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_patience_stops_when_validation_stops_improving(tmp_path, sentiment_settings):
    # A learning rate this small leaves every prediction as it is: no epoch after the
    # first improves validation accuracy, so --patience 1 stops after the second.
    frozen = dict(epochs=6, learning_rate=1e-9, units=8, embedding_dim=8)
    run_dir, report = runner.train(task.TASK, sentiment_settings(**frozen, patience=1),
                                   tmp_path / "patient", verbose=0)
    assert len(history(run_dir)) == 2 and report["epochs_run"] == 2
    run_dir, report = runner.train(task.TASK, sentiment_settings(**{**frozen, "epochs": 3},
                                                                 patience=0),
                                   tmp_path / "never", verbose=0)
    assert len(history(run_dir)) == 3  # 0: no early stopping


@pytest.mark.long
def test_jit_compiles_the_training_steps(tmp_path, sentiment_settings, monkeypatch):
    asked = []
    real_init = training.TrainingLoop.__init__

    def spy(self, model, strategy, batch_spec, jit_compile=False):
        asked.append(jit_compile)
        real_init(self, model, strategy, batch_spec, jit_compile)

    monkeypatch.setattr(training.TrainingLoop, "__init__", spy)
    losses = {}
    for jit in (False, True):
        # --max-length 8 pads almost every batch to one shape: XLA compiles once per shape
        # (a one-way encoder of 8 units: half the graph to trace and compile)
        settings = sentiment_settings(epochs=1, jit=jit, max_length=8, units=8,
                                      embedding_dim=8, bidirectional=False)
        run_dir, _ = runner.train(task.TASK, settings, tmp_path / f"jit-{jit}", verbose=0)
        losses[jit] = [float(row["loss"]) for row in history(run_dir)]
    assert asked == [False, True]
    # XLA fuses differently, so the last bits differ, but it trains the same model.
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-2)


def test_members_train_side_by_side_and_average(tmp_path, sentiment_settings):
    run_dir, report = runner.train(task.TASK, sentiment_settings(members=2, epochs=1),
                                   tmp_path / "ensemble", verbose=0)
    trained = runner.load(task.TASK, run_dir)
    model = trained.model
    assert len(model.members) == 2
    first, second = (member.weights[0].numpy() for member in model.members)
    assert first.shape == second.shape and not np.allclose(first, second)  # own initialisation
    ids = trained.inputters["text"].preprocess(tf.constant(["a wonderful film",
                                                            "dull and far too long"]))
    logits = model(ids)
    assert logits.shape == (2, 2, 2)  # texts, members, classes
    each = tf.nn.softmax(logits, axis=-1).numpy()
    np.testing.assert_allclose(model.scores(ids).numpy(), each.mean(axis=1), atol=1e-6)
    np.testing.assert_allclose(probabilities(logits).numpy(), each.mean(axis=1), atol=1e-6)
    assert 0.0 <= report["accuracy"] <= 1.0


def test_pooling_last_reads_the_last_real_step(tmp_path, sentiment_settings):
    run_dir, _ = runner.train(task.TASK, sentiment_settings(pooling="last", epochs=1),
                              tmp_path / "last", verbose=0)
    trained = runner.load(task.TASK, run_dir)
    assert trained.model.members[0].pooling.mode == "last"
    text = trained.inputters["text"]
    ids = text.preprocess(tf.constant(["a wonderful film"])).numpy()
    padded = np.pad(ids, [(0, 0), (0, 7)])  # the same text in a longer batch
    alone = trained.model.scores(tf.constant(ids)).numpy()
    np.testing.assert_allclose(trained.model.scores(tf.constant(padded)).numpy(), alone,
                               atol=1e-6)
    other = trained.model.scores(text.preprocess(tf.constant(["a wonderful film, dull"])))
    other = other.numpy()
    assert not np.allclose(other, alone)  # the last step's state decides


