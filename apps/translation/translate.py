"""Translating sentences with a run directory or an exported SavedModel, the same way.

Both are called through the `translate` signature (`apps.translation.serving`: the
search inside the graph; a run's is built in memory), so a run translates exactly as
its export. Sentences of similar length share a batch. Sentences longer than the
model's --max-length are cut (a run directory warns); an empty sentence translates
to the empty string.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import tensorflow as tf

from apps.task import Trained

log = logging.getLogger(__name__)


def beam_size_of(trained: Trained, beam_size: int | None) -> int:
    """The beam size asked for, else the model's own (`serving_default`'s)."""
    return int(beam_size) if beam_size else int(trained.metadata["beam_size"])


def translate(trained: Trained, texts: list[str], beam_size: int | None = None,
              batch_size: int = 64) -> list[dict[str, Any]]:
    """One {"source", "translation", "score"} per text, in input order."""
    beam = beam_size_of(trained, beam_size)
    texts = list(texts)
    if "source" in trained.inputters:  # a run can count what its tokenizer cuts
        source = trained.inputters["source"]
        cut = source.count_truncated(texts)
        if cut:
            log.warning("%d sentence(s) are longer than --max-length %d tokens: translating "
                        "their first %d tokens only.", cut, source.max_length,
                        source.max_length)
    signature = trained.signatures["translate"]
    max_length = int(trained.metadata["max_length"])
    translations, scores = [""] * len(texts), np.zeros(len(texts), np.float32)
    order = np.argsort([len(text) for text in texts], kind="stable")
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        out = signature(text=tf.constant([texts[i] for i in rows]),
                        beam_size=tf.constant(beam), max_length=tf.constant(max_length))
        for row, translation in zip(rows, out["translation"].numpy()):
            translations[row] = translation.decode("utf-8")
        scores[rows] = out["score"].numpy()
    return [{"source": text, "translation": translation, "score": float(score)}
            for text, translation, score in zip(texts, translations, scores.tolist())]
