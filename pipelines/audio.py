"""The audio side: WAV bytes to normalised log-mel frames, one definition for training
and serving.

`AudioInputter.decode` (core TF's `tf.audio.decode_wav`) and `AudioInputter.features`
(`tf.signal.stft`, a mel matrix, a log, each utterance normalised to zero mean and
unit variance per mel band over its own frames) are the only audio code: training
runs them eagerly and in `tf.data`, the exported serving function runs them inside
its graph, so the two cannot drift apart. Only core TensorFlow ops (TF Serving has no
tensorflow-io). The augmentations run in training only: `speed_perturb` and `add_noise`
on the waveform, before the features, and `spec_augment` (SpecAugment time and frequency
masks) on the features.

Frames are placed the same way whatever the batch: frame i reads samples
[i * hop, i * hop + window) of its own utterance, zero beyond its end, so an
utterance gets the same features alone or padded in a batch.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import tensorflow as tf

from apps.errors import DataError
from pipelines.batching import Ragged
from pipelines.inputters import Inputter

log = logging.getLogger(__name__)
LOG_FLOOR = 1e-6
DECODE_CHUNK = 256


class AudioInputter(Inputter):
    """16-bit PCM WAV bytes -> (log-mel frames [N, T, mels], frames [N]).

    Args:
        sample_rate: the model's rate in Hz; None: the commonest rate of the training
            recordings (the others are skipped, counted).
        mels: mel bands.
        window_ms, hop_ms: STFT window and hop.
    """

    filename = "audio.json"

    def __init__(self, sample_rate: int | None = None, mels: int = 40,
                 window_ms: float = 25.0, hop_ms: float = 10.0):
        self.sample_rate = sample_rate
        self.mels, self.window_ms, self.hop_ms = mels, window_ms, hop_ms

    # -- what is kept in the run directory ------------------------------------------------

    def fit(self, rates: Iterable[int]) -> None:
        if self.sample_rate is None:
            self.sample_rate = Counter(rates).most_common(1)[0][0]

    def config(self) -> dict[str, Any]:
        return {"sample_rate": self.sample_rate, "mels": self.mels,
                "window_ms": self.window_ms, "hop_ms": self.hop_ms}

    def save(self, directory: Path) -> None:
        (Path(directory) / self.filename).write_text(json.dumps(self.config(), indent=2) + "\n")

    def load(self, directory: Path) -> None:
        saved = json.loads((Path(directory) / self.filename).read_text())
        self.__init__(**saved)

    def metadata(self) -> dict[str, Any]:
        return {"file": self.filename, **self.config()}

    # -- sizes ---------------------------------------------------------------------------

    @property
    def window(self) -> int:
        return int(round(self.sample_rate * self.window_ms / 1000))

    @property
    def hop(self) -> int:
        return int(round(self.sample_rate * self.hop_ms / 1000))

    @property
    def fft_length(self) -> int:
        return 1 << (self.window - 1).bit_length()

    def seconds(self, samples: int) -> float:
        return samples / self.sample_rate

    # -- the one definition: decode, then features ---------------------------------------

    def decode_one(self, wav: tf.Tensor) -> tf.Tensor:
        """One WAV's bytes -> mono float samples in [-1, 1); a wrong rate fails the call."""
        audio, rate = tf.audio.decode_wav(wav, desired_channels=1)
        check = tf.debugging.assert_equal(
            rate, tf.constant(self.sample_rate, tf.int32),
            message=f"The WAV is not sampled at {self.sample_rate} Hz, the rate of this model: "
                    "resample it first")  # no apostrophes: TF escapes them in its message
        with tf.control_dependencies([check]):
            return tf.identity(audio[:, 0])

    def decode(self, wav: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """WAV bytes [N] -> (samples [N, S] right-padded with zeros, lengths [N])."""
        ragged = tf.map_fn(self.decode_one, wav,
                           fn_output_signature=tf.RaggedTensorSpec([None], tf.float32))
        return ragged.to_tensor(), tf.cast(ragged.row_lengths(), tf.int32)

    def features(self, samples: tf.Tensor, lengths: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Samples [N, S] and lengths [N] -> (normalised log-mel [N, T, mels], frames [N]).

        Padded frames are zero (the normalised mean).
        """
        samples = tf.pad(samples, [[0, 0], [0, tf.maximum(self.window - tf.shape(samples)[1],
                                                           0)]])
        spectrum = tf.signal.stft(samples, self.window, self.hop, self.fft_length,
                                  pad_end=True)
        weights = tf.signal.linear_to_mel_weight_matrix(
            self.mels, self.fft_length // 2 + 1, self.sample_rate, 20.0,
            self.sample_rate / 2.0)
        mel = tf.math.log(tf.matmul(tf.square(tf.abs(spectrum)), weights) + LOG_FLOOR)
        frames = tf.maximum(1, (lengths + self.hop - 1) // self.hop)
        mask = tf.sequence_mask(frames, tf.shape(mel)[1], mel.dtype)[:, :, None]
        count = tf.cast(frames, mel.dtype)[:, None, None]
        mean = tf.reduce_sum(mel * mask, axis=1, keepdims=True) / count
        variance = tf.reduce_sum(tf.square(mel - mean) * mask, axis=1, keepdims=True) / count
        return (mel - mean) * tf.math.rsqrt(variance + 1e-5) * mask, frames

    def preprocess(self, wav: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """WAV bytes [N] -> features and frames, inside a graph (serving)."""
        with tf.device("/CPU:0"):
            return self.features(*self.decode(wav))

    @staticmethod
    def input_spec(name: str = "audio") -> tf.TensorSpec:
        return tf.TensorSpec([None], tf.string, name=name)

    # -- training data: the same decoder, run eagerly ------------------------------------

    def encode(self, audio: Sequence[bytes]) -> Ragged:
        """Every recording's samples as one flat float32 array plus lengths."""
        parts = []
        for start in range(0, len(audio), DECODE_CHUNK):
            chunk = tf.constant(list(audio[start : start + DECODE_CHUNK]), tf.string)
            samples, lengths = self.decode(chunk)
            parts.append(Ragged.from_tensor(tf.RaggedTensor.from_tensor(samples, lengths)))
        return Ragged.concat(parts)

    def usable(self, rates: Sequence[int], paths: Sequence[str], source: str,
               strict: bool = False) -> list[int]:
        """Indices of the recordings at the model's rate; the others are counted and named
        (or, `strict`, refused)."""
        wrong = [i for i, rate in enumerate(rates) if rate != self.sample_rate]
        if wrong and (strict or len(wrong) == len(rates)):
            raise DataError(f"'{paths[wrong[0]]}' of {source} is sampled at "
                            f"{rates[wrong[0]]} Hz, not the model's {self.sample_rate} Hz: "
                            "resample it first.")
        if wrong:
            log.warning(
                "Skipped %d recording(s) of %s not sampled at %d Hz (%s).", len(wrong),
                source, self.sample_rate, ", ".join(paths[i] for i in wrong[:3]))
        return [i for i in range(len(rates)) if rates[i] == self.sample_rate]


# ----------------------------------------------------------------------- augmentation


def speed_perturb(samples: tf.Tensor, lengths: tf.Tensor, spread: float
                  ) -> tuple[tf.Tensor, tf.Tensor]:
    """Play each utterance faster or slower by its own random factor in
    [1 - spread, 1 + spread] (tempo and pitch together, as Kaldi's speed perturbation):
    linear interpolation at every factor-th sample. Samples [N, S] right-padded with
    zeros and lengths [N] -> the same, resampled (a factor 1.1 makes it 10 % shorter)."""
    if spread <= 0:
        return samples, lengths
    rows = tf.shape(samples)[0]
    factors = tf.random.uniform([rows], 1.0 - spread, 1.0 + spread)
    new_lengths = tf.maximum(
        1, tf.cast(tf.math.floor(tf.cast(lengths - 1, tf.float32) / factors), tf.int32) + 1)
    steps = tf.range(tf.reduce_max(new_lengths))
    positions = tf.cast(steps, tf.float32)[None, :] * factors[:, None]
    last = tf.maximum(lengths - 1, 0)[:, None]
    below = tf.minimum(tf.cast(tf.math.floor(positions), tf.int32), last)
    above = tf.minimum(below + 1, last)
    weight = positions - tf.cast(below, tf.float32)
    resampled = (tf.gather(samples, below, batch_dims=1) * (1.0 - weight)
                 + tf.gather(samples, above, batch_dims=1) * weight)
    mask = tf.sequence_mask(new_lengths, tf.shape(steps)[0], samples.dtype)
    return resampled * mask, new_lengths


def add_noise(samples: tf.Tensor, lengths: tf.Tensor, lowest_snr: float, highest_snr: float
              ) -> tf.Tensor:
    """White Gaussian noise at a random signal-to-noise ratio in [lowest_snr, highest_snr]
    dB per utterance, relative to its own mean power, inside its length only."""
    rows = tf.shape(samples)[0]
    mask = tf.sequence_mask(lengths, tf.shape(samples)[1], samples.dtype)
    power = (tf.reduce_sum(tf.square(samples) * mask, axis=1)
             / tf.cast(tf.maximum(lengths, 1), samples.dtype))
    snr = tf.random.uniform([rows], lowest_snr, highest_snr)
    scale = tf.sqrt(power / tf.pow(10.0, snr / 10.0))
    return samples + tf.random.normal(tf.shape(samples)) * scale[:, None] * mask


def _band_masks(limit: tf.Tensor, size, count: int, width: int, dtype) -> tf.Tensor:
    """[N, size]: zeros on `count` random bands of up to `width` positions inside each
    row's first `limit` positions (at most a fifth of them each), ones elsewhere."""
    rows = tf.shape(limit)[0]
    keep = tf.ones(tf.stack([rows, size]), dtype)
    positions = tf.range(size)[None, :]
    for _ in range(count):
        widths = tf.random.uniform([rows], 0, width + 1, tf.int32)
        widths = tf.minimum(widths, tf.maximum(limit // 5, 1))
        room = tf.cast(tf.maximum(limit - widths, 1), tf.float32)
        starts = tf.cast(tf.random.uniform([rows]) * room, tf.int32)
        band = (positions >= starts[:, None]) & (positions < (starts + widths)[:, None])
        keep *= 1.0 - tf.cast(band, dtype)
    return keep


def spec_augment(features: tf.Tensor, frames: tf.Tensor, time_masks: int = 2,
                 time_width: int = 10, freq_masks: int = 2, freq_width: int = 8) -> tf.Tensor:
    """SpecAugment (Park et al., 2019) without time warping: zero random bands of frames
    and of mel bands (zero is the normalised mean). Training only."""
    shape = tf.shape(features)
    if time_masks:
        keep = _band_masks(frames, shape[1], time_masks, time_width, features.dtype)
        features = features * keep[:, :, None]
    if freq_masks:
        mels = features.shape[-1]
        keep = _band_masks(tf.fill([shape[0]], mels), mels, freq_masks, freq_width,
                           features.dtype)
        features = features * keep[:, None, :]
    return features
