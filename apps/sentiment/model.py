"""The sentiment classifier: token ids in, one logit per label out."""

from __future__ import annotations

import keras
import tensorflow as tf

from apps.layers import RecurrentEncoder, SequencePooling
from pipelines.tokenizer import PAD_ID


@keras.saving.register_keras_serializable(package="apps")
class SentimentClassifier(keras.Model):
    """Embedding -> RecurrentEncoder -> pooling -> dropout -> dense logits.

    Args:
        vocab_size: tokenizer vocabulary size (id 0 is padding and is masked).
        num_classes: number of labels.
        embedding_dim: token embedding size.
        pooling: "last", "mean", "max" or "attention" (see `SequencePooling`).
        dropout: rate applied to the embeddings and to the pooled vector.
        encoder: keyword arguments for `RecurrentEncoder`.
    """

    def __init__(self, vocab_size, num_classes, embedding_dim=128, pooling="max",
                 dropout=0.0, encoder=None, **kwargs):
        super().__init__(**kwargs)
        self.settings = dict(vocab_size=vocab_size, num_classes=num_classes,
                             embedding_dim=embedding_dim, pooling=pooling, dropout=dropout,
                             encoder=dict(encoder or {}))
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
        self.embedding_dropout = keras.layers.Dropout(dropout)
        self.encoder = RecurrentEncoder(**self.settings["encoder"], name="encoder")
        self.pooling = SequencePooling(pooling, name="pooling")
        self.output_dropout = keras.layers.Dropout(dropout)
        self.classifier = keras.layers.Dense(num_classes, name="logits")

    def call(self, ids, training=None):
        mask = tf.not_equal(ids, PAD_ID)
        x = self.embedding_dropout(self.embedding(ids), training=training)
        sequence, states = self.encoder(x, mask=mask, training=training)
        last = self.encoder.last_output(states) if self.pooling.mode == "last" else None
        pooled = self.pooling(sequence, mask, last=last)
        return self.classifier(self.output_dropout(pooled, training=training))

    def get_config(self):
        return {**super().get_config(), **self.settings}


def build(settings, vocab_size: int, num_classes: int) -> SentimentClassifier:
    """The classifier for resolved `SentimentSettings`, with its weights created."""
    model = SentimentClassifier(vocab_size, num_classes, settings.embedding_dim,
                                settings.pooling, settings.dropout,
                                encoder=settings.encoder_arguments())
    model(tf.zeros([1, 1], tf.int32))
    return model
