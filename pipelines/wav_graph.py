"""WAV bytes to samples inside a graph, with one clear sentence for every bad input.

What the exported speech signature runs (core TensorFlow ops only, so TF Serving runs
it too). `tf.audio.decode_wav` reads 16-bit PCM only and fails with TensorFlow's own
words ("Bad audio format for WAV: Expected 1 (PCM), but got 65534"); this reader walks
the RIFF chunks itself and decodes 8-, 16-, 24- and 32-bit PCM and 32/64-bit float, in
the plain and the extensible (WAVE_FORMAT_EXTENSIBLE) header, mixing every channel
down to mono. A bad input fails the call with an InvalidArgumentError whose
assertion holds one sentence ("The audio cannot be transcribed: it holds no
samples."); `apps.errors.graph_assertion` takes it out of TensorFlow's message.

The reasons are the ones the command line gives for files (`pipelines.audio`).
"""

from __future__ import annotations

import tensorflow as tf

PAD = 64  # bytes appended so that header reads past a short input stay in range
MAX_CHUNKS = 64  # RIFF chunks walked before the data chunk must have been found
PCM, FLOAT, EXTENSIBLE = 1, 3, 65534

EMPTY = "the file is empty (0 bytes)"
NO_SAMPLES = "it holds no samples"
NOT_WAV = "it is not a WAV file (the model takes the bytes of a WAV file)"
PREFIX = "The audio cannot be transcribed: "

# (format code, bits) -> how the samples are stored; the order is the switch's index
LAYOUTS = ((PCM, 8), (PCM, 16), (PCM, 24), (PCM, 32), (FLOAT, 32), (FLOAT, 64))


def _unsigned(padded: tf.Tensor, position: tf.Tensor, size: int) -> tf.Tensor:
    """The little-endian unsigned integer of `size` bytes at `position`, as int64."""
    raw = tf.io.decode_raw(tf.strings.substr(padded, position, size), tf.uint8)
    weights = tf.constant([256**i for i in range(size)], tf.int64)
    return tf.reduce_sum(tf.cast(raw, tf.int64) * weights)


def _chunks(padded: tf.Tensor, size: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(where the fmt chunk's body starts, where the data starts, its declared size);
    -1 for a chunk not found."""
    none = tf.constant(-1, tf.int64)

    def more(position, fmt, data, data_size, walked):
        return (position + 8 <= size) & (data < 0) & (walked < MAX_CHUNKS)

    def walk(position, fmt, data, data_size, walked):
        name = tf.strings.substr(padded, position, 4)
        length = _unsigned(padded, position + 4, 4)
        fmt = tf.where((name == "fmt ") & (fmt < 0), position + 8, fmt)
        is_data = name == "data"
        data = tf.where(is_data, position + 8, data)
        data_size = tf.where(is_data, length, data_size)
        return position + 8 + length + length % 2, fmt, data, data_size, walked + 1

    _, fmt, data, data_size, _ = tf.while_loop(
        more, walk, (tf.constant(12, tf.int64), none, none, none, tf.constant(0, tf.int64)))
    return fmt, data, data_size


def _refuse_unless(ok: tf.Tensor, reason, after: list) -> tf.Operation:
    """An assertion that fails the call with PREFIX + reason (after the earlier ones)."""
    with tf.control_dependencies(after):
        return tf.debugging.Assert(ok, [tf.strings.join([PREFIX, reason, "."])])


def _samples(payload: tf.Tensor, layout: tf.Tensor) -> tf.Tensor:
    """The interleaved samples of every channel in [-1, 1], float32."""

    def integers(dtype, scale):
        return lambda: tf.cast(tf.io.decode_raw(payload, dtype), tf.float32) / scale

    def unsigned_8():
        return (tf.cast(tf.io.decode_raw(payload, tf.uint8), tf.float32) - 128.0) / 128.0

    def signed_24():
        triples = tf.reshape(tf.cast(tf.io.decode_raw(payload, tf.uint8), tf.int32), [-1, 3])
        value = triples[:, 0] + triples[:, 1] * 256 + triples[:, 2] * 65536
        value = tf.where(value >= 1 << 23, value - (1 << 24), value)
        return tf.cast(value, tf.float32) / float(1 << 23)

    def float_64():
        return tf.cast(tf.io.decode_raw(payload, tf.float64), tf.float32)

    return tf.switch_case(layout, [unsigned_8, integers(tf.int16, 32768.0), signed_24,
                                   integers(tf.int32, 2147483648.0),
                                   lambda: tf.io.decode_raw(payload, tf.float32), float_64])


def decode(wav: tf.Tensor, sample_rate: int) -> tf.Tensor:
    """One WAV's bytes (a scalar string) -> mono float32 samples in [-1, 1]; anything
    that is not a usable WAV at `sample_rate` Hz fails the call with one sentence."""
    size = tf.cast(tf.strings.length(wav), tf.int64)
    padded = tf.strings.join([wav, tf.constant(b"\0" * PAD)])
    checks = [_refuse_unless(size > 0, EMPTY, [])]
    riff = (size >= 12) & (tf.strings.substr(padded, 0, 4) == "RIFF") \
        & (tf.strings.substr(padded, 8, 4) == "WAVE")
    checks.append(_refuse_unless(riff, NOT_WAV, checks))
    fmt, data, data_size = _chunks(padded, tf.where(riff, size, 0))
    fmt_at = tf.maximum(fmt, 0)
    code = _unsigned(padded, fmt_at, 2)
    channels = _unsigned(padded, fmt_at + 2, 2)
    rate = _unsigned(padded, fmt_at + 4, 4)
    bits = _unsigned(padded, fmt_at + 14, 2)
    code = tf.where(code == EXTENSIBLE, _unsigned(padded, fmt_at + 24, 2), code)
    checks.append(_refuse_unless((fmt >= 0) & (channels > 0), NOT_WAV, checks))
    layouts = [(code == c) & (bits == b) for c, b in LAYOUTS]
    known = tf.reduce_any(tf.stack(layouts))
    checks.append(_refuse_unless(known, tf.strings.format(
        "it holds {}-bit samples of WAV format {}, which is neither PCM nor float: convert "
        "it to 16-bit PCM", (bits, code)), checks))
    checks.append(_refuse_unless(rate == sample_rate, tf.strings.format(
        "it is sampled at {} Hz, not at the {} Hz of this model: resample it first",
        (rate, sample_rate)), checks))
    frame_bytes = tf.maximum(channels * bits // 8, 1)
    available = tf.clip_by_value(tf.minimum(data_size, size - data), 0, size)
    frames = tf.where(data >= 0, available // frame_bytes, 0)
    checks.append(_refuse_unless(frames > 0, NO_SAMPLES, checks))
    with tf.control_dependencies(checks):
        payload = tf.strings.substr(wav, tf.maximum(data, 0), frames * frame_bytes)
        layout = tf.argmax(tf.cast(tf.stack(layouts), tf.int32), output_type=tf.int32)
        samples = tf.reshape(_samples(payload, layout), tf.stack([frames, channels]))
        return tf.reduce_mean(samples, axis=1)
