"""Audio as users have it: FLAC, OGG/Vorbis, NIST SPHERE, stereo, other rates; files that
break mid-epoch are skipped, named and counted."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile
from speech_helpers import RATE, WORDS, sound

from apps import runner
from apps.speech import task
from apps.speech.task import TASK
from pipelines.speech_sources import read_recordings

# (extension, soundfile format, subtype): the container and what it stores
FORMATS = {"flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS"), "sph": ("NIST", "PCM_16"),
           "wav": ("WAV", "PCM_16")}


def test_libsndfile_reads_the_formats_promised():
    found = soundfile.available_formats()
    assert {"FLAC", "OGG", "NIST", "WAV"} <= set(found)
    assert "VORBIS" in soundfile.available_subtypes("OGG")


def write(path: Path, samples: np.ndarray, rate: int = RATE) -> Path:
    kind, subtype = FORMATS[path.suffix[1:]]
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), samples, rate, format=kind, subtype=subtype)
    return path


@pytest.fixture(scope="module")
def mixed_corpus(tmp_path_factory) -> Path:
    """24 recordings in every format, some stereo, some at 44.1 kHz, as CSV and JSONL."""
    folder = tmp_path_factory.mktemp("formats")
    rng = np.random.default_rng(7)
    rows, lines = ["wav_filename,wav_filesize,transcript"], []
    for i in range(24):
        words = list(rng.choice(WORDS, size=int(rng.integers(1, 3))))
        extension = list(FORMATS)[i % len(FORMATS)]
        rate = 44100 if i % 5 == 4 else RATE
        samples = sound(words, rng, rate).astype(np.float32)
        if i % 3 == 2:
            samples = np.stack([samples, samples * 0.8], axis=1)
        path = write(folder / "clips" / f"{i}.{extension}", samples, rate)
        rows.append(f"clips/{path.name},{path.stat().st_size},{' '.join(words)}")
        lines.append(json.dumps({"audio_filepath": f"clips/{path.name}",
                                 "text": " ".join(words)}))
    (folder / "train.csv").write_text("\n".join(rows) + "\n")
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_manifests_of_every_format_are_read_header_only(mixed_corpus):
    for manifest in ("train.csv", "train.jsonl"):
        found = read_recordings(str(mixed_corpus / manifest))
        assert len(found) == 24
        assert {Path(p).suffix for p in found.paths} == {".flac", ".ogg", ".sph", ".wav"}
        assert set(found.rates) == {RATE, 44100} and set(found.channels) == {1, 2}
        assert all(isinstance(a, str) for a in found.audio)  # paths, not samples


@pytest.mark.parametrize("manifest", ["train.csv", "train.jsonl"])
def test_a_model_trains_on_flac_ogg_sphere_stereo_and_other_rates(mixed_corpus, manifest,
                                                                  speech_settings, tmp_path,
                                                                  caplog):
    settings = speech_settings(data=str(mixed_corpus / manifest), epochs=1)
    with caplog.at_level(logging.WARNING):
        run_dir, report = runner.train(TASK, settings, tmp_path / "run", verbose=0)
    assert report["utterances"] >= 1
    assert "Resampling" in caplog.text and "(44100 Hz) to the model's 8000 Hz" in caplog.text
    assert "Mixing" in caplog.text and "down to mono" in caplog.text
    # every recording reaches a training batch: none skipped
    assert "Skipped" not in caplog.text


def test_transcribe_reads_every_format_as_its_wav(tiny_run, tmp_path, caplog):
    """The same signal as FLAC, SPHERE and stereo gives the WAV's transcript and score
    (lossless); OGG/Vorbis and 44.1 kHz are read and resampled, said once each."""
    # the same 16-bit samples in every container (libsndfile's FLAC and WAV writers
    # round floats to 16 bits a step apart now and then)
    clip = np.round(sound(["low", "high"], np.random.default_rng(2)) * 32767).astype(np.int16)
    wav = write(tmp_path / "a.wav", clip)
    lossless = [write(tmp_path / "a.flac", clip), write(tmp_path / "a.sph", clip),
                write(tmp_path / "stereo.wav", np.stack([clip, clip], axis=1))]
    lossy = [write(tmp_path / "a.ogg", clip),
             write(tmp_path / "fast.flac", sound(["low"], np.random.default_rng(3), 44100)
                   .astype(np.float32), 44100)]
    with caplog.at_level(logging.WARNING):
        rows = task.transcribe_files(tiny_run[0], [str(p) for p in [wav, *lossless, *lossy]])
    for row in rows[1:4]:
        assert row["transcript"] == rows[0]["transcript"], row
        assert row["score"] == pytest.approx(rows[0]["score"], abs=1e-3)
    assert all(isinstance(row["transcript"], str) for row in rows[4:])
    assert caplog.text.count("Resampling 1 recording(s)") == 1
    assert caplog.text.count("Mixing 1 recording(s)") == 1


def test_a_file_that_breaks_mid_epoch_is_skipped_named_and_counted(mixed_corpus, tmp_path,
                                                                   speech_settings, caplog):
    """Read when the manifest is read, then deleted or corrupted before its batch: one
    warning each names it with a count; the epoch keeps its number of batches."""
    folder = tmp_path / "breaking"
    rows = ["wav_filename,wav_filesize,transcript"]
    rng = np.random.default_rng(1)
    for i in range(12):
        path = write(folder / f"{i}.flac", sound(["low"], rng).astype(np.float32))
        rows.append(f"{path.name},0,low")
    (folder / "m.csv").write_text("\n".join(rows) + "\n")
    settings = speech_settings(data=str(folder / "m.csv"), batch_size=4)
    examples = TASK.read(settings.data, "train")
    inputters = TASK.make_inputters(settings)
    TASK.fit_inputters(inputters, examples, examples, settings)
    train, _ = TASK.datasets(settings, inputters, examples, examples)
    train = train(0)  # the first pass (apps.training)
    planned = int(train.cardinality())
    (folder / "3.flac").unlink()
    corrupt = bytearray((folder / "7.flac").read_bytes())
    corrupt[200:] = rng.bytes(len(corrupt) - 200)
    (folder / "7.flac").write_bytes(bytes(corrupt))
    with caplog.at_level(logging.WARNING):
        batches = list(train)
    assert len(batches) == planned
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Skipped")]
    assert len(skipped) == 2, skipped  # once per file
    assert any("'3.flac'" in m and "cannot be read" in m for m in skipped), skipped
    assert any("'7.flac'" in m and "it is corrupt" in m for m in skipped), skipped
    assert "(1 recording(s) skipped so far)" in skipped[0]
    assert "(2 recording(s) skipped so far)" in skipped[1]
    assert len(list(train)) == planned  # and the next epoch too, without a new warning
    assert len([r for r in caplog.records if r.getMessage().startswith("Skipped")]) == 2
