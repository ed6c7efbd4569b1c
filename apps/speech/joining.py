"""Connected speech from isolated recordings: several recordings joined with silence.

A model trained on isolated words (one spoken digit per file) reads isolated words only;
joined sequences teach it to read several in a row. `joined` draws `count` sequences of
`fewest`..`most` recordings (any of them, with repetition) with 100-300 ms of silence
between, the transcript their words in order; the draw is a pure function of `seed`,
so `apps speech train --join-recordings` draws new sequences for every pass from the
pass seed (a resumed run draws the same: the contract of `apps.training`), and
validation and `evaluate --join-recordings` a fixed set from theirs. The audio is
assembled when a batch is made (`pipelines.audio.Joined`), nothing is written to disk.
"""

from __future__ import annotations

import numpy as np

from apps.task import Examples
from pipelines.audio import Joined, resampled_length

SILENCE_SECONDS = (0.1, 0.3)  # between two joined recordings
SHOWN_PARTS = 3  # parts named in a joined sequence's name


def joined(examples: Examples, count: int, fewest: int, most: int, seed) -> Examples:
    """`count` sequences of `fewest`..`most` of `examples`' recordings, as examples of
    the same form ("audio" a `Joined`; "rate" that of the first part, "frames" the
    length at that rate, silence included). `seed`: anything `np.random.default_rng` takes."""
    rng = np.random.default_rng(seed)
    total = len(examples["audio"])
    out: Examples = {key: [] for key in ("path", "audio", "rate", "frames", "channels",
                                         "text")}
    for size in rng.integers(fewest, most + 1, count):
        picked = [int(i) for i in rng.integers(0, total, size)]
        gaps = tuple(float(g) for g in rng.uniform(*SILENCE_SECONDS, size - 1))
        rate = examples["rate"][picked[0]]
        frames = sum(resampled_length(examples["frames"][i], examples["rate"][i], rate)
                     for i in picked) + sum(int(round(g * rate)) for g in gaps)
        names = [examples["path"][i] for i in picked]
        out["path"].append(" + ".join(names[:SHOWN_PARTS])
                           + (f" + {len(names) - SHOWN_PARTS} more" if size > SHOWN_PARTS
                              else ""))
        out["audio"].append(Joined(tuple(examples["audio"][i] for i in picked), gaps))
        out["rate"].append(rate)
        out["frames"].append(frames)
        out["channels"].append(max(examples["channels"][i] for i in picked))
        out["text"].append(" ".join(examples["text"][i] for i in picked))
    return out


def concat(first: Examples, second: Examples) -> Examples:
    """The examples of both, first's then second's."""
    return {key: list(first[key]) + list(second[key]) for key in first}
