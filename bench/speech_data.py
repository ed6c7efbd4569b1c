"""FSDD manifests for the speech benchmark's peer (bench/peers/keras_ctc_recipe.py), which
cannot join recordings itself: a held-out validation share of train.csv (the same seeded
10 % as `apps speech train`'s hold-out), and connected digits written as files, joined
once (the app joins them anew every pass: `--join-recordings`).

Connected digits: 3 to 7 recordings (any speaker) joined with 100-300 ms of silence
(zeros), the transcript their words in order. The test set joins test.csv recordings
only (1,000 sequences, seed 2026); training joins training recordings only, the same
way (2 to 7 per sequence), and validation joins held-out recordings only.
"""

from __future__ import annotations

import csv
import os
import random
import wave
from pathlib import Path

import numpy as np

RATE = 8000


def read_manifest(path: Path) -> list[tuple[Path, str]]:
    with open(path, newline="") as handle:
        return [(path.parent / row["wav_filename"], row["transcript"])
                for row in csv.DictReader(handle)]


def samples(path: Path) -> np.ndarray:
    with wave.open(str(path)) as reader:
        return np.frombuffer(reader.readframes(reader.getnframes()), "<i2")


def write_wav(path: Path, audio: np.ndarray) -> None:
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(RATE)
        writer.writeframes(audio.astype("<i2").tobytes())


def joined(rows, count: int, fewest: int, most: int, seed: int, folder: Path, prefix: str
           ) -> list[tuple[Path, str]]:
    """`count` sequences of `fewest`..`most` recordings of `rows` with 100-300 ms between."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for number in range(count):
        picked = [rows[rng.randrange(len(rows))] for _ in range(rng.randint(fewest, most))]
        parts = []
        for index, (path, _) in enumerate(picked):
            if index:
                parts.append(np.zeros(int(RATE * rng.uniform(0.1, 0.3)), np.int16))
            parts.append(samples(path))
        target = folder / f"{prefix}{number:05d}.wav"
        write_wav(target, np.concatenate(parts))
        made.append((target, " ".join(text for _, text in picked)))
    return made


def write_manifest(path: Path, rows) -> Path:
    """A DeepSpeech manifest with paths relative to it."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["wav_filename", "wav_filesize", "transcript"])
        for wav, text in rows:
            writer.writerow([os.path.relpath(wav, path.parent), wav.stat().st_size, text])
    return path


def prepare(fsdd: Path, workdir: Path, train_sequences: int, valid_fraction: float = 0.1,
            seed: int = 1) -> dict[str, Path]:
    """train.csv / valid.csv (held out of FSDD's train.csv), test.csv and connected.csv."""
    train = read_manifest(fsdd / "train.csv")
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    cut = round(len(train) * valid_fraction)
    held = [train[i] for i in order[:cut]]
    kept = [train[i] for i in order[cut:]]
    test = read_manifest(fsdd / "test.csv")
    audio = workdir / "audio"
    return {
        "train": write_manifest(workdir / "train.csv", kept + joined(
            kept, train_sequences, 2, 7, seed, audio / "train", "train-")),
        "valid": write_manifest(workdir / "valid.csv", held + joined(
            held, 200, 3, 7, seed + 1, audio / "valid", "valid-")),
        "test": fsdd / "test.csv",
        "connected": write_manifest(workdir / "connected.csv", joined(
            test, 1000, 3, 7, 2026, audio / "connected", "connected-")),
        "train_singles": len(kept), "train_sequences": train_sequences, "valid_singles": cut,
    }
