"""--keep-epochs keeps the last epochs' weights; --average-last exports their mean."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from apps.averaging import average_last
from apps.errors import AppError
from apps.training import ResumableTraining, RunDirectory


def tiny_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(2)])
    return model


def test_kept_epochs_are_the_last_ones_and_their_average_is_the_mean(tmp_path):
    run = RunDirectory(tmp_path)
    run.checkpoints.mkdir()
    tracker = ResumableTraining(run, "val_loss", "min")
    tracker.keep_epochs = 2
    model, rng = tiny_model(), np.random.default_rng(0)
    saved = {}
    for epoch in (1, 2, 3):
        model.set_weights([rng.normal(size=w.shape).astype("float32")
                           for w in model.get_weights()])
        saved[epoch] = model.get_weights()
        tracker.keep_epoch(model, epoch)
    assert run.kept_epochs() == [2, 3]
    assert average_last(model, run, 2) == [2, 3]
    for got, a, b in zip(model.get_weights(), saved[2], saved[3]):
        np.testing.assert_allclose(got, (a + b) / 2, rtol=1e-6)
    assert average_last(model, run, 1) == [3]
    for got, last in zip(model.get_weights(), saved[3]):
        np.testing.assert_array_equal(got, last)
    with pytest.raises(AppError, match=r"keeps 2 \(2, 3\): train with --keep-epochs 3"):
        average_last(model, run, 3)


def test_a_run_keeps_its_last_epochs_and_exports_their_average(sentiment_settings, tmp_path):
    import json

    from apps import runner
    from apps.sentiment import task

    run_dir, _ = runner.train(task.TASK, sentiment_settings(epochs=3, keep_epochs=2),
                              tmp_path / "run", verbose=0)
    assert RunDirectory(run_dir).kept_epochs() == [2, 3]
    version = runner.export(task.TASK, run_dir, tmp_path / "models", average_last=2)
    metadata = json.loads((version / "assets" / "metadata.json").read_text())
    assert metadata["averaged_epochs"] == [2, 3]
    with pytest.raises(AppError, match="--average-last 3"):
        runner.export(task.TASK, run_dir, tmp_path / "models", average_last=3)
    assert sorted(p.name for p in (tmp_path / "models" / "sentiment").iterdir()
                  if p.name.isdigit()) == ["1"]  # the refused export left nothing
