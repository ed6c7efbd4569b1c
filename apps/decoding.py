"""One decoding interface for every task that writes tokens: decoders, searches, a sampler.

The shape is OpenNMT-tf's. A **decoder** answers one contract:

- `initial_state(inputs)` -> `(state, context)`: what the first step reads (for a
  translator, the encoded source; for a language model, the state after its prompt);
- `step(ids [N], state, context)` -> `(logits [N, V], new state, attention [N, S] or
  None)`, where `state` and `context` are nests of tensors whose first dimension is N;
- optionally `beam_context(context, beams)`: the context a beam search's steps read
  (without it, every row's context is repeated once per beam; a decoder whose step
  groups a sentence's beams itself keeps one row per sentence and reads it once).

A **search strategy** drives the steps: `greedy_search`, `beam_search` (GNMT length
penalty, n-best) or `search` (greedy for a beam of 1, else beam; a `tf.cond` when the
beam size is a tensor). `forced_log_probs` runs the same steps over a given output
(forced decoding: the score of a target, token by token). The **sampler**
(`next_tokens`: temperature, top-k, top-p) picks one token per row from logits.

Everything is core TensorFlow inside `tf.while_loop`s, batched over rows, so the same
code serves a `tf.function` and an exported SavedModel (no tensorflow-addons: stock TF
Serving lacks its `GatherTree` op, so `gather_tree` is written here with core ops).

Outputs (`Search`): ids [B, N, T] (N hypotheses per row, best first, padded after each
end), lengths [B, N] (tokens before the end id), scores [B, N] (natural-log probability
of the output, its end id included where the vocabulary has one) and alignment
[B, N, T] (the source position each output token attended to most; -1 without
attention, or where the caller did not ask for alignments: a search that is not
asked does not track them). `first(search)` is the 1-best, [B, T]. Beam search ranks
hypotheses by
score / ((5 + length) / 6) ** alpha; with a beam of 1 it gives exactly what greedy
search gives (a test holds it to that).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import tensorflow as tf

from pipelines.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID

NEVER = -1e9  # the log-probability of a token that may not be produced
NO_ALIGNMENT = -1


class Decoder(Protocol):
    """What every search steps: see the module docstring."""

    def initial_state(self, inputs) -> tuple[Any, Any]: ...

    def step(self, ids, state, context) -> tuple[tf.Tensor, Any, tf.Tensor | None]: ...


class Vocabulary(NamedTuple):
    """Which ids a search may produce.

    `banned`: ids never produced (they must be the vocabulary's first ids, so greedy
    search takes one `argmax` over the rest). `ends`: whether the end id is a token the
    model produces (a translator: at a row's limit the end id is forced and scored) or
    not (a language model: a row simply stops at its limit).
    """

    banned: tuple[int, ...]
    ends: bool


TRANSLATION = Vocabulary((PAD_ID, UNK_ID, BOS_ID), ends=True)
CONTINUATION = Vocabulary((PAD_ID, UNK_ID, BOS_ID, EOS_ID), ends=False)


class Search(NamedTuple):
    ids: tf.Tensor  # [B, N, T] int32, padded after each hypothesis' end
    lengths: tf.Tensor  # [B, N] int32, tokens before the end id
    scores: tf.Tensor  # [B, N] float32, log-probability of the output
    alignment: tf.Tensor  # [B, N, T] int32, attended source position (-1: none)


def first(found: Search) -> Search:
    """The 1-best of every row: ids [B, T], lengths [B], scores [B], alignment [B, T]."""
    return Search(*(t[:, 0] for t in found))


# ------------------------------------------------------------------------------ helpers


def _loop(going, body, loop_vars):
    """`tf.while_loop` where every dimension of every tensor may change (the batch and
    beam sizes are tensors in an exported graph, numbers elsewhere)."""
    relaxed = tf.nest.map_structure(
        lambda v: tf.TensorShape(None) if isinstance(v, tf.TensorArray)
        else tf.TensorShape([None] * len(v.shape)), loop_vars)
    return tf.while_loop(going, body, loop_vars, shape_invariants=relaxed)


def _growing(shape):
    return tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=shape)


def _stacked(array, rows):
    """A TensorArray of [rows] steps -> [rows, steps] (at least one column)."""
    ids = tf.transpose(tf.reshape(array.stack(), [-1, rows]))
    return tf.pad(ids, [[0, 0], [0, tf.maximum(1 - tf.shape(ids)[1], 0)]])


def _lengths(ids):
    """Tokens before the first end (or padding) id of each row (any leading shape)."""
    stops = tf.logical_or(tf.equal(ids, EOS_ID), tf.equal(ids, PAD_ID))
    before = tf.equal(tf.cumsum(tf.cast(stops, tf.int32), axis=-1), 0)
    return tf.reduce_sum(tf.cast(before, tf.int32), axis=-1)


def _attended(attention, rows):
    """The most attended source position of each row [rows] (-1 without attention)."""
    if attention is None:
        return tf.fill([rows], NO_ALIGNMENT)
    return tf.argmax(attention, axis=-1, output_type=tf.int32)


def _unaligned(ids):
    """The alignment of a search not asked for one: -1 for every token."""
    return tf.fill(tf.shape(ids), NO_ALIGNMENT)


def _rows(nest, kept):
    """Rows `kept` of every tensor of a nest (its first dimension is the batch's)."""
    return tf.nest.map_structure(lambda tensor: tf.gather(tensor, kept), nest)


def _start(start_ids, rows):
    return tf.fill([rows], BOS_ID) if start_ids is None else tf.cast(start_ids, tf.int32)


def _mask_alignment(alignment, ids):
    return tf.where(tf.equal(ids, PAD_ID), NO_ALIGNMENT, alignment)


def length_penalty(lengths, alpha):
    """GNMT's ((5 + |Y|) / 6) ** alpha; alpha 0 ranks by plain log-probability."""
    return tf.pow((5.0 + tf.cast(lengths, tf.float32)) / 6.0, alpha)


# ------------------------------------------------------------------------------- greedy


def _logsumexp(logits):
    """log(sum(exp(logits))) over the last axis [N]: `tf.reduce_logsumexp`'s arithmetic
    without its guard for infinite maxima (logits here are finite), in 7 ops, not 12:
    every op of a search's loop body runs once per step."""
    largest = tf.reduce_max(logits, axis=-1, keepdims=True)
    return tf.math.log(tf.reduce_sum(tf.exp(logits - largest), axis=-1)) + largest[:, 0]


def _greedy_choice(logits, step, limits, finished, vocabulary):
    """Each row's likeliest allowed token: (log-probability [N], id [N]). The argmax
    reads the logits, and only the chosen ones are normalised (logit - logsumexp):
    no log-softmax tensor the size of the vocabulary."""
    skip = len(vocabulary.banned)
    chosen = tf.argmax(logits[:, skip:], axis=-1, output_type=tf.int32) + skip
    at_limit = step >= limits
    chosen = tf.where(at_limit, EOS_ID if vocabulary.ends else PAD_ID, chosen)
    values = tf.gather(logits, chosen, batch_dims=1) - _logsumexp(logits)
    stopped = finished if vocabulary.ends else finished | at_limit
    return tf.where(stopped, 0.0, values), tf.where(finished, PAD_ID, chosen)


def greedy_search(decoder, state, context, limits, start_ids=None,
                  vocabulary: Vocabulary = TRANSLATION, alignments: bool = True) -> Search:
    """The likeliest token at every step, for every row of the batch at once (N = 1).
    `alignments` False: none tracked (every position -1), one op fewer per step.

    Finished rows leave the batch: once at most half of the rows still run, the running
    rows' token, state, context and limits are gathered, and the steps after that
    compute only them (a step costs about its rows, and a batch's longest output is
    often twice its mean). Each row's arithmetic is the same either way.
    """
    limits = tf.cast(limits, tf.int32)
    rows = tf.shape(limits)[0]
    steps = tf.reduce_max(limits) + int(vocabulary.ends)  # the end id after the last token

    def body(t, previous, state, context, running_limits, positions, finished, scores, ids,
             aligned):
        logits, state, attention = decoder.step(previous, state, context)
        values, chosen = _greedy_choice(tf.cast(logits, tf.float32), t, running_limits,
                                        finished, vocabulary)
        # a finished row chose PAD_ID, and no search chooses UNK_ID or BOS_ID: the rows
        # that are done are those whose id is at most the end id
        done = chosen <= EOS_ID
        at = positions[:, None]  # the rows of the whole batch that still run
        scores = tf.tensor_scatter_nd_add(scores, at, values)
        ids = ids.write(t, tf.scatter_nd(at, chosen, [rows]))  # rows gone: PAD_ID (0)
        if alignments:  # rows gone: 0, made -1 with their padding at the end
            attended = _attended(attention, tf.size(positions))
            aligned = aligned.write(t, tf.scatter_nd(at, attended, [rows]))
        running = (chosen, state, context, running_limits, positions, done)
        running = tf.cond(2 * tf.reduce_sum(tf.cast(done, tf.int32)) >= tf.size(done),
                          lambda: _rows(running, tf.where(~done)[:, 0]), lambda: running)
        return (t + 1, *running, scores, ids, aligned)

    def going(t, _previous, _state, _context, _limits, _positions, finished, *_):
        return tf.logical_and(t < steps, tf.logical_not(tf.reduce_all(finished)))

    *_, scores, ids, aligned = _loop(going, body, (
        tf.constant(0), _start(start_ids, rows), state, context, limits, tf.range(rows),
        tf.zeros([rows], tf.bool), tf.zeros([rows], tf.float32), _growing([None]),
        _growing([None])))
    ids = _stacked(ids, rows)
    aligned = _mask_alignment(_stacked(aligned, rows), ids) if alignments else _unaligned(ids)
    return Search(ids[:, None], _lengths(ids)[:, None], scores[:, None], aligned[:, None])


# --------------------------------------------------------------------------------- beam


def _candidates(log_probs, k, step, limits, finished, vocabulary):
    """The k likeliest allowed tokens of every row: (log-probabilities [N, k], ids [N, k]).

    Banned ids are never allowed; at a row's limit only the end id is (or, without an
    end id, the row stops); a finished row is continued by padding at no cost; other
    slots get NEVER. One top k (`_top_k`) is the only pass over the vocabulary: the
    k + banned best are ranked again with the banned ids removed (ties stay in index
    order).
    """
    vocab = tf.shape(log_probs)[-1]
    values, ids = _top_k(log_probs, tf.minimum(k + len(vocabulary.banned), vocab))
    banned = tf.reduce_any(tf.equal(ids[..., None], vocabulary.banned), axis=-1)
    values, order = tf.math.top_k(tf.where(banned, NEVER, values), k)
    ids = tf.gather(ids, order, batch_dims=1)
    first_slot = tf.equal(tf.range(k), 0)[None]
    at_limit = (step >= limits)[:, None]
    if vocabulary.ends:
        values = tf.where(at_limit, tf.where(first_slot, log_probs[:, EOS_ID : EOS_ID + 1],
                                             NEVER), values)
        ids = tf.where(at_limit & first_slot, EOS_ID, ids)
    else:
        finished = finished | at_limit[:, 0]
    values = tf.where(finished[:, None], tf.where(first_slot, 0.0, NEVER), values)
    return values, tf.where(finished[:, None] & first_slot, PAD_ID, ids)


def _top_k(values, k):
    """`tf.math.top_k(values, k)` of [N, V] (k <= V): the same values and ids [N, k],
    ties in index order, through chunks of about sqrt(V / k): each chunk's maximum
    (one pass), the k best chunks (they hold the k best values: a chunk outside them
    has k better chunk maxima ahead of any of its values), back in index order, then
    the k best of their k x chunk values. TensorFlow's CPU `top_k` over [320, 1,250]
    costs about 20 passes over its input; this about a third of that."""
    rows, width = tf.shape(values)[0], tf.shape(values)[1]
    size = tf.maximum(tf.cast(tf.sqrt(tf.cast(width, tf.float32)
                                      / tf.cast(k, tf.float32)), tf.int32), 1)
    chunks = (width + size - 1) // size  # at least k: chunks * size >= V >= k * size ** 2
    padded = tf.pad(values, [[0, 0], [0, chunks * size - width]],
                    constant_values=-float("inf"))
    grouped = tf.reshape(padded, [rows, chunks, size])
    _, best = tf.math.top_k(tf.reduce_max(grouped, axis=-1), k)
    best = tf.sort(best, axis=-1)
    picked = tf.reshape(tf.gather(grouped, best, batch_dims=1), [rows, -1])
    found, at = tf.math.top_k(picked, k)
    return found, tf.gather(best, at // size, batch_dims=1) * size + at % size


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


def beam_search(decoder, state, context, limits, beam_size, alpha=0.0, n_best=1,
                start_ids=None, vocabulary: Vocabulary = TRANSLATION,
                alignments: bool = True) -> Search:
    """The best `n_best` of `beam_size` hypotheses kept per row at every step, best first
    (by score / length penalty; `n_best` is at most the beam size). `alignments`
    False: none tracked (every position -1), no gather of them per step."""
    limits = tf.cast(limits, tf.int32)
    beams = tf.cast(beam_size, tf.int32)
    n_best = tf.minimum(tf.cast(n_best, tf.int32), beams)
    rows = tf.shape(limits)[0]
    steps = tf.reduce_max(limits) + 1  # the end (or stop) after the last allowed token
    tile = lambda x: tf.repeat(x, beams, axis=0)  # noqa: E731 - [B, ...] -> [B * K, ...]
    grouped = getattr(decoder, "beam_context", None)
    context = grouped(context, beams) if grouped else tf.nest.map_structure(tile, context)
    state = tf.nest.map_structure(tile, state)
    beam_limits = tile(limits)
    # only the first beam of each row is alive at the start
    scores = tf.where(tf.range(beams)[None] > 0, NEVER, tf.zeros([rows, beams]))

    def body(t, previous, state, finished, scores, lengths, ids, parents, aligned):
        logits, state, attention = decoder.step(previous, state, context)
        # each beam's best `beams` tokens hold the row's best `beams` hypotheses
        values, tokens = _candidates(tf.nn.log_softmax(tf.cast(logits, tf.float32)), beams,
                                     t, beam_limits, tf.reshape(finished, [-1]), vocabulary)
        totals = scores[:, :, None] + tf.reshape(values, [rows, beams, beams])
        stops = tf.reshape(tf.equal(tokens[:, :1], PAD_ID), [rows, beams])
        grown = lengths + tf.cast(~finished & ~stops, tf.int32)
        ranked = totals / length_penalty(grown, alpha)[:, :, None]
        _, best = tf.math.top_k(tf.reshape(ranked, [rows, -1]), k=beams)
        parent = best // beams
        token = tf.gather(tf.reshape(tokens, [rows, -1]), best, batch_dims=1)
        scores = tf.gather(tf.reshape(totals, [rows, -1]), best, batch_dims=1)
        was_finished = tf.gather(finished, parent, batch_dims=1)
        lengths = tf.gather(grown, parent, batch_dims=1)
        flat = tf.reshape(parent + tf.range(rows)[:, None] * beams, [-1])
        state = _rows(state, flat)
        finished = was_finished | tf.equal(token, EOS_ID) | tf.equal(token, PAD_ID)
        if alignments:
            attended = tf.reshape(_attended(attention, rows * beams), [rows, beams])
            aligned = aligned.write(t, tf.gather(attended, parent, batch_dims=1))
        return (t + 1, tf.reshape(token, [-1]), state, finished, scores, lengths,
                ids.write(t, token), parents.write(t, parent), aligned)

    def going(t, _previous, _state, finished, scores, lengths, *_):
        return tf.logical_and(t < steps, tf.logical_not(tf.reduce_all(
            _settled(finished, scores, lengths, limits, alpha, n_best))))

    _, _, _, _, scores, _, ids, parents, aligned = _loop(going, body, (
        tf.constant(0), tf.repeat(_start(start_ids, rows), beams), state,
        tf.zeros([rows, beams], tf.bool),
        scores, tf.zeros([rows, beams], tf.int32), *(_growing([None, None]) for _ in range(3))))
    parents = parents.stack()
    ids = tf.transpose(gather_tree(ids.stack(), parents), [1, 2, 0])[:, :n_best]
    if not alignments:
        return Search(ids, _lengths(ids), scores[:, :n_best], _unaligned(ids))
    aligned = tf.transpose(gather_tree(aligned.stack(), parents), [1, 2, 0])[:, :n_best]
    return Search(ids, _lengths(ids), scores[:, :n_best], _mask_alignment(aligned, ids))


def _settled(finished, scores, lengths, limits, alpha, n_best):
    """[B] rows whose best `n_best` finished hypotheses no open one can still overtake.

    An open hypothesis's score only falls, and its length penalty is at most that of the
    longest output its row allows, so score / that penalty bounds its future rank; a row
    past that bound would keep its answer to the last step, and may stop now.
    """
    penalty = length_penalty(lengths, alpha)
    longest = tf.maximum(penalty, length_penalty(limits + 1, alpha)[:, None])
    best_open = tf.reduce_max(tf.where(finished, -float("inf"), scores / longest), axis=1)
    done = tf.where(finished, scores / penalty, -float("inf"))
    beating = tf.reduce_sum(tf.cast(done > best_open[:, None], tf.int32), axis=1)
    return beating >= n_best


def search(decoder, state, context, limits, beam_size, alpha=0.0, n_best=1, start_ids=None,
           vocabulary: Vocabulary = TRANSLATION, alignments: bool = True) -> Search:
    """Greedy search for a beam size and n-best of 1, else beam search over at least
    `n_best` beams (a `tf.cond` when either is a tensor, as in an exported signature:
    greedy's step is lighter and gives the same output)."""
    def greedy():
        return greedy_search(decoder, state, context, limits, start_ids, vocabulary,
                             alignments)

    def beam():
        beams = tf.maximum(tf.cast(beam_size, tf.int32), tf.cast(n_best, tf.int32))
        return beam_search(decoder, state, context, limits, beams, alpha, n_best, start_ids,
                           vocabulary, alignments)

    if isinstance(beam_size, int) and isinstance(n_best, int):
        return greedy() if beam_size == 1 and n_best == 1 else beam()
    return tf.cond(tf.equal(tf.maximum(beam_size, n_best), 1), greedy, beam)


# ------------------------------------------------------------------------------- forced


def forced_log_probs(decoder, state, context, targets, start_ids=None):
    """Forced decoding: the log-probability of each given token [B, T] (0 past a row's
    padding) and the source position it attended to most [B, T] (-1: padding or no
    attention), stepping the decoder exactly as a search does.

    `targets` [B, T] right padded: row r's output, its end id included where the
    vocabulary has one. The sum of a row is the score a search gives that output.
    """
    targets = tf.cast(targets, tf.int32)
    rows, steps = tf.shape(targets)[0], tf.shape(targets)[1]
    time_major = tf.transpose(targets)

    def body(t, previous, state, scores, aligned):
        logits, state, attention = decoder.step(previous, state, context)
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
        chosen = time_major[t]
        return (t + 1, chosen, state, scores.write(t, tf.gather(log_probs, chosen, batch_dims=1)),
                aligned.write(t, _attended(attention, rows)))

    _, _, _, scores, aligned = _loop(lambda t, *_: t < steps, body, (
        tf.constant(0), _start(start_ids, rows), state,
        tf.TensorArray(tf.float32, size=0, dynamic_size=True, element_shape=[None]),
        _growing([None])))
    real = tf.not_equal(targets, PAD_ID)
    scores = tf.transpose(tf.reshape(scores.stack(), [-1, rows]))
    aligned = tf.transpose(tf.reshape(aligned.stack(), [-1, rows]))
    return tf.where(real, scores, 0.0), tf.where(real, aligned, NO_ALIGNMENT)


# ----------------------------------------------------------------------------- sampling


def _gumbel(seed, position, vocab_size):
    pair = tf.stack([seed, tf.cast(position, tf.int64)])
    uniform = tf.random.stateless_uniform([vocab_size], pair, minval=1e-20, maxval=1.0)
    return -tf.math.log(-tf.math.log(uniform))


def _row_noise(seeds, position, vocab_size):
    """Gumbel noise [N, V], row r drawn from the stateless seed (seeds[r], position)."""
    return tf.cond(
        tf.shape(seeds)[0] == 1,
        lambda: _gumbel(seeds[0], position, vocab_size)[None, :],
        lambda: tf.map_fn(lambda seed: _gumbel(seed, position, vocab_size), seeds,
                          fn_output_signature=tf.float32))


def _sample(logits, temperature, top_k, top_p, seeds, position):
    vocab_size = tf.shape(logits)[-1]
    scaled = logits / tf.maximum(temperature, 1e-6)[:, None]
    ranked = tf.sort(scaled, axis=-1, direction="DESCENDING")
    k = tf.where(top_k > 0, tf.minimum(top_k, vocab_size), vocab_size)
    kth_best = tf.gather(ranked, k - 1, batch_dims=1)
    p = tf.where((top_p > 0) & (top_p < 1), top_p, 2.0)
    before = tf.math.cumsum(tf.nn.softmax(ranked), axis=-1, exclusive=True)
    nucleus_min = tf.reduce_min(tf.where(before < p[:, None], ranked, ranked[:, :1]), axis=-1)
    threshold = tf.maximum(kth_best, nucleus_min)
    kept = tf.where(scaled >= threshold[:, None], scaled, tf.float32.min)
    noise = _row_noise(seeds, position, vocab_size)
    return tf.argmax(kept + noise, axis=-1, output_type=tf.int32)


def next_tokens(logits, temperature, top_k, top_p, seeds, position,
                vocabulary: Vocabulary = CONTINUATION):
    """The sampler: the next id of every row, greedy where temperature <= 0, else sampled.

    Args (per row, shape [N]): temperature; top_k (0 or less: off) keeps the k most
    likely tokens; top_p (off outside (0, 1)) keeps the smallest set whose
    probability reaches p; seeds (int64). `position` (scalar) varies the noise by step.
    The vocabulary's banned ids are never produced. Sampling uses the Gumbel-max trick:
    argmax(logits / T + Gumbel noise), stateless, so the same seed gives the same text.
    """
    vocab_size = tf.shape(logits)[-1]
    banned = vocabulary.banned
    special = tf.scatter_nd([[i] for i in banned], tf.ones([len(banned)], tf.bool), [vocab_size])
    logits = tf.where(special[None, :], tf.float32.min, logits)
    greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
    sampled = tf.cond(tf.reduce_any(temperature > 0),
                      lambda: _sample(logits, temperature, top_k, top_p, seeds, position),
                      lambda: greedy)
    return tf.where(temperature > 0, sampled, greedy)
