"""The sentiment classifier: token ids in, one logit per label (per ensemble member) out."""

from __future__ import annotations

import keras
import tensorflow as tf

from apps.layers import RecurrentEncoder, SequencePooling
from pipelines.tokenizer import PAD_ID


@keras.saving.register_keras_serializable(package="apps")
class Member(keras.layers.Layer):
    """One classifier: embedding -> RecurrentEncoder -> pooling -> dropout -> dense logits."""

    def __init__(self, vocab_size, num_classes, embedding_dim=128, pooling="max", dropout=0.0,
                 encoder=None, **kwargs):
        super().__init__(**kwargs)
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
        self.embedding_dropout = keras.layers.Dropout(dropout)
        self.encoder = RecurrentEncoder(**(encoder or {}), name="encoder")
        self.pooling = SequencePooling(pooling, name="pooling")
        self.output_dropout = keras.layers.Dropout(dropout)
        self.classifier = keras.layers.Dense(num_classes, name="logits", dtype="float32")

    def build(self, ids_shape, mask_shape=None):
        """Weights from shapes alone (without a `build`, Keras traces `call` to find them)."""
        self.embedding.build(ids_shape)
        self.encoder.build((*ids_shape, self.embedding.output_dim))
        sequence = keras.KerasTensor((None, None, self.encoder.output_size))
        self.pooling.build(sequence.shape)
        pooled = self.pooling.compute_output_spec(sequence, None)
        self.classifier.build(pooled.shape)

    def call(self, ids, mask, training=None):
        x = self.embedding_dropout(self.embedding(ids), training=training)
        sequence, states = self.encoder(x, mask=mask, training=training)
        last = self.encoder.last_output(states) if self.pooling.mode in ("last", "concat") \
            else None
        pooled = self.pooling(sequence, mask, last=last)
        return self.classifier(self.output_dropout(pooled, training=training))


@keras.saving.register_keras_serializable(package="apps")
class SentimentClassifier(keras.Model):
    """`members` independently initialised classifiers, trained side by side.

    Each member has its own loss (`member_loss`), so they learn independently as
    separately trained models would; predictions average their probabilities
    (`probabilities`), the classic ensemble. With members=1 it is one plain model.
    The members' recurrences are independent ops in one graph, so TensorFlow runs
    them in parallel on several cores.

    An empty text (no token at all) carries no evidence: `scores` gives it the
    training data's label frequencies (`priors`), so its label is the most common
    class, whatever the pooling.

    Args:
        vocab_size: tokenizer vocabulary size (id 0 is padding and is masked).
        num_classes: number of labels.
        embedding_dim, pooling, dropout, encoder: see `Member` and `RecurrentEncoder`.
        members: how many classifiers to train and average.
        priors: each label's share of the training data (uniform when None).
    """

    def __init__(self, vocab_size, num_classes, embedding_dim=128, pooling="max",
                 dropout=0.0, encoder=None, members=1, priors=None, **kwargs):
        super().__init__(**kwargs)
        priors = [float(p) for p in priors] if priors else [1.0 / num_classes] * num_classes
        self.settings = dict(vocab_size=vocab_size, num_classes=num_classes,
                             embedding_dim=embedding_dim, pooling=pooling, dropout=dropout,
                             encoder=dict(encoder or {}), members=members, priors=priors)
        self.members = [Member(vocab_size, num_classes, embedding_dim, pooling, dropout, encoder,
                               name=f"member_{i}") for i in range(members)]

    def build(self, ids_shape):
        for member in self.members:
            member.build(ids_shape)

    def call(self, ids, training=None):
        """Logits [batch, members, classes]."""
        mask = tf.not_equal(ids, PAD_ID)
        return tf.stack([member(ids, mask, training=training) for member in self.members], 1)

    def scores(self, ids):
        """The ensemble's class probabilities [batch, classes]; `priors` for empty texts."""
        empty = tf.reduce_all(tf.equal(ids, PAD_ID), axis=1)
        priors = tf.constant(self.settings["priors"], tf.float32)[None, :]
        return tf.where(empty[:, None], priors, probabilities(self(ids, training=False)))

    def get_config(self):
        return {**super().get_config(), **self.settings}


def member_loss(labels, logits):
    """Mean over members of each member's own cross-entropy."""
    labels = tf.cast(tf.reshape(labels, [-1, 1]), tf.int32)
    labels = tf.broadcast_to(labels, tf.shape(logits)[:2])
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits), axis=1)


def probabilities(logits):
    """The ensemble's class probabilities [batch, classes]."""
    return tf.reduce_mean(tf.nn.softmax(logits, axis=-1), axis=1)


def ensemble_accuracy(labels, logits):
    predicted = tf.argmax(probabilities(logits), axis=-1, output_type=tf.int32)
    return tf.cast(tf.equal(predicted, tf.cast(tf.reshape(labels, [-1]), tf.int32)), tf.float32)


def build(settings, vocab_size: int, num_classes: int,
          priors: list[float] | None = None) -> SentimentClassifier:
    """The classifier for resolved `SentimentSettings`, with its weights created."""
    model = SentimentClassifier(vocab_size, num_classes, settings.embedding_dim,
                                settings.pooling, settings.dropout,
                                encoder=settings.encoder_arguments(), members=settings.members,
                                priors=priors)
    model.build((None, None))
    return model
