"""The sentiment app end to end: learns, writes its run directory, exports, round-trips."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import tensorflow as tf

from apps import runner, training
from apps.errors import DataError, ModelPathError
from apps.sentiment import task
from apps.task import TrainingPlan
from pipelines.sources import read_labeled_file

TEXTS = ["What a wonderful film, I loved every minute.", "Dull and far too long.", "",
         "Not boring at all: the cast was superb.", "Ünïcödé 😀 and\ttabs"]


def test_a_tiny_model_learns_the_sample(tiny_run):
    run_dir, report = tiny_run
    assert report["accuracy"] > 0.9  # chance is 0.5
    run = training.RunDirectory(run_dir)
    for path in (run.config, run_dir / "tokenizer.model", run_dir / "labels.json",
                 run.best_weights, run.metrics,
                 run.plots / "history.png", run.plots / "confusion.png"):
        assert path.is_file(), path
    assert not run.backup.exists()  # finished: no resume state left
    assert any(run.logs.rglob("*tfevents*"))
    labels = json.loads((run_dir / "labels.json").read_text())
    assert labels["labels"] == ["negative", "positive"] and sum(labels["counts"]) == 400
    rows = list(csv.DictReader(run.history.open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 9))
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "seconds"} <= set(rows[0])
    best = max(range(8), key=lambda i: float(rows[i]["val_accuracy"]))
    assert report["best_epoch"] == best + 1  # epochs are numbered from 1


def test_evaluate_reports_the_validation_numbers(tiny_run, sentiment_sample):
    run_dir, report = tiny_run
    again = runner.evaluate(task.TASK, run_dir, str(sentiment_sample / "valid.tsv"))
    assert again["accuracy"] == pytest.approx(report["accuracy"])
    assert sum(map(sum, again["confusion_matrix"])) == again["examples"] == 100
    assert set(again["per_class"]) == {"negative", "positive"}


def test_export_round_trip_gives_predict_labels(tiny_run, tmp_path, sentiment_sample):
    run_dir, _ = tiny_run
    version = runner.export(task.TASK, run_dir, tmp_path, "sentiment")
    assert version == tmp_path / "sentiment" / "1"
    assert not [p for p in (tmp_path / "sentiment").iterdir() if p.name != "1"]
    assert "name: 'sentiment'" in (tmp_path / "models.config").read_text()
    metadata = json.loads((version / "assets" / "metadata.json").read_text())
    assert metadata["task"] == "sentiment" and metadata["labels"] == ["negative", "positive"]

    signature = tf.saved_model.load(str(version)).signatures["serving_default"]
    (spec,) = signature.structured_input_signature[1].values()
    assert spec.dtype == tf.string and spec.shape.as_list() == [None]
    outputs = signature(text=tf.constant(TEXTS))
    assert outputs["label"].dtype == tf.string and outputs["label_id"].dtype == tf.int64
    assert outputs["scores"].dtype == tf.float32 and outputs["scores"].shape == (len(TEXTS), 2)

    texts = TEXTS + read_labeled_file(sentiment_sample / "valid.tsv").texts
    from_run = task.predict(run_dir, texts)
    from_export = task.predict(tmp_path / "sentiment", texts)  # base dir: newest version
    assert [r["label"] for r in from_run] == [r["label"] for r in from_export]
    np.testing.assert_allclose([list(r["scores"].values()) for r in from_run],
                               [list(r["scores"].values()) for r in from_export], atol=1e-4)
    assert runner.export(task.TASK, run_dir, tmp_path, "sentiment").name == "2"


def test_resume_keeps_optimizer_state_and_best_score(tmp_path, sentiment_settings):
    """A restart continues the optimizer's step count and keeps the best score so far."""
    settings = sentiment_settings(epochs=2)
    output = tmp_path / "run"
    runner.train(task.TASK, settings, output, verbose=0)
    run = training.RunDirectory(output)
    first = list(csv.DictReader(run.history.open()))
    # Make the finished run look interrupted after epoch 2, as kill -9 would leave it.
    run.metrics.unlink()
    state = {"epoch": 2, "step": 0, "position": {"pass": 2, "batch": 0},
             "weights": "w.weights.h5", "arrays": "s.npz",
             "monitor": "val_accuracy", "best": 0.99, "best_epoch": 1, "bad_epochs": 1,
             "seconds": 1.0, "history": [dict(r, epoch=int(r["epoch"])) for r in first]}
    inputters = task.TASK.make_inputters(settings)
    for inputter in inputters.values():
        inputter.load(run.path)
    train_data, valid_data = task.TASK.datasets(settings, inputters,
                                                *task.TASK.read_training_data(settings))
    plan = TrainingPlan(train_data(0), valid_data, None)
    model = task.TASK.build_model(settings, inputters)
    model.load_weights(run.best_weights)
    task.TASK.compile_model(model, settings, plan)
    training.TrainingLoop(model, tf.distribute.get_strategy(), next(iter(train_data(0))))
    model.optimizer.iterations.assign(1234)
    run.backup.mkdir()
    model.save_weights(run.backup / "w.weights.h5")
    np.savez(run.backup / "s.npz", **training.state_arrays(model))
    training.write_json(run.state, state)

    resumed = task.TASK.build_model(settings, inputters)
    task.TASK.compile_model(resumed, settings, plan)
    tracker = training.fit(resumed, train_data, valid_data, run, epochs=3,
                           monitor="val_accuracy", mode="max", resume=True, verbose=0)
    steps_per_epoch = 13  # 400 examples / 32, bucketed batches may add a few
    with np.load(run.backup / "epoch-3-step-0.state.npz") as saved:  # after the resumed epoch
        iterations = int(saved["0000"])
    assert 1234 + steps_per_epoch <= iterations <= 1234 + 20
    assert [row["epoch"] for row in tracker.rows] == [1, 2, 3]
    assert tracker.best >= 0.99  # the best score survived the restart


def test_many_classes_with_any_names(tmp_path):
    rows = [(f"{word} {i}", label) for i in range(40)
            for word, label in (("sunny", "weather/☀"), ("goal", "sport"), ("vote", "politics"))]
    path = tmp_path / "three.tsv"
    path.write_text("text\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in rows))
    settings = task.SentimentSettings(data=str(path), epochs=6, vocab_size=60, units=16,
                                      embedding_dim=16, learning_rate=0.01)
    run_dir, report = runner.train(task.TASK, settings, tmp_path / "run", verbose=0)
    assert report["labels"] == ["politics", "sport", "weather/☀"]
    assert report["accuracy"] > 0.9
    assert task.predict(run_dir, ["sunny 3"])[0]["label"] == "weather/☀"


def test_bad_inputs_leave_no_run_directory(tmp_path, sentiment_sample, sentiment_settings):
    one_class = tmp_path / "one.tsv"
    one_class.write_text("text\tlabel\na\tpos\nb\tpos\nc\tpos\n")
    with pytest.raises(DataError, match="single label"):
        runner.train(task.TASK, sentiment_settings(data=str(one_class), valid=None),
                   tmp_path / "run", verbose=0)
    unseen = tmp_path / "unseen.tsv"
    unseen.write_text("text\tlabel\na\tneutral\n")
    with pytest.raises(DataError, match="label\\(s\\) the training data lacks"):
        runner.train(task.TASK, sentiment_settings(valid=str(unseen)),
                     tmp_path / "run", verbose=0)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ModelPathError, match="neither a training run"):
        task.predict(tmp_path, ["text"])


@pytest.mark.parametrize("has_validation", [True, False])
def test_valid_tfds_name_without_split_reads_validation_never_test(has_validation, caplog):
    """The best epoch must not be picked on the split the user will report."""
    import tensorflow_datasets as tfds

    asked = []

    def splits(builder, split, **_):
        asked.append(str(split))
        if str(split) == "validation" and not has_validation:
            raise ValueError("Unknown split 'validation'. Should be one of ['test', 'train'].")
        texts = [("great film " if i % 2 else "awful film ") + str(i) for i in range(40)]
        return tf.data.Dataset.from_tensor_slices({"text": texts, "label": [i % 2 for i in
                                                                            range(40)]})

    settings = task.SentimentSettings(data="tfds:imdb_reviews", valid="tfds:imdb_reviews")
    with tfds.testing.mock_data(as_dataset_fn=splits), caplog.at_level("WARNING"):
        train, valid = task.TASK.read_training_data(settings)
    assert "test" not in asked and asked[:2] == ["train", "validation"]
    if has_validation:
        assert len(train["text"]) == len(valid["text"]) == 40
    else:  # held out from training instead, and said so
        assert (len(train["text"]), len(valid["text"])) == (36, 4)
        assert any("has no 'validation' split" in r.getMessage() for r in caplog.records)
        assert not set(valid["text"]) & set(train["text"])


def test_same_seed_same_data_same_weights(tmp_path, sentiment_sample, sentiment_settings):
    """--seed's promise, bit for bit (op determinism is on while training)."""
    settings = sentiment_settings(epochs=2, dropout=0.3)
    weights = []
    for name in ("a", "b"):
        run_dir, _ = runner.train(task.TASK, settings, tmp_path / name, verbose=0)
        weights.append(runner.load(task.TASK, run_dir).model.get_weights())
    for first, second in zip(*weights):
        np.testing.assert_array_equal(first, second)
    other, _ = runner.train(task.TASK, sentiment_settings(epochs=2, seed=2),
                            tmp_path / "c", verbose=0)
    assert not np.array_equal(runner.load(task.TASK, other).model.get_weights()[0],
                              weights[0][0])


def test_the_best_epoch_may_be_chosen_by_a_task_metric_computed_after_each_epoch(
        tmp_path, sentiment_settings):
    """What translation (BLEU) and speech (WER) need: a metric of the decoder, not a loss."""
    scores = iter([0.2, 0.9, 0.4])

    class Picky(task.SentimentTask):
        monitor, monitor_mode = "val_picky", "max"

        def validation_metrics(self, trained, valid):
            assert trained.model is not None and len(valid["text"]) == 100
            return {"val_picky": next(scores)}

    run_dir, report = runner.train(Picky(), sentiment_settings(epochs=3), tmp_path / "run",
                                   verbose=0)
    rows = list(csv.DictReader((run_dir / "history.csv").open()))
    assert [float(r["val_picky"]) for r in rows] == [0.2, 0.9, 0.4]
    assert report["best_epoch"] == 2
