"""Sentiment (or any text) classification, declared for `apps.runner`.

Two data sides: "text" (a `TextInputter`) and "label" (a `LabelsInputter`). From
Python: `runner.train(SentimentTask(), settings)`, `runner.evaluate(...)`,
`runner.export(...)`, and `predict` below.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from apps import plots, runner, schedule, transfer
from apps.baseline import unigram_loss
from apps.config import require
from apps.errors import DataError
from apps.graphs import dataset_function, graph_function
from apps.layers import POOLINGS
from apps.metrics import classification_report
from apps.sentiment.model import build, ensemble_accuracy, member_loss
from apps.settings import (
    ScheduleSettings,
    StreamingSettings,
    TaskSettings,
    TransferSettings,
    setting,
)
from apps.task import Examples, Task, Trained, TrainingPlan
from apps.training import pass_seed
from pipelines import batching, records, sources
from pipelines.inputters import LONG_TEXT, LabelsInputter, TextInputter

log = logging.getLogger(__name__)


@dataclass
class SentimentSettings(TaskSettings, StreamingSettings, ScheduleSettings, TransferSettings):
    """Everything `apps sentiment train` can be told; saved as the run's config.json."""

    data: str = setting("tfds:imdb_reviews", "Training data: a TSV/CSV/JSONL file with a "
                        "header, or tfds:NAME[/CONFIG][:SPLIT].")
    text_column: str | None = setting(None, "Column (or TFDS feature) holding the text "
                                      "[default: guessed: text, sentence, review, ...].")
    label_column: str | None = setting(None, "Column (or TFDS feature) holding the label "
                                       "[default: guessed: label, sentiment, class, ...].")
    max_length: int = setting(256, "Tokens kept per text.", section="tokenizer")
    long_text: str = setting("head", "Which --max-length tokens a longer text keeps, in "
                             "training and in the exported graph alike: its head, its tail, "
                             "or head+tail (the first quarter and the last three quarters, "
                             "as Sun et al. 2019 fine-tune BERT on long reviews).", LONG_TEXT,
                             section="tokenizer")
    pooling: str = setting("max", "How the encoder's outputs become one vector.", POOLINGS,
                           section="model")
    members: int = setting(1, "Train this many classifiers side by side and average their "
                           "predictions (an ensemble in one model).", section="model")
    dropout: float = 0.3  # small labelled sets overfit within a few epochs
    lr_schedule: str = "constant"  # measured on MR; cosine (warm-up, decay) for fine-tuning
    patience: int = 3

    def validate(self) -> None:
        super().validate()
        require(self.members >= 1, "members", "a positive whole number", self.members)
        require(self.max_length >= 1, "max_length", "a positive whole number", self.max_length)


def text_and_label(values) -> bool:
    return bool(values[0].strip() and values[1].strip())


def streamed_texts(settings, inputters, train: records.Streamed):
    """Training batches read from the file on every pass (`pipelines.records`), as a
    function of the pass (`apps.training`): the text tokenised by the graph op, labels
    looked up in the graph, length buckets."""
    text, labels = inputters["text"], inputters["label"]
    workers = train.workers(settings.batch_size)
    sample = text.tokenizer.encode([values[0] for values in train.scan.record_sample])
    boundaries = batching.bucket_boundaries([min(len(ids), settings.max_length) or 1
                                             for ids in sample], settings.batch_size)
    steps = batching.stream_steps(train.scan.training_records, settings.batch_size, boundaries)
    table = labels.lookup()

    def pass_data(pass_index: int) -> tf.data.Dataset:  # apps.training's contract
        order = records.DataOrder(settings.seed, pass_index)
        rows = batching.record_dataset(train.training_records(order, settings.shuffle_buffer,
                                                              text_and_label), 2)
        rows = batching.tokenized_rows(rows, lambda texts, names: (
            text.tokenize(texts), table.lookup(tf.strings.strip(names))))
        rows = rows.map(dataset_function(lambda ids, label: (tf.maximum(tf.size(ids), 1),
                                                              ids, label)))
        return batching.streamed_batches(rows, settings.batch_size, boundaries, steps, workers)

    log.info("%d batches an epoch, shuffled %d texts at a time.", steps, settings.shuffle_buffer)
    return pass_data


class SentimentTask(Task):
    name = "sentiment"
    title = "sentiment classifier"
    settings_class = SentimentSettings
    monitor, monitor_mode = "val_accuracy", "max"
    column_options = ("text_column", "label_column")
    kept_metrics = ("accuracy", "macro_f1", "examples")

    def read(self, source, default_split, text_column=None, label_column=None):
        found = sources.read_labeled(source, text_column, label_column, default_split)
        return {"text": found.texts, "label": found.labels}

    def make_inputters(self, settings):
        return {"text": TextInputter(settings.tokenizer, settings.vocab_size,
                                     settings.max_length, long_text=settings.long_text),
                "label": LabelsInputter()}

    def read_training_data(self, settings):
        if not sources.should_stream(settings):
            return super().read_training_data(settings)
        reader = sources.labeled_reader(settings.data, settings.text_column,
                                        settings.label_column)
        return records.streamed_splits(
            reader, settings, ("text", "label"),
            lambda: self.read(settings.valid, "validation", settings.text_column,
                              settings.label_column),
            (0,), label_side=1, keep=text_and_label)

    def fit_inputters(self, inputters, train, valid, settings):
        if isinstance(train, records.Streamed):  # one sample, one counting pass
            inputters["text"].fit(train.scan.text_sample, total=len(train.scan.text_sample))
            inputters["label"].fit_counts(train.scan.labels)
        else:
            super().fit_inputters(inputters, train, valid, settings)
        unseen = sorted(set(valid["label"]) - set(inputters["label"].names))
        if unseen:
            raise DataError(f"The validation data has label(s) the training data lacks: "
                            f"{', '.join(map(repr, unseen[:5]))}.")

    def datasets(self, settings, inputters, train, valid, replicas=1):
        def columns(examples: Examples, source: str):
            return [inputters["text"].encode(examples["text"]),
                    inputters["label"].encode(examples["label"], source)]

        valid_data = batching.bucketed_dataset(
            columns(valid, settings.valid or settings.data), settings.batch_size,
            settings.seed, False)
        if isinstance(train, records.Streamed):
            return streamed_texts(settings, inputters, train), valid_data
        train_columns = columns(train, settings.data)
        return (lambda epoch: batching.bucketed_dataset(  # pass `epoch`: apps.training
            train_columns, settings.batch_size, pass_seed(settings.seed, epoch)), valid_data)

    def shared_layers(self, model):
        """Every member's embedding and encoder (each receives the source's)."""
        return transfer.merged(*({"embedding": [member.embedding],
                                  **transfer.encoder_layers(member.encoder)}
                                 for member in model.members))

    def baseline_loss(self, settings, inputters, train):
        return unigram_loss(inputters["label"].counts)

    def build_model(self, settings, inputters):
        labels = inputters["label"]
        return build(settings, inputters["text"].vocab_size, labels.num_classes, labels.priors)

    def compile_model(self, model, settings, plan: TrainingPlan):
        accuracy = keras.metrics.MeanMetricWrapper(ensemble_accuracy, name="accuracy")
        model.compile(optimizer=schedule.adam(settings, plan), loss=member_loss, metrics=[accuracy],
                      jit_compile=False)

    def score(self, trained, examples, source: str = "the data", batch_size: int = 64):
        """Accuracy, macro-F1, per-class scores and the confusion matrix."""
        labels = trained.metadata["labels"]
        truth = LabelsInputter.with_names(labels).encode(examples["label"], source)
        predicted = probabilities(trained, examples["text"], batch_size).argmax(-1)
        return classification_report(truth, predicted, labels)

    def plot(self, report, folder):
        plots.plot_confusion(report["confusion_matrix"], report["labels"],
                             folder / "confusion.png")

    def signatures(self, trained):
        texts, labels, model = (trained.inputters["text"], trained.inputters["label"],
                                trained.model)

        @graph_function(input_signature=[texts.input_spec("text")])
        def serving_default(text):
            scores = model.scores(texts.preprocess(text))
            label_id = tf.argmax(scores, axis=-1, output_type=tf.int64)
            return {"label": labels.decode(label_id), "label_id": label_id, "scores": scores}

        return {"serving_default": serving_default}

    def metadata_entries(self, settings, inputters):
        return {"labels": inputters["label"].names}


TASK = SentimentTask()


def probabilities(trained: Trained, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Class probabilities [texts, classes] in input order, from `serving_default` (a run
    or a SavedModel alike); texts of similar length share a batch."""
    serve = trained.signatures["serving_default"]
    out = np.zeros((len(texts), len(trained.metadata["labels"])), np.float32)
    order = np.argsort([len(text) for text in texts], kind="stable")
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        out[rows] = serve(text=tf.constant([texts[i] for i in rows]))["scores"].numpy()
    return out


def predict(model: Path | Trained, texts: list[str], batch_size: int = 64) -> list[dict[str, Any]]:
    """One {"text", "label", "scores"} per text, in order (an empty text gets the priors)."""
    trained = model if isinstance(model, Trained) else runner.load(TASK, Path(model))
    labels = trained.metadata["labels"]
    rows = probabilities(trained, texts, batch_size)
    return [{"text": text, "label": labels[int(row.argmax())],
             "scores": {label: float(p) for label, p in zip(labels, row)}}
            for text, row in zip(texts, rows)]
