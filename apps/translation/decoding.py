"""The translator as an `apps.decoding` decoder, and its searches over source ids.

What is particular to translation: the decoder's first state is the encoded source,
each row may produce ratio x its source length tokens (at most --max-length), and
forced decoding scores a given target with its end id. The searches themselves are
`apps.decoding`'s, shared with the language model.
"""

from __future__ import annotations

import tensorflow as tf

from apps import decoding
from apps.translation import shortlist as shortlists
from apps.translation.model import BeamContext
from pipelines.tokenizer import EOS_ID, PAD_ID


class TranslatorDecoder:
    """`initial_state(source ids [B, S])` -> (decoder state, (memory, keys, mask, the
    memory's projections: `Translator.decoding_context`));
    `step` is the model's own (the attention weights it returns give alignments), over
    weights prepared once, before the search's loop (`Translator.step_weights`)."""

    def __init__(self, model, ids=None):
        self.model = model
        self.weights = model.step_weights(ids)

    def initial_state(self, source_ids):
        context, state = self.model.encode(source_ids)
        return state, self.model.decoding_context(context)

    def step(self, ids, state, context):
        return self.model.prepared_step(ids, state, context, self.weights)

    @staticmethod
    def beam_context(context, beams):  # noqa: ARG004 - the step groups the beams itself
        """A beam search's context: one row per sentence, not per beam
        (`Translator.prepared_step` reads each sentence's memory once for its beams)."""
        return BeamContext(*context)


class ShortlistDecoder(TranslatorDecoder):
    """The translator over shortlist positions (`apps.translation.shortlist`): `step`
    reads positions and gives logits over the shortlist only (its rows of the output
    matrix and bias, and each row's input projection, prepared once, before the
    search's loop)."""

    def __init__(self, model, ids):
        super().__init__(model, ids)
        self.ids = ids


def output_limits(source_lengths, max_length, ratio: float):
    """Tokens each row may produce: ratio x its source length, at most `max_length`.

    An empty source may produce nothing: it translates to the empty string.
    """
    wanted = tf.math.ceil(tf.cast(source_lengths, tf.float32) * ratio)
    return tf.minimum(tf.cast(wanted, tf.int32), tf.cast(max_length, tf.int32))


def translate_ids(model, source_ids, beam_size, max_length, alpha: float, ratio: float,
                  n_best=1, shortlist=None, alignments: bool = True) -> decoding.Search:
    """A translator's search over padded source ids [B, S]: `n_best` hypotheses per row
    ([B, N, ...], see `apps.decoding.Search`).

    `shortlist`: (candidates [source vocab, M], frequent [F]) tensors of a lexical table
    (`apps.translation.shortlist`): the search then runs over the batch's shortlist only
    (its scores are log-probabilities normalised over it); None: the whole vocabulary.
    `alignments` False: the search tracks none (every position -1).
    """
    if shortlist is None:
        decoder = TranslatorDecoder(model)
    else:
        ids = shortlists.shortlist_ids(*shortlist, source_ids,
                                       tf.shape(model.output_bias)[0])
        decoder = ShortlistDecoder(model, ids)
    state, context = decoder.initial_state(source_ids)
    source_lengths = tf.reduce_sum(tf.cast(context[2], tf.int32), axis=1)
    found = decoding.search(decoder, state, context,
                            output_limits(source_lengths, max_length, ratio), beam_size, alpha,
                            n_best, alignments=alignments)
    if shortlist is None:
        return found
    return found._replace(ids=tf.gather(decoder.ids, found.ids))  # positions -> real ids


def score_ids(model, source_ids, target_ids):
    """Forced decoding of padded target ids [B, T] (no end id): per token log-probabilities
    and alignments [B, T + 1] (the end id's last), their sums [B] and token counts [B]."""
    target_ids = tf.cast(target_ids, tf.int32)
    lengths = tf.reduce_sum(tf.cast(tf.not_equal(target_ids, PAD_ID), tf.int32), axis=1)
    decoder = TranslatorDecoder(model)
    state, context = decoder.initial_state(source_ids)
    token_scores, alignment = decoding.forced_log_probs(decoder, state, context,
                                                              with_end(target_ids))
    return token_scores, alignment, tf.reduce_sum(token_scores, axis=1), lengths + 1


def with_end(ids):
    """Right-padded ids [B, T] -> [B, T + 1] with the end id after each row's last token."""
    ids = tf.cast(ids, tf.int32)
    lengths = tf.reduce_sum(tf.cast(tf.not_equal(ids, PAD_ID), tf.int32), axis=1)
    padded = tf.pad(ids, [[0, 0], [0, 1]])
    return tf.where(tf.range(tf.shape(padded)[1])[None] == lengths[:, None], EOS_ID, padded)
