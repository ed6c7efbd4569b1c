"""A vocabulary shortlist: decode over the target pieces a batch's source can produce.

Most of a decoding step is the product with the output matrix (one row per target
piece) and the passes over its logits. The lexical table, computed once from a sample
of the training pairs (`fit`, saved in the run directory as `shortlist.npz`), holds
for every source piece the target pieces most associated with it (Dice coefficient of
the pairs they occur in, best first) and every target piece by frequency. Per batch,
in the graph (`shortlist_ids`), the shortlist is the union of the batch's source
pieces' first `per_source_piece` candidates, the `frequent` most frequent pieces and
the special ids, sorted: the special ids keep their positions, so the searches
(`apps.decoding`) run unchanged over shortlist positions, and
`apps.translation.decoding.ShortlistDecoder` maps them back to real ids. What the
export keeps is the table cut to the sizes chosen (two variables, stored once), not
the file.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from pipelines.tokenizer import EOS_ID

log = logging.getLogger(__name__)

FILENAME = "shortlist.npz"
SAMPLE_PAIRS = 100_000  # training pairs the table is counted from, at most
STORED_CANDIDATES = 64  # candidates kept per source piece in the file
# chosen on Multi30k `val` (docs/translation.md, "Decoding")
PER_SOURCE_PIECE = 5
FREQUENT = 250
SPECIAL = EOS_ID + 1  # ids 0..EOS_ID are always in a shortlist, in place


@dataclass
class LexicalTable:
    """candidates [source vocab, C]: per source piece, target ids best first (PAD_ID
    after its last); frequent [target vocab]: target ids, most frequent first."""

    candidates: np.ndarray
    frequent: np.ndarray

    def save(self, directory: Path) -> None:
        with open(Path(directory) / FILENAME, "wb") as handle:
            np.savez(handle, candidates=self.candidates, frequent=self.frequent)

    @classmethod
    def load(cls, directory: Path) -> LexicalTable | None:
        path = Path(directory) / FILENAME
        if not path.is_file():
            return None
        with np.load(path) as saved:
            return cls(saved["candidates"], saved["frequent"])

    def cut(self, per_source_piece: int, frequent: int) -> tuple[np.ndarray, np.ndarray]:
        """The export's part: [source vocab, per_source_piece] and [frequent] int32."""
        return (self.candidates[:, :per_source_piece].astype(np.int32),
                self.frequent[:frequent].astype(np.int32))


def sample_pairs(sources: list, targets: list, seed: int, size: int = SAMPLE_PAIRS):
    """At most `size` aligned (source, target) texts, a seeded choice."""
    if len(sources) <= size:
        return list(sources), list(targets)
    chosen = sorted(random.Random(seed).sample(range(len(sources)), size))
    return [sources[i] for i in chosen], [targets[i] for i in chosen]


def fit(source_ids: list[list[int]], target_ids: list[list[int]], source_vocab: int,
        target_vocab: int, keep: int = STORED_CANDIDATES) -> LexicalTable:
    """The table from tokenised pairs: sentence-level co-occurrence counts c(s, t),
    ranked per source piece by Dice 2 c(s, t) / (c(s) + c(t)) (plain counts would rank
    "the" and "." first for every piece, which the frequent pieces hold anyway)."""
    keys, source_counts = [], np.zeros(source_vocab, np.int64)
    target_counts, token_counts = np.zeros(target_vocab, np.int64), np.zeros(target_vocab,
                                                                             np.int64)
    for s, t in zip(source_ids, target_ids):
        s = np.unique(np.asarray(s, np.int64))
        t_all = np.asarray(t, np.int64)
        t = np.unique(t_all)
        s, t = s[s >= SPECIAL], t[t >= SPECIAL]
        np.add.at(token_counts, t_all, 1)
        source_counts[s] += 1
        target_counts[t] += 1
        keys.append((s[:, None] * target_vocab + t[None]).ravel())
    table = np.zeros((source_vocab, keep), np.int32)  # PAD_ID: nothing more
    if keys:
        pairs, counts = np.unique(np.concatenate(keys), return_counts=True)
        s, t = pairs // target_vocab, pairs % target_vocab
        dice = 2.0 * counts / (source_counts[s] + target_counts[t])
        order = np.lexsort((t, -dice, s))  # by source, best first, ties by id
        s, t = s[order], t[order]
        starts = np.searchsorted(s, s, side="left")
        rank = np.arange(len(s)) - starts
        kept = rank < keep
        table[s[kept], rank[kept]] = t[kept]
    token_counts[:SPECIAL] = -1  # specials are always in, in place
    frequent = np.argsort(-token_counts, kind="stable")[: target_vocab - SPECIAL]
    return LexicalTable(table, frequent.astype(np.int32))


def fit_from_texts(inputters, sources: list[str], targets: list[str], seed: int
                   ) -> LexicalTable:
    """The table from raw pairs (a bounded seeded sample of them)."""
    sources, targets = sample_pairs(sources, targets, seed)
    return fit(inputters["source"].tokenizer.encode(sources),
               inputters["target"].tokenizer.encode(targets),
               inputters["source"].vocab_size, inputters["target"].vocab_size)


def shortlist_ids(candidates, frequent, source_ids, vocab_size):
    """The sorted target ids [K] a batch of source ids [B, S] may produce: its pieces'
    candidates, the frequent pieces and the special ids 0..EOS_ID (so they keep their
    positions). Padding reads row PAD_ID of the table, which holds PAD_ID only."""
    picked = tf.gather(candidates, tf.reshape(tf.cast(source_ids, tf.int32), [-1]))
    ids = tf.concat([tf.reshape(picked, [-1]), frequent, tf.range(SPECIAL)], axis=0)
    present = tf.scatter_nd(ids[:, None], tf.ones_like(ids), [vocab_size])
    return tf.cast(tf.where(present > 0)[:, 0], tf.int32)


def table_for_run(path: Path, settings, inputters, read_training_data) -> LexicalTable | None:
    """The run's table; a run trained before tables existed gets one computed from the
    training data its config names (not saved: the run may be read-only), else None
    (the full vocabulary), each said once."""
    table = LexicalTable.load(path)
    if table is not None:
        return table
    try:
        train, _ = read_training_data(settings)
    except Exception as error:  # noqa: BLE001 - any unreadable data: decode in full
        log.warning("'%s' has no %s and its training data cannot be read (%s): decoding "
                    "over the full vocabulary.", path, FILENAME, str(error).splitlines()[0])
        return None
    log.warning("'%s' has no %s (trained before shortlists): computing it from %s.",
                path, FILENAME, settings.data)
    sources, targets = training_pairs(train)
    return fit_from_texts(inputters, sources, targets, settings.seed)


def training_pairs(train) -> tuple[list[str], list[str]]:
    """Aligned source and target texts: a streamed source's reservoir sample (scan), or
    the examples read into memory."""
    scan = getattr(train, "scan", None)
    if scan is not None:
        return list(scan.text_samples[0]), list(scan.text_samples[1])
    return list(train["source"]), list(train["target"])

