"""Fit glue shared by every task: run directory, seeds, resumable checkpoints, history.

Resume survives `kill -9`: after every epoch the model weights, the optimizer's
variables (its step count and moments) and the training state (best score so far,
epochs without improvement, the history rows) are written to `backup/` under
epoch-numbered names, and `backup/state.json` is replaced last, atomically. A
restart reads `state.json` and continues from the epoch after it, so every epoch
appears in `history.csv` exactly once. Keras' own BackupAndRestore and
ModelCheckpoint lose the optimizer state or the best score across restarts
(keras-team/keras issues 17012 and 19179); this callback keeps both.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from apps import distribute
from apps.errors import AppError, ConfigError
from apps.layout import atomic_write_text

log = logging.getLogger(__name__)

# Settings that may differ between a run and its resumption (where and how fast it runs).
RESUMABLE_CHANGES = {"epochs", "patience", "time_budget", "strategy", "tpu", "jit", "resolved"}


@dataclass(frozen=True)
class RunDirectory:
    """The files a training run writes (docs/architecture.md); the inputters add theirs
    (`tokenizer.model`, `labels.json`, ...)."""

    path: Path

    config = property(lambda self: self.path / "config.json")
    checkpoints = property(lambda self: self.path / "checkpoints")
    best_weights = property(lambda self: self.path / "checkpoints" / "best.weights.h5")
    backup = property(lambda self: self.path / "backup")
    state = property(lambda self: self.path / "backup" / "state.json")
    history = property(lambda self: self.path / "history.csv")
    metrics = property(lambda self: self.path / "metrics.json")
    logs = property(lambda self: self.path / "logs")
    plots = property(lambda self: self.path / "plots")

    def is_finished(self) -> bool:
        return self.metrics.is_file() and not self.state.is_file()

    def is_resumable(self) -> bool:
        return self.state.is_file() and self.config.is_file()

    def read_config(self) -> dict[str, Any]:
        return json.loads(self.config.read_text(encoding="utf-8"))


def write_json(path: Path, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def set_seed(seed: int) -> None:
    """Python, NumPy and TensorFlow generators from one seed, and deterministic ops.

    With op determinism on, TensorFlow picks deterministic kernels (and raises where
    an op has none), so the same seed, data, settings and machine give the same
    weights bit for bit. A different number of CPU cores or another TensorFlow
    version may still change the last bits of sums, and a run that `--time-budget`
    stops depends on the wall clock.
    """
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


# ------------------------------------------------------------------------ run directory


def open_run(path: Path, config: dict[str, Any], overwrite: bool) -> tuple[RunDirectory, bool]:
    """Check the output directory and say whether this run resumes an interrupted one.

    Nothing is created here: `created_run` creates it once the inputs are known good.
    """
    run = RunDirectory(Path(path))
    if not run.path.exists():
        return run, False
    if not run.path.is_dir():
        raise AppError(f"--output '{run.path}' is a file: name a directory for the run.")
    if overwrite:
        return run, False
    if run.is_resumable():
        saved = run.read_config()
        changed = sorted(k for k in set(saved) | set(config)
                         if k not in RESUMABLE_CHANGES and saved.get(k) != config.get(k))
        if changed:
            details = ", ".join(f"{k}: {saved.get(k)!r} -> {config.get(k)!r}" for k in changed)
            raise ConfigError(
                f"'{run.path}' holds an interrupted run with other settings ({details}): "
                "rerun with the same settings to resume, or pass --overwrite to start over."
            )
        return run, True
    if run.is_finished():
        raise AppError(
            f"'{run.path}' already holds a finished run: choose another --output, "
            "or pass --overwrite to replace it."
        )
    if any(run.path.iterdir()):
        raise AppError(
            f"--output '{run.path}' is not empty and is not a run directory: "
            "choose another path, or pass --overwrite to replace it."
        )
    return run, False


@contextlib.contextmanager
def created_run(run: RunDirectory, overwrite: bool, resuming: bool):
    """Create the run directory; remove it again if the run fails before its first epoch.

    A run killed later keeps its `backup/` and resumes; a run that never finished an
    epoch leaves nothing behind, so a bad input never leaves a half-written directory.
    """
    existed = run.path.exists()
    if overwrite and existed and not resuming:
        shutil.rmtree(run.path)
        existed = False
    for folder in (run.path, run.checkpoints, run.backup, run.logs, run.plots):
        folder.mkdir(parents=True, exist_ok=True)
    try:
        yield run
    except BaseException:
        if not existed and not run.state.is_file():
            shutil.rmtree(run.path, ignore_errors=True)
        raise


# ---------------------------------------------------------------------------- backups


def optimizer_arrays(optimizer) -> dict[str, np.ndarray]:
    return {f"{i:04d}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)}


def restore_optimizer(model: keras.Model, arrays: dict[str, np.ndarray]) -> None:
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    variables = optimizer.variables
    if len(variables) != len(arrays):
        raise AppError("The run's optimizer backup does not match the model: pass --overwrite.")
    for i, variable in enumerate(variables):
        variable.assign(arrays[f"{i:04d}"])


def load_backup(model: keras.Model, run: RunDirectory) -> dict[str, Any]:
    """Restore weights and optimizer state from `backup/`; return the training state."""
    state = json.loads(run.state.read_text(encoding="utf-8"))
    if not model.optimizer.built:  # so the weights file's optimizer variables have a home
        model.optimizer.build(model.trainable_variables)
    model.load_weights(run.backup / state["weights"])
    with np.load(run.backup / state["optimizer"]) as arrays:
        restore_optimizer(model, dict(arrays))
    log.info("Resuming after epoch %d (best %s %.4f at epoch %d).", state["epoch"],
             state["monitor"], state["best"], state["best_epoch"])
    return state


def write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = ["epoch"] + sorted({k for row in rows for k in row} - {"epoch", "seconds"})
    columns.append("seconds")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in columns})
    atomic_write_text(path, buffer.getvalue())


class ResumableTraining:
    """Per epoch: history row, best weights, early stopping and a crash-safe backup.

    Args:
        run: where to write.
        monitor: the validation metric that picks the best epoch ("val_loss", ...).
        mode: "min" or "max" for `monitor`.
        patience: stop after this many epochs without improvement (0: never).
        time_budget: seconds of training after which to stop cleanly (None: no limit).
        state: what `load_backup` returned when resuming, else None.
        clock: a float variable set to the seconds trained so far (an interrupted run's
            included) before every batch, for schedules that follow the time budget.
    """

    def __init__(self, run: RunDirectory, monitor: str, mode: str, patience: int = 0,
                 time_budget: float | None = None, state: dict[str, Any] | None = None,
                 clock: tf.Variable | None = None):
        self.run, self.monitor, self.mode = run, monitor, mode
        self.patience, self.time_budget, self.clock = patience, time_budget, clock
        state = state or {}
        self.rows: list[dict[str, Any]] = state.get("history", [])
        self.best = state.get("best", np.inf if mode == "min" else -np.inf)
        self.best_epoch = state.get("best_epoch", -1)
        self.bad_epochs = state.get("bad_epochs", 0)
        self.spent = state.get("seconds", 0.0)
        self.budget_spent = False
        self.stop = False
        self._train_start = time.perf_counter() - self.spent

    def _improved(self, value: float) -> bool:
        return value < self.best if self.mode == "min" else value > self.best

    def elapsed(self) -> float:
        return time.perf_counter() - self._train_start

    def start_epoch(self) -> None:
        self._epoch_start = time.perf_counter()

    def before_batch(self) -> None:
        if self.clock is not None:
            self.clock.assign(self.elapsed())

    def over_budget(self) -> bool:
        return bool(self.time_budget) and self.elapsed() > self.time_budget

    def end_epoch(self, model: keras.Model, epoch: int, logs: dict[str, float]) -> None:
        seconds = time.perf_counter() - self._epoch_start
        self.rows.append({"epoch": epoch, **logs, "seconds": round(seconds, 3)})
        value = logs.get(self.monitor)
        if value is None:
            raise AppError(f"Training logged no '{self.monitor}': is there validation data?")
        if self._improved(value):
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            tmp = self.run.checkpoints / "best.tmp.weights.h5"
            model.save_weights(tmp)
            os.replace(tmp, self.run.best_weights)
        else:
            self.bad_epochs += 1
        if self.patience and self.bad_epochs >= self.patience:
            log.info("No improvement of %s for %d epochs: stopping.", self.monitor, self.patience)
            self.stop = True
        self._backup(model, epoch)
        write_history(self.run.history, self.rows)

    def _backup(self, model: keras.Model, epoch: int) -> None:
        weights, optimizer = f"epoch-{epoch}.weights.h5", f"epoch-{epoch}.optimizer.npz"
        model.save_weights(self.run.backup / weights)
        with open(self.run.backup / optimizer, "wb") as handle:
            np.savez(handle, **optimizer_arrays(model.optimizer))
        self.spent = self.elapsed()
        write_json(self.run.state, {
            "epoch": epoch, "weights": weights, "optimizer": optimizer,
            "monitor": self.monitor, "best": self.best, "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs, "seconds": self.spent, "history": self.rows,
        })
        for old in self.run.backup.glob("epoch-*"):
            if not old.name.startswith(f"epoch-{epoch}."):
                old.unlink(missing_ok=True)


class TrainingLoop:
    """The model's own `train_step` / `test_step`, one compiled call per batch, run on
    every replica of `strategy` (Keras' `fit` fails under multi-worker strategies in
    Keras 3, and one loop for every strategy keeps one code path)."""

    def __init__(self, model: keras.Model, strategy: tf.distribute.Strategy,
                 first_batch, jit_compile: bool = False):
        self.model, self.strategy = model, strategy
        with strategy.scope():  # metric, loss and optimizer variables, before any tracing
            model._symbolic_build(data_batch=first_batch)  # noqa: SLF001 - what fit does

        def compiled(step):
            return tf.function(lambda *args: strategy.run(step, args=args),
                               reduce_retracing=True, jit_compile=jit_compile)

        def train_and_agree(batch, stop):
            """A training step that also sums every worker's "time is up" flag, so that all
            stop after the same step (collective ops need every worker)."""
            context = tf.distribute.get_replica_context()
            return model.train_step(batch), context.all_reduce("sum", tf.identity(stop))

        self.agree = distribute.is_multi_worker(strategy)
        self.train_step = compiled(train_and_agree if self.agree else model.train_step)
        self.test_step = compiled(model.test_step)

    def _first_replica(self, logs) -> dict[str, float]:
        return {k: float(v) for k, v in
                self.strategy.experimental_local_results(logs)[0].items()}

    def _results(self, prefix: str = "") -> dict[str, float]:
        """The epoch's metrics, summed over every replica (Keras metrics sync on read)."""
        return {prefix + k: float(v) for k, v in self.model.get_metrics_result().items()}

    def train_epoch(self, dataset, tracker: ResumableTraining, progress) -> dict[str, float]:
        self.model.reset_metrics()
        self.steps = 0
        for batch in distribute.distribute(self.strategy, dataset):
            tracker.before_batch()
            if self.agree:
                logs, stops = self.train_step(batch, tf.constant(float(tracker.over_budget())))
                stop = float(self.strategy.experimental_local_results(stops)[0]) > 0
            else:
                logs, stop = self.train_step(batch), tracker.over_budget()
            self.steps += 1
            if progress is not None:
                progress.update(self.steps, list(self._first_replica(logs).items()))
            if stop:
                tracker.budget_spent = tracker.stop = True
                break
        return self._results()

    def evaluate(self, dataset) -> dict[str, float]:
        self.model.reset_metrics()
        for batch in distribute.distribute(self.strategy, dataset):
            self.test_step(batch)
        return self._results("val_")


@contextlib.contextmanager
def lost_workers_said_plainly(strategy: tf.distribute.Strategy, tracker: ResumableTraining):
    """A worker that died (or a network gone) fails the others' collectives: one sentence."""
    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
            tf.errors.CancelledError, tf.errors.AbortedError) as error:
        if not distribute.is_multi_worker(strategy):
            raise
        epoch = tracker.rows[-1]["epoch"] + 1 if tracker.rows else 0
        reason = str(error).strip().splitlines()[0][:160] if str(error).strip() else ""
        raise AppError(f"Lost contact with another worker during epoch {epoch + 1} ({reason}): "
                       "start the same command on every worker again to resume after the "
                       "last finished epoch.") from None


def _write_summaries(writers: dict, epoch: int, logs: dict[str, float]) -> None:
    """Epoch scalars for TensorBoard, as Keras writes them (train/ and validation/)."""
    for key, value in logs.items():
        side = "validation" if key.startswith("val_") else "train"
        with writers[side].as_default():
            tf.summary.scalar("epoch_" + key.removeprefix("val_"), value, step=epoch)
    for writer in writers.values():
        writer.flush()


def fit(model: keras.Model, train_data, valid_data, run: RunDirectory, epochs: int,
        monitor: str, mode: str, patience: int = 0, time_budget: float | None = None,
        resume: bool = False, verbose: int = 1, clock: tf.Variable | None = None,
        strategy: tf.distribute.Strategy | None = None, jit_compile: bool = False,
        validation: Callable[[], dict[str, float]] | None = None) -> ResumableTraining:
    """Train epoch by epoch with resume, best-epoch selection, a time budget and
    TensorBoard logs; the best weights are loaded at the end.

    `validation`, when given, adds metrics after every epoch's Keras validation (BLEU,
    WER: what the user's decoder scores), which `monitor` may name.
    """
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        state = load_backup(model, run) if resume else None
    tracker = ResumableTraining(run, monitor, mode, patience, time_budget, state, clock)
    initial_epoch = state["epoch"] + 1 if state else 0
    stopped_early = state is not None and patience and state["bad_epochs"] >= patience
    if initial_epoch < epochs and not stopped_early:
        loop = TrainingLoop(model, strategy, next(iter(train_data)), jit_compile)
        writers = {side: tf.summary.create_file_writer(str(run.logs / side))
                   for side in ("train", "validation")}
        steps = int(train_data.cardinality())
        for epoch in range(initial_epoch, epochs):
            if verbose:
                log.info("Epoch %d/%d", epoch + 1, epochs)
            progress = keras.utils.Progbar(steps if steps > 0 else None) if verbose else None
            tracker.start_epoch()
            with lost_workers_said_plainly(strategy, tracker):
                logs = loop.train_epoch(train_data, tracker, progress)
                logs.update(loop.evaluate(valid_data))
            if validation is not None:
                logs.update(validation())
            if progress is not None:
                progress.update(loop.steps, list(logs.items()), finalize=True)
            _write_summaries(writers, epoch, logs)
            tracker.end_epoch(model, epoch, logs)
            if tracker.stop:
                break
    if not run.best_weights.is_file():
        raise AppError("Training ended before one epoch was complete: nothing to keep.")
    model.load_weights(run.best_weights)
    return tracker


def finish(run: RunDirectory, metrics: dict[str, Any]) -> None:
    """Mark the run finished: metrics.json, and no resume state left behind."""
    write_json(run.metrics, metrics)
    shutil.rmtree(run.backup, ignore_errors=True)
