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
