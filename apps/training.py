"""Fit glue shared by every task: run directory, seeds, resumable checkpoints, history.

Resume survives `kill -9`, and a resumed run is the uninterrupted run, bit for bit
(on the same machine): a checkpoint holds everything the next step reads.

* After every epoch, and within an epoch every `--checkpoint-every` (minutes or
  steps), `backup/` receives the model's weights, an `.npz` of the rest of the
  training state (the optimizer's variables, the model's random-generator states
  such as dropout's Keras `SeedGenerator`s, the epoch's metric accumulators, and any
  state the model carries from batch to batch, `model.carried_variables`), and
  `backup/state.json` (best score, epochs without improvement, history rows, and the
  data position), replaced last and atomically.
* A restart reads `state.json`, restores all of it and reads the training data from
  the same position (see the contract below), so every epoch appears in
  `history.csv` exactly once and the weights equal those of a run never stopped.

Keras' own BackupAndRestore and ModelCheckpoint lose the optimizer state, the
random-generator states or the best score across restarts (keras-team/keras issues
17012 and 19179); this module keeps them all.

The training-data contract (what `Task.datasets` returns as training data)
-------------------------------------------------------------------------
The training data is a sequence of *passes* over the corpus. `Task.datasets` returns
either a callable `pass_data(p) -> tf.data.Dataset` (p = 0, 1, 2, ...) or, for tasks
not converted yet, one `tf.data.Dataset` (read again for every pass: exact resume is
then not promised, since tf.data's reshuffle state is not restored). `pass_data(p)` is
a pure function of (settings.seed, p):

1. its order comes from `pass_seed(settings.seed, p)` (a shuffle buffer seeded with
   it; `reshuffle_each_iteration` does not matter, each pass is read once from a
   fresh dataset), never from the global generator or the number of times a dataset
   has been iterated;
2. any random augmentation in the pipeline draws stateless numbers
   (`tf.random.stateless_*`) keyed by that seed and the element's position, never
   stateful ops (`tf.random.uniform`), whose state a restart loses;
3. reading it twice gives the same batches, so the runner resumes mid-pass with
   `pass_data(p).skip(batches_done)`. Skipping re-reads (and tokenises) those
   batches without training on them: cheaper and more general than a tf.data
   iterator checkpoint, whose files hold the shuffle and prefetch buffers and which
   refuses pipelines with Python functions.

The runner counts passes and batches itself (`DataPosition`), so a pass of unknown
length works; an *epoch* is one pass, or `--steps-per-epoch` batches of the stream
of passes, continued across epochs.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import io
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from apps import distribute
from apps.errors import AppError, ConfigError
from apps.graphs import graph_function
from apps.layout import RunDirectory, atomic_write_text

log = logging.getLogger(__name__)

# Settings that may differ between a run and its resumption (where and how fast it runs).
RESUMABLE_CHANGES = {"epochs", "patience", "time_budget", "strategy", "tpu", "jit",
                     "checkpoint_every", "keep_epochs", "resolved", "init"}

PassData = Callable[[int], tf.data.Dataset]


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


def pass_seed(seed: int, pass_index: int) -> int:
    """The shuffle seed of pass `pass_index` (0-based) of the training data: a pure
    function of the two, spread by a hash so that neighbouring seeds or passes give
    unrelated orders (the module docstring states the contract)."""
    entropy = [int(seed) & 0xFFFFFFFF, int(pass_index)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def as_passes(train_data: tf.data.Dataset | PassData) -> PassData:
    """The training data as `pass -> dataset`; a plain dataset is read again each pass."""
    if isinstance(train_data, tf.data.Dataset):
        return lambda _pass: train_data
    return train_data


def known_length(dataset: tf.data.Dataset) -> int | None:
    """Batches in `dataset` when tf.data knows it without reading, else None."""
    steps = int(dataset.cardinality())
    return steps if steps > 0 else None


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
        changed = changed_settings(run.read_config(), config)
        if changed:
            details = ", ".join(f"{k}: {v[0]!r} -> {v[1]!r}" for k, v in changed.items())
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


def changed_settings(saved: dict[str, Any], config: dict[str, Any]) -> dict[str, tuple]:
    """Settings that differ and forbid resuming: {name: (saved, new)}."""
    return {k: (saved.get(k), config.get(k)) for k in sorted(set(saved) | set(config))
            if k not in RESUMABLE_CHANGES and saved.get(k) != config.get(k)}


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


# ------------------------------------------------------------------- training state


def state_variables(model: keras.Model) -> list:
    """Everything a step reads besides the weights, in a fixed order: the optimizer's
    variables, the random-generator states (Keras `SeedGenerator`s: dropout), the metric
    accumulators of the epoch in progress, and what the model carries between batches
    (`carried_variables`, e.g. a stateful language model's recurrent state)."""
    weights = {id(w) for w in model.weights}
    generators = [v for v in model.variables if id(v) not in weights]
    return [*model.optimizer.variables, *generators, *model.metrics_variables,
            *getattr(model, "carried_variables", ())]


def state_arrays(model: keras.Model) -> dict[str, np.ndarray]:
    return {f"{i:04d}": np.asarray(v.numpy()) for i, v in enumerate(state_variables(model))}


def restore_state(model: keras.Model, run: RunDirectory, state: dict[str, Any]) -> None:
    """Weights and `state_variables` from `backup/` as `state` names them."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(run.backup / state["weights"])
    variables = state_variables(model)
    with np.load(run.backup / state["arrays"]) as arrays:
        if len(arrays.files) != len(variables):
            raise AppError(f"'{run.path}' holds a backup of another model or version: pass "
                           "--overwrite to start over.")
        for i, variable in enumerate(variables):
            variable.assign(arrays[f"{i:04d}"])


def write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = ["epoch"] + sorted({k for row in rows for k in row} - {"epoch", "seconds"})
    columns.append("seconds")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in columns})
    atomic_write_text(path, buffer.getvalue())


@dataclass
class CheckpointEvery:
    """How often to back up within an epoch: every `steps` steps or `seconds` seconds."""

    steps: int | None = None
    seconds: float | None = None

    def due(self, steps_since: int, seconds_since: float) -> bool:
        return bool((self.steps and steps_since >= self.steps)
                    or (self.seconds and seconds_since >= self.seconds))


def unbeaten(mode: str) -> float:
    """The best value of a metric before any epoch: every number of `mode` beats it."""
    return np.inf if mode == "min" else -np.inf


def improves(value: float, best: float, mode: str) -> bool:
    """Whether an epoch's `value` of the monitored metric makes it the best epoch."""
    return value < best if mode == "min" else value > best


class ResumableTraining:
    """Per epoch: history row, best weights, early stopping and a crash-safe backup;
    within an epoch: backups every `checkpoint_every`.

    Epochs are numbered from 1 everywhere (history.csv, `best_epoch`, messages).

    Args:
        run: where to write.
        monitor: the validation metric that picks the best epoch ("val_loss", ...).
        mode: "min" or "max" for `monitor`.
        patience: stop after this many epochs without improvement (0: never).
        time_budget: seconds of training after which to stop cleanly (None: no limit).
        state: `run.read_state()` when resuming, else None.
        clock: a float variable set to the seconds trained so far (an interrupted run's
            included) before every batch, for schedules that follow the time budget.
        checkpoint_every: backups within an epoch (None: at epoch ends only).
    """

    def __init__(self, run: RunDirectory, monitor: str, mode: str, patience: int = 0,
                 time_budget: float | None = None, state: dict[str, Any] | None = None,
                 clock: tf.Variable | None = None,
                 checkpoint_every: CheckpointEvery | None = None):
        self.run, self.monitor, self.mode = run, monitor, mode
        self.patience, self.time_budget, self.clock = patience, time_budget, clock
        self.checkpoint_every = checkpoint_every
        self.keep_epochs = 0  # --keep-epochs: also keep the last N epochs' weights
        state = state or {}
        self.rows: list[dict[str, Any]] = state.get("history", [])
        self.epochs_done = state.get("epoch", 0)
        self.epoch_steps = state.get("step", 0)  # steps of the epoch in progress
        self.epoch_seconds = state.get("epoch_seconds", 0.0)
        self.position = state.get("position", {"pass": 0, "batch": 0})
        self.best = state.get("best", unbeaten(mode))
        self.best_epoch = state.get("best_epoch", 0)
        self.bad_epochs = state.get("bad_epochs", 0)
        self.spent = state.get("seconds", 0.0)
        self.budget_spent = False
        self.stop = False
        self._train_start = time.perf_counter() - self.spent
        self._last_backup = (self.epoch_steps, time.perf_counter())

    def _improved(self, value: float) -> bool:
        return improves(value, self.best, self.mode)

    def elapsed(self) -> float:
        return time.perf_counter() - self._train_start

    def start_epoch(self) -> None:
        self._epoch_start = time.perf_counter() - self.epoch_seconds

    def before_batch(self) -> None:
        if self.clock is not None:
            self.clock.assign(self.elapsed())

    def over_budget(self) -> bool:
        return bool(self.time_budget) and self.elapsed() > self.time_budget

    def after_step(self, model: keras.Model, epoch: int, step: int,
                   position: dict[str, int]) -> None:
        """Back up mid-epoch when `checkpoint_every` says so."""
        steps, since = self._last_backup
        if self.checkpoint_every and self.checkpoint_every.due(
                step - steps, time.perf_counter() - since):
            self.backup(model, epoch - 1, step, position)

    def end_epoch(self, model: keras.Model, epoch: int, logs: dict[str, float],
                  position: dict[str, int]) -> None:
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
        if self.keep_epochs:
            self.keep_epoch(model, epoch)
        if self.patience and self.bad_epochs >= self.patience:
            log.info("No improvement of %s for %d epochs: stopping.", self.monitor, self.patience)
            self.stop = True
        self.epoch_seconds = 0.0
        self.backup(model, epoch, 0, position)
        write_history(self.run.history, self.rows)

    def keep_epoch(self, model: keras.Model, epoch: int) -> None:
        """This epoch's weights beside the best (atomically); those of epochs before the
        last `keep_epochs` go."""
        tmp = self.run.checkpoints / "epoch.tmp.weights.h5"
        model.save_weights(tmp)
        os.replace(tmp, self.run.epoch_weights(epoch))
        for old in self.run.kept_epochs():
            if old <= epoch - self.keep_epochs:
                self.run.epoch_weights(old).unlink(missing_ok=True)

    def backup(self, model: keras.Model, epochs_done: int, step: int,
               position: dict[str, int]) -> None:
        """`backup/`: weights, `state_arrays` and state.json (last, atomically), after
        `epochs_done` epochs and `step` steps of the next."""
        name = f"epoch-{epochs_done}-step-{step}"
        weights, arrays = f"{name}.weights.h5", f"{name}.state.npz"
        model.save_weights(self.run.backup / weights)
        with open(self.run.backup / arrays, "wb") as handle:
            np.savez(handle, **state_arrays(model))
        self.spent = self.elapsed()
        self.epochs_done, self.epoch_steps = epochs_done, step
        epoch_seconds = time.perf_counter() - self._epoch_start if step else 0.0
        write_json(self.run.state, {
            "epoch": epochs_done, "step": step, "position": dict(position),
            "weights": weights, "arrays": arrays, "monitor": self.monitor,
            "best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
            "seconds": self.spent, "epoch_seconds": epoch_seconds, "history": self.rows,
        })
        self._last_backup = (step, time.perf_counter())
        for old in self.run.backup.glob("epoch-*"):
            if not old.name.startswith(f"{name}."):
                old.unlink(missing_ok=True)


# ------------------------------------------------------------------------ the data


class DataStream:
    """The training batches as one stream of passes (`PassData`), with the position
    (pass, batches of it read) that a backup keeps and a restart continues from."""

    def __init__(self, passes: PassData, strategy: tf.distribute.Strategy,
                 position: dict[str, int] | None = None):
        self.passes, self.strategy = passes, strategy
        position = position or {}
        self.pass_index, self.batch = position.get("pass", 0), position.get("batch", 0)
        self._iterator = None
        self.element_spec = None  # of the batches being read (the pass opened last)

    @property
    def position(self) -> dict[str, int]:
        return {"pass": self.pass_index, "batch": self.batch}

    def _open(self) -> None:
        dataset = self.passes(self.pass_index)
        if self.batch:
            dataset = dataset.skip(self.batch)  # the same batches, read and dropped
        batches = distribute.distribute(self.strategy, dataset)
        self.element_spec = batches.element_spec
        self._iterator = iter(batches)

    def epoch(self, steps: int | None) -> Iterator:
        """The next epoch's batches: the rest of the current pass (`steps` None), or the
        next `steps` batches, read on into the next passes."""
        taken = 0
        while steps is None or taken < steps:
            if self._iterator is None:
                self._open()
            try:
                batch = next(self._iterator)
            except StopIteration:
                self._iterator = None
                if self.batch == 0:
                    raise AppError("A pass over the training data gave no batch: is the "
                                   "training data empty?") from None
                self.pass_index, self.batch = self.pass_index + 1, 0
                if steps is None:
                    return
                continue
            self.batch += 1
            taken += 1
            yield batch


def batch_rows(batch) -> int | None:
    """Examples in a batch (rows of its first tensor); None for per-replica values."""
    first = tf.nest.flatten(batch)[0]
    return int(first.shape[0]) if isinstance(first, tf.Tensor) and first.shape.rank else None


# ------------------------------------------------------------------------ the loop


class TrainingLoop:
    """The model's own `train_step` / `test_step`, one compiled call per batch, run on
    every replica of `strategy` (Keras' `fit` fails under multi-worker strategies in
    Keras 3, and one loop for every strategy keeps one code path).

    Each step is traced once per dataset `element_spec` (its unknown batch and time
    dimensions stay unknown), not once per new batch shape: padded batches of another
    length, or a last smaller batch, reuse the same graph. `traces` counts the tracings
    (what a test of this checks)."""

    def __init__(self, model: keras.Model, strategy: tf.distribute.Strategy,
                 batch_spec, jit_compile: bool = False):
        """`batch_spec`: a batch, or the training data's `element_spec` (only the shapes
        and dtypes are read)."""
        self.model, self.strategy, self.jit_compile = model, strategy, jit_compile
        with strategy.scope():  # metric, loss and optimizer variables, before any tracing
            model._symbolic_build(data_batch=batch_spec)  # noqa: SLF001 - what fit does
        self.agree = distribute.is_multi_worker(strategy)
        self.traces: collections.Counter[str] = collections.Counter()
        self._compiled: dict[tuple[str, str], Callable] = {}
        self.steps = 0
        self.examples = 0

    def step(self, kind: str, element_spec) -> Callable:
        """The compiled `kind` step ("train" or "test") for batches of `element_spec`."""
        key = (kind, repr(element_spec))
        if key in self._compiled:
            return self._compiled[key]
        model, strategy = self.model, self.strategy

        def counted(step):
            def traced(*args):
                self.traces[kind] += 1  # Python runs only while tracing
                log.debug("Tracing the %s step for %s", kind, element_spec)
                return step(*args)
            return traced

        if kind == "test":
            step = counted(model.test_step)
            signature = [element_spec]

            def run(batch):
                return strategy.run(step, args=(batch,))
        elif self.agree:
            def train_and_agree(batch, stop):
                """A training step that also sums every worker's "time is up" flag, so
                that all stop after the same step (collective ops need every worker)."""
                context = tf.distribute.get_replica_context()
                return model.train_step(batch), context.all_reduce("sum", tf.identity(stop))

            step = counted(train_and_agree)
            signature = [element_spec, tf.TensorSpec([], tf.float32)]

            def run(batch, stop):
                return strategy.run(step, args=(batch, stop))
        else:
            step = counted(model.train_step)
            signature = [element_spec]

            def run(batch):
                return strategy.run(step, args=(batch,))
        compiled = graph_function(run, input_signature=signature, jit_compile=self.jit_compile)
        self._compiled[key] = compiled
        return compiled

    def _first_replica(self, logs) -> dict[str, float]:
        return {k: float(v) for k, v in
                self.strategy.experimental_local_results(logs)[0].items()}

    def _results(self, prefix: str = "") -> dict[str, float]:
        """The epoch's metrics, summed over every replica (Keras metrics sync on read)."""
        return {prefix + k: float(v) for k, v in self.model.get_metrics_result().items()}

    def train_epoch(self, batches, tracker: ResumableTraining, progress, epoch: int,
                    stream: DataStream, first_step: int = 0) -> dict[str, float]:
        """One epoch; `first_step` > 0 continues one a backup interrupted (its metric
        accumulators restored, so they are not reset)."""
        if not first_step:
            self.model.reset_metrics()
        self.steps, self.examples = first_step, 0
        for batch in batches:
            tracker.before_batch()
            train_step = self.step("train", stream.element_spec)
            if self.agree:
                logs, stops = train_step(batch, tf.constant(float(tracker.over_budget())))
                stop = float(self.strategy.experimental_local_results(stops)[0]) > 0
            else:
                logs, stop = train_step(batch), tracker.over_budget()
            self.steps += 1
            self.examples += batch_rows(batch) or 0
            if progress is not None:
                progress.step(self.steps, self.examples, self._first_replica(logs))
            if stop:
                tracker.budget_spent = tracker.stop = True
                break
            tracker.after_step(self.model, epoch, self.steps, stream.position)
        return self._results()

    def evaluate(self, dataset) -> dict[str, float]:
        self.model.reset_metrics()
        batches = distribute.distribute(self.strategy, dataset)
        test_step = self.step("test", batches.element_spec)
        for batch in batches:
            test_step(batch)
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
        reason = str(error).strip().splitlines()[0][:160] if str(error).strip() else ""
        raise AppError(f"Lost contact with another worker during epoch "
                       f"{tracker.epochs_done + 1} ({reason}): start the same command on "
                       "every worker again to resume from the last backup.") from None


def _write_summaries(writers: dict, epoch: int, logs: dict[str, float]) -> None:
    """Epoch scalars for TensorBoard, as Keras writes them (train/ and validation/)."""
    for key, value in logs.items():
        side = "validation" if key.startswith("val_") else "train"
        with writers[side].as_default():
            tf.summary.scalar("epoch_" + key.removeprefix("val_"), value, step=epoch)
    for writer in writers.values():
        writer.flush()


def mid_epoch_backups(every: CheckpointEvery | None, model: keras.Model,
                      strategy: tf.distribute.Strategy) -> CheckpointEvery | None:
    """`every`, unless backups within an epoch cannot be exact here: a model carrying
    state between batches on several replicas (one backup holds one replica's), or
    time-based backups on several workers (each would stop at another step)."""
    if every is None:
        return None
    if getattr(model, "carried_variables", ()) and strategy.num_replicas_in_sync > 1:
        log.info("Backups at epoch ends only: the carried state of %d replicas is not "
                 "saved mid-epoch.", strategy.num_replicas_in_sync)
        return None
    if every.seconds and distribute.is_multi_worker(strategy):
        log.info("Backups at epoch ends only under multi-worker training: give "
                 "--checkpoint-every in steps (e.g. 500steps) for backups within an epoch.")
        return CheckpointEvery(steps=every.steps) if every.steps else None
    return every


def fit(model: keras.Model, train_data: tf.data.Dataset | PassData, valid_data, run: RunDirectory,
        epochs: int, monitor: str, mode: str, patience: int = 0,
        time_budget: float | None = None, resume: bool = False, verbose: int = 1,
        clock: tf.Variable | None = None, strategy: tf.distribute.Strategy | None = None,
        jit_compile: bool = False, validation: Callable[[], dict[str, float]] | None = None,
        steps_per_epoch: int | None = None,
        checkpoint_every: CheckpointEvery | None = None,
        watch: Callable[[int, dict[str, float]], None] | None = None,
        keep_epochs: int = 0) -> ResumableTraining:
    """Train epoch by epoch with resume, best-epoch selection, a time budget and
    TensorBoard logs; the best weights are loaded at the end.

    `train_data` follows the contract of this module's docstring. An epoch is one pass,
    or `steps_per_epoch` batches of the stream of passes (validation then runs every
    that many steps). `validation`, when given, adds metrics after every epoch's Keras
    validation (BLEU, WER: what the user's decoder scores), which `monitor` may name.
    `watch(epoch, logs)` sees every epoch's logs (warnings such as `BaselineWatch`).
    `keep_epochs`: also keep the last that many epochs' weights (`RunDirectory.kept_epochs`).
    """
    from apps.progress import RunProgress

    strategy = strategy or tf.distribute.get_strategy()
    passes = as_passes(train_data)
    state = run.read_state() if resume else None
    tracker = ResumableTraining(run, monitor, mode, patience, time_budget, state, clock)
    tracker.keep_epochs = keep_epochs
    stopped_early = state is not None and patience and state["bad_epochs"] >= patience
    if tracker.epochs_done < epochs and not stopped_early:
        first_pass = passes(0)  # its shapes and length; DataStream opens the passes it reads
        loop = TrainingLoop(model, strategy, first_pass.element_spec, jit_compile)
        tracker.checkpoint_every = mid_epoch_backups(checkpoint_every, model, strategy)
        if state is not None:
            with strategy.scope():
                restore_state(model, run, state)
            log.info("Resuming %s", resume_message(state))
        stream = DataStream(passes, strategy, tracker.position)
        steps = steps_per_epoch or known_length(first_pass)
        progress = RunProgress(epochs, steps, time_budget, tracker) if verbose else None
        writers = {side: tf.summary.create_file_writer(str(run.logs / side))
                   for side in ("train", "validation")}
        for epoch in range(tracker.epochs_done + 1, epochs + 1):
            first_step = tracker.epoch_steps if epoch == tracker.epochs_done + 1 else 0
            if progress is not None:
                progress.start_epoch(epoch, first_step)
            tracker.start_epoch()
            with lost_workers_said_plainly(strategy, tracker):
                logs = loop.train_epoch(stream.epoch(None if steps_per_epoch is None
                                                     else steps_per_epoch - first_step),
                                        tracker, progress, epoch, stream, first_step)
                logs.update(loop.evaluate(valid_data))
            if validation is not None:
                logs.update(validation())
            tracker.epoch_steps = 0
            if progress is not None:
                progress.end_epoch(loop.steps, logs)
            _write_summaries(writers, epoch, logs)
            if watch is not None:
                watch(epoch, logs)
            tracker.end_epoch(model, epoch, logs, stream.position)
            if tracker.stop:
                break
    if not run.best_weights.is_file():
        raise AppError("Training ended before one epoch was complete: nothing to keep.")
    model.load_weights(run.best_weights)
    return tracker


def resume_message(state: dict[str, Any]) -> str:
    """Where a resumed run continues, in the 1-based numbering of history.csv."""
    where = (f"in epoch {state['epoch'] + 1} after its step {state['step']}" if state["step"]
             else f"after epoch {state['epoch']}")
    best = (f" (best {state['monitor']} {state['best']:.4f} at epoch {state['best_epoch']})"
            if state["best_epoch"] else "")
    return where + best + "."


def finish(run: RunDirectory, metrics: dict[str, Any]) -> None:
    """Mark the run finished: metrics.json, and no resume state left behind."""
    write_json(run.metrics, metrics)
    shutil.rmtree(run.backup, ignore_errors=True)
