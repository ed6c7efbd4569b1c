"""Translating sentences with a run directory or an exported SavedModel, the same way.

A run decodes with `apps.translation.decoding` in a `tf.function` over batches of
similar length; a SavedModel is called through its `translate` signature, which holds
the same search. Sentences longer than the model's --max-length are cut, with a
warning; an empty sentence translates to the empty string.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

import numpy as np
import tensorflow as tf

from apps.task import Trained
from apps.translation import decoding
from pipelines import batching

log = logging.getLogger(__name__)
_DECODERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {key: fn}


def beam_size_of(trained: Trained, beam_size: int | None) -> int:
    """The beam size asked for, else the model's own (its settings, or the export's)."""
    if beam_size:
        return int(beam_size)
    if trained.is_saved_model:
        return int(trained.metadata.get("beam_size", 1))
    return int(trained.settings.beam_size)


def _decoder(trained: Trained, beam_size: int):
    """A compiled search for this model and these decoding settings, kept while the model
    lives (so validation after every epoch traces it once)."""
    settings = trained.settings
    cache = _DECODERS.setdefault(trained.model, {})
    key = (beam_size, settings.max_length, settings.length_penalty, settings.max_length_ratio)
    if key not in cache:

        @tf.function(reduce_retracing=True)
        def search(ids):
            return decoding.translate_ids(trained.model, ids, beam_size, settings.max_length,
                                          settings.length_penalty, settings.max_length_ratio)

        cache[key] = search
    return cache[key]


def translate(trained: Trained, texts: list[str], beam_size: int | None = None,
              batch_size: int = 64) -> list[dict[str, Any]]:
    """One {"source", "translation", "score"} per text, in input order."""
    beam = beam_size_of(trained, beam_size)
    texts = list(texts)
    if not texts:
        return []
    if trained.is_saved_model:
        translations, scores = _saved_model(trained, texts, beam, batch_size)
    else:
        translations, scores = _run(trained, texts, beam, batch_size)
    return [{"source": text, "translation": translation, "score": float(score)}
            for text, translation, score in zip(texts, translations, scores)]


def _saved_model(trained, texts, beam, batch_size):
    signature = trained.signatures["translate"]
    max_length = int(trained.metadata.get("max_length", 256))
    translations, scores = [], []
    for start in range(0, len(texts), batch_size):
        out = signature(text=tf.constant(texts[start : start + batch_size]),
                        beam_size=tf.constant(beam), max_length=tf.constant(max_length))
        translations += [t.decode("utf-8") for t in out["translation"].numpy()]
        scores += out["score"].numpy().tolist()
    return translations, scores


def _run(trained, texts, beam, batch_size):
    source, target = trained.inputters["source"], trained.inputters["target"]
    cut = source.count_truncated(texts)
    if cut:
        log.warning("%d sentence(s) are longer than --max-length %d tokens: translating "
                    "their first %d tokens only.", cut, source.max_length, source.max_length)
    search = _decoder(trained, beam)
    translations, scores = [""] * len(texts), np.zeros(len(texts), np.float32)
    for positions, batch in batching.sorted_batches(source.encode(texts), batch_size):
        found = search(tf.constant(batch))
        ids, lengths = found.ids.numpy(), found.lengths.numpy()
        for row, position in enumerate(positions):
            translations[position] = target.tokenizer.decode(ids[row, : lengths[row]])
        scores[positions] = found.scores.numpy()
    return translations, scores.tolist()
