"""CTC decoding, batched, inside a graph: greedy (best path) or beam search.

CTC is its own algorithm (frames, not tokens, are stepped), but it answers in the
shape of every other search (`apps.decoding.Search`): ids [B, N, T] (blanks and
repeats removed, padded), lengths [B, N], scores [B, N] and an alignment of -1 (no
attention). Both take logits [B, T, V] whose class 0 is the blank and the valid frames
of each row. A score is the log probability of the chosen labelling's best path
(greedy) or of the labelling (beam search, summed over its paths).
"""

from __future__ import annotations

import tensorflow as tf

from apps.decoding import NO_ALIGNMENT, Search
from apps.speech.model import BLANK


def _search(ids, scores) -> Search:
    """Search from padded ids [B, N, T] (0 after each labelling) and scores [B, N]."""
    ids = tf.pad(ids, [[0, 0], [0, 0], [0, tf.maximum(1 - tf.shape(ids)[2], 0)]])
    lengths = tf.reduce_sum(tf.cast(tf.not_equal(ids, BLANK), tf.int32), axis=-1)
    return Search(ids, lengths, scores, tf.fill(tf.shape(ids), NO_ALIGNMENT))


def greedy(logits: tf.Tensor, lengths: tf.Tensor) -> Search:
    """The most likely class per frame, repeats merged, blanks dropped (N = 1)."""
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    best = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
    valid = tf.sequence_mask(lengths, tf.shape(best)[1])
    previous = tf.pad(best[:, :-1], [[0, 0], [1, 0]], constant_values=-1)
    keep = valid & (best != BLANK) & (best != previous)
    score = tf.reduce_sum(tf.reduce_max(log_probs, axis=-1) * tf.cast(valid, tf.float32),
                          axis=1)
    ids = tf.ragged.boolean_mask(best, keep).to_tensor(default_value=BLANK)
    return _search(ids[:, None], score[:, None])


def beam_search(logits: tf.Tensor, lengths: tf.Tensor, beam_size: int, n_best: int = 1
                ) -> Search:
    """Core TF's CTC beam search (its blank is the last class: the classes are rotated):
    the `n_best` (at most `beam_size`) likeliest labellings, best first."""
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    rotated = tf.concat([log_probs[:, :, 1:], log_probs[:, :, :1]], axis=-1)
    paths = min(n_best, beam_size)
    decoded, log_probability = tf.nn.ctc_beam_search_decoder(
        tf.transpose(rotated, [1, 0, 2]), lengths, beam_width=beam_size, top_paths=paths)
    rows = tf.shape(logits, out_type=tf.int64)[0]
    width = tf.reduce_max([path.dense_shape[1] for path in decoded])
    dense = [tf.sparse.to_dense(tf.SparseTensor(path.indices, tf.cast(path.values, tf.int32) + 1,
                                                [rows, width]))
             for path in decoded]
    return _search(tf.stack(dense, axis=1), log_probability)


def decode(logits: tf.Tensor, lengths: tf.Tensor, beam_size: int = 1, n_best: int = 1
           ) -> Search:
    """Greedy for `beam_size` 1, beam search above."""
    if beam_size <= 1:
        return greedy(logits, lengths)
    return beam_search(logits, lengths, beam_size, n_best)
