"""Synthetic recordings for the speech tests: tones and noise bursts written as WAV files.

Three "words" a tiny model can learn to tell apart in seconds: "low" (a 300 Hz tone),
"high" (1,500 Hz) and "hiss" (white noise), one to three of them per recording with
short silences between, at 8 kHz.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

RATE = 8000
TONES = {"low": 300.0, "high": 1500.0}
WORDS = ("low", "high", "hiss")
TINY = dict(epochs=24, units=32, layers=1, conv_filters=32, batch_size=8, learning_rate=5e-3,
            dropout=0.0, seed=1, time_masks=1, freq_masks=1,
            lr_schedule="constant")


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE, width: int = 2) -> Path:
    """Samples in [-1, 1] as a PCM WAV of `width` bytes per sample."""
    path.parent.mkdir(parents=True, exist_ok=True)
    clipped = np.clip(samples, -1, 1)
    if width == 1:
        frames = ((clipped + 1) * 127.5).astype(np.uint8).tobytes()
    else:
        frames = (clipped * 32767).astype("<i2").tobytes()
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(frames)
    return path


def sound(words, rng, rate: int = RATE) -> np.ndarray:
    parts = [np.zeros(int(rate * 0.05))]
    for word in words:
        n = int(rate * rng.uniform(0.25, 0.4))
        t = np.arange(n) / rate
        tone = 0.5 * np.sin(2 * np.pi * TONES[word] * t) if word in TONES else \
            rng.normal(0, 0.3, n)
        parts += [tone, np.zeros(int(rate * rng.uniform(0.08, 0.15)))]
    x = np.concatenate(parts)
    return x + rng.normal(0, 0.01, len(x))


def write_corpus(folder: Path, count: int, seed: int, rate: int = RATE,
                 name: str = "manifest.csv") -> Path:
    """`count` recordings of 1-3 words and a DeepSpeech manifest CSV beside them."""
    rng = np.random.default_rng(seed)
    rows = ["wav_filename,wav_filesize,transcript"]
    for i in range(count):
        words = list(rng.choice(WORDS, size=int(rng.integers(1, 4))))
        path = write_wav(folder / "wavs" / f"{seed}_{i}.wav", sound(words, rng, rate), rate)
        rows.append(f"wavs/{path.name},{path.stat().st_size},{' '.join(words)}")
    manifest = folder / name
    manifest.write_text("\n".join(rows) + "\n")
    return manifest
