"""Checkpoint averaging at export: the mean of the last N kept epochs' weights.

Training keeps the last `--keep-epochs` epochs' weights beside the best
(`checkpoints/epoch-K.weights.h5`); `export --average-last N` loads each of the last N
into the model and exports the element-wise mean of every floating-point weight (an
integer variable, such as a random generator's state, keeps the last epoch's value).
Averaging the weights of the last epochs of one run smooths out the noise of the last
updates; it is what Marian and OpenNMT-tf offer as `average_checkpoints`.
"""

from __future__ import annotations

import numpy as np

from apps.errors import AppError
from apps.layout import RunDirectory


def average_last(model, run: RunDirectory, count: int) -> list[int]:
    """Set `model`'s weights to the mean of the last `count` kept epochs'; returns those
    epochs. Fewer kept than asked for is refused in one sentence."""
    kept = run.kept_epochs()
    if count < 1 or len(kept) < count:
        raise AppError(
            f"--average-last {count} needs the weights of {count} epochs, but '{run.path}' "
            f"keeps {len(kept)}{' (' + ', '.join(map(str, kept)) + ')' if kept else ''}: "
            f"train with --keep-epochs {max(count, 1)} to keep them.")
    epochs = kept[-count:]
    total = None
    for epoch in epochs:
        model.load_weights(run.epoch_weights(epoch))
        values = [np.asarray(v, np.float64) for v in model.get_weights()]
        total = values if total is None else [t + v for t, v in zip(total, values)]
    last = model.get_weights()
    model.set_weights([(t / count).astype(w.dtype) if np.issubdtype(w.dtype, np.floating)
                       else w for t, w in zip(total, last)])
    return epochs
