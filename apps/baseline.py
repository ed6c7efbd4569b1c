"""Is training learning at all? The loss of a model that ignores its input.

A classifier that always answers the label frequencies, or a decoder that always
answers the token frequencies, reaches the *baseline loss* without learning anything
from the input; on small data with unlucky settings (a warm-up longer than the run,
a learning rate too low) training can sit there for the whole run and report a
model that only knows which tokens are common (translation BLEU 0.2). Each task may
say its baseline (`Task.baseline_loss`); `BaselineWatch` warns once when the
validation loss has not gone below it after a few epochs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np

log = logging.getLogger(__name__)


def unigram_loss(counts: Iterable[int], classes: int | None = None,
                 smoothing: float = 0.0) -> float:
    """The lowest mean cross-entropy (nats) of one fixed distribution q over `classes`
    outcomes, for outcomes seen `counts` times, under label smoothing `smoothing`
    (targets (1 - s) one-hot + s uniform): q = (1 - s) p + s / V, the best such model."""
    counts = np.asarray(list(counts), np.float64)
    classes = max(int(classes or len(counts)), len(counts))
    p = np.zeros(classes)
    p[: len(counts)] = counts / max(counts.sum(), 1.0)
    q = (1.0 - smoothing) * p + smoothing / classes
    with np.errstate(divide="ignore"):
        surprise = -np.log(q)
    seen = p > 0
    loss = (1.0 - smoothing) * float(np.sum(p[seen] * surprise[seen]))
    if smoothing:
        loss += smoothing * float(np.mean(surprise))
    return loss


class BaselineWatch:
    """After `after` epochs (or at the last, if fewer), warn once when the validation
    loss is not clearly (2 %) below `baseline`."""

    def __init__(self, baseline: float, epochs: int, after: int = 3):
        self.baseline, self.check_at, self.warned = baseline, min(after, epochs), False

    def __call__(self, epoch: int, logs: dict[str, float]) -> None:
        loss = logs.get("val_loss")
        if self.warned or epoch < self.check_at or loss is None:
            return
        if loss > 0.98 * self.baseline:
            self.warned = True
            log.warning(
                "After %d epoch(s) the validation loss (%.4f) is no better than that of a "
                "model ignoring its input (%.4f, the frequencies of the answers): training "
                "has not started to learn. Try more epochs or data, a higher "
                "--learning-rate, or fewer --warmup-steps.", epoch, loss, self.baseline)
