"""What a training run shows while it runs: where the whole run stands (epoch i of n,
time so far, an estimate of the time left) and a bar per epoch with examples/s.

Epochs are numbered from 1, as in history.csv. The estimate follows the steps when
the epoch's length is known (a pass of known size, or `--steps-per-epoch`), else the
epochs; a `--time-budget` caps it. Nothing here decides anything: `--quiet` drops it.
"""

from __future__ import annotations

import logging
import time

import keras

log = logging.getLogger(__name__)


def duration(seconds: float) -> str:
    """4s, 3m05s, 2h01m."""
    seconds = int(round(max(seconds, 0)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class RunProgress:
    """The run line at each epoch's start and the epoch's bar.

    Args:
        epochs: epochs planned.
        steps: steps per epoch when known, else None.
        time_budget: seconds of training allowed (None: no limit).
        tracker: the run's `ResumableTraining` (seconds trained, epochs and steps done,
            an interrupted run's included).
    """

    def __init__(self, epochs: int, steps: int | None, time_budget: float | None, tracker):
        self.epochs, self.steps, self.time_budget = epochs, steps, time_budget
        self.tracker = tracker
        self.bar = None

    def remaining(self, epoch: int, first_step: int) -> float | None:
        """Seconds the run may still need, from its pace so far (None before any pace)."""
        elapsed = self.tracker.elapsed()
        done_epochs = epoch - 1
        if self.steps:
            done = done_epochs * self.steps + first_step
            left = self.epochs * self.steps - done
        else:
            done, left = done_epochs, self.epochs - done_epochs
        estimate = elapsed / done * left if done and elapsed > 0 else None
        if self.time_budget:
            budget_left = max(self.time_budget - elapsed, 0.0)
            estimate = budget_left if estimate is None else min(estimate, budget_left)
        return estimate

    def line(self, epoch: int, first_step: int = 0) -> str:
        text = f"Epoch {epoch}/{self.epochs}"
        if first_step:
            text += f", from step {first_step + 1}"
        text += f": {duration(self.tracker.elapsed())} trained"
        left = self.remaining(epoch, first_step)
        if left is not None:
            text += f", about {duration(left)} left"
        return text + "."

    def start_epoch(self, epoch: int, first_step: int = 0) -> None:
        log.info("%s", self.line(epoch, first_step))
        self._start, self._values = time.perf_counter(), []
        self.bar = keras.utils.Progbar(self.steps, stateful_metrics=["examples/s"])
        if first_step:
            self.bar.update(first_step)

    def step(self, steps: int, examples: int, logs: dict[str, float]) -> None:
        seconds = time.perf_counter() - self._start
        self._values = list(logs.items())
        if examples and seconds > 0:
            self._values.append(("examples/s", examples / seconds))
        self.bar.stateful_metrics.update(logs)  # already running means: shown as they are
        self.bar.update(steps, self._values)

    def end_epoch(self, steps: int, logs: dict[str, float]) -> None:
        self.bar.stateful_metrics.update(logs)
        rate = [v for v in self._values if v[0] == "examples/s"]
        self.bar.update(steps, list(logs.items()) + rate, finalize=True)
