"""Greedy and beam search over any step function, in core TensorFlow ops only.

Both searches run inside one `tf.while_loop`, batched over sentences, so the same code
serves the CLI (a `tf.function`) and the exported SavedModel (no client loop, and no
tensorflow-addons: stock TF Serving lacks its `GatherTree` op, so `gather_tree` is
written here with core ops).

A step function maps (previous ids [N], state, context) -> (logits [N, V], new state);
`state` and `context` are nests of tensors whose first dimension is N. Beam search
tiles the context once and reorders the state by each step's surviving beams.
Padding, the begin id and the unknown id are never produced. Row r stops at the end id
or after `limits[r]` tokens (the end id is then forced). Scores are natural-log
probabilities of the output, its end id included. Beam search ranks hypotheses by
score / ((5 + length) / 6) ** length_penalty (GNMT); with beam size 1 it gives
exactly what greedy search gives (a test holds it to that).
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from pipelines.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID

NEVER = -1e9  # the log-probability of a token that may not be produced
BANNED = (PAD_ID, BOS_ID, UNK_ID)
FIRST_OUTPUT_ID = len(BANNED)  # the banned ids are the first ones (greedy relies on it)
assert sorted(BANNED) == list(range(FIRST_OUTPUT_ID))


class Search(NamedTuple):
    ids: tf.Tensor  # [B, T] int32, the output tokens, padded after each row's end
    lengths: tf.Tensor  # [B] int32, tokens before the end id
    scores: tf.Tensor  # [B] float32, log-probability of the output (end id included)


def output_limits(source_lengths, max_length, ratio: float):
    """Tokens each row may produce: ratio x its source length, at most `max_length`.

    An empty source may produce nothing: it translates to the empty string.
    """
    wanted = tf.math.ceil(tf.cast(source_lengths, tf.float32) * ratio)
    return tf.minimum(tf.cast(wanted, tf.int32), tf.cast(max_length, tf.int32))


def _candidates(log_probs, k, step, limits, finished):
    """The k likeliest allowed tokens of every row: (log-probabilities [N, k], ids [N, k]).

    Padding, the begin and the unknown id are never allowed, only the end id is at a
    row's limit, and a finished row is continued by padding at no cost; other slots get
    NEVER. One `top_k` is the only pass over the vocabulary: the k + 3 best are ranked
    again with the banned ids removed (ties stay in index order, as in one `top_k`).
    """
    vocab = tf.shape(log_probs)[-1]
    values, ids = tf.math.top_k(log_probs, tf.minimum(k + len(BANNED), vocab))
    banned = tf.reduce_any(tf.equal(ids[..., None], BANNED), axis=-1)
    values, order = tf.math.top_k(tf.where(banned, NEVER, values), k)
    ids = tf.gather(ids, order, batch_dims=1)
    first = tf.equal(tf.range(k), 0)[None]
    at_limit = (step >= limits)[:, None]
    values = tf.where(at_limit, tf.where(first, log_probs[:, EOS_ID : EOS_ID + 1], NEVER),
                      values)
    ids = tf.where(at_limit & first, EOS_ID, ids)
    values = tf.where(finished[:, None], tf.where(first, 0.0, NEVER), values)
    return values, tf.where(finished[:, None] & first, PAD_ID, ids)


def _lengths(ids):
    """Tokens before the first end (or padding) id of each row."""
    stops = tf.logical_or(tf.equal(ids, EOS_ID), tf.equal(ids, PAD_ID))
    return tf.cast(tf.reduce_sum(tf.cast(tf.equal(tf.cumsum(tf.cast(stops, tf.int32), axis=1),
                                                  0), tf.int32), axis=1), tf.int32)


def _greedy_choice(log_probs, step, limits, finished):
    """Each row's likeliest allowed token: (log-probability [N], id [N]).

    The banned ids are the vocabulary's first ones, so one `argmax` over the rest is
    the only pass (what `_candidates` gives for k = 1, without its `top_k`s)."""
    chosen = tf.argmax(log_probs[:, FIRST_OUTPUT_ID:], axis=-1, output_type=tf.int32) \
        + FIRST_OUTPUT_ID
    chosen = tf.where(step >= limits, EOS_ID, chosen)
    values = tf.gather(log_probs, chosen, batch_dims=1)
    return tf.where(finished, 0.0, values), tf.where(finished, PAD_ID, chosen)


def greedy_search(step, state, context, limits) -> Search:
    """The likeliest token at every step, for every row of the batch at once."""
    limits = tf.cast(limits, tf.int32)
    rows = tf.shape(limits)[0]
    steps = tf.reduce_max(limits) + 1  # the end id may come after the last allowed token

    def body(t, previous, state, finished, scores, ids):
        logits, state = step(previous, state, context)
        values, chosen = _greedy_choice(tf.nn.log_softmax(tf.cast(logits, tf.float32)), t,
                                        limits, finished)
        return (t + 1, chosen, state, finished | tf.equal(chosen, EOS_ID), scores + values,
                ids.write(t, chosen))

    def going(t, _previous, _state, finished, *_):
        return tf.logical_and(t < steps, tf.logical_not(tf.reduce_all(finished)))

    _, _, _, _, scores, ids = _loop(going, body, (
        tf.constant(0), tf.fill([rows], BOS_ID), state, tf.zeros([rows], tf.bool),
        tf.zeros([rows], tf.float32), tf.TensorArray(tf.int32, size=0, dynamic_size=True,
                                                     element_shape=[None])))
    ids = _stacked(ids, rows)
    return Search(ids, _lengths(ids), scores)


def _loop(going, body, loop_vars):
    """`tf.while_loop` where every dimension of every tensor may change (the batch and
    beam sizes are tensors in an exported graph, numbers elsewhere)."""
    relaxed = tf.nest.map_structure(
        lambda v: tf.TensorShape(None) if isinstance(v, tf.TensorArray)
        else tf.TensorShape([None] * len(v.shape)), loop_vars)
    return tf.while_loop(going, body, loop_vars, shape_invariants=relaxed)


def _stacked(array, rows):
    """A TensorArray of [rows] steps -> [rows, steps] (at least one column)."""
    ids = tf.transpose(tf.reshape(array.stack(), [-1, rows]))
    return tf.pad(ids, [[0, 0], [0, tf.maximum(1 - tf.shape(ids)[1], 0)]])


def gather_tree(step_ids, parent_ids):
    """Whole hypotheses from per-step choices: [T, B, K] ids and the beam each came from
    -> [T, B, K], beam k read back from its last step (what addons' GatherTree does)."""
    steps, batch, beams = (tf.shape(step_ids)[i] for i in range(3))
    beam = tf.tile(tf.range(beams)[None], [batch, 1])

    def body(t, beam, out):
        out = out.write(t, tf.gather(step_ids[t], beam, batch_dims=1))
        return t - 1, tf.gather(parent_ids[t], beam, batch_dims=1), out

    _, _, out = tf.while_loop(lambda t, *_: t >= 0, body,
                              (steps - 1, beam, tf.TensorArray(step_ids.dtype, size=steps)))
    return out.stack()


def length_penalty(lengths, alpha):
    """GNMT's ((5 + |Y|) / 6) ** alpha; alpha 0 ranks by plain log-probability."""
    return tf.pow((5.0 + tf.cast(lengths, tf.float32)) / 6.0, alpha)


def beam_search(step, state, context, limits, beam_size, alpha=0.0) -> Search:
    """The best of `beam_size` hypotheses kept per row at every step (see the module)."""
    limits = tf.cast(limits, tf.int32)
    beams = tf.cast(beam_size, tf.int32)
    rows = tf.shape(limits)[0]
    steps = tf.reduce_max(limits) + 1  # the end id may come after the last allowed token
    tile = lambda x: tf.repeat(x, beams, axis=0)  # noqa: E731 - [B, ...] -> [B * K, ...]
    context = tf.nest.map_structure(tile, context)
    state = tf.nest.map_structure(tile, state)
    beam_limits = tile(limits)
    # only the first beam of each row is alive at the start
    scores = tf.where(tf.range(beams)[None] > 0, NEVER, tf.zeros([rows, beams]))

    def body(t, previous, state, finished, scores, lengths, ids, parents):
        logits, state = step(previous, state, context)
        # each beam's best `beams` tokens hold the row's best `beams` hypotheses
        values, tokens = _candidates(tf.nn.log_softmax(tf.cast(logits, tf.float32)), beams,
                                     t, beam_limits, tf.reshape(finished, [-1]))
        totals = scores[:, :, None] + tf.reshape(values, [rows, beams, beams])
        grown = lengths + tf.cast(~finished, tf.int32)
        ranked = totals / length_penalty(grown, alpha)[:, :, None]
        _, best = tf.math.top_k(tf.reshape(ranked, [rows, -1]), k=beams)
        parent = best // beams
        token = tf.gather(tf.reshape(tokens, [rows, -1]), best, batch_dims=1)
        scores = tf.gather(tf.reshape(totals, [rows, -1]), best, batch_dims=1)
        was_finished = tf.gather(finished, parent, batch_dims=1)
        lengths = tf.gather(grown, parent, batch_dims=1)
        flat = tf.reshape(parent + tf.range(rows)[:, None] * beams, [-1])
        state = tf.nest.map_structure(lambda s: tf.gather(s, flat), state)
        finished = was_finished | tf.equal(token, EOS_ID)
        return (t + 1, tf.reshape(token, [-1]), state, finished, scores, lengths,
                ids.write(t, token), parents.write(t, parent))

    def going(t, _previous, _state, finished, scores, lengths, *_):
        return tf.logical_and(t < steps, tf.logical_not(tf.reduce_all(
            _settled(finished, scores, lengths, limits, alpha))))

    arrays = [tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None, None])
              for _ in range(2)]
    _, _, _, _, scores, _, ids, parents = _loop(going, body, (
        tf.constant(0), tf.fill([rows * beams], BOS_ID), state, tf.zeros([rows, beams], tf.bool),
        scores, tf.zeros([rows, beams], tf.int32), *arrays))
    best = tf.transpose(gather_tree(ids.stack(), parents.stack())[:, :, 0])
    return Search(best, _lengths(best), scores[:, 0])


def _settled(finished, scores, lengths, limits, alpha):
    """[B] rows whose best finished hypothesis no open one can still overtake.

    An open hypothesis's score only falls, and its length penalty is at most that of the
    longest output its row allows, so score / that penalty bounds its future rank; a row
    past that bound would keep its answer to the last step, and may stop now.
    """
    penalty = length_penalty(lengths, alpha)
    longest = tf.maximum(penalty, length_penalty(limits + 1, alpha)[:, None])
    best_done = tf.reduce_max(tf.where(finished, scores / penalty, -float("inf")), axis=1)
    best_open = tf.reduce_max(tf.where(finished, -float("inf"), scores / longest), axis=1)
    return best_done > best_open


def search(step, state, context, limits, beam_size, alpha=0.0) -> Search:
    """Greedy search for a beam size of 1, else beam search (a `tf.cond` when the beam
    size is a tensor, as in the exported `translate` signature: greedy's step is lighter
    and gives the same output)."""
    if isinstance(beam_size, int):
        if beam_size == 1:
            return greedy_search(step, state, context, limits)
        return beam_search(step, state, context, limits, beam_size, alpha)
    return tf.cond(tf.equal(beam_size, 1),
                   lambda: greedy_search(step, state, context, limits),
                   lambda: beam_search(step, state, context, limits, beam_size, alpha))


def translate_ids(model, source_ids, beam_size, max_length, alpha: float, ratio: float) -> Search:
    """A translator's search over padded source ids [B, S] (see `output_limits`)."""
    context, state = model.encode(source_ids)
    source_lengths = tf.reduce_sum(tf.cast(context[-1], tf.int32), axis=1)

    def step(previous, state, context):
        logits, state, _ = model.step(previous, state, context)
        return logits, state

    return search(step, state, context, output_limits(source_lengths, max_length, ratio),
                  beam_size, alpha)
