"""The recogniser: log-mel frames in, per-frame scores over the vocabulary and the CTC blank out.

A small convolutional front end shortens time (`time_stride`), the shared
`RecurrentEncoder` reads the result in both directions, and a dense layer scores
every piece of the vocabulary at every remaining frame. Id 0 (the tokenizer's pad
id, never a real label) is the CTC blank. The model trains itself with CTC loss in
`train_step` / `test_step`, which the runner's loop calls.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from apps.layers import RecurrentEncoder

BLANK = 0


def frame_mask(lengths, steps, dtype) -> tf.Tensor:
    """[B, steps, 1]: one on each row's first `lengths` frames, zero on its padding."""
    return tf.sequence_mask(lengths, steps, dtype)[:, :, None]


@keras.saving.register_keras_serializable(package="apps")
class AlignedConv1D(keras.layers.Layer):
    """Conv1D whose output frame j always reads input frames around j * stride.

    Keras' "same" padding shifts by one frame with the parity of the batch's length,
    so an utterance would get other features alone than padded in a batch.
    """

    def __init__(self, filters, kernel_size, stride=1, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size, self.stride = kernel_size, stride
        self.conv = keras.layers.Conv1D(filters, kernel_size, strides=stride, padding="valid",
                                        activation="relu")

    def build(self, x_shape, lengths_shape=None):
        self.conv.build(x_shape)

    def output_lengths(self, lengths):
        return (lengths + self.stride - 1) // self.stride

    def call(self, x, lengths):
        """x [B, T, C] whose frames from `lengths` [B] on are padding -> (the frames
        [B, ceil(T / stride), filters], their lengths), padding zero again.

        A padded frame would leave this layer as relu(bias), not zero, and the next
        convolution would read it into the last real frames: an utterance would get
        other scores in a batch with a longer one than alone.
        """
        half = self.kernel_size // 2
        steps = self.output_lengths(tf.shape(x)[1])
        x = tf.pad(x, [[0, 0], [half, self.kernel_size - 1 - half + self.stride], [0, 0]])
        lengths = self.output_lengths(lengths)
        y = self.conv(x)[:, :steps]
        return y * frame_mask(lengths, steps, y.dtype), lengths


@keras.saving.register_keras_serializable(package="apps")
class SpeechRecognizer(keras.Model):
    """(features [B, T, mels], frames [B]) -> (logits [B, T', vocab], lengths [B]).

    Args:
        vocab_size: the tokenizer's pieces (id 0 doubles as the blank).
        conv_filters, conv_kernel: the front end's width and kernel (in frames).
        time_stride: how much the front end shortens time.
        dropout: before and after the recurrent encoder.
        encoder: keyword arguments for `RecurrentEncoder`.
    """

    def __init__(self, vocab_size, conv_filters=128, conv_kernel=5, time_stride=2,
                 dropout=0.0, encoder=None, **kwargs):
        super().__init__(**kwargs)
        self.time_stride = time_stride
        self.front = [AlignedConv1D(conv_filters, conv_kernel, time_stride, name="conv_1"),
                      AlignedConv1D(conv_filters, conv_kernel, 1, name="conv_2")]
        self.norm = keras.layers.LayerNormalization(name="conv_norm")
        self.input_dropout = keras.layers.Dropout(dropout)
        self.encoder = RecurrentEncoder(**(encoder or {}), name="encoder")
        self.output_dropout = keras.layers.Dropout(dropout)
        self.logits = keras.layers.Dense(vocab_size, name="logits", dtype="float32")
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def build(self, input_shape):
        """Weights from shapes alone (without a `build`, Keras traces `call` to find them)."""
        features_shape, _ = input_shape
        size = features_shape[-1]
        for conv in self.front:
            conv.build((None, None, size))
            size = conv.conv.filters
        self.norm.build((None, None, size))
        self.encoder.build((None, None, size))
        self.logits.build((None, None, self.encoder.output_size))

    def call(self, inputs, training=None):
        features, frames = inputs
        # nothing that a longer neighbour's padding holds may reach a real frame
        x = features * frame_mask(frames, tf.shape(features)[1], features.dtype)
        lengths = frames
        for conv in self.front:
            x, lengths = conv(x, lengths)
        mask = tf.sequence_mask(lengths, tf.shape(x)[1])
        x = self.norm(x) * tf.cast(mask, x.dtype)[:, :, None]
        x = self.input_dropout(x, training=training)
        sequence, _ = self.encoder(x, mask=mask, training=training)
        return self.logits(self.output_dropout(sequence, training=training)), lengths

    # -- CTC training for the runner's loop --------------------------------------------

    def ctc_loss(self, data, training):
        (features, frames), labels = data
        logits, lengths = self((features, frames), training=training)
        labels = tf.cast(labels, tf.int32)
        label_lengths = tf.reduce_sum(tf.cast(labels != BLANK, tf.int32), axis=1)
        # an utterance too short for its transcript (a frame per label and a blank between
        # repeats) has no alignment: it is scored as its first label alone, and ignored (the
        # fused kernel refuses a row without labels: "Labels length is zero in batch")
        repeats = tf.reduce_sum(tf.cast((labels[:, 1:] == labels[:, :-1])
                                        & (labels[:, 1:] != BLANK), tf.int32), axis=1)
        alignable = lengths >= label_lengths + repeats
        label_lengths = tf.where(alignable, label_lengths, tf.minimum(label_lengths, 1))
        # sparse labels: TensorFlow's fused CTC kernel (the dense form is a scan, slower
        # and the source of a spurious MLIR "tfg.While" error line on every training)
        positions = tf.where(tf.sequence_mask(label_lengths, tf.shape(labels)[1]))
        sparse = tf.SparseTensor(positions, tf.gather_nd(labels, positions),
                                 tf.shape(labels, out_type=tf.int64))
        losses = tf.nn.ctc_loss(sparse, tf.cast(logits, tf.float32), None, lengths,
                                logits_time_major=False, blank_index=BLANK)
        usable = alignable & tf.math.is_finite(losses)
        return tf.reduce_mean(tf.where(usable, losses, 0.0))

    def train_step(self, data):
        with tf.GradientTape() as tape:
            loss = self.ctc_loss(data, training=True)
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def test_step(self, data):
        self.loss_tracker.update_state(self.ctc_loss(data, training=False))
        return {"loss": self.loss_tracker.result()}

    @property
    def metrics(self):
        return [self.loss_tracker]


def build(settings, vocab_size: int, mels: int) -> SpeechRecognizer:
    """The recogniser for resolved `SpeechSettings`, with its weights created."""
    model = SpeechRecognizer(vocab_size, settings.conv_filters, settings.conv_kernel,
                             settings.time_stride, settings.dropout,
                             encoder=settings.encoder_arguments())
    model.build(((None, None, mels), (None,)))
    return model
