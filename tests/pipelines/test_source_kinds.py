"""One data set, every kind of source a task reads: the same tokenizer and the same
training examples, whether the set is a plain text, PREFIX.src/.tgt files, a TSV, CSV
or JSONL table, a speech manifest or a `tfds:` name, read into memory or streamed.

What is compared is what the pipeline yields for the first training pass (every
example's ids and label, padding removed, in sorted order: the in-memory and streamed
paths shuffle differently), which is what training sees, without training."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from apps import runner
from apps.lm.task import TASK as LM
from apps.sentiment.task import TASK as SENTIMENT
from apps.speech.task import TASK as SPEECH
from apps.translation import translate
from apps.translation.task import TASK as TRANSLATION
from apps.translation.task import TranslationSettings
from pipelines import sources
from pipelines.audio import AudioInputter
from pipelines.tokenizer import PAD_ID

ROOT = Path(__file__).resolve().parents[2]
GERMAN = ROOT / "tests" / "data" / "german_sentences.txt"


def write_table(path: Path, columns: list[str], rows: list[tuple]) -> Path:
    """`rows` as a TSV, CSV or JSONL file (by the suffix) with `columns` named."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(dict(zip(columns, row)), ensure_ascii=False) + "\n"
                                for row in rows), encoding="utf-8")
        return path
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t" if path.suffix == ".tsv" else ",",
                            quoting=csv.QUOTE_NONE if path.suffix == ".tsv" else
                            csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerows([columns, *rows])
    return path


def as_tfds(examples: dict[str, list]):
    """`tfds.testing.mock_data` whose every split is these examples (a real tf.data
    pipeline read through `tfds.load`, offline)."""
    return tfds.testing.mock_data(
        as_dataset_fn=lambda builder, split, **_: tf.data.Dataset.from_tensor_slices(examples))


def unpadded(row: np.ndarray) -> tuple:
    row = np.asarray(row)
    return tuple(int(v) for v in row[row != PAD_ID]) if row.ndim else int(row)


def first_pass(task, settings) -> tuple[list[str], list]:
    """(the tokenizer's pieces, every example of the first training pass, sorted). A
    streamed pass is whole batches of a stream that runs on into the next pass, so it
    may hold some examples twice."""
    train, valid = task.read_training_data(settings)
    inputters = task.make_inputters(settings)
    task.fit_inputters(inputters, train, valid, settings)
    passes, _ = task.datasets(settings, inputters, train, valid)
    examples = []
    for batch in passes(0):
        columns = [np.asarray(column) for column in tf.nest.flatten(batch)]
        examples += [tuple(unpadded(column[i]) for column in columns)
                     for i in range(len(columns[0]))]
    tokenizer = next(iter(inputters.values())).tokenizer
    return [tokenizer.id_to_piece(i) for i in range(tokenizer.vocab_size)], sorted(examples)


def assert_alike(task, settings, in_memory: dict, streamed: dict) -> None:
    """Every source of `in_memory` (kind -> data) reads the same examples as the first;
    every one of `streamed` learns the same pieces and trains on the same examples, each
    at least once, and nothing else. (A streamed tokenizer learns from a sample in
    another order: its pieces' scores may differ in the last digits, as the examples'
    equality shows, not what they tokenise to.)"""
    kinds = list(in_memory)
    first = task.read_training_data(settings(data=in_memory[kinds[0]], streaming="off"))
    for kind in kinds[1:]:
        assert task.read_training_data(settings(data=in_memory[kind], streaming="off")) \
            == first, f"{kind}: other examples"
    if not streamed:
        return
    tokenizer, examples = first_pass(task, settings(data=in_memory[kinds[0]],
                                                    streaming="off"))
    assert len(examples) == len(next(iter(first[0].values())))
    for kind, data in streamed.items():
        got_tokenizer, got = first_pass(task, settings(data=data, streaming="on"))
        assert got_tokenizer == tokenizer, f"{kind} streamed: another tokenizer"
        assert set(got) == set(examples) and len(got) >= len(examples), \
            f"{kind} streamed: other training examples"


# ------------------------------------------------------------------------- sentiment


def labeled_rows(path: Path, names: dict[str, str]) -> list[tuple[str, str]]:
    found = sources.read_labeled(str(path))
    return [(text, names[label]) for text, label in zip(found.texts, found.labels)]


def test_sentiment_reads_one_set_alike_from_every_kind_of_source(sentiment_sample,
                                                                 sentiment_settings, tmp_path):
    names = {"negative": "neg", "positive": "pos"}  # imdb_reviews' label names
    rows = labeled_rows(sentiment_sample / "train.tsv", names)
    valid = write_table(tmp_path / "valid.tsv", ["text", "label"],
                        labeled_rows(sentiment_sample / "valid.tsv", names))
    kinds = {suffix: str(write_table(tmp_path / f"train{suffix}", ["text", "label"], rows))
             for suffix in (".tsv", ".csv", ".jsonl")}
    kinds["tfds"] = "tfds:imdb_reviews"
    with as_tfds({"text": [text for text, _ in rows],
                  "label": [sorted(names.values()).index(label) for _, label in rows]}):
        assert_alike(SENTIMENT, lambda **changes: sentiment_settings(
            valid=str(valid), shuffle_buffer=64, **changes), kinds, kinds)


# ----------------------------------------------------------------------- translation


def translation_settings(tmp_path: Path):
    valid = tmp_path / "valid"
    lines = [line.strip() for line in GERMAN.read_text(encoding="utf-8").splitlines()
             if line.strip()]
    for lang, side in (("pt", lines[:20]), ("en", [line.upper() for line in lines[:20]])):
        Path(f"{valid}.{lang}").write_text("".join(s + "\n" for s in side), encoding="utf-8")
    return lambda **changes: TranslationSettings(**{
        "source_lang": "pt", "target_lang": "en", "valid": str(valid), "vocab_size": 120,
        "batch_size": 16, "shuffle_buffer": 64, "units": 8, "embedding_dim": 8, **changes})


def test_translation_reads_one_set_alike_from_every_kind_of_source(tmp_path):
    lines = [line.strip() for line in GERMAN.read_text(encoding="utf-8").splitlines()
             if line.strip()] * 3
    pairs = [(line, line.upper()) for line in lines]
    prefix = tmp_path / "train"
    for lang, side in (("pt", lines), ("en", [t for _, t in pairs])):
        Path(f"{prefix}.{lang}").write_text("".join(s + "\n" for s in side), encoding="utf-8")
    kinds = {"PREFIX.pt/.en": str(prefix), "tfds": "tfds:ted_hrlr_translate/pt_to_en"}
    for suffix in (".tsv", ".csv", ".jsonl"):
        kinds[suffix] = str(write_table(tmp_path / f"pairs{suffix}", ["pt", "en"], pairs))
    with as_tfds({"pt": lines, "en": [t for _, t in pairs]}):
        assert_alike(TRANSLATION, translation_settings(tmp_path), kinds, kinds)


def test_streaming_auto_streams_a_tfds_set_by_the_size_its_info_records(tmp_path):
    """A `tfds:` split over the 64 MiB of `--streaming auto` streams, as a file would;
    a smaller one, one whose size is not recorded, and a task that never streams TFDS
    (the language model) read it into memory."""
    lines = [line.strip() for line in GERMAN.read_text(encoding="utf-8").splitlines()
             if line.strip()]
    settings = translation_settings(tmp_path)
    name = "ted_hrlr_translate/pt_to_en"

    def described(num_bytes: int | None) -> Path:
        folder = tmp_path / f"info-{num_bytes}"
        builder = tfds.builder(name, data_dir=folder)
        if num_bytes is not None:
            builder.info.set_splits(tfds.core.SplitDict([tfds.core.SplitInfo(
                name="train", shard_lengths=[len(lines)], num_bytes=num_bytes,
                filename_template=None)]))
        Path(builder.data_dir).mkdir(parents=True, exist_ok=True)
        builder.info.write_to_directory(builder.data_dir)
        return folder

    decided = {}
    for num_bytes in (sources.STREAM_ABOVE_BYTES + 1, sources.STREAM_ABOVE_BYTES, None):
        with tfds.testing.mock_data(data_dir=str(described(num_bytes)), as_dataset_fn=(
                lambda *_, **__: tf.data.Dataset.from_tensor_slices(
                    {"pt": lines, "en": lines}))):
            auto = settings(data=f"tfds:{name}", streaming="auto")
            decided[num_bytes] = (sources.should_stream(auto),
                                  sources.should_stream(auto, tfds_streams=False),
                                  type(TRANSLATION.read_training_data(auto)[0]).__name__)
    assert decided == {sources.STREAM_ABOVE_BYTES + 1: (True, False, "Streamed"),
                       sources.STREAM_ABOVE_BYTES: (False, False, "dict"),
                       None: (False, False, "dict")}


def test_the_last_report_scores_the_best_epochs_decoding_without_decoding_again(
        tmp_path, monkeypatch):
    """Translation (and speech) decode the validation set after every epoch; the final
    report reuses the best epoch's translations: one decoding an epoch, not one more."""
    settings = translation_settings(tmp_path)(data=str(tmp_path / "valid"), epochs=2,
                                              precision="float32")  # as evaluate computes
    decoded, real = [], translate.translate

    def counted(trained, texts, *args, **kwargs):
        decoded.append(len(texts))
        return real(trained, texts, *args, **kwargs)

    monkeypatch.setattr(translate, "translate", counted)
    run_dir, report = runner.train(TRANSLATION, settings, tmp_path / "run", verbose=0)
    assert decoded == [20, 20]  # one per epoch; the report scored the best one's
    rows = list(csv.DictReader((run_dir / "history.csv").open()))
    best = rows[report["best_epoch"] - 1]
    assert report["bleu"] == pytest.approx(float(best["val_bleu"]), abs=1e-4)  # rounded
    decoded.clear()
    assert runner.evaluate(TRANSLATION, run_dir, str(tmp_path / "valid"))["bleu"] == \
        pytest.approx(report["bleu"], abs=1e-4)
    assert decoded == [20]


# -------------------------------------------------------------------------------- lm


def test_the_language_model_reads_one_text_alike_from_every_kind_of_source(
        shakespeare_files, lm_settings, tmp_path):
    lines = [" ".join(line.split()) for line in
             shakespeare_files[0].read_text(encoding="utf-8").splitlines() if line.strip()]
    plain = tmp_path / "train.txt"
    plain.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    kinds = {"plain text": str(plain), "tfds": "tfds:tiny_shakespeare"}
    for suffix in (".tsv", ".csv", ".jsonl"):
        kinds[suffix] = str(write_table(tmp_path / f"train{suffix}", ["text"],
                                        [(line,) for line in lines]))
    with as_tfds({"text": lines}):  # one example a line; TFDS' own holds one text
        # streamed plain text: tests/pipelines/test_streaming.py (the same segments)
        assert_alike(LM, lambda **changes: lm_settings(**changes), kinds, {})


# ---------------------------------------------------------------------------- speech


def test_speech_reads_one_set_alike_from_every_kind_of_source(tmp_path):
    from speech.speech_helpers import RATE, sound, write_wav

    rng = np.random.default_rng(0)
    names, texts, samples = [], [], []
    for index, digit in enumerate([3, 7, 3, 1, 7, 1]):
        name = f"{digit}_jackson_{index + 5}.wav"  # indices 0-4 are spoken_digit's test
        audio = np.round(sound(["low", "high"][: 1 + index % 2], rng) * 32767) / 32767
        write_wav(tmp_path / name, audio)
        names.append(name)
        texts.append(["zero", "one", "two", "three", "four", "five", "six", "seven"][digit])
        samples.append(np.asarray(np.round(audio * 32767), np.int64))
    (tmp_path / "m.csv").write_text("wav_filename,wav_filesize,transcript\n" + "".join(
        f"{n},0,{t}\n" for n, t in zip(names, texts)))
    (tmp_path / "m.jsonl").write_text("".join(json.dumps({"audio_filepath": n, "text": t})
                                              + "\n" for n, t in zip(names, texts)))
    labels = [int(n[0]) for n in names]
    with tfds.testing.mock_data(as_dataset_fn=lambda *_, **__: tf.data.Dataset.from_generator(
            lambda: ({"audio": a, "label": d, "audio/filename": n}
                     for a, d, n in zip(samples, labels, names)),
            output_signature={"audio": tf.TensorSpec([None], tf.int64),
                              "label": tf.TensorSpec([], tf.int64),
                              "audio/filename": tf.TensorSpec([], tf.string)})):
        read = {kind: SPEECH.read(source, "train") for kind, source in (
            ("csv", str(tmp_path / "m.csv")), ("jsonl", str(tmp_path / "m.jsonl")),
            ("tfds", "tfds:spoken_digit"))}
    audio = AudioInputter(RATE)
    first = read["csv"]
    for kind, examples in read.items():
        assert examples["text"] == texts and examples["path"] == names, kind
        assert examples["rate"] == first["rate"] and examples["frames"] == first["frames"]
        for mine, theirs in zip(examples["audio"], first["audio"]):
            np.testing.assert_allclose(audio.read(mine), audio.read(theirs), atol=1e-6)
