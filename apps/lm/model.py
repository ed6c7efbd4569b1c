"""The language model: token ids in, next-token logits out, with explicit recurrent state.

Training reads a token stream in segments (truncated backpropagation through time,
see `pipelines.streams`) and may carry the final state of one segment into the next
(`carry_state`); generation runs `step` once per new token with the state carried,
never the whole sequence again.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from apps.layers import RecurrentEncoder


@keras.saving.register_keras_serializable(package="apps")
class LanguageModel(keras.Model):
    """Embedding -> unidirectional RecurrentEncoder -> dropout -> logits over the vocabulary.

    Args:
        vocab_size: tokenizer vocabulary size.
        embedding_dim: token embedding size.
        tie_embeddings: use the embedding matrix (transposed) as the output layer; when
            the encoder's units differ from `embedding_dim`, a linear projection maps
            the recurrent output to the embedding size first.
        dropout: rate on the embeddings and on the recurrent output.
        encoder: keyword arguments for `RecurrentEncoder` (forced unidirectional).
    """

    def __init__(self, vocab_size, embedding_dim=128, tie_embeddings=False, dropout=0.0,
                 encoder=None, **kwargs):
        super().__init__(**kwargs)
        encoder = {**(encoder or {}), "bidirectional": False}
        self.settings = dict(vocab_size=int(vocab_size), embedding_dim=int(embedding_dim),
                             tie_embeddings=bool(tie_embeddings), dropout=float(dropout),
                             encoder=encoder)
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
        self.embedding_dropout = keras.layers.Dropout(dropout)
        self.encoder = RecurrentEncoder(**encoder, name="encoder")
        self.output_dropout = keras.layers.Dropout(dropout)
        self.projection = None
        if tie_embeddings:
            if self.encoder.output_size != embedding_dim:
                self.projection = keras.layers.Dense(embedding_dim, use_bias=False,
                                                     name="projection")
            self.output_bias = self.add_weight(name="output_bias", shape=(vocab_size,),
                                               initializer="zeros")
            self.logits_layer = None
        else:
            self.logits_layer = keras.layers.Dense(vocab_size, name="logits")

    # -- pieces shared by the sequence and the one-step paths ---------------------------

    def _logits(self, hidden, training=None):
        hidden = self.output_dropout(hidden, training=training)
        if self.logits_layer is not None:
            return self.logits_layer(hidden)
        if self.projection is not None:
            hidden = self.projection(hidden)
        return tf.matmul(hidden, self.embedding.embeddings, transpose_b=True) + self.output_bias

    def zero_states(self, batch_size):
        return self.encoder.zero_states(batch_size)

    def run(self, ids, states=None, training=None):
        """ids [B, T] -> (logits [B, T, V], final states); `states` continues a stream."""
        x = self.embedding_dropout(self.embedding(ids), training=training)
        if not self.encoder.built:
            self.encoder.build(x.shape)
        sequence, states = self.encoder(x, training=training, initial_states=states)
        return self._logits(sequence, training), states

    def step(self, ids, states):
        """ids [B] (the latest token of each stream) -> (logits [B, V], new states)."""
        output, states = self.encoder.step(self.embedding(ids), states)
        return self._logits(output, training=False), states

    def call(self, ids, training=None):
        return self.run(ids, training=training)[0]

    # -- training on streams ------------------------------------------------------------

    def carry_state(self, train_streams: int, valid_streams: int) -> None:
        """Carry the recurrent state from each batch to the next (stateful training).

        Batches come from `pipelines.streams.stream_dataset`: ((ids, first), targets),
        where row b continues row b of the previous batch and `first` marks the batch
        that starts the stream again (each epoch), where the state starts from zero.
        """
        self._carry = {"train": StateCarry(self.zero_states(train_streams)),
                       "valid": StateCarry(self.zero_states(valid_streams))}

    def _forward(self, data, training):
        (ids, first), targets = data
        carry = getattr(self, "_carry", None)
        carry = carry and carry["train" if training else "valid"]
        states = carry.read(keep=1.0 - tf.cast(first, tf.float32)) if carry else None
        logits, states = self.run(ids, states, training=training)
        if carry:
            carry.write(states)
        return targets, logits

    def _metric_logs(self, loss, targets, logits):
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(targets, logits)
        return {metric.name: metric.result() for metric in self.metrics}

    def train_step(self, data):
        with tf.GradientTape() as tape:
            targets, logits = self._forward(data, training=True)
            loss = self.compute_loss(y=targets, y_pred=logits)
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        return self._metric_logs(loss, targets, logits)

    def test_step(self, data):
        targets, logits = self._forward(data, training=False)
        loss = self.compute_loss(y=targets, y_pred=logits, training=False)
        return self._metric_logs(loss, targets, logits)

    def get_config(self):
        return {**super().get_config(), **self.settings}


class StateCarry:
    """Recurrent state kept between batches in variables that are not model weights.

    A plain object (not a Keras layer), so neither weight files nor exports see
    these batch-sized variables.
    """

    def __init__(self, states):
        self.structure = states
        self.variables = [tf.Variable(tensor, trainable=False)
                          for tensor in tf.nest.flatten(states)]

    def read(self, keep):
        """The carried states times `keep` (0.0 restarts the stream from zero state)."""
        return tf.nest.pack_sequence_as(self.structure,
                                         [v.read_value() * keep for v in self.variables])

    def write(self, states) -> None:
        for variable, value in zip(self.variables, tf.nest.flatten(states)):
            variable.assign(tf.stop_gradient(value))


def build(settings, vocab_size: int) -> LanguageModel:
    """The model for resolved `LanguageModelSettings`, with its weights created."""
    model = LanguageModel(vocab_size, settings.embedding_dim, settings.tie_embeddings,
                          settings.dropout, encoder=settings.encoder_arguments())
    model(tf.zeros([1, 1], tf.int32))
    return model
