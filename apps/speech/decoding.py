"""CTC decoding, batched, inside a graph: greedy (best path) or beam search.

Both take logits [B, T, V] whose class 0 is the blank and the valid frames of
each row, and give ids [B, None] (ragged, blanks and repeats removed) and a score
per row: the log probability of the chosen labelling's best path (greedy) or of
the labelling (beam search, summed over its paths).
"""

from __future__ import annotations

import tensorflow as tf

from apps.speech.model import BLANK


def greedy(logits: tf.Tensor, lengths: tf.Tensor) -> tuple[tf.RaggedTensor, tf.Tensor]:
    """The most likely class per frame, repeats merged, blanks dropped."""
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    best = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
    valid = tf.sequence_mask(lengths, tf.shape(best)[1])
    previous = tf.pad(best[:, :-1], [[0, 0], [1, 0]], constant_values=-1)
    keep = valid & (best != BLANK) & (best != previous)
    score = tf.reduce_sum(tf.reduce_max(log_probs, axis=-1) * tf.cast(valid, tf.float32),
                          axis=1)
    return tf.ragged.boolean_mask(best, keep), score


def beam_search(logits: tf.Tensor, lengths: tf.Tensor, beam_size: int
                ) -> tuple[tf.RaggedTensor, tf.Tensor]:
    """Core TF's CTC beam search (its blank is the last class: the classes are rotated)."""
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    rotated = tf.concat([log_probs[:, :, 1:], log_probs[:, :, :1]], axis=-1)
    decoded, log_probability = tf.nn.ctc_beam_search_decoder(
        tf.transpose(rotated, [1, 0, 2]), lengths, beam_width=beam_size, top_paths=1)
    best = decoded[0]
    sparse = tf.SparseTensor(best.indices, tf.cast(best.values, tf.int32) + 1,
                             [tf.shape(logits, out_type=tf.int64)[0], best.dense_shape[1]])
    return tf.RaggedTensor.from_sparse(sparse), log_probability[:, 0]


def decode(logits: tf.Tensor, lengths: tf.Tensor, beam_size: int = 1
           ) -> tuple[tf.RaggedTensor, tf.Tensor]:
    """Greedy for `beam_size` 1, beam search above."""
    if beam_size <= 1:
        return greedy(logits, lengths)
    return beam_search(logits, lengths, beam_size)
