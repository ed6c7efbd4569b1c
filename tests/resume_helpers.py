"""Resume tests: start an `apps ... train` command and kill it as a crash would."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def history_epochs(path: Path) -> list[int]:
    """The epochs a run's history.csv holds (none before it exists)."""
    return [int(row["epoch"]) for row in csv.DictReader(path.open())] if path.exists() else []


def train_killed_after(command: list, output: Path, epochs: int = 2, wait: float = 180.0,
                       env: dict | None = None) -> list[int]:
    """Run `command` and kill it with SIGKILL once `epochs` epochs are in `output`'s
    history.csv; the epochs it finished. A command that ends by itself fails the test."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    process = subprocess.Popen([str(part) for part in command], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + wait
    while len(history_epochs(output / "history.csv")) < epochs and time.monotonic() < deadline:
        assert process.poll() is None, "training ended before it could be interrupted"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return history_epochs(output / "history.csv")


def interrupt_after_backup(monkeypatch, backups: int) -> None:
    """Stop training with KeyboardInterrupt (as a power cut would stop it) right after
    its `backups`-th backup (epoch end or within an epoch) is on disk."""
    from apps import training

    original = training.ResumableTraining.backup
    written = []

    def backup_then_stop(self, *args, **kwargs):
        original(self, *args, **kwargs)
        written.append(args)
        if len(written) == backups:
            raise KeyboardInterrupt

    monkeypatch.setattr(training.ResumableTraining, "backup", backup_then_stop)


def interrupted_then_resumed(task, settings, output: Path, backups: int, monkeypatch) -> Path:
    """Train, stop right after the `backups`-th backup is written, train again."""
    import pytest

    from apps import runner
    from apps.layout import RunDirectory

    with monkeypatch.context() as patch:
        interrupt_after_backup(patch, backups)
        with pytest.raises(KeyboardInterrupt):
            runner.train(task, settings, output, verbose=0)
    assert RunDirectory(output).is_resumable()
    return runner.train(task, settings, output, verbose=0)[0]


def history_rows(run: Path) -> list[dict]:
    """history.csv without the wall-clock column."""
    return [{k: v for k, v in row.items() if k != "seconds"}
            for row in csv.DictReader((Path(run) / "history.csv").open())]


def weight_arrays(path: Path) -> dict:
    """Every array of a Keras weights file, by its path inside the file."""
    import h5py
    import numpy as np

    arrays = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, item: arrays.__setitem__(name, np.asarray(item))
                          if isinstance(item, h5py.Dataset) else None)
    return arrays


def assert_same_run(first: Path, second: Path) -> None:
    """The same history (but the seconds) and the same best weights, bit for bit."""
    import numpy as np

    assert history_rows(first) == history_rows(second)
    a, b = (weight_arrays(Path(run) / "checkpoints" / "best.weights.h5")
            for run in (first, second))
    assert a.keys() == b.keys() and a
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


assert_same_run.rows = history_rows
