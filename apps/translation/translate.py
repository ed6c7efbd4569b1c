"""Translating sentences with a run directory or an exported SavedModel, the same way.

Both are called through the serving functions (`apps.translation.serving`: the search
inside the graph; a run's are built in memory), so a run translates exactly as its
export: `translate` for 1-best translations (and alignments), `translate_n_best` for
n-best lists, `score` for forced decoding. Sentences of similar length share a batch.
Sentences longer than the model's --max-length are cut (a run directory warns); an
empty sentence translates to the empty string.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import tensorflow as tf

from apps import decoding as search_decoding
from apps.task import Trained

log = logging.getLogger(__name__)


def beam_size_of(trained: Trained, beam_size: int | None) -> int:
    """The beam size asked for, else the model's own (`serving_default`'s)."""
    return int(beam_size) if beam_size else int(trained.metadata["beam_size"])


def warn_truncated(trained: Trained, texts: list[str]) -> None:
    """A run can count what its tokenizer cuts (an export cannot)."""
    if "source" not in trained.inputters:
        return
    source = trained.inputters["source"]
    cut = source.count_truncated(texts)
    if cut:
        log.warning("%d sentence(s) are longer than --max-length %d tokens: translating "
                    "their first %d tokens only.", cut, source.max_length, source.max_length)


def _by_length(texts: list[str], batch_size: int):
    """Positions of texts of similar length, a batch at a time."""
    order = np.argsort([len(text) for text in texts], kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def _pieces(alignment) -> list[int]:
    return [int(i) for i in alignment if i != search_decoding.NO_ALIGNMENT]


def translate(trained: Trained, texts: list[str], beam_size: int | None = None,
              batch_size: int = 64, n_best: int | None = None,
              alignments: bool = False) -> list[dict[str, Any]]:
    """One {"source", "translation", "score"} per text, in input order; with `n_best`,
    also "n_best": that many {"translation", "score"}, best first (the first is the
    translation); with `alignments`, "alignment": per target piece, the source piece
    it attended to most."""
    texts = list(texts)
    if not texts:
        return []
    warn_truncated(trained, texts)
    if n_best:
        return _n_best(trained, texts, beam_size_of(trained, beam_size), int(n_best),
                       batch_size, alignments)
    signature = trained.signatures["translate"]
    beam, max_length = beam_size_of(trained, beam_size), int(trained.metadata["max_length"])
    rows: list[dict[str, Any]] = [{} for _ in texts]
    for positions in _by_length(texts, batch_size):
        out = signature(text=tf.constant([texts[i] for i in positions]),
                        beam_size=tf.constant(beam), max_length=tf.constant(max_length))
        aligned = out["aligned_source"].numpy() if "aligned_source" in out else None
        for k, position in enumerate(positions):
            row = {"source": texts[position],
                   "translation": out["translation"].numpy()[k].decode("utf-8"),
                   "score": float(out["score"].numpy()[k])}
            if alignments and aligned is not None:  # exports before alignments have none
                row["alignment"] = _pieces(aligned[k])
            rows[position] = row
    return rows


def _n_best(trained, texts, beam, n_best, batch_size, alignments):
    """The serving function `translate_n_best` over batches, for either kind of model."""
    function = trained.signature("translate_n_best")
    max_length = int(trained.metadata["max_length"])
    rows: list[dict[str, Any]] = [{} for _ in texts]
    for positions in _by_length(texts, batch_size):
        out = function(text=tf.constant([texts[i] for i in positions]),
                       beam_size=tf.constant(beam), max_length=tf.constant(max_length),
                       n_best=tf.constant(n_best))
        for position, found, scores, aligned in zip(positions, out["translations"].numpy(),
                                                    out["scores"].numpy(),
                                                    out["aligned_source"].numpy()):
            hypotheses = [{"translation": t.decode("utf-8"), "score": float(s)}
                          for t, s in zip(found, scores)]
            if alignments:
                for hypothesis, alignment in zip(hypotheses, aligned):
                    hypothesis["alignment"] = _pieces(alignment)
            rows[position] = {"source": texts[position], **hypotheses[0], "n_best": hypotheses}
    return rows


def score_pairs(trained: Trained, sources: list[str], targets: list[str],
                batch_size: int = 64) -> list[dict[str, Any]]:
    """Forced decoding: one {"source", "target", "score" (natural-log probability of the
    target, end id included), "tokens", "pieces", "token_scores", "alignment"} per pair,
    from the `score` serving function of either kind of model."""
    function = trained.signature("score")
    rows = []
    for start in range(0, len(sources), batch_size):
        source, target = sources[start : start + batch_size], targets[start : start + batch_size]
        out = {key: value.numpy() for key, value in
               function(source=tf.constant(source), target=tf.constant(target)).items()}
        for i, (text, wanted) in enumerate(zip(source, target)):
            n = int(out["tokens"][i])
            rows.append({"source": text, "target": wanted, "score": float(out["score"][i]),
                         "tokens": n, "pieces": [p.decode("utf-8") for p in out["pieces"][i, :n]],
                         "token_scores": out["token_scores"][i, :n].tolist(),
                         "alignment": out["aligned_source"][i, :n].tolist()})
    return rows
