"""MR through Keras `fit` and through the project's loop: same seed, data, settings.

Point 6 of issue 20: MR test accuracy fell when `apps.training.fit` replaced Keras'
`model.fit`. This trains bench/configs/sentiment_mr.yaml with `apps.runner.train` as
it is, and again with `apps.training.fit` swapped for a `model.fit` driver that reads
the very same batches (the passes of `Task.datasets`, one per epoch), keeps the best
epoch by the same rule and loads it. Everything else (inputters, model, optimizer,
seeds) is the runner's. Test accuracy is scored once per run; dev picks the epoch.

    PYTHONPATH=. python bench/mr_fit_vs_loop.py --seeds 1 2 3 [--modes loop fit]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import keras
from common import ROOT, SHARED, machine

from apps import runner, training
from apps.config import resolve
from apps.sentiment.task import TASK

MR = SHARED / "sentiment" / "mr"
CONFIG = ROOT / "bench" / "configs" / "sentiment_mr.yaml"
LOOP_FIT = training.fit


def keras_fit(model, train_data, valid_data, run, epochs, monitor, mode, patience=0,
              time_budget=None, resume=False, verbose=0, clock=None, **_):
    """`apps.training.fit`'s contract through Keras' `model.fit` (no resume)."""
    passes = training.as_passes(train_data)
    steps = training.known_length(passes(0))
    data = passes(0)
    for index in range(1, epochs):
        data = data.concatenate(passes(index))
    tracker = training.ResumableTraining(run, monitor, mode, patience, time_budget)

    class Track(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            tracker.start_epoch()

        def on_epoch_end(self, epoch, logs=None):
            tracker.end_epoch(model, epoch + 1, {k: float(v) for k, v in logs.items()},
                              {"pass": epoch + 1, "batch": 0})
            if tracker.stop:
                model.stop_training = True

    model.fit(data, validation_data=valid_data, epochs=epochs, steps_per_epoch=steps,
              callbacks=[Track()], verbose=0, shuffle=False)
    model.load_weights(run.best_weights)
    return tracker


def one_run(mode: str, seed: int, workdir: Path, config: Path) -> dict:
    training.fit = keras_fit if mode == "fit" else LOOP_FIT
    settings = resolve(TASK.settings_class, config, {
        "data": str(MR / "train.tsv"), "valid": str(MR / "dev.tsv"), "seed": seed})
    start = time.perf_counter()
    path, report = runner.train(TASK, settings, workdir / f"{mode}-{seed}", verbose=0)
    wall = time.perf_counter() - start
    test = runner.evaluate(TASK, path, str(MR / "test.tsv"))
    rows = (path / "history.csv").read_text().splitlines()
    return {"mode": mode, "seed": seed, "wall_seconds": round(wall, 1),
            "best_epoch": report["best_epoch"], "dev_accuracy": report["accuracy"],
            "test_accuracy": test["accuracy"], "history": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--modes", nargs="+", default=["loop", "fit"])
    parser.add_argument("--config", type=Path, default=CONFIG)
    args = parser.parse_args()
    print(machine(), file=sys.stderr)
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for seed in args.seeds:
            for mode in args.modes:
                rows.append(one_run(mode, seed, Path(workdir), args.config))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    for mode in args.modes:
        tests = [r["test_accuracy"] for r in rows if r["mode"] == mode]
        devs = [r["dev_accuracy"] for r in rows if r["mode"] == mode]
        print(f"{mode}: test mean {statistics.mean(tests):.4f} {tests}; dev mean "
              f"{statistics.mean(devs):.4f}")
    print(json.dumps({"bench": "mr_fit_vs_loop", "runs": rows}))


if __name__ == "__main__":
    main()
