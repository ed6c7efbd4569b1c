"""Scoring and generation as TensorFlow graphs, shared by the CLI and the SavedModel.

The model is an `apps.decoding` decoder (`LanguageModelDecoder`); sampling is that
module's sampler (`next_tokens`) and n-best lists its beam search.

The serving functions wrap `generate_loop` (the step inside a `tf.while_loop`, so TF
Serving generates with no client loop); a run and its export answer through them
alike. The prompt is read one token at a time through `LanguageModel.step`. Sampling
noise comes from stateless generators seeded per row and position: the same seed gives
the same text.
"""

from __future__ import annotations

import tensorflow as tf

from apps import decoding as search
from apps.graphs import graph_function
from pipelines.tokenizer import BOS_ID, PAD_ID

SCORE_CHUNK = 1024  # tokens per step of the scoring loop: bounds memory on long texts
MAX_NEW_TOKENS = 10_000  # per request in the exported graph


# ------------------------------------------------------------------------------ scoring


def log_likelihood(model, ids, lengths, chunk: int = SCORE_CHUNK):
    """Natural-log likelihood of each row of `ids` [N, L] (right padded), read as a stream.

    Row r is predicted from the begin id onwards: token t given tokens before it, for
    t < lengths[r]. The sequence is read in chunks with the state carried, which is
    the same arithmetic as one pass but with memory bounded by `chunk`.
    Returns float64 [N].
    """
    ids = tf.convert_to_tensor(ids, tf.int32)
    rows, steps = tf.shape(ids)[0], tf.shape(ids)[1]
    padded_steps = (steps + chunk - 1) // chunk * chunk
    targets = tf.pad(ids, [[0, 0], [0, padded_steps - steps]])
    inputs = tf.concat([tf.fill([rows, 1], BOS_ID), targets[:, :-1]], axis=1)
    weights = tf.cast(tf.range(padded_steps)[None, :] < lengths[:, None], tf.float32)

    def body(start, states, total):
        piece = slice(None), slice(start, start + chunk)  # noqa: B023
        logits, states = model.run(inputs[piece], states, training=False)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(targets[piece], logits)
        total += tf.cast(tf.reduce_sum(nll * weights[piece], axis=1), tf.float64)
        return start + chunk, states, total

    _, _, total = tf.while_loop(lambda start, *_: start < padded_steps, body,
                                (0, model.zero_states(rows), tf.zeros([rows], tf.float64)))
    return -total


# ------------------------------------------------------------------- the decoder


class LanguageModelDecoder:
    """The language model as an `apps.decoding` decoder: `initial_state(prompt ids [N, P],
    lengths [N])` reads each prompt but its last token (rows of different lengths step
    together, a row's state held once its prompt is read) and gives (state, ()); the
    search starts from the last prompt token (`last_tokens`). The model's states are
    [1, N, units] per layer; the decoder's are [N, units] (the batch first, as searches
    reorder them)."""

    def __init__(self, model):
        self.model = model

    def initial_state(self, inputs):
        prompt_ids, lengths = inputs
        rows = tf.shape(prompt_ids)[0]
        steps = tf.reduce_max(tf.concat([lengths - 1, [0]], axis=0))

        def body(t, states):
            _, stepped, _ = self.step(prompt_ids[:, t], states, ())
            reading = (t < lengths - 1)[:, None]
            return t + 1, tf.nest.map_structure(lambda new, old: tf.where(reading, new, old),
                                                stepped, states)

        zero = tf.nest.map_structure(lambda s: s[0], self.model.zero_states(rows))
        _, states = tf.while_loop(lambda t, _: t < steps, body, (0, zero))
        return states, ()

    def step(self, ids, state, context):
        logits, state = self.model.step(ids, tf.nest.map_structure(lambda s: s[None], state))
        return logits, tf.nest.map_structure(lambda s: s[0], state), None


def last_tokens(prompt_ids, lengths):
    return tf.gather(prompt_ids, lengths - 1, batch_dims=1)


def n_best_loop(model, prompt_ids, prompt_lengths, max_new, n_best):
    """The `n_best` likeliest continuations of each prompt (beam search, `n_best` beams,
    no length penalty): `apps.decoding.Search` of [N, n_best, ...], best first; scores
    are the natural-log probability of the new tokens."""
    decoder = LanguageModelDecoder(model)
    state, context = decoder.initial_state((prompt_ids, prompt_lengths))
    limits = tf.clip_by_value(max_new, 0, MAX_NEW_TOKENS)
    return search.beam_search(decoder, state, context, limits, n_best, 0.0, n_best,
                              last_tokens(prompt_ids, prompt_lengths), search.CONTINUATION)


# ---------------------------------------------------------------------------- sampling


def run_steps(model, states, forced, forced_lengths, total, start, previous, temperature,
              top_k, top_p, seeds):
    """`total` steps of generation: returns (choices [N, total], states, last choice [N]).

    Step t feeds row r its forced token forced[r, t] while t < forced_lengths[r] (the
    prompt), else its own previous choice; then picks the next token at position
    start + t. Used for the prompt, for the CLI's chunks and for the exported loop.
    """
    rows = tf.shape(previous)[0]
    forced = tf.pad(forced, [[0, 0], [0, tf.maximum(1 - tf.shape(forced)[1], 0)]])
    width = tf.shape(forced)[1]  # at least one column, for the gather below

    def body(t, states, previous, choices):
        from_forced = tf.gather(forced, tf.minimum(t, width - 1), axis=1)
        ids = tf.where(t < forced_lengths, from_forced, previous)
        logits, states = model.step(ids, states)
        chosen = search.next_tokens(logits, temperature, top_k, top_p, seeds, start + t)
        return t + 1, states, chosen, choices.write(t, chosen)

    _, states, last, choices = tf.while_loop(
        lambda t, *_: t < total, body,
        (0, states, previous, tf.TensorArray(tf.int32, size=total, element_shape=[None])))
    choices = tf.transpose(tf.reshape(choices.stack(), [total, rows]))
    return choices, states, last


class Stepper:
    """`run_steps` as one tf.function traced once, for streaming a run's text: the
    prompt is read in the first call, then a few tokens per call with the state
    carried. Choices are seeded per position (`start + t`), so the chunks choose what
    `generate_loop`'s one loop chooses: the same step function, cut in pieces."""

    def __init__(self, model):
        self.model = model
        vector = lambda dtype: tf.TensorSpec([None], dtype)  # noqa: E731
        scalar = tf.TensorSpec([], tf.int32)
        self.run = graph_function(
            lambda *args: run_steps(model, *args),
            input_signature=[state_specs(model), tf.TensorSpec([None, None], tf.int32),
                             vector(tf.int32), scalar, scalar, vector(tf.int32),
                             vector(tf.float32), vector(tf.int32), vector(tf.float32),
                             vector(tf.int64)])

    def warm_up(self) -> None:
        """Trace the loop now, so timing and the first tokens do not wait for it."""
        one = lambda value, dtype: tf.constant([value], dtype)  # noqa: E731
        self.run(self.model.zero_states(1), tf.zeros([1, 1], tf.int32), one(1, tf.int32), 1, 0,
                 one(PAD_ID, tf.int32), one(1.0, tf.float32), one(0, tf.int32),
                 one(1.0, tf.float32), one(0, tf.int64))


def state_specs(model):
    """The specs of `model.zero_states` with the batch left open."""
    return tf.nest.map_structure(
        lambda s: tf.TensorSpec([s.shape[0], None, *s.shape[2:]], s.dtype),
        model.zero_states(1))


# ----------------------------------------------------------------- generation in graph


def generate_loop(model, prompt_ids, prompt_lengths, max_new, temperature, top_k, top_p,
                  seeds):
    """Generated ids (ragged [N, None]) for prompts already tokenised, begin id included.

    `prompt_ids` [N, P] right padded, `prompt_lengths` [N] (>= 1: the begin id),
    `max_new` [N]. Row r reads its prompt, then its own samples; the choice made at
    position length - 1 + j is its new token j.
    """
    rows = tf.shape(prompt_ids)[0]
    max_new = tf.clip_by_value(max_new, 0, MAX_NEW_TOKENS)
    last = prompt_lengths - 1 + max_new  # steps each row needs
    total = tf.reduce_max(tf.concat([last, [0]], axis=0))
    choices, _, _ = run_steps(model, model.zero_states(rows), prompt_ids, prompt_lengths, total,
                              0, tf.fill([rows], PAD_ID), temperature, top_k, top_p, seeds)
    position = tf.range(total)[None, :]
    keep = (position >= prompt_lengths[:, None] - 1) & (position < last[:, None])
    return tf.ragged.boolean_mask(choices, keep)
