"""One driver for every task: train, load, evaluate and export.

The task (`apps.task.Task`) says what is particular to it; this module does what is
the same for all: open or resume the run directory, fit or load the inputters,
train with the resumable loop and its time budget, score the best epoch, load a run
directory or a SavedModel and check that it belongs to the task, and export a
SavedModel that runs on any TF Serving host.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import itertools
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import tensorflow as tf

from apps import averaging, distribute, layers, plots, precision, training, transfer
from apps import export as exporting
from apps import metadata as metadata_file
from apps.baseline import BaselineWatch
from apps.config import to_dict
from apps.errors import AppError, DataError, ModelPathError
from apps.info import print_model_summary
from apps.layout import RunDirectory, locate_model
from apps.metadata import Metadata
from apps.resolution import resolved_settings
from apps.settings import parse_checkpoint_every
from apps.task import Task, Trained, TrainingPlan
from pipelines.tokenizer import no_progress_bars, quiet_native_logs

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------ train


def default_output(task: Task, settings) -> Path:
    """`runs/<task>-<data>-<digest of the settings>`: the same command names the same
    directory, so running it again resumes an interrupted run. A finished run there
    is kept: the next free `-2`, `-3`, ... (or the first interrupted one) is used."""
    config = {"task": task.name, **to_dict(settings)}
    kept = {k: v for k, v in config.items() if k not in training.RESUMABLE_CHANGES}
    digest = hashlib.sha1(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()
    data = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(str(settings.data).split(":")[-1]).stem)
    base = Path("runs") / f"{task.name}-{data.strip('_.') or 'data'}-{digest[:8]}"
    for number in itertools.count(1):
        path = base if number == 1 else base.with_name(f"{base.name}-{number}")
        run = RunDirectory(path)
        if not path.exists() or run.is_resumable():
            return path


def run_directory(task: Task, settings, output: Path | None = None) -> Path:
    """Where `train` writes: `output`, or the resumable default (`default_output`)."""
    return Path(output) if output else default_output(task, settings)


def train(task: Task, settings, output: Path | None = None, overwrite: bool = False,
          verbose: int = 1) -> tuple[Path, dict[str, Any]]:
    """Train (or resume) a run of `task`; return its directory and validation report.

    Under a multi-worker strategy every worker runs this with the same settings; the
    chief writes `output`, the others a temporary beside it (removed at the end).
    A resumed run continues exactly where its last backup left it (apps.training).
    """
    strategy = distribute.make_strategy(settings.strategy, settings.tpu)
    settings = transfer.adopt_tokenizer(settings, task=task)
    output = run_directory(task, settings, output)
    workdir = distribute.worker_directory(output, strategy)
    config = {"task": task.name, **to_dict(settings),
              "resolved": resolved_settings(settings, strategy, task.bfloat16_cpus)}
    run, resuming = training.open_run(workdir, config, overwrite)
    if resuming:
        log.info("Resuming the interrupted run in %s.", run.path)
    train_examples, valid_examples = task.read_training_data(settings)
    training.set_seed(settings.seed)
    replicas = strategy.num_replicas_in_sync
    arithmetic = precision.policy(settings.precision, task.bfloat16_cpus)
    init = None  # what --init-from loaded (config.json "init")
    with training.created_run(run, overwrite, resuming), arithmetic:
        if resuming:
            inputters = load_inputters(task, settings, run.path)
            init = run.read_config().get("init")  # loaded when the run began, not again
        else:
            inputters = task.make_inputters(settings)
            transfer.take_tokenizer(settings, inputters, task)
            with contextlib.nullcontext() if verbose else no_progress_bars():
                task.fit_inputters(inputters, train_examples, valid_examples, settings)
            for inputter in inputters.values():
                inputter.save(run.path)
            task.fit_extras(run.path, settings, inputters, train_examples)
            training.write_json(run.config, config)
            if not settings.valid:
                write_split(task, run, train_examples, valid_examples)
        train_data, valid_data = task.datasets(settings, inputters, train_examples,
                                               valid_examples, replicas=replicas)
        passes = training.as_passes(train_data)
        first_pass = passes(0)  # built once: a pass' pipeline is not free to build
        steps = settings.steps_per_epoch or training.known_length(first_pass)
        with strategy.scope():
            model = task.build_model(settings, inputters)
            print_model_summary(model, verbose)
            clock = tf.Variable(0.0, trainable=False, dtype=tf.float64, name="training_clock")
            task.compile_model(model, settings, TrainingPlan(
                first_pass, valid_data, steps, clock, replicas))
        if transfer.starts(task, settings) and not resuming:
            init = transfer.load_shared(task, model, settings, inputters)
            training.write_json(run.config, {**config, "init": init})
        transfer.layer_rates(task, model, settings, steps, (init or {}).get("loaded", []))
        trained = trained_run(task, run.path, settings, inputters, model)
        decodings = EpochDecodings(task, trained, valid_examples)
        every_steps, every_seconds = parse_checkpoint_every(settings.checkpoint_every)
        fitted = training.fit(
            model, passes, valid_data, run, settings.epochs, task.monitor, task.monitor_mode,
            settings.patience, settings.time_budget_seconds, resume=resuming, verbose=verbose,
            clock=clock, strategy=strategy, jit_compile=settings.jit,
            validation=decodings.validation,
            steps_per_epoch=settings.steps_per_epoch,
            checkpoint_every=training.CheckpointEvery(every_steps, every_seconds),
            watch=baseline_watch(task, settings, inputters, train_examples),
            keep_epochs=settings.keep_epochs)
        report = _report(task, trained, valid_examples, fitted, decodings.of_best(fitted))
        plots.plot_history(fitted.rows, run.plots / "history.png", task.monitor)
        task.plot(report, run.plots)
        training.finish(run, {"valid": report})
    if run.path != output:
        shutil.rmtree(run.path, ignore_errors=True)  # a worker's temporary copy
        return output, report
    return run.path, report


def write_split(task: Task, run: RunDirectory, kept, held) -> None:
    """Name the validation data held out of --data (--valid-fraction, --seed): both parts
    as files of the task's format, `RUN/kept.*` and `RUN/heldout.*`, so the user can
    score exactly the held-out part and train another model (a language model to fuse)
    on exactly the kept one. Only for tasks that can write their examples back."""
    if task.split_suffix is None:
        return
    paths = [run.split_part(part, task.split_suffix) for part in ("kept", "heldout")]
    if all(task.write_examples(examples, path) for examples, path in zip((kept, held), paths)):
        log.info("Validation data held out of --data: %s (the rest, trained on: %s).",
                 paths[1], paths[0])
        return
    for path in paths:
        path.unlink(missing_ok=True)


def baseline_watch(task: Task, settings, inputters, train) -> BaselineWatch | None:
    """A warning for a run that stays at the task's baseline loss (`apps.baseline`)."""
    baseline = task.baseline_loss(settings, inputters, train)
    return None if baseline is None else BaselineWatch(baseline, settings.epochs)


class EpochDecodings:
    """The per-epoch validation, keeping the validation decoding (`Task.
    validation_decoding`: translations, transcripts) of the best epoch this process ran,
    chosen by the monitored metric as the training loop chooses (`training.improves`),
    so the final report scores it instead of decoding the validation set once more.
    One decoding is held at a time, however many epochs run."""

    def __init__(self, task: Task, trained: Trained, valid):
        self.task, self.trained, self.valid = task, trained, valid
        self.epochs = 0  # validations run in this process
        self.best_value = training.unbeaten(task.monitor_mode)
        self.best: tuple[int, Any] | None = None  # (its index among self.epochs, decoding)

    def validation(self) -> dict[str, float]:
        decoded = self.task.validation_decoding(self.trained, self.valid)
        # a task that decodes nothing may leave `decoded` out of its signature
        reused = () if decoded is None else (decoded,)
        metrics = self.task.validation_metrics(self.trained, self.valid, *reused)
        value = metrics.get(self.task.monitor)
        if decoded is not None and value is not None and training.improves(
                value, self.best_value, self.task.monitor_mode):
            self.best_value, self.best = value, (self.epochs, decoded)
        self.epochs += 1
        return metrics

    def of_best(self, fitted: training.ResumableTraining) -> Any:
        """The best epoch's decoding; None where that epoch ran before a resume (or the
        task decodes nothing, or does not score it with the monitored metric)."""
        if self.best is None:
            return None
        index, decoded = self.best
        epoch = fitted.rows[len(fitted.rows) - self.epochs + index]["epoch"]
        return decoded if epoch == fitted.best_epoch else None


def _report(task: Task, trained: Trained, valid, fitted: training.ResumableTraining,
            decoded: Any = None) -> dict:
    """The best epoch's validation scores, with how the training went; `best_value` is
    the monitored metric as history.csv holds it for the best epoch. `decoded`: the
    best epoch's validation decoding where it was kept (`EpochDecodings`)."""
    if fitted.budget_spent and len(fitted.rows) == 1:
        log.warning("The time budget ran out within the first epoch: the model saw only "
                    "part of the training data once.")
    reused = {} if decoded is None else {"decoded": decoded}
    report = task.score(trained, valid, source=trained.settings.valid or trained.settings.data,
                        **reused)
    best = next((row for row in fitted.rows if row["epoch"] == fitted.best_epoch), {})
    report.update(best_epoch=fitted.best_epoch, monitor=task.monitor,
                  best_value=best.get(task.monitor), epochs_run=len(fitted.rows),
                  train_seconds=round(sum(r["seconds"] for r in fitted.rows), 3),
                  stopped_by_time_budget=fitted.budget_spent)
    return report


# ------------------------------------------------------------------------------- load


def load_inputters(task: Task, settings, directory: Path) -> dict:
    inputters = task.make_inputters(settings)
    for inputter in inputters.values():
        inputter.load(directory)
    return inputters


def _check_task(task: Task, found: str | None, path: Path, what: str) -> None:
    if found != task.name:
        raise ModelPathError(
            f"'{path}' is {what} of task '{found}', not a {task.title}: use `apps {found} "
            "...` with it." if found else
            f"'{path}' does not say which task it belongs to: it is not a {task.title}.")


def settings_from_config(settings_class, config: dict[str, Any]):
    """The run's settings; keys this version no longer knows are ignored."""
    known = {f.name for f in dataclasses.fields(settings_class)}
    return settings_class(**{k: v for k, v in config.items() if k in known})


def portable_config(config: dict[str, Any]) -> dict[str, Any]:
    """The run's settings with absolute paths cut to their last part (no machine's paths)."""
    return {key: os.path.basename(value) if isinstance(value, str) and os.path.isabs(value)
            else value for key, value in config.items()}


def run_metadata(task: Task, path: Path, settings, inputters: dict,
                 recurrence: str = "fused", **options) -> Metadata:
    """What a run's export says of itself (`apps.metadata`), and what the run answers
    with in memory: the same function builds both. `options` are the task's export
    options (`Task.metadata_entries`)."""
    run = RunDirectory(path)
    metrics = json.loads(run.metrics.read_text()).get("valid", {}) if run.metrics.is_file() \
        else {}
    config = run.read_config() if run.config.is_file() else {"task": task.name}
    return Metadata(
        task=task.name, recurrence=recurrence, config=portable_config(config),
        inputters={side: inputter.metadata() for side, inputter in inputters.items()},
        metrics={k: v for k, v in metrics.items()
                 if not task.kept_metrics or k in task.kept_metrics},
        entries=task.metadata_entries(settings, inputters, **options))


class InMemorySignatures(Mapping):
    """A run's serving functions: `Task.signatures` built on first use and traced with
    the recurrence a default export holds (`layers.traced_recurrence("fused")`), so a run
    computes what its export computes. Each traces once (input signatures), which keeps
    the per-epoch validation of a training run cheap. They are called as a SavedModel's
    signatures are: keyword inputs named by the input signature's specs."""

    def __init__(self, build: Callable[[], dict[str, Any]]):
        self._build, self._functions = build, None

    def _all(self) -> dict[str, Any]:
        if self._functions is None:
            self._functions = self._build()
        return self._functions

    def __getitem__(self, name: str):
        function = self._all()[name]

        names = [spec.name for spec in function.input_signature]

        def call(**inputs):
            if set(inputs) != set(names):
                raise TypeError(f"signature '{name}' takes {names}, not {sorted(inputs)}")
            with layers.traced_recurrence("fused"):
                return function(*(inputs[key] for key in names))

        return call

    def __iter__(self):
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


def trained_run(task: Task, path: Path, settings, inputters: dict, model,
                **options) -> Trained:
    """A run's model as a `Trained`: its metadata as its export would hold it, and its
    serving functions in memory. `options` are the task's export options."""
    metadata = run_metadata(task, path, settings, inputters, **options)
    metadata.precision = model.dtype_policy.name  # the products it was built with
    trained = Trained(Path(path), "run", metadata, {}, settings, inputters, model)
    trained.signatures = InMemorySignatures(lambda: task.signatures(trained))
    return trained


def with_options(task: Task, trained: Trained, **options) -> Trained:
    """`trained` serving with these export options (None: its own): a run is rebuilt
    in memory with them; an export serves as it was exported, and says so when asked
    otherwise."""
    asked = {key: value for key, value in options.items() if value is not None}
    if not trained.is_saved_model:
        entries = task.metadata_entries(trained.settings, trained.inputters, **asked)
        if entries == trained.metadata.entries:
            return trained
        return trained_run(task, trained.path, trained.settings, trained.inputters,
                           trained.model, **asked)
    inspect.signature(task.metadata_entries).bind(None, None, **asked)  # a misspelt name
    for key, value in asked.items():
        if key in trained.metadata.entries and trained.metadata.entries[key] != value:
            log.warning("'%s' is an export: it answers with the %s it was exported with (%s), "
                        "not %s.", trained.path, key, trained.metadata.entries[key], value)
    return trained


def load(task: Task, path: Path, arithmetic: str = "float32", **options) -> Trained:
    """A run directory (its best epoch) or an exported SavedModel of `task`, answering
    through the same serving functions (`Trained`). `options` are the task's export
    options for a run (`Task.metadata_entries`); an export keeps its own, and the
    products it was exported with. `arithmetic`: a run's products, a Keras dtype
    policy or "auto" (`apps.precision.resolve`; float32 weights either way).

    A model base directory (`saved_models/sentiment`) means its newest version.
    """
    kind, path = locate_model(path)
    if kind == "run":
        run = RunDirectory(path)
        config = run.read_config()
        _check_task(task, config.get("task"), path, "a training run")
        settings = settings_from_config(task.settings_class, config)
        inputters = load_inputters(task, settings, path)
        with precision.policy(arithmetic):
            model = task.build_model(settings, inputters)
        model.load_weights(run.best_weights)
        return trained_run(task, path, settings, inputters, model, **options)
    metadata = metadata_file.read(path)
    _check_task(task, metadata.task if metadata else None, path, "an exported model")
    exporting.check_runs_here(metadata, path)
    import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)

    with quiet_native_logs():
        signatures = exporting.load_saved_model(path).signatures
    return with_options(task, Trained(path, "saved_model", metadata, signatures), **options)


# ---------------------------------------------------------------------------- evaluate


def evaluate(task: Task, path: Path, data: str, **options) -> dict[str, Any]:
    """The task's metrics of the model at `path` on the data named `data`.

    `options` are the task's `column_options` (how to read `data`; None: what the model
    knows, else guessed), its `reading_options` and its `score` options; an unknown one
    is a TypeError."""
    columns = {key: options.pop(key, None) for key in task.column_options}
    reading = {key: options.pop(key) for key in task.reading_options if key in options}
    trained = load(task, path)
    known = task.evaluation_options(trained)
    columns = {key: value if value is not None else known.get(key)
               for key, value in columns.items()}
    return task.score(trained, task.read_evaluation_data(data, columns, **reading),
                      source=data, **options)


# ------------------------------------------------------------------------------ export


def export(task: Task, run_dir: Path, base_path: Path = Path("saved_models"),
           name: str | None = None, gpu_only: bool = False, average_last: int | None = None,
           arithmetic: str = "float32", **options) -> Path:
    """Write the run's best model as the next version of `base_path/name`.

    The graph holds the portable recurrence (`apps.recurrence`'s loop: CPU and GPU
    hosts) unless `gpu_only`, which traces Keras' cuDNN kernels (GPU hosts only).
    `average_last` N: the mean of the last N kept epochs' weights instead of the best
    epoch's (`apps.averaging`; the metadata says which epochs). `arithmetic`: the
    graph's products (`load`'s; "mixed_bfloat16" decodes faster on CPUs with AMX).
    """
    trained = load(task, run_dir, arithmetic, **options)
    if trained.is_saved_model:
        raise DataError(f"'{run_dir}' is already an exported model: export a run directory.")
    if average_last:
        epochs = averaging.average_last(trained.model, RunDirectory(trained.path),
                                        average_last)
        trained.metadata.entries = {**trained.metadata.entries, "averaged_epochs": epochs}
    recurrence = "cudnn" if gpu_only else "fused"
    trained.metadata = dataclasses.replace(trained.metadata, recurrence=recurrence)
    tracked = [trained.model]
    for inputter in trained.inputters.values():
        tracked += [t for t in inputter.trackables() if all(t is not k for k in tracked)]
    try:
        with layers.traced_recurrence(recurrence), quiet_native_logs():
            endpoints = task.signatures(trained)
            return exporting.export_saved_model(endpoints, tracked, base_path,
                                                name or task.name, trained.metadata,
                                                task.warmup_requests(trained))
    except layers.CudnnUnavailable as error:
        raise AppError(str(error)) from None
