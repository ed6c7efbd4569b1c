"""Sentiment classification: train, evaluate, predict and export as a plain Python API.

`apps.sentiment.cli` parses flags and calls these functions; tests and notebooks can
call them directly.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from apps import export as exporting
from apps import plots, training
from apps.config import require, to_dict
from apps.errors import DataError
from apps.layers import POOLINGS
from apps.layout import locate_model
from apps.metrics import classification_report
from apps.sentiment.model import build, ensemble_accuracy, member_loss, probabilities
from apps.settings import CommonSettings
from pipelines import batching, sources
from pipelines.tokenizer import PAD_ID, Tokenizer

log = logging.getLogger(__name__)
TASK = "sentiment"


@dataclass
class SentimentSettings(CommonSettings):
    """Everything `apps sentiment train` can be told; saved as the run's config.json."""

    data: str = "tfds:imdb_reviews"
    valid: str | None = None
    text_column: str | None = None
    label_column: str | None = None
    valid_fraction: float = 0.1
    max_length: int = 256
    pooling: str = "max"
    members: int = 1
    dropout: float = 0.3  # small labelled sets overfit within a few epochs
    patience: int = 3

    def validate(self) -> None:
        super().validate()
        require(self.members >= 1, "members", "a positive whole number", self.members)
        require(self.pooling in POOLINGS, "pooling", f"one of {', '.join(POOLINGS)}",
                self.pooling)
        require(self.max_length >= 1, "max_length", "a positive whole number", self.max_length)
        require(0.0 < self.valid_fraction < 1.0, "valid_fraction", "in (0, 1)",
                self.valid_fraction)


# ------------------------------------------------------------------------------ data


def read_splits(settings: SentimentSettings) -> tuple[sources.LabeledTexts, sources.LabeledTexts]:
    """Training and validation texts; without --valid, a seeded share of the training data."""
    train = sources.read_labeled(settings.data, settings.text_column, settings.label_column)
    if settings.valid:
        valid = sources.read_labeled(settings.valid, settings.text_column,
                                     settings.label_column, default_split="test")
        return train, valid
    order = list(range(len(train)))
    random.Random(settings.seed).shuffle(order)
    cut = max(1, round(len(order) * settings.valid_fraction))
    if len(order) - cut < 2:
        raise DataError(f"'{settings.data}' has too few rows ({len(order)}) to hold some out "
                        "for validation: add data or pass --valid.")
    pick = lambda rows: sources.LabeledTexts([train.texts[i] for i in rows],  # noqa: E731
                                             [train.labels[i] for i in rows])
    return pick(order[cut:]), pick(order[:cut])


def label_names(train: sources.LabeledTexts, valid: sources.LabeledTexts, settings) -> list[str]:
    labels = sorted(set(train.labels))
    if len(labels) < 2:
        raise DataError(f"'{settings.data}' has a single label ({labels[0]!r}): a classifier "
                        "needs at least two classes.")
    unseen = sorted(set(valid.labels) - set(labels))
    if unseen:
        raise DataError(f"The validation data has label(s) the training data lacks: "
                        f"{', '.join(map(repr, unseen[:5]))}.")
    return labels


def label_ids(labels: list[str], names: list[str], source: str) -> np.ndarray:
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise DataError(f"'{source}' has label(s) the model does not know: "
                        f"{', '.join(map(repr, unknown[:5]))} (it knows {', '.join(names)}).")
    return np.array([index[label] for label in labels], dtype=np.int32)


# ---------------------------------------------------------------------------- training


def compile_model(model: keras.Model, settings: SentimentSettings) -> None:
    optimizer = keras.optimizers.Adam(settings.learning_rate, global_clipnorm=settings.clip_norm)
    accuracy = keras.metrics.MeanMetricWrapper(ensemble_accuracy, name="accuracy")
    model.compile(optimizer=optimizer, loss=member_loss, metrics=[accuracy], jit_compile=False)


def train(settings: SentimentSettings, output: Path | None = None, overwrite: bool = False,
          verbose: int = 1) -> tuple[Path, dict]:
    """Train a classifier; return the run directory and its validation metrics."""
    output = Path(output or f"runs/{TASK}-{time.strftime('%Y%m%d-%H%M%S')}")
    config = {"task": TASK, **to_dict(settings)}
    run, resuming = training.open_run(output, config, overwrite)
    train_texts, valid_texts = read_splits(settings)
    labels = label_names(train_texts, valid_texts, settings)
    training.set_seed(settings.seed)
    with training.created_run(run, overwrite, resuming):
        if resuming:
            tokenizer = Tokenizer.load(run.tokenizer)
        else:
            tokenizer = Tokenizer.train(train_texts.texts, settings.tokenizer,
                                        settings.vocab_size, total=len(train_texts))
            tokenizer.save(run.tokenizer)
            training.write_json(run.config, config)
            training.write_json(run.labels, labels)
        encode = lambda texts: batching.truncate(tokenizer.encode(texts),  # noqa: E731
                                                 settings.max_length)
        train_ids, valid_ids = encode(train_texts.texts), encode(valid_texts.texts)
        train_y = label_ids(train_texts.labels, labels, settings.data)
        valid_y = label_ids(valid_texts.labels, labels, settings.valid or settings.data)
        model = build(settings, tokenizer.vocab_size, len(labels))
        compile_model(model, settings)
        fitted = training.fit(
            model,
            batching.training_dataset(train_ids, train_y, settings.batch_size, settings.seed),
            batching.training_dataset(valid_ids, valid_y, settings.batch_size, settings.seed,
                                      shuffle=False),
            run, settings.epochs, monitor="val_accuracy", mode="max",
            patience=settings.patience, time_budget=settings.time_budget_seconds,
            resume=resuming, verbose=verbose,
        )
        probabilities = predict_ids(model, valid_ids, settings.batch_size)
        report = classification_report(valid_y, probabilities.argmax(-1), labels)
        report.update(best_epoch=fitted.best_epoch, epochs_run=len(fitted.rows),
                      train_seconds=round(sum(r["seconds"] for r in fitted.rows), 3))
        plots.plot_history(fitted.rows, run.plots / "history.png")
        plots.plot_confusion(report["confusion_matrix"], labels, run.plots / "confusion.png")
        training.finish(run, {"valid": report})
    return run.path, report


def predict_ids(model: keras.Model, ids: list[list[int]], batch_size: int = 64) -> np.ndarray:
    """Class probabilities for tokenised texts, batched by length, in the input order."""
    out = np.zeros((len(ids), model.settings["num_classes"]), dtype=np.float32)
    for positions, batch in batching.sorted_batches(ids, batch_size):
        out[positions] = probabilities(model(batch, training=False)).numpy()
    return out


# ---------------------------------------------------------------- trained model access


class Classifier:
    """A trained classifier from a run directory or an exported SavedModel.

    Both give `labels` and `probabilities(texts)`; the SavedModel path runs the
    exported graph (tokeniser included), exactly what TF Serving would run.
    """

    def __init__(self, path: Path):
        kind, self.path = locate_model(path)
        if kind == "run":
            run = training.RunDirectory(self.path)
            config = run.read_config()
            settings = SentimentSettings(**{k: v for k, v in config.items() if k != "task"})
            self.labels = json.loads(run.labels.read_text(encoding="utf-8"))
            self.tokenizer = Tokenizer.load(run.tokenizer)
            self.model = build(settings, self.tokenizer.vocab_size, len(self.labels))
            self.model.load_weights(run.best_weights)
            self.settings, self.signature = settings, None
        else:
            import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)

            metadata = exporting.read_metadata(self.path)
            if metadata.get("task") != TASK:
                raise DataError(f"'{self.path}' is a '{metadata.get('task')}' model, "
                                "not a sentiment classifier.")
            self.labels = metadata["labels"]
            self.signature = tf.saved_model.load(str(self.path)).signatures["serving_default"]

    def probabilities(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if self.signature is None:
            ids = batching.truncate(self.tokenizer.encode(texts), self.settings.max_length)
            return predict_ids(self.model, ids, batch_size)
        chunks = [self.signature(text=tf.constant(texts[i : i + batch_size]))["scores"].numpy()
                  for i in range(0, len(texts), batch_size)]
        return np.concatenate(chunks) if chunks else np.zeros((0, len(self.labels)), np.float32)


def evaluate(path: Path, data: str, text_column: str | None = None,
             label_column: str | None = None, batch_size: int = 64) -> dict:
    """Accuracy, macro-F1, per-class scores and confusion matrix on labelled data."""
    classifier = Classifier(path)
    examples = sources.read_labeled(data, text_column, label_column, default_split="test")
    truth = label_ids(examples.labels, classifier.labels, data)
    predicted = classifier.probabilities(examples.texts, batch_size).argmax(-1)
    return classification_report(truth, predicted, classifier.labels)


def predict(path: Path, texts: list[str], batch_size: int = 64) -> list[dict]:
    """One {"text", "label", "scores"} per text, in order."""
    classifier = Classifier(path)
    probabilities = classifier.probabilities(texts, batch_size)
    return [{"text": text, "label": classifier.labels[int(row.argmax())],
             "scores": {label: float(p) for label, p in zip(classifier.labels, row)}}
            for text, row in zip(texts, probabilities)]


# ------------------------------------------------------------------------------ export


def serving_function(model: keras.Model, tokenizer, labels: list[str], max_length: int):
    """Raw strings in; label, label_id and scores out. Tokenises on the CPU (SERVING.md)."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        with tf.device("/CPU:0"):
            ids = tokenizer.tokenize(text)[:, :max_length].to_tensor(default_value=PAD_ID)
            ids = tf.pad(ids, [[0, 0], [0, tf.maximum(1 - tf.shape(ids)[1], 0)]])
        scores = probabilities(model(ids, training=False))
        label_id = tf.argmax(scores, axis=-1, output_type=tf.int64)
        return {"label": tf.gather(tf.constant(labels), label_id), "label_id": label_id,
                "scores": scores}

    return serve


def export(run_dir: Path, base_path: Path = Path("saved_models"), name: str = TASK) -> Path:
    """Write the run's best model as the next version of `base_path/name`."""
    classifier = Classifier(run_dir)
    if classifier.signature is not None:
        raise DataError(f"'{run_dir}' is already an exported model: export a run directory.")
    run = training.RunDirectory(classifier.path)
    graph_tokenizer = classifier.tokenizer.graph_tokenizer()
    serve = serving_function(classifier.model, graph_tokenizer, classifier.labels,
                             classifier.settings.max_length)
    metrics = json.loads(run.metrics.read_text()) if run.metrics.is_file() else {}
    metadata = {
        "task": TASK, "labels": classifier.labels, "config": run.read_config(),
        "tokenizer": {"type": classifier.settings.tokenizer,
                      "vocab_size": classifier.tokenizer.vocab_size},
        "metrics": {k: v for k, v in metrics.get("valid", {}).items()
                    if k in ("accuracy", "macro_f1", "examples")},
        "run_directory": str(run.path.resolve()),
    }
    return exporting.export_saved_model({"serving_default": serve},
                                        [classifier.model, graph_tokenizer],
                                        base_path, name, metadata)
