"""The language model: token ids in, next-token logits out, with explicit recurrent state.

Training reads a token stream in segments (truncated backpropagation through time,
see `pipelines.streams`) and may carry the final state of one segment into the next
(`carry_state`); generation runs `step` once per new token with the state carried,
never the whole sequence again.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from apps.layers import EmbeddingDropout, RecurrentEncoder, sequence_dropout


@keras.saving.register_keras_serializable(package="apps")
class LanguageModel(keras.Model):
    """Embedding -> unidirectional RecurrentEncoder -> dropout -> logits over the vocabulary.

    Args:
        vocab_size: tokenizer vocabulary size.
        embedding_dim: token embedding size.
        tie_embeddings: use the embedding matrix (transposed) as the output layer; when
            the encoder's units differ from `embedding_dim`, a linear projection maps
            the recurrent output to the embedding size first.
        dropout: rate on the embeddings and on the recurrent output, drawn as the
            encoder's `dropout_kind` says (locked: one mask per sequence).
        embedding_dropout: share of the embedding matrix's rows dropped per batch while
            training (`EmbeddingDropout`); with tied embeddings the output layer reads
            the whole matrix, as in AWD-LSTM.
        encoder: keyword arguments for `RecurrentEncoder` (forced unidirectional).
    """

    def __init__(self, vocab_size, embedding_dim=128, tie_embeddings=False, dropout=0.0,
                 encoder=None, embedding_dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        encoder = {**(encoder or {}), "bidirectional": False}
        self.settings = dict(vocab_size=int(vocab_size), embedding_dim=int(embedding_dim),
                             tie_embeddings=bool(tie_embeddings), dropout=float(dropout),
                             encoder=encoder, embedding_dropout=float(embedding_dropout))
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
        # Only when on: a model without it keeps the variables of earlier runs.
        self.row_dropout = EmbeddingDropout(embedding_dropout, vocab_size) \
            if embedding_dropout else None
        kind = encoder.get("dropout_kind", "standard")
        self.embedding_dropout = sequence_dropout(dropout, kind)
        self.encoder = RecurrentEncoder(**encoder, name="encoder")
        self.output_dropout = sequence_dropout(dropout, kind)
        self.projection = None
        if tie_embeddings:
            if self.encoder.output_size != embedding_dim:
                self.projection = keras.layers.Dense(embedding_dim, use_bias=False,
                                                     name="projection")
            self.output_bias = self.add_weight(name="output_bias", shape=(vocab_size,),
                                               initializer="zeros")
            self.logits_layer = None
        else:
            self.logits_layer = keras.layers.Dense(vocab_size, name="logits", dtype="float32")

    def build(self, input_shape):
        """Weights from shapes alone (without a `build`, Keras traces `call` to find them)."""
        self.embedding.build((None, None))
        if self.row_dropout is not None:
            self.row_dropout.build((None, None))
        self.encoder.build((None, None, self.embedding.output_dim))
        size = self.encoder.output_size
        if self.projection is not None:
            self.projection.build((None, None, size))
        if self.logits_layer is not None:
            self.logits_layer.build((None, None, size))

    # -- pieces shared by the sequence and the one-step paths ---------------------------

    def _logits(self, hidden, training=None):
        """Logits in float32 whatever the training precision (softmax and loss need it);
        tied, the shared matrix is read at the training precision."""
        hidden = self.output_dropout(hidden, training=training)
        if self.logits_layer is not None:
            return self.logits_layer(hidden)
        if self.projection is not None:
            hidden = self.projection(hidden)
        embeddings = tf.cast(self.embedding.embeddings, tf.float32)
        return (tf.matmul(tf.cast(hidden, tf.float32), embeddings, transpose_b=True)
                + tf.cast(self.output_bias, tf.float32))

    def zero_states(self, batch_size):
        return self.encoder.zero_states(batch_size)

    def run(self, ids, states=None, training=None):
        """ids [B, T] -> (logits [B, T, V], final states); `states` continues a stream."""
        x = self.embedding(ids)
        if self.row_dropout is not None:
            x = self.row_dropout(ids, x, training=training)
        x = self.embedding_dropout(x, training=training)
        if not self.encoder.built:
            self.encoder.build(x.shape)
        sequence, states = self.encoder(x, training=training, initial_states=states)
        return self._logits(sequence, training), states

    def step(self, ids, states):
        """ids [B] (the latest token of each stream) -> (logits [B, V], new states)."""
        output, states = self.encoder.step(self.embedding(ids), states)
        return self._logits(output, training=False), states

    def call(self, inputs, training=None):
        """ids [B, T] -> logits; or (ids, first) from a stream dataset, with the state
        carried from the previous batch when `carry_state` was called."""
        if not isinstance(inputs, tuple | list):
            return self.run(inputs, training=training)[0]
        ids, first = inputs
        carry = getattr(self, "_carry", None)
        if carry is None:
            return self.run(ids, training=training)[0]
        carry = carry["train" if training else "valid"]
        logits, states = self.run(ids, carry.read(keep=1.0 - tf.cast(first, tf.float32)),
                                  training=training)
        carry.write(states)
        return logits

    # -- training on streams ------------------------------------------------------------

    def carry_state(self, train_streams: int, valid_streams: int) -> None:
        """Carry the recurrent state from each batch to the next (stateful training).

        Batches come from `pipelines.streams.stream_dataset`: ((ids, first), targets),
        where row b continues row b of the previous batch and `first` marks the batch
        that starts the stream again (each epoch), where the state starts from zero.
        The counts are per replica: under a distribution strategy each replica keeps
        the state of its own rows.
        """
        self._carry = {"train": StateCarry(self.zero_states(train_streams)),
                       "valid": StateCarry(self.zero_states(valid_streams))}

    def get_config(self):
        return {**super().get_config(), **self.settings}


class StateCarry:
    """Recurrent state kept between batches in variables that are not model weights.

    A plain object (not a Keras layer), so neither weight files nor exports see
    these batch-sized variables.
    """

    def __init__(self, states):
        self.structure = states
        # On read: one copy per replica under a distribution strategy (each replica
        # carries its own streams); a plain variable without one.
        self.variables = [tf.Variable(tensor, trainable=False,
                                      synchronization=tf.VariableSynchronization.ON_READ,
                                      aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
                          for tensor in tf.nest.flatten(states)]

    def read(self, keep):
        """The carried states times `keep` (0.0 restarts the stream from zero state)."""
        return tf.nest.pack_sequence_as(self.structure, [
            v.read_value() * tf.cast(keep, v.dtype) for v in self.variables])

    def write(self, states) -> None:
        for variable, value in zip(self.variables, tf.nest.flatten(states)):
            variable.assign(tf.cast(tf.stop_gradient(value), variable.dtype))


def build(settings, vocab_size: int) -> LanguageModel:
    """The model for resolved `LanguageModelSettings`, with its weights created."""
    model = LanguageModel(vocab_size, settings.embedding_dim, settings.tie_embeddings,
                          settings.dropout, encoder=settings.encoder_arguments(),
                          embedding_dropout=settings.embedding_dropout)
    model.build((None, None))
    return model
