"""Translating sentences with a run directory or an exported SavedModel, the same way.

A run decodes with `apps.translation.decoding` in a `tf.function` over batches of
similar length; a SavedModel is called through its `translate` signature, which holds
the same search. Sentences longer than the model's --max-length are cut, with a
warning; an empty sentence translates to the empty string. N-best lists and forced
decoding (`score_pairs`) call the serving functions on both kinds
(`serving.serving_function`).
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

import numpy as np
import tensorflow as tf

from apps import decoding as search_decoding
from apps.task import Trained
from apps.translation import decoding, serving
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
              batch_size: int = 64, n_best: int | None = None,
              alignments: bool = False) -> list[dict[str, Any]]:
    """One {"source", "translation", "score"} per text, in input order; with `n_best`,
    also "n_best": that many {"translation", "score"}, best first (the first is the
    translation); with `alignments`, "alignment": per target piece, the source piece
    it attended to most."""
    beam = beam_size_of(trained, beam_size)
    texts = list(texts)
    if not texts:
        return []
    if n_best:
        return _n_best(trained, texts, beam, int(n_best), batch_size, alignments)
    if trained.is_saved_model:
        translations, scores, aligned = _saved_model(trained, texts, beam, batch_size)
    else:
        translations, scores, aligned = _run(trained, texts, beam, batch_size)
    rows = [{"source": text, "translation": translation, "score": float(score)}
            for text, translation, score in zip(texts, translations, scores)]
    if alignments and aligned is not None:
        for row, alignment in zip(rows, aligned):
            row["alignment"] = alignment
    return rows


def _max_length(trained) -> int:
    if trained.is_saved_model:
        return int(trained.metadata.get("max_length", 256))
    return int(trained.settings.max_length)


def _pieces(alignment) -> list[int]:
    return [int(i) for i in alignment if i != search_decoding.NO_ALIGNMENT]


def _saved_model(trained, texts, beam, batch_size):
    signature = trained.signatures["translate"]
    max_length = _max_length(trained)
    translations, scores, aligned = [], [], []
    for start in range(0, len(texts), batch_size):
        out = signature(text=tf.constant(texts[start : start + batch_size]),
                        beam_size=tf.constant(beam), max_length=tf.constant(max_length))
        translations += [t.decode("utf-8") for t in out["translation"].numpy()]
        scores += out["score"].numpy().tolist()
        if "aligned_source" in out:  # exports before alignments have none
            aligned += [_pieces(row) for row in out["aligned_source"].numpy()]
    return translations, scores, aligned if aligned else None


def _run(trained, texts, beam, batch_size):
    source, target = trained.inputters["source"], trained.inputters["target"]
    warn_truncated(source, texts)
    search = _decoder(trained, beam)
    translations, scores = [""] * len(texts), np.zeros(len(texts), np.float32)
    aligned: list[list[int]] = [[] for _ in texts]
    for positions, batch in batching.sorted_batches(source.encode(texts), batch_size):
        found = search_decoding.first(search(tf.constant(batch)))
        ids, lengths = found.ids.numpy(), found.lengths.numpy()
        alignment = found.alignment.numpy()
        for row, position in enumerate(positions):
            translations[position] = target.tokenizer.decode(ids[row, : lengths[row]])
            aligned[position] = alignment[row, : lengths[row]].tolist()
        scores[positions] = found.scores.numpy()
    return translations, scores.tolist(), aligned


def warn_truncated(source, texts) -> None:
    cut = source.count_truncated(texts)
    if cut:
        log.warning("%d sentence(s) are longer than --max-length %d tokens: translating "
                    "their first %d tokens only.", cut, source.max_length, source.max_length)


def _n_best(trained, texts, beam, n_best, batch_size, alignments):
    """The serving function `translate_n_best` over batches, for either kind of model."""
    if not trained.is_saved_model:
        warn_truncated(trained.inputters["source"], texts)
    function = serving.serving_function(trained, "translate_n_best")
    rows = []
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        out = function(text=tf.constant(batch), beam_size=tf.constant(beam),
                       max_length=tf.constant(_max_length(trained)),
                       n_best=tf.constant(n_best))
        for text, found, scores, aligned in zip(batch, out["translations"].numpy(),
                                                out["scores"].numpy(),
                                                out["aligned_source"].numpy()):
            hypotheses = [{"translation": t.decode("utf-8"), "score": float(s)}
                          for t, s in zip(found, scores)]
            if alignments:
                for hypothesis, alignment in zip(hypotheses, aligned):
                    hypothesis["alignment"] = _pieces(alignment)
            rows.append({"source": text, **hypotheses[0], "n_best": hypotheses})
    return rows


def score_pairs(trained: Trained, sources: list[str], targets: list[str],
                batch_size: int = 64) -> list[dict[str, Any]]:
    """Forced decoding: one {"source", "target", "score" (natural-log probability of the
    target, end id included), "tokens", "pieces", "token_scores", "alignment"} per pair,
    from the `score` serving function of either kind of model."""
    function = serving.serving_function(trained, "score")
    rows = []
    for start in range(0, len(sources), batch_size):
        source, target = sources[start : start + batch_size], targets[start : start + batch_size]
        out = function(source=tf.constant(source), target=tf.constant(target))
        for i, (text, wanted) in enumerate(zip(source, target)):
            n = int(out["tokens"][i])
            rows.append({"source": text, "target": wanted, "score": float(out["score"][i]),
                         "tokens": n,
                         "pieces": [p.decode("utf-8") for p in out["pieces"].numpy()[i, :n]],
                         "token_scores": out["token_scores"].numpy()[i, :n].tolist(),
                         "alignment": out["aligned_source"].numpy()[i, :n].tolist()})
    return rows
