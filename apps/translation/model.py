"""The translator: a recurrent encoder, an attentional recurrent decoder, tied output.

The encoder is the shared `RecurrentEncoder` (any cell, bidirectional, layers,
residual). The decoder is a unidirectional `RecurrentEncoder` of the same cell whose
initial state is bridged from the encoder's final output (a tanh layer), and which
reads its own previous token with teacher forcing while training. Two attentions:

- "bahdanau" (additive, fed into the recurrence): each step's context is computed
  from the previous decoder state and read by the recurrence with the token, so
  training runs the decoder step by step in a `tf.while_loop`;
- "luong" (multiplicative, after the recurrence): the decoder runs over the whole
  target at once through the shared fast recurrence, then every step attends.

Either way the output is `tanh(W [h; context])` at the embedding size, multiplied by
the transposed target embedding (tied), plus a bias. Decoding (`encode` + `step`) is
the same arithmetic one token at a time; `apps.translation.decoding` searches with it.
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import tensorflow as tf

from apps.layers import RecurrentEncoder, num_states
from pipelines.tokenizer import BOS_ID, PAD_ID

ATTENTIONS = ("bahdanau", "luong")


class StepWeights(NamedTuple):
    """What a decoding step reads of the weights (`Translator.step_weights`)."""

    inputs: tf.Tensor | None  # [K, gates]: per output row, embedding @ kernel + bias
    embedding_kernel: tf.Tensor  # [embedding dim, gates]: the input kernel's token rows
    input_bias: tf.Tensor  # [gates]
    readout_kernel: tf.Tensor  # [units, embedding dim]: the readout's hidden rows
    readout_bias: tf.Tensor  # [embedding dim]
    output_matrix: tf.Tensor  # [embedding dim, K]: the output rows, transposed
    output_bias: tf.Tensor  # [K]
    query_kernel: tf.Tensor | None  # [units, attention units] (Bahdanau)
    score_vector: tf.Tensor | None  # [attention units] (Bahdanau)
    decoder: list  # per decoder layer, its weights (`RecurrentEncoder.step_weights`)


class BeamContext(NamedTuple):
    """A decoding context (`Translator.decoding_context`) with one row per sentence
    that a beam search's steps read for all of a sentence's beams
    (`Translator.prepared_step`)."""

    memory: tf.Tensor
    keys: tf.Tensor
    mask: tf.Tensor
    readout_memory: tf.Tensor
    cell_memory: tf.Tensor | None = None  # Bahdanau's


MASKED_SCORE = -1e9  # not -inf: a source with no token (empty) still gives finite weights


@keras.saving.register_keras_serializable(package="apps")
class Attention(keras.layers.Layer):
    """Scores of decoder queries [B, Q, H] over encoder memory [B, S, M] -> contexts.

    "bahdanau": v . tanh(W_m m + W_q q); "luong" ("general"): q . (W_m m).
    `keys(memory)` is computed once per sentence; `call` attends for any number of
    queries (all target steps while training with Luong, one step otherwise).
    """

    def __init__(self, kind="bahdanau", units=256, **kwargs):
        super().__init__(**kwargs)
        if kind not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, received {kind!r}")
        self.kind, self.units = kind, int(units)
        self.supports_masking = True  # its own `mask` argument is the source's
        self.memory_layer = keras.layers.Dense(units, use_bias=False, name="memory")
        if kind == "bahdanau":
            self.query_layer = keras.layers.Dense(units, use_bias=False, name="query")

    def build(self, memory_size, query_size):
        self.memory_layer.build((None, memory_size))
        if self.kind == "bahdanau":
            self.query_layer.build((None, query_size))
            self.score_vector = self.add_weight(name="score_vector", shape=(self.units,))
        self.built = True

    def keys(self, memory):
        return self.memory_layer(memory)

    def call(self, query, keys, memory, mask):
        """query [B, Q, H] -> (context [B, Q, M], weights [B, Q, S])."""
        weights = self.weights_of(query, keys, mask)
        return tf.matmul(weights, memory), weights

    def weights_of(self, query, keys, mask):
        """query [B, Q, H] -> attention weights [B, Q, S] (softmax over the source)."""
        if self.kind == "bahdanau":
            hidden = tf.tanh(keys[:, None, :, :] + self.query_layer(query)[:, :, None, :])
            scores = tf.reduce_sum(hidden * self.score_vector, axis=-1)
        else:
            scores = tf.matmul(query, keys, transpose_b=True)
        scores = tf.where(mask[:, None, :], scores, tf.cast(MASKED_SCORE, scores.dtype))
        return tf.nn.softmax(scores, axis=-1)

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "units": self.units}


def _read(over_source, memory, group: bool):
    """Attention weights [B, G, S] x (projected) memory [B, S, X] -> [B * G, X]; without
    `group`, G = 1 and memory [B, S, X]."""
    read = tf.matmul(tf.cast(over_source, memory.dtype), memory)
    return tf.reshape(read, [-1, tf.shape(memory)[-1]]) if group else read[:, 0]


@keras.saving.register_keras_serializable(package="apps")
class Translator(keras.Model):
    """Source ids [B, S] and target ids [B, T] (ending with the end id) -> logits [B, T, V].

    Args:
        source_vocab, target_vocab: vocabulary sizes (equal with a joint vocabulary).
        embedding_dim: size of the token embeddings and of the output layer's input.
        attention: "bahdanau" or "luong".
        shared_embeddings: one embedding matrix for both sides (joint vocabulary).
        dropout: rate on embeddings and on the output layer's input.
        label_smoothing: share of the target probability spread over the vocabulary.
        encoder: keyword arguments for the encoder's `RecurrentEncoder`; the decoder
            uses the same cell, units, layers and residual setting, unidirectional.
    """

    def __init__(self, source_vocab, target_vocab, embedding_dim=256, attention="bahdanau",
                 shared_embeddings=True, dropout=0.0, label_smoothing=0.0, encoder=None,
                 **kwargs):
        super().__init__(**kwargs)
        encoder = dict(encoder or {})
        self.settings = dict(source_vocab=int(source_vocab), target_vocab=int(target_vocab),
                             embedding_dim=int(embedding_dim), attention=attention,
                             shared_embeddings=bool(shared_embeddings), dropout=float(dropout),
                             label_smoothing=float(label_smoothing), encoder=encoder)
        self.label_smoothing = float(label_smoothing)
        self.source_embedding = keras.layers.Embedding(source_vocab, embedding_dim,
                                                       name="source_embedding")
        self.target_embedding = self.source_embedding if shared_embeddings else \
            keras.layers.Embedding(target_vocab, embedding_dim, name="target_embedding")
        self.embedding_dropout = keras.layers.Dropout(dropout)
        self.output_dropout = keras.layers.Dropout(dropout)
        self.encoder = RecurrentEncoder(**encoder, name="encoder")
        self.decoder = RecurrentEncoder(**{**encoder, "bidirectional": False}, name="decoder")
        self.cell, self.units = self.decoder.cell, self.decoder.units
        self.state_count = self.decoder.num_layers * num_states(self.cell)
        self.bridge = keras.layers.Dense(self.state_count * self.units, activation="tanh",
                                         name="bridge")
        self.attention = Attention(attention, self.units, name="attention")
        self.readout = keras.layers.Dense(embedding_dim, activation="tanh", name="readout")
        self.output_bias = self.add_weight(name="output_bias", shape=(target_vocab,),
                                           initializer="zeros")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.Mean(name="accuracy")

    @property
    def feeds_attention(self) -> bool:
        return self.attention.kind == "bahdanau"

    def build(self, input_shape=None):
        dim, memory = self.settings["embedding_dim"], self.encoder.output_size
        self.source_embedding.build((None, None))
        self.target_embedding.build((None, None))
        self.encoder.build((None, None, dim))
        self.decoder.build((None, None, dim + memory if self.feeds_attention else dim))
        self.bridge.build((None, memory))
        self.attention.build(memory, self.units)
        self.readout.build((None, self.units + memory))
        self.built = True

    # -- the encoder side -----------------------------------------------------------------

    def encode(self, source, training=None):
        """source ids [B, S] -> (context (memory, keys, mask), initial decoder state).

        The state is a flat tuple of [B, units] tensors (per layer: h, and c for an LSTM).
        """
        mask = tf.not_equal(source, PAD_ID)
        embedded = self.embedding_dropout(self.source_embedding(source), training=training)
        memory, states = self.encoder(embedded, mask=mask, training=training)
        bridged = self.bridge(self.encoder.last_output(states))
        state = tuple(tf.split(bridged, self.state_count, axis=-1))
        return (memory, self.attention.keys(memory), mask), state

    def _layered(self, state):
        """Flat state -> RecurrentEncoder's form: per layer, a tuple of [1, B, units]."""
        per_layer = num_states(self.cell)
        return [tuple(s[None] for s in state[i : i + per_layer])
                for i in range(0, len(state), per_layer)]

    @staticmethod
    def _flat(states):
        return tuple(s[0] for layer in states for s in layer)

    def _logits(self, hidden, context, training=None, output=None):
        """Logits over the vocabulary, or over `output` = (rows of the output matrix
        [K, D], their biases [K]): a shortlist (`apps.translation.shortlist`)."""
        features = self.output_dropout(tf.concat([hidden, context], axis=-1), training=training)
        return self._project(self.readout(features), output)

    def _project(self, out, output=None):
        matrix, bias = output or (self.target_embedding.embeddings, self.output_bias)
        logits = tf.matmul(tf.reshape(out, [-1, tf.shape(out)[-1]]), tf.cast(matrix, out.dtype),
                           transpose_b=True)
        shape = tf.concat([tf.shape(out)[:-1], [-1]], axis=0)
        return tf.cast(tf.reshape(logits, shape), tf.float32) + bias

    # -- one step: decoding -----------------------------------------------------------------

    def decoding_context(self, context):
        """(memory, keys, mask) -> the same plus the memory's projections that decoding
        steps read: a step reads its attention context only through linear maps (the
        readout and, with Bahdanau, the decoder's input projection), so
        weights @ (memory @ W), with memory @ W computed once per sentence, replaces
        (weights @ memory) @ W, a [rows, memory size] x [memory size, W] product every
        step."""
        memory, keys, mask = context
        kernel = tf.cast(self.readout.kernel, memory.dtype)[self.units :]
        projected = [tf.einsum("bsm,mx->bsx", memory, kernel)]
        if self.feeds_attention:
            cell_kernel = self.decoder.input_weights(0)[0][self.settings["embedding_dim"] :]
            projected.append(tf.einsum("bsm,mx->bsx", memory, cell_kernel))
        return (memory, keys, mask, *projected)

    def step(self, ids, state, context, output=None):
        """ids [B] (the previous token) -> (logits [B, V], new state, attention [B, S]);
        `output`: a shortlist's rows of the output layer (logits [B, K]), see `_logits`.
        `context` as `encode` gives it, or with `decoding_context`'s projections (the
        same arithmetic, fewer products)."""
        if len(context) > 3:
            return self._projected_step(ids, state, context, output)
        memory, keys, mask = context
        embedded = self.target_embedding(ids)
        if self.feeds_attention:
            attended, weights = self.attention(state[-num_states(self.cell)][:, None], keys,
                                               memory, mask)
            hidden, states = self.decoder.step(tf.concat([embedded, attended[:, 0]], -1),
                                               self._layered(state))
        else:
            hidden, states = self.decoder.step(embedded, self._layered(state))
            attended, weights = self.attention(hidden[:, None], keys, memory, mask)
        return (self._logits(hidden, attended[:, 0], output=output), self._flat(states),
                weights[:, 0])

    def _projected_step(self, ids, state, context, output=None):
        return self.prepared_step(ids, state, context, self.step_weights(output=output))

    def step_weights(self, ids=None, output=None) -> StepWeights:
        """The weights every decoding step reads, prepared once before a search's loop
        (sliced, cast, the output matrix transposed: none of it per step).

        `ids` [K]: the target ids a search may produce (a shortlist); each one's
        embedding times the first decoder layer's input kernel, plus its bias, is
        then one row of a [K, gates] table, so a step gathers a row instead of
        embedding the token and multiplying it (K rows once, not every step's rows
        every step). None: the whole vocabulary, embedded and multiplied per step (a
        table of every piece would cost more than the steps it saves). `output`: as
        `_logits`' (ignored with `ids`, whose rows it reads).
        """
        kernel, bias = self.decoder.input_weights(0)
        dim, dtype = self.settings["embedding_dim"], kernel.dtype
        embedding_kernel = kernel[:dim]
        matrix, output_bias = output or (self.target_embedding.embeddings, self.output_bias)
        table = None
        if ids is not None:
            matrix = tf.gather(self.target_embedding.embeddings, ids)
            output_bias = tf.gather(self.output_bias, ids)
            table = tf.matmul(tf.cast(matrix, dtype), embedding_kernel) + bias
        readout = tf.cast(self.readout.kernel, dtype)
        bahdanau = self.attention.kind == "bahdanau"
        return StepWeights(
            query_kernel=tf.cast(self.attention.query_layer.kernel, dtype) if bahdanau
            else None,
            score_vector=tf.cast(self.attention.score_vector, dtype) if bahdanau else None,
            inputs=table, embedding_kernel=embedding_kernel, input_bias=bias,
            readout_kernel=readout[: self.units],
            readout_bias=tf.cast(self.readout.bias, dtype),
            output_matrix=tf.transpose(tf.cast(matrix, dtype)), output_bias=output_bias,
            decoder=self.decoder.step_weights())

    def prepared_step(self, tokens, state, context, weights: StepWeights):
        """`step` with `decoding_context`'s projections and `step_weights`' weights:
        `tokens` [B] index the rows of `weights` (ids, or shortlist positions when
        `weights` was prepared for a shortlist). Same arithmetic as `step`.

        A `BeamContext` holds one row per sentence while the state holds G rows per
        sentence, sentence by sentence (a beam search's beams): each sentence's G
        queries then read its memory in one [G, S] x [S, X] product, not G copies of
        it (a [1, S] x [S, X] product per row: a tiled memory read G times)."""
        _, keys, mask, readout_memory, *cell_memory = context
        group = isinstance(context, BeamContext)
        if weights.inputs is None:
            embedded = self.target_embedding(tokens)
            projected = tf.matmul(tf.cast(embedded, weights.embedding_kernel.dtype),
                                  weights.embedding_kernel) + weights.input_bias
        else:
            projected = tf.gather(weights.inputs, tokens)
        top = -num_states(self.cell)
        if self.feeds_attention:  # Bahdanau: the previous state's query feeds the cell
            over_source = self._step_attention(state[top], keys, mask, weights, group)
            attended = _read(over_source, cell_memory[0], group)
            projected = projected + tf.cast(attended, projected.dtype)
        hidden, states = self.decoder.step(None, self._layered(state), projected,
                                           weights.decoder)
        if not self.feeds_attention:  # Luong: the new state is the query
            over_source = self._step_attention(hidden, keys, mask, weights, group)
        attended = _read(over_source, readout_memory, group)
        out = tf.tanh(tf.matmul(hidden, weights.readout_kernel)
                      + tf.cast(attended, hidden.dtype) + weights.readout_bias)
        logits = tf.matmul(out, weights.output_matrix)
        attention = tf.reshape(over_source, [-1, tf.shape(over_source)[-1]]) if group \
            else over_source[:, 0]
        return tf.cast(logits, tf.float32) + weights.output_bias, self._flat(states), attention

    def _step_attention(self, query, keys, mask, weights: StepWeights, group=False):
        """`Attention.weights_of` for one query per row, [B, H] -> [B, 1, S], or with
        `group`, G queries per sentence, [B * G, H] -> [B, G, S]; Bahdanau's score
        v . tanh(...) as one product (no [B, S, A] product and sum)."""
        batch = tf.shape(keys)[0]
        if weights.score_vector is None:
            grouped = tf.reshape(query, [batch, -1, tf.shape(query)[-1]]) if group \
                else query[:, None]
            return self.attention.weights_of(grouped, keys, mask)
        queries = tf.matmul(tf.cast(query, keys.dtype), weights.query_kernel)
        if not group:
            hidden = tf.tanh(keys + queries[:, None, :])
            scores = tf.linalg.matvec(hidden, weights.score_vector)
            scores = tf.where(mask, scores, tf.cast(MASKED_SCORE, scores.dtype))
            return tf.nn.softmax(scores, axis=-1)[:, None]
        units, length = tf.shape(keys)[-1], tf.shape(keys)[1]
        hidden = tf.tanh(keys[:, None] + tf.reshape(queries, [batch, -1, 1, units]))
        scores = tf.linalg.matvec(tf.reshape(hidden, [-1, length, units]),
                                  weights.score_vector)
        scores = tf.reshape(scores, [batch, -1, length])
        scores = tf.where(mask[:, None], scores, tf.cast(MASKED_SCORE, scores.dtype))
        return tf.nn.softmax(scores, axis=-1)

    # -- the whole target: training ----------------------------------------------------------

    def call(self, inputs, training=None, return_attention=False):
        """(source [B, S], target [B, T]) -> logits [B, T, V] (and attention [B, T, S])."""
        source, target = inputs
        context, state = self.encode(source, training)
        memory, keys, mask = context
        previous = tf.concat([tf.fill([tf.shape(target)[0], 1], BOS_ID),
                              tf.cast(target[:, :-1], tf.int32)], axis=1)
        embedded = self.embedding_dropout(self.target_embedding(previous), training=training)
        if self.feeds_attention:
            hidden, attended, weights = self._run_fed(embedded, state, context)
        else:
            hidden, _ = self.decoder(embedded, mask=tf.not_equal(target, PAD_ID),
                                     training=training, initial_states=self._layered(state))
            attended, weights = self.attention(hidden, keys, memory, mask)
        logits = self._logits(hidden, attended, training)
        return (logits, weights) if return_attention else logits

    def _run_fed(self, embedded, state, context):
        """The Bahdanau decoder over every target step: a loop, as each step's context
        needs the state before it. Returns hidden [B, T, H], contexts, weights."""
        memory, keys, mask = context
        time_major = tf.transpose(embedded, [1, 0, 2])
        steps = tf.shape(time_major)[0]
        arrays = [tf.TensorArray(embedded.dtype, size=steps) for _ in range(2)] + \
            [tf.TensorArray(memory.dtype, size=steps)]
        top = -num_states(self.cell)

        def body(t, state, hidden_ta, context_ta, weight_ta):
            attended, weights = self.attention(state[top][:, None], keys, memory, mask)
            output, states = self.decoder.step(
                tf.concat([time_major[t], attended[:, 0]], -1), self._layered(state))
            return (t + 1, self._flat(states), hidden_ta.write(t, output),
                    context_ta.write(t, attended[:, 0]), weight_ta.write(t, weights[:, 0]))

        _, _, *arrays = tf.while_loop(lambda t, *_: t < steps, body, (0, state, *arrays))
        hidden, attended, weights = (tf.transpose(a.stack(), [1, 0, 2]) for a in arrays)
        return hidden, attended, weights

    # -- the training loop's steps ----------------------------------------------------------

    def token_losses(self, source, target, training=None):
        """(summed label-smoothed loss, real target tokens, correct argmax tokens)."""
        logits = self((source, target), training=training)
        target = tf.cast(target, tf.int32)
        weights = tf.cast(tf.not_equal(target, PAD_ID), tf.float32)
        log_probs = tf.nn.log_softmax(logits)
        nll = -tf.gather(log_probs, target, batch_dims=2)
        smooth = -tf.reduce_mean(log_probs, axis=-1)
        losses = (1.0 - self.label_smoothing) * nll + self.label_smoothing * smooth
        correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), target),
                          tf.float32)
        return (tf.reduce_sum(losses * weights), tf.reduce_sum(weights),
                tf.reduce_sum(correct * weights))

    def _track(self, loss_sum, tokens, correct):
        tokens = tf.maximum(tokens, 1.0)
        self.loss_tracker.update_state(loss_sum / tokens, sample_weight=tokens)
        self.accuracy_tracker.update_state(correct / tokens, sample_weight=tokens)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        source, target = data
        with tf.GradientTape() as tape:
            loss_sum, tokens, correct = self.token_losses(source, target, training=True)
            loss = loss_sum / tf.maximum(tokens, 1.0)
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        return self._track(loss_sum, tokens, correct)

    def test_step(self, data):
        source, target = data
        return self._track(*self.token_losses(source, target, training=False))

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker]

    def get_config(self):
        return {**super().get_config(), **self.settings}


def build(settings, source_vocab: int, target_vocab: int) -> Translator:
    """The translator for resolved `TranslationSettings`, with its weights created."""
    model = Translator(source_vocab, target_vocab, settings.embedding_dim, settings.attention,
                       shared_embeddings=not settings.separate_vocab, dropout=settings.dropout,
                       label_smoothing=settings.label_smoothing,
                       encoder=settings.encoder_arguments())
    model.build()
    return model
