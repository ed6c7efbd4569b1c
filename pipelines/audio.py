"""The audio side: recordings to normalised log-mel frames, one definition for training
and serving.

Files are read as users have them: WAV, FLAC, OGG/Vorbis, NIST SPHERE (anything
libsndfile reads, through `soundfile`), resampled to the model's rate with `soxr` and
mixed down to mono where they are not already (`AudioInputter.read`; the callers say
so once). The exported serving function takes WAV bytes and decodes them inside its
graph (`pipelines.wav_graph`, core TensorFlow ops only: TF Serving has no
tensorflow-io). Both give float32 samples in [-1, 1] that `AudioInputter.features`
turns into frames (`tf.signal.stft`, a mel matrix, a log, each utterance normalised
to zero mean and unit variance per mel band over its own frames): training runs it
in `tf.data`, serving inside its graph, so the two cannot drift apart. The
augmentations run in training only: `speed_perturb` and `add_noise` on the waveform,
before the features, and `spec_augment` (SpecAugment time and frequency masks) on the
features.

Frames are placed the same way whatever the batch: frame i reads samples
[i * hop, i * hop + window) of its own utterance, zero beyond its end, and padded
frames are zero, so an utterance gets the same features alone or padded in a batch.
"""

from __future__ import annotations

import io
import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import soxr
import tensorflow as tf

from pipelines import wav_graph
from pipelines.inputters import Inputter

log = logging.getLogger(__name__)
LOG_FLOOR = 1e-6
FORMATS = "WAV, FLAC, OGG/Vorbis or NIST SPHERE"
NOT_AUDIO = f"it is not a {FORMATS} file"
SHOWN = 3  # files named in a warning


class AudioProblem(ValueError):
    """Why a recording cannot be used, as the end of a sentence ("it holds no samples")."""


@dataclass(frozen=True)
class Joined:
    """Recordings played one after another with `gaps[i]` seconds of silence after part i:
    connected speech made of isolated recordings (apps.speech.joining). Each part is
    what `AudioInputter.read` takes (a path or the bytes of a file)."""

    parts: tuple
    gaps: tuple[float, ...]


@dataclass(frozen=True)
class AudioInfo:
    """What a recording's header says."""

    rate: int
    frames: int
    channels: int


def _opened(audio: str | Path | bytes):
    return io.BytesIO(audio) if isinstance(audio, bytes) else audio


def _check_size(audio: str | Path | bytes) -> None:
    size = len(audio) if isinstance(audio, bytes) else Path(audio).stat().st_size
    if size == 0:
        raise AudioProblem(wav_graph.EMPTY)


def audio_info(audio: str | Path | bytes) -> AudioInfo:
    """A recording's rate, length and channels from its header (a path or the bytes);
    AudioProblem or OSError when it cannot be used."""
    _check_size(audio)
    try:
        info = soundfile.info(_opened(audio))
    except (RuntimeError, TypeError, ValueError) as error:  # libsndfile's errors
        raise AudioProblem(NOT_AUDIO) from error
    if info.frames <= 0:
        raise AudioProblem(wav_graph.NO_SAMPLES)
    return AudioInfo(int(info.samplerate), int(info.frames), int(info.channels))


def read_audio(audio: str | Path | bytes) -> tuple[np.ndarray, int, int]:
    """(mono float32 samples in [-1, 1], rate, channels read) of a path or bytes;
    several channels are averaged. AudioProblem or OSError when it cannot be read."""
    _check_size(audio)
    try:
        opened = soundfile.SoundFile(_opened(audio))
    except (RuntimeError, TypeError, ValueError) as error:  # libsndfile's errors
        raise AudioProblem(NOT_AUDIO) from error
    with opened:
        rate = opened.samplerate
        try:
            samples = opened.read(dtype="float32", always_2d=True)
        except (RuntimeError, ValueError) as error:
            raise AudioProblem(f"it is corrupt (libsndfile: {error})") from error
    if not len(samples):
        raise AudioProblem(wav_graph.NO_SAMPLES)
    channels = samples.shape[1]
    mono = samples[:, 0] if channels == 1 else samples.mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(mono, np.float32), int(rate), channels


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """`samples` at `rate` Hz as `target` Hz (soxr, high quality)."""
    if rate == target:
        return samples
    return soxr.resample(samples, rate, target, quality="HQ").astype(np.float32, copy=False)


def resampled_length(frames: int, rate: int, target: int) -> int:
    """About how many samples `frames` at `rate` Hz become at `target` Hz."""
    return frames if rate == target else max(1, int(round(frames * target / rate)))


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """Mono float32 samples as the bytes of a 32-bit float WAV: what the exported
    signature takes, without rounding to 16 bits."""
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def say_conversions(names: Sequence[str], rates: Sequence[int], channels: Sequence[int],
                    target: int, source: str) -> None:
    """One warning for the recordings that will be resampled, one for those mixed down."""
    other = [i for i, rate in enumerate(rates) if rate != target]
    if other:
        found = ", ".join(f"{rate} Hz" for rate in sorted({rates[i] for i in other}))
        log.warning("Resampling %d recording(s) of %s (%s) to the model's %d Hz with soxr "
                    "(%s%s).", len(other), source, found, target,
                    ", ".join(names[i] for i in other[:SHOWN]),
                    ", ..." if len(other) > SHOWN else "")
    mixed = [i for i, count in enumerate(channels) if count > 1]
    if mixed:
        log.warning("Mixing %d recording(s) of %s with more than one channel down to mono "
                    "(%s%s).", len(mixed), source, ", ".join(names[i] for i in mixed[:SHOWN]),
                    ", ..." if len(mixed) > SHOWN else "")


class AudioInputter(Inputter):
    """Recordings -> (log-mel frames [N, T, mels], frames [N]).

    Args:
        sample_rate: the model's rate in Hz; None: the commonest rate of the training
            recordings (the others are resampled).
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
        return {"file": self.filename, **self.config(),
                "serving_input": f"the bytes of WAV files (PCM or float, any channels) "
                                 f"sampled at {self.sample_rate} Hz"}

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

    # -- files (training, evaluate, transcribe): soundfile, soxr -------------------------

    def read(self, audio: str | Path | bytes | Joined) -> np.ndarray:
        """A recording (a path, its bytes, or `Joined` recordings) as mono float32
        samples at the model's rate."""
        if isinstance(audio, Joined):
            pieces = [self.read(audio.parts[0])]
            for gap, part in zip(audio.gaps, audio.parts[1:]):
                pieces += [np.zeros(int(round(gap * self.sample_rate)), np.float32),
                           self.read(part)]
            return np.concatenate(pieces)
        samples, rate, _ = read_audio(audio)
        return resample(samples, rate, self.sample_rate)

    # -- the graph: WAV bytes (serving), then features ------------------------------------

    def decode(self, wav: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """WAV bytes [N] -> (samples [N, S] right-padded with zeros, lengths [N])."""
        ragged = tf.map_fn(lambda one: wav_graph.decode(one, self.sample_rate), wav,
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

    @staticmethod
    def samples_spec() -> list[tf.TensorSpec]:
        return [tf.TensorSpec([None, None], tf.float32, name="samples"),
                tf.TensorSpec([None], tf.int32, name="lengths")]


# ----------------------------------------------------------------------- augmentation


def speed_perturb(samples: tf.Tensor, lengths: tf.Tensor, spread: float, seed
                  ) -> tuple[tf.Tensor, tf.Tensor]:
    """Play each utterance faster or slower by its own random factor in
    [1 - spread, 1 + spread] (tempo and pitch together, as Kaldi's speed perturbation):
    linear interpolation at every factor-th sample. Samples [N, S] right-padded with
    zeros and lengths [N] -> the same, resampled (a factor 1.1 makes it 10 % shorter).
    `seed` ([2] integers) makes the draw (stateless: a resumed run draws the same)."""
    if spread <= 0:
        return samples, lengths
    rows = tf.shape(samples)[0]
    factors = tf.random.stateless_uniform([rows], seed, 1.0 - spread, 1.0 + spread)
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


def add_noise(samples: tf.Tensor, lengths: tf.Tensor, lowest_snr: float, highest_snr: float,
              seed) -> tf.Tensor:
    """White Gaussian noise at a random signal-to-noise ratio in [lowest_snr, highest_snr]
    dB per utterance, relative to its own mean power, inside its length only."""
    rows = tf.shape(samples)[0]
    mask = tf.sequence_mask(lengths, tf.shape(samples)[1], samples.dtype)
    power = (tf.reduce_sum(tf.square(samples) * mask, axis=1)
             / tf.cast(tf.maximum(lengths, 1), samples.dtype))
    snr_seed, noise_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    snr = tf.random.stateless_uniform([rows], snr_seed, lowest_snr, highest_snr)
    scale = tf.sqrt(power / tf.pow(10.0, snr / 10.0))
    noise = tf.random.stateless_normal(tf.shape(samples), noise_seed)
    return samples + noise * scale[:, None] * mask


def _band_masks(limit: tf.Tensor, size, count: int, width: int, dtype, seed) -> tf.Tensor:
    """[N, size]: zeros on `count` random bands of up to `width` positions inside each
    row's first `limit` positions (at most a fifth of them each), ones elsewhere."""
    rows = tf.shape(limit)[0]
    keep = tf.ones(tf.stack([rows, size]), dtype)
    positions = tf.range(size)[None, :]
    seeds = tf.random.experimental.stateless_split(seed, 2 * count)
    for band_index in range(count):
        widths = tf.random.stateless_uniform([rows], seeds[2 * band_index], 0, width + 1,
                                             tf.int32)
        widths = tf.minimum(widths, tf.maximum(limit // 5, 1))
        room = tf.cast(tf.maximum(limit - widths, 1), tf.float32)
        starts = tf.cast(tf.random.stateless_uniform([rows], seeds[2 * band_index + 1]) * room,
                         tf.int32)
        band = (positions >= starts[:, None]) & (positions < (starts + widths)[:, None])
        keep *= 1.0 - tf.cast(band, dtype)
    return keep


def spec_augment(features: tf.Tensor, frames: tf.Tensor, seed, time_masks: int = 2,
                 time_width: int = 10, freq_masks: int = 2, freq_width: int = 8) -> tf.Tensor:
    """SpecAugment (Park et al., 2019) without time warping: zero random bands of frames
    and of mel bands (zero is the normalised mean). Training only."""
    shape = tf.shape(features)
    time_seed, freq_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    if time_masks:
        keep = _band_masks(frames, shape[1], time_masks, time_width, features.dtype, time_seed)
        features = features * keep[:, :, None]
    if freq_masks:
        mels = features.shape[-1]
        keep = _band_masks(tf.fill([shape[0]], mels), mels, freq_masks, freq_width,
                           features.dtype, freq_seed)
        features = features * keep[:, None, :]
    return features
