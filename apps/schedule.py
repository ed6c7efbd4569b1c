"""The optimizer every task trains with: Adam, with an optional warm-up and cosine decay
to zero that ends on time if needed.

With `--time-budget` the run may stop long before its planned epochs; a cosine
schedule planned over the epochs would then stop at a high learning rate, which
costs a language model much of its final loss. Here the decay follows whichever
ends first, the planned steps or the wall-clock budget, so a budgeted run still
anneals to zero as the budget runs out. Without a budget it is a plain step-based
schedule and runs are reproducible.
"""

from __future__ import annotations

import logging
import math

import keras
import tensorflow as tf

log = logging.getLogger(__name__)


class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Peak `learning_rate` after `warmup_steps`, zero at `total_steps` or `budget_seconds`.

    `clock` is the runner's training clock: a float64 variable that `apps.runner.train`
    creates and `apps.training.ResumableTraining` sets before every batch to the
    seconds trained so far (an interrupted run's included), so the graph reads time
    without a timestamp op (TensorFlow's op determinism forbids those).
    """

    def __init__(self, learning_rate: float, total_steps: int, warmup_steps: int = 0,
                 budget_seconds: float | None = None, clock: tf.Variable | None = None):
        self.learning_rate, self.total_steps = float(learning_rate), max(int(total_steps), 1)
        self.warmup_steps = min(int(warmup_steps), self.total_steps - 1)
        self.budget_seconds = budget_seconds if clock is not None else None
        self.clock = clock

    def __call__(self, step):
        step = tf.cast(step, tf.float64)
        warmup = tf.cast(self.warmup_steps, tf.float64)
        progress = (step - warmup) / tf.cast(self.total_steps - self.warmup_steps, tf.float64)
        if self.budget_seconds:
            spent = tf.cast(self.clock, tf.float64) / self.budget_seconds
            progress = tf.maximum(progress, spent)
        progress = tf.clip_by_value(progress, 0.0, 1.0)
        decayed = 0.5 * (1.0 + tf.cos(math.pi * progress))
        warming = tf.minimum((step + 1.0) / tf.maximum(warmup, 1.0), 1.0)
        rate = self.learning_rate * tf.where(step < warmup, warming, decayed)
        return tf.cast(rate, tf.float32)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "budget_seconds": self.budget_seconds}


def planned_warmup(configured: int, total_steps: int | None) -> int:
    """The warm-up: `configured` steps, but at most a tenth of the planned steps (when
    known), so a short run on small data is not over before its warm-up is."""
    if not total_steps:
        return configured
    warmup = min(configured, total_steps // 10)
    if warmup < configured:
        log.info("Warm-up shortened from %d to %d steps: a tenth of the %d planned.",
                 configured, warmup, total_steps)
    return warmup


class LayerwiseAdam(keras.optimizers.Adam):
    """Adam whose step may be scaled per variable (discriminative learning rates) and
    held at zero until a given step (gradual unfreezing), as ULMFiT fine-tunes.

    Both follow the optimizer's own step counter, so a resumed run (which restores it)
    freezes and scales exactly as the uninterrupted one; without `set_layer_rates` it is
    plain Adam. A frozen variable's moments still see its gradients, so it starts
    with warm statistics when it thaws.
    """

    _layer_rates: dict | None = None

    def set_layer_rates(self, rates) -> None:
        """`rates`: (variable, factor, first step it trains) for the variables that do not
        train at the full rate from step 0; set before the first step is traced."""
        self._layer_rates = {self._var_key(variable): (float(factor), int(start))
                             for variable, factor, start in rates}

    def update_step(self, gradient, variable, learning_rate):
        factor, start = (self._layer_rates or {}).get(self._var_key(variable), (1.0, 0))
        if start > 0 or factor != 1.0:
            learning_rate = tf.cast(learning_rate, tf.float32) * factor
        if start > 0:
            learning_rate = learning_rate * tf.cast(self.iterations >= start, tf.float32)
        return super().update_step(gradient, variable, learning_rate)


def adam(settings, plan) -> keras.optimizers.Adam:
    """Adam at `settings.learning_rate` with `settings.clip_norm`; when the settings have
    a schedule (`ScheduleSettings`) set to cosine, warm-up and cosine decay over the
    planned steps or the time budget, whichever ends first (`plan`: the runner's
    `TrainingPlan`, for the steps per epoch and the training clock)."""
    rate = settings.learning_rate
    if getattr(settings, "lr_schedule", "constant") == "cosine":
        total = plan.steps_per_epoch * settings.epochs if plan.steps_per_epoch else None
        rate = WarmupCosine(rate, total or settings.epochs,
                            planned_warmup(settings.warmup_steps, total),
                            settings.time_budget_seconds, plan.clock)
    return LayerwiseAdam(rate, global_clipnorm=settings.clip_norm)
