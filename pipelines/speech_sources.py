"""Readers for speech data: where each recording is, what its header says, and its
transcript.

Three forms of source: a DeepSpeech / Coqui STT manifest CSV
(`wav_filename,wav_filesize,transcript`, paths relative to the CSV), a NeMo JSONL
manifest (`audio_filepath`, `text`, paths relative to the file unless absolute), or
`tfds:NAME[:SPLIT]` with an audio feature and a text (or class label) feature. The
recordings may be WAV, FLAC, OGG/Vorbis or NIST SPHERE (AN4 as shipped): anything
libsndfile reads. Only headers are read here (a file's samples are read when its
batch is made, so a corpus is never held in memory); a missing file, one that is
not audio or holds no samples, an empty transcript is skipped with one warning that
counts them (and names the first few), and a source left with nothing is an error
that names it.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from apps.errors import DataError
from pipelines.audio import AudioProblem, audio_info
from pipelines.sources import (
    MissingSplit,
    TfdsSpec,
    is_tfds,
    json_objects,
    read_lines,
    tfds_load,
)

log = logging.getLogger(__name__)

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SPOKEN_DIGIT_TEST = range(0, 5)  # FSDD's README: recordings 0-4 of every speaker are test
TEXT_FEATURE_GUESSES = ("text", "transcript", "sentence", "label")


@dataclass
class Recordings:
    """Parallel lists: each recording's name as the source gives it, where its audio is
    (a path, or the bytes of a recording held in memory: TFDS), its rate, length in
    samples, channels and transcript."""

    paths: list[str] = field(default_factory=list)
    audio: list = field(default_factory=list)
    rates: list[int] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)
    channels: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    def add(self, path: str, audio, info, text: str) -> None:
        self.paths.append(path)
        self.audio.append(audio)
        self.rates.append(info.rate)
        self.frames.append(info.frames)
        self.channels.append(info.channels)
        self.texts.append(text)

    def __len__(self) -> int:
        return len(self.paths)

    def as_examples(self) -> dict[str, list]:
        return {"path": self.paths, "audio": self.audio, "rate": self.rates,
                "frames": self.frames, "channels": self.channels, "text": self.texts}


class Skipped:
    """Counts skipped recordings by reason and says so once, naming the first few."""

    def __init__(self, source: str):
        self.source, self.reasons = source, {}

    def add(self, path: str, reason: str) -> None:
        self.reasons.setdefault(reason, []).append(path)

    def report(self) -> None:
        for reason, paths in self.reasons.items():
            names = ", ".join(paths[:3]) + (", ..." if len(paths) > 3 else "")
            log.warning("Skipped %d recording(s) of %s: %s (%s).", len(paths), self.source,
                        reason, names)


def normalize_transcript(text: str) -> str:
    """Lower case, one space between words: what WER compares."""
    return " ".join(str(text).lower().split())


def _add_file(found: Recordings, skipped: Skipped, path: Path, shown: str, text) -> None:
    text = normalize_transcript(text or "")
    if not text:
        skipped.add(shown, "empty transcript")
        return
    try:
        info = audio_info(path)
    except FileNotFoundError:
        skipped.add(shown, "file not found")
        return
    except OSError as error:
        skipped.add(shown, f"unreadable ({error.strerror})")
        return
    except AudioProblem as problem:
        skipped.add(shown, str(problem))
        return
    found.add(shown, str(path), info, text)


def read_manifest_csv(path: Path) -> Recordings:
    """DeepSpeech / Coqui STT: `wav_filename,wav_filesize,transcript`, relative to the CSV."""
    reader = csv.DictReader(read_lines(path))
    missing = {"wav_filename", "transcript"} - set(reader.fieldnames or [])
    if missing:
        raise DataError(f"'{path}' is not a speech manifest: it lacks the column(s) "
                        f"{', '.join(sorted(missing))} (expected wav_filename,wav_filesize,"
                        "transcript).")
    found, skipped = Recordings(), Skipped(str(path))
    for row in reader:
        name = row["wav_filename"] or ""
        _add_file(found, skipped, path.parent / name, name, row["transcript"])
    skipped.report()
    return found


def write_manifest_csv(path: Path, files: list[str], texts: list[str]) -> None:
    """A DeepSpeech manifest of audio files and their transcripts, paths absolute (so it
    reads the same from wherever it is moved)."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["wav_filename", "wav_filesize", "transcript"])
        for file, text in zip(files, texts):
            writer.writerow([os.path.abspath(file), os.path.getsize(file), text])


def read_manifest_jsonl(path: Path) -> Recordings:
    """NeMo: one JSON object a line with `audio_filepath` and `text`."""
    found, skipped = Recordings(), Skipped(str(path))
    for number, row in json_objects(path):
        if "audio_filepath" not in row:
            raise DataError(f"'{path}' line {number} has no \"audio_filepath\" (a NeMo manifest "
                            "has audio_filepath and text on every line).")
        name = str(row["audio_filepath"])
        _add_file(found, skipped, path.parent / name, name, row.get("text"))
    skipped.report()
    return found


def recording_index(filename: str) -> int | None:
    """FSDD names files DIGIT_SPEAKER_INDEX.wav."""
    match = re.search(r"_(\d+)(?:\.wav)?$", filename)
    return int(match.group(1)) if match else None


def _samples_to_wav(samples, rate: int) -> bytes:
    """Integer PCM samples (TFDS' Audio feature) as 16-bit WAV bytes."""
    import io

    import numpy as np
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, np.asarray(samples).astype(np.int16).reshape(-1), rate,
                    format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def read_tfds(spec: str, default_split: str) -> Recordings:
    """A TFDS speech set; `spoken_digit` (train only) splits by recording index."""
    import tensorflow_datasets as tfds

    parsed = TfdsSpec.parse(spec)
    split = parsed.split or default_split
    digits = parsed.name.split("/")[0] == "spoken_digit"
    if digits and split == "validation":
        raise MissingSplit("TensorFlow Datasets 'spoken_digit' has no 'validation' split.")
    if digits and split == "test":
        load_split, keep = "train", lambda index: index in SPOKEN_DIGIT_TEST
    elif digits and split == "train":
        load_split, keep = "train", lambda index: index not in SPOKEN_DIGIT_TEST
    else:
        load_split, keep = split, None
    dataset, info = tfds_load(TfdsSpec(parsed.name, load_split), load_split)
    features = info.features
    audio_key = next((k for k in features.keys()
                      if isinstance(features[k], tfds.features.Audio)), None)
    text_key = next((k for k in TEXT_FEATURE_GUESSES if k in features.keys()), None)
    if audio_key is None or text_key is None:
        raise DataError(f"TensorFlow Datasets '{parsed.name}' has no audio and text features "
                        f"(it has: {', '.join(features.keys())}).")
    rate = int(getattr(features[audio_key], "sample_rate", None) or 16000)
    label = features[text_key] if isinstance(features[text_key], tfds.features.ClassLabel) \
        else None
    name_key = next((k for k in features.keys() if k.endswith("filename")), None)
    found, skipped = Recordings(), Skipped(spec)
    for number, example in enumerate(dataset.as_numpy_iterator()):
        name = example[name_key].decode() if name_key else f"{parsed.name}[{number}]"
        if keep is not None:
            index = recording_index(name)
            if index is None or not keep(index):
                continue
        text = label.int2str(int(example[text_key])) if label else \
            example[text_key].decode("utf-8", errors="replace")
        if digits:
            text = DIGIT_WORDS[int(text)]
        text = normalize_transcript(text)
        if not text:
            skipped.add(name, "empty transcript")
            continue
        wav = _samples_to_wav(example[audio_key], rate)
        try:
            found.add(name, wav, audio_info(wav), text)
        except AudioProblem as problem:
            skipped.add(name, str(problem))
    skipped.report()
    return found


def read_recordings(source: str, default_split: str = "train") -> Recordings:
    """Recordings from a manifest (CSV or JSONL) or `tfds:`; none left is an error."""
    if is_tfds(source):
        found = read_tfds(source, default_split)
    else:
        path = Path(source)
        if not path.is_file():
            raise DataError(f"Speech manifest '{path}' does not exist: check the path.")
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".json", ".ndjson"):
            found = read_manifest_jsonl(path)
        elif suffix in (".csv", ".tsv"):
            found = read_manifest_csv(path)
        else:
            raise DataError(f"'{path}' is neither a manifest CSV (wav_filename,wav_filesize,"
                            "transcript) nor a NeMo JSONL manifest (audio_filepath,text).")
    if not len(found):
        raise DataError(f"'{source}' holds no usable recording with a transcript.")
    return found
