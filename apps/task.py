"""The task interface: what a task declares, so that `apps.runner` can do the rest.

A task (sentiment classification, language modelling, ...) is a subclass of `Task`
that says: its settings class, how to read its data, its inputters (one per data
side), how to build and compile its model, which validation metric picks the best
epoch, its serving signatures, and how to score a trained model through them. The
runner opens and resumes run directories, fits or loads the inputters, trains with
the resumable loop, loads a run or a SavedModel (checking it belongs to the task)
behind the same serving functions, and exports; no task repeats that glue. See
docs/architecture.md for a worked example.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from apps.errors import AppError, DataError
from apps.metadata import Metadata
from pipelines.inputters import Inputter
from pipelines.sources import MissingSplit

log = logging.getLogger(__name__)

Examples = dict[str, Any]
"""Raw data by side: equal-length lists ({"text": [...], "label": [...]}), or for a
stream task one value per side ({"text": "the whole corpus"})."""


@dataclass
class TrainingPlan:
    """What `Task.compile_model` may need to know about the coming training."""

    train_data: tf.data.Dataset
    valid_data: tf.data.Dataset
    steps_per_epoch: int | None  # None when the dataset's length is unknown
    clock: tf.Variable | None = None  # seconds trained so far, set before every batch
    replicas: int = 1  # each global batch is split by rows across this many replicas


ServingFunction = Callable[..., Mapping[str, tf.Tensor]]


@dataclass
class Trained:
    """A trained model that answers through its serving functions, whatever its kind.

    An exported SavedModel's are its signatures, exactly what TF Serving runs; a run
    directory's are the same functions built in memory by `Task.signatures` (as
    `apps.runner.export` traces them), so predicting, scoring and decoding have one
    code path and a run answers as its export will. Both describe themselves with
    the same `metadata` (`apps.metadata`). A run also has what training and export
    need: its settings, inputters and Keras model. Made by `apps.runner` (`load`,
    `trained_run`).
    """

    path: Path
    kind: str  # "run" or "saved_model"
    metadata: Metadata
    signatures: Mapping[str, ServingFunction]  # by signature name
    settings: Any = None  # a run's only
    inputters: dict[str, Inputter] = field(default_factory=dict)  # a run's only
    model: keras.Model | None = None  # a run's only

    @property
    def is_saved_model(self) -> bool:
        return self.kind == "saved_model"

    def signature(self, name: str) -> ServingFunction:
        """The serving function `name`; an export made before it existed is refused in
        one sentence."""
        if name not in self.signatures:
            raise AppError(f"'{self.path}' was exported without a '{name}' signature: "
                           "export its run again to use it.")
        return self.signatures[name]


class Task:
    """Subclass and fill in; every method gets the resolved settings it needs."""

    name: str  # CLI group, `config.json` "task", run-directory prefix, export name
    title: str  # what a model of this task is called in messages ("sentiment classifier")
    settings_class: type
    monitor: str = "val_loss"  # the Keras log that picks the best epoch
    monitor_mode: str = "min"

    column_options: tuple[str, ...] = ()
    # other `evaluate` options that change what is read (`read_evaluation_data`)
    reading_options: tuple[str, ...] = ()  # settings / evaluate flags that `read` takes
    kept_metrics: tuple[str, ...] = ()  # validation metrics metadata.json keeps (): all)
    # CPU flags on which `--precision auto` trains in mixed_bfloat16 (apps.precision)
    bfloat16_cpus: tuple[str, ...] = ("amx_bf16",)

    # -- data --------------------------------------------------------------------------

    def read(self, source: str, default_split: str, **columns) -> Examples:
        """Examples from one source: a file, or a `tfds:` name (`default_split` when it
        names none); `columns` are the `column_options` (None: guess)."""
        raise NotImplementedError

    def split_off(self, train: Examples, fraction: float, seed: int,
                  source: str) -> tuple[Examples, Examples]:
        """Validation data taken from the training data when there is none of its own."""
        return hold_out(train, fraction, seed, source)

    # the suffix of the files `write_examples` writes; None: a task that cannot
    split_suffix: str | None = None

    def write_examples(self, examples: Examples, path: Path) -> bool:
        """Write `examples` as a file `read` takes (with `split_suffix`), so that a split
        held out of --data can be named (`apps.runner.write_split`); False when they
        cannot be written back (examples held in memory, not read from files)."""
        raise NotImplementedError

    def read_training_data(self, settings) -> tuple[Examples, Examples]:
        """(training, validation) examples from --data and --valid (see `read_splits`)."""
        columns = {key: getattr(settings, key) for key in self.column_options}
        return read_splits(lambda source, split: self.read(source, split, **columns),
                           settings, self.split_off)

    def read_evaluation_data(self, source: str,
                             columns: Mapping[str, Any] | None = None) -> Examples:
        """Held-out examples; a TFDS name without a split means its test split.
        `columns` are values of `column_options` (missing or None: guess)."""
        columns = columns or {}
        return self.read(source, "test", **{key: columns.get(key)
                                            for key in self.column_options})

    def evaluation_options(self, trained: Trained) -> dict[str, Any]:
        """Defaults for `evaluate`'s `column_options` that the model itself knows (a
        translator's languages, from `trained.metadata.config`); options the user
        gives win."""
        return {}

    def make_inputters(self, settings) -> dict[str, Inputter]:
        """Fresh inputters by side; the runner fits or loads them."""
        raise NotImplementedError

    def fit_inputters(self, inputters: dict[str, Inputter], train: Examples,
                      valid: Examples, settings) -> None:
        """Learn each side's vocabulary from its training values (override to share one)."""
        for side, inputter in inputters.items():
            inputter.fit(train[side])

    def datasets(self, settings, inputters: dict[str, Inputter], train: Examples,
                 valid: Examples, replicas: int = 1) -> tuple[tf.data.Dataset,
                                                              tf.data.Dataset]:
        """Batched (training, validation) datasets of global batches, in the form the
        model's `train_step` reads; `replicas` will share each batch by rows."""
        raise NotImplementedError

    def fit_extras(self, directory: Path, settings, inputters: dict[str, Inputter],
                   train: Examples) -> None:
        """Files the task derives from the training data beside its inputters' (a
        translator's shortlist table), written into the run directory when it starts."""

    # -- model -------------------------------------------------------------------------

    def build_model(self, settings, inputters: dict[str, Inputter]) -> keras.Model:
        """The model with its weights created (so weights can be loaded into it)."""
        raise NotImplementedError

    def compile_model(self, model: keras.Model, settings, plan: TrainingPlan) -> None:
        raise NotImplementedError

    def shared_layers(self, model: keras.Model) -> dict[str, list]:
        """The layers another task's model may share with this one, by shared name
        ("embedding", "encoder/0/forward", ...: `apps.transfer`), for `--init-from`;
        several layers under one name all receive the source's one."""
        return {}

    def init_starts(self, settings) -> list:
        """Where this run's weights start (`apps.transfer.Start`, one per option that
        names a source): by default `--init-from` for the whole model, taking over the
        "text" tokenizer. Empty: from scratch."""
        from apps import transfer

        return transfer.whole_model(settings)

    def baseline_loss(self, settings, inputters: dict[str, Inputter],
                      train: Examples) -> float | None:
        """The validation loss of a model that ignores its input (the answers'
        frequencies: `apps.baseline.unigram_loss`), or None; the runner warns when
        training has not gone below it after a few epochs."""
        return None

    # -- scores ------------------------------------------------------------------------

    def score(self, trained: Trained, examples: Examples, source: str = "the data"
              ) -> dict[str, Any]:
        """The task's metrics of `trained` on `examples`, through `trained.signatures`
        (a run and a SavedModel alike). A task adds its own options as named keyword
        parameters (`batch_size`, `beam_size`): `evaluate`'s task flags arrive here, and
        a misspelt one is a TypeError, never silently ignored."""
        raise NotImplementedError

    def validation_metrics(self, trained: Trained, valid: Examples, decoded: Any = None
                           ) -> dict[str, float]:
        """Metrics computed after every epoch beside the Keras ones (`val_` names), when
        the best epoch is chosen by what the user's decoder scores (BLEU, WER), not by loss.
        `decoded` is `validation_decoding`'s output for these weights, where it has one.
        Runs on every worker with the same weights, so every worker decides alike."""
        return {}

    def validation_decoding(self, trained: Trained, valid: Examples) -> Any:
        """The decoder's output on the validation set (translations, transcripts) that
        `validation_metrics` scores, or None. The runner keeps the best epoch's and
        passes it to `score` as `decoded`, so the final report does not decode the
        validation set a second time."""
        return None

    def plot(self, report: dict[str, Any], folder: Path) -> None:
        """Extra plots for the run directory (the history plot is the runner's)."""

    # -- export ------------------------------------------------------------------------

    def signatures(self, trained: Trained) -> dict[str, Any]:
        """`tf.function`s with input signatures by name; one is `serving_default`.

        Declared once: the runner traces them into an export, and calls them in memory
        for a run directory. `trained` is a run (settings, inputters, model); what an
        export option decides (a beam size) is read from `trained.metadata`."""
        raise NotImplementedError

    def metadata_entries(self, settings, inputters: dict[str, Inputter]) -> dict[str, Any]:
        """The task's own entries of `assets/metadata.json` (a classifier's labels), the
        same for a run and its export. A task with export options (`--beam-size`) takes
        them here as named keyword parameters; the signatures read them back from
        `trained.metadata`."""
        return {}

    def warmup_requests(self, trained: Trained) -> dict[str, dict[str, Any]]:
        """Real inputs per signature ({name: {input: array}}), exported as TF Serving's
        warm-up file, for signatures whose made-up inputs a server cannot guess."""
        return {}


def read_splits(read: Callable[[str, str], Examples], settings,
                split_off: Callable[..., tuple[Examples, Examples]] | None = None
                ) -> tuple[Examples, Examples]:
    """(training, validation) examples from `settings.data` and `settings.valid`.

    `read(source, default_split)` reads one source. A TFDS name given to --valid
    without a split reads the set's validation split. Where it has none, or where
    --valid is not given, `split_off` (by default `hold_out`: a seeded
    --valid-fraction) takes the validation data from the training data, and a line
    says so.
    """
    train = read(settings.data, "train")
    if settings.valid:
        try:
            return train, read(settings.valid, "validation")
        except MissingSplit as missing:
            log.warning("%s Holding out %.0f%% of the training data for validation instead.",
                        missing.message, settings.valid_fraction * 100)
    return (split_off or hold_out)(train, settings.valid_fraction, settings.seed, settings.data)


def hold_out(examples: Examples, fraction: float, seed: int, source: str) -> tuple[Examples,
                                                                                   Examples]:
    """Split aligned example lists into (training, validation) by a seeded shuffle."""
    count = len(next(iter(examples.values())))
    order = list(range(count))
    random.Random(seed).shuffle(order)
    cut = max(1, round(count * fraction))
    if count - cut < 2:
        raise DataError(f"'{source}' has too few examples ({count}) to hold some out for "
                        "validation: add data or pass --valid.")

    def pick(rows):
        return {side: [values[i] for i in rows] for side, values in examples.items()}

    return pick(order[cut:]), pick(order[:cut])
