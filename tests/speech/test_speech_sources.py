"""Speech sources: manifests, TFDS, and bad recordings caught before training starts."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from speech_helpers import RATE, sound, write_wav

from apps.errors import DataError
from apps.speech.task import TASK
from pipelines.speech_sources import read_recordings


def tone(seconds=0.3, rate=RATE):
    return sound(["low"], np.random.default_rng(0), rate)[: int(seconds * rate)]


def test_manifest_csv_paths_are_relative_to_the_csv(tmp_path):
    write_wav(tmp_path / "clips" / "a.wav", tone())
    (tmp_path / "m.csv").write_text("wav_filename,wav_filesize,transcript\n"
                                    "clips/a.wav,0,  Hello   World \n")
    found = read_recordings(str(tmp_path / "m.csv"))
    assert found.texts == ["hello world"] and found.rates == [RATE]
    assert found.audio == [str(tmp_path / "clips" / "a.wav")]  # read when batched


def test_nemo_jsonl_manifest(tmp_path):
    write_wav(tmp_path / "a.wav", tone())
    (tmp_path / "m.jsonl").write_text(json.dumps({"audio_filepath": "a.wav", "text": "hi",
                                                  "duration": 0.3}) + "\n")
    assert read_recordings(str(tmp_path / "m.jsonl")).texts == ["hi"]
    (tmp_path / "bad.jsonl").write_text('{"text": "hi"}\n')
    with pytest.raises(DataError, match="bad.jsonl' line 1 has no \"audio_filepath\""):
        read_recordings(str(tmp_path / "bad.jsonl"))


def test_bad_recordings_are_skipped_counted_and_named(tmp_path, caplog):
    write_wav(tmp_path / "good.wav", tone())
    write_wav(tmp_path / "eight.wav", tone(), width=1)
    (tmp_path / "junk.wav").write_bytes(b"not a wav at all")
    (tmp_path / "zero.wav").write_bytes(b"")
    write_wav(tmp_path / "header.wav", tone()[:0])
    write_wav(tmp_path / "silent.wav", tone())
    (tmp_path / "m.csv").write_text(
        "wav_filename,wav_filesize,transcript\ngood.wav,0,ok\neight.wav,0,x\njunk.wav,0,x\n"
        "gone.wav,0,x\nsilent.wav,0,\nzero.wav,0,x\nheader.wav,0,x\n")
    with caplog.at_level(logging.WARNING):
        found = read_recordings(str(tmp_path / "m.csv"))
    assert found.paths == ["good.wav", "eight.wav"]  # 8-bit PCM is read (soundfile)
    assert found.frames == [len(tone())] * 2 and found.channels == [1, 1]
    assert found.audio == [str(tmp_path / "good.wav"), str(tmp_path / "eight.wav")]
    text = caplog.text
    assert "it is not a WAV, FLAC, OGG/Vorbis or NIST SPHERE file (junk.wav)" in text
    assert "the file is empty (0 bytes) (zero.wav)" in text
    assert "it holds no samples (header.wav)" in text
    assert "file not found (gone.wav)" in text
    assert "empty transcript (silent.wav)" in text


def test_a_source_with_nothing_usable_is_refused_by_name(tmp_path):
    (tmp_path / "m.csv").write_text("wav_filename,wav_filesize,transcript\ngone.wav,0,x\n")
    with pytest.raises(DataError, match="m.csv' holds no usable recording"):
        read_recordings(str(tmp_path / "m.csv"))
    (tmp_path / "other.csv").write_text("path,text\na.wav,x\n")
    with pytest.raises(DataError, match="lacks the column"):
        read_recordings(str(tmp_path / "other.csv"))
    with pytest.raises(DataError, match="does not exist"):
        read_recordings(str(tmp_path / "none.csv"))


def test_recordings_at_another_rate_are_resampled_in_training(tmp_path, speech_settings,
                                                              caplog):
    rows = ["wav_filename,wav_filesize,transcript"]
    for i in range(6):
        rate = 16000 if i == 5 else RATE
        write_wav(tmp_path / f"{i}.wav", tone(rate=rate), rate)
        rows.append(f"{i}.wav,0,low")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    settings = speech_settings(data=str(tmp_path / "m.csv"))
    examples = TASK.read(settings.data, "train")
    inputters = TASK.make_inputters(settings)
    TASK.fit_inputters(inputters, examples, examples, settings)
    assert inputters["audio"].sample_rate == RATE  # the commonest rate
    with caplog.at_level(logging.WARNING):
        train, _ = TASK.datasets(settings, inputters, examples, examples)
    assert caplog.text.count("Resampling 1 recording(s)") == 2  # training and validation
    assert "(16000 Hz) to the model's 8000 Hz" in caplog.text and "5.wav" in caplog.text
    assert sum(int(batch[0][0].shape[0]) for batch in train(0)) == 6


def spoken_digit_examples(*_args, **_kwargs):
    """What TFDS' spoken_digit holds: int samples, a digit label, FSDD's file names."""
    names = [f"{digit}_jackson_{index}.wav" for digit in (3, 7) for index in (0, 4, 5, 30)]
    audio = [np.asarray(tone() * 32767, np.int64) for _ in names]
    return tf.data.Dataset.from_generator(
        lambda: ({"audio": a, "label": int(n[0]), "audio/filename": n}
                 for a, n in zip(audio, names)),
        output_signature={"audio": tf.TensorSpec([None], tf.int64),
                          "label": tf.TensorSpec([], tf.int64),
                          "audio/filename": tf.TensorSpec([], tf.string)})


def test_spoken_digit_is_split_by_recording_index():
    with tfds.testing.mock_data(as_dataset_fn=spoken_digit_examples):
        train = read_recordings("tfds:spoken_digit", "train")
        test = read_recordings("tfds:spoken_digit", "test")
    assert train.paths == ["3_jackson_5.wav", "3_jackson_30.wav", "7_jackson_5.wav",
                           "7_jackson_30.wav"]
    assert test.texts == ["three", "three", "seven", "seven"]
    assert test.rates == [8000] * 4
    assert tf.audio.decode_wav(test.audio[0])[0].shape[0] == len(tone())
    assert test.frames == [len(tone())] * 4
