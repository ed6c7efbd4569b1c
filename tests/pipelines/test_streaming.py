"""Training from files that stay on disk: memory that does not grow with the corpus,
the same tokens as the in-memory path, shards per worker, and files that change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from apps import runner
from apps.errors import carried_by_tensorflow
from apps.lm.task import TASK as LM
from apps.sentiment.task import TASK as SENTIMENT
from apps.translation.task import TASK as TRANSLATION
from apps.translation.task import TranslationSettings
from pipelines import streams
from pipelines.inputters import TextInputter
from pipelines.records import PAIR_SAMPLE

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "apps" / "sentiment" / "sample"
WORDS = ("good bad fine dull great awful film plot acting story music scene slow quick "
         "moving boring").split()


def labelled_lines(path: Path, count: int) -> Path:
    """`count` generated lines of `text<TAB>label`, written without holding them."""
    rng = np.random.default_rng(0)
    with path.open("w", encoding="utf-8") as handle:
        handle.write("text\tlabel\n")
        for start in range(0, count, 10_000):
            picks = rng.integers(0, len(WORDS), size=(min(10_000, count - start), 6))
            handle.writelines(" ".join(WORDS[i] for i in row) + "\t" +
                              ("positive" if row[0] % 2 else "negative") + "\n"
                              for row in picks)
    return path


def python_peak(settings, folder: Path) -> int:
    tracemalloc.start()
    try:
        runner.train(SENTIMENT, settings, folder, verbose=0)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_a_million_line_source_trains_with_memory_that_does_not_grow_with_it(
        sentiment_settings, tmp_path):
    """30,000 and 150,000 lines (the large file was first a million lines; 150,000 tells
    the paths apart as well: the in-memory path peaked at 40 MB on it against 14 MB on
    the small file, streaming at 13 MB on both). Both are above the scan's reservoir (PAIR_SAMPLE
    records): a smaller file would fill it only in part and peak lower for that alone.
    Training stops after a second: the scan reads every line, and the passes start; the
    peak does not wait for more steps."""
    assert PAIR_SAMPLE < 30_000
    small = labelled_lines(tmp_path / "small.tsv", 30_000)
    large = labelled_lines(tmp_path / "large.tsv", 150_000)
    changes = dict(streaming="on", epochs=1, time_budget="1s", units=8, embedding_dim=8,
                   vocab_size=100, tokenizer_sample=20_000, shuffle_buffer=2_000,
                   valid=str(SAMPLE / "valid.tsv"))
    # a first, unmeasured run: the first in a process also allocates for what it imports
    runner.train(SENTIMENT, sentiment_settings(data=str(small), **changes), tmp_path / "warm",
                 verbose=0)
    peaks = [python_peak(sentiment_settings(data=str(path), **changes), tmp_path / path.stem)
             for path in (small, large)]
    # the in-memory path holds every line: more than these bounds allow
    assert peaks[1] < 1.25 * peaks[0] + (2 << 20), peaks
    assert peaks[1] < 40 << 20, peaks


def test_streamed_lm_segments_are_the_in_memory_ones(shakespeare_files, tmp_path):
    text = shakespeare_files[0].read_text(encoding="utf-8")
    inputter = TextInputter("char", 200, exact_text=True)
    inputter.fit(text.splitlines(keepends=True))
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    size = path.stat().st_size
    streamed = streams.file_segments(str(path), [(0, size)], inputter.tokenize, 16,
                                     bos_first=True)
    inputs, targets = streams.segments(streams.with_bos(inputter.encode_stream(text)), 1, 16)
    got = list(streamed.take(len(inputs)).as_numpy_iterator())
    assert len(got) == len(inputs)
    np.testing.assert_array_equal(np.stack([i for i, _ in got])[:, 0], inputs[:, 0])
    np.testing.assert_array_equal(np.stack([t for _, t in got])[:, 0], targets[:, 0])
    ranges = streams.byte_ranges(str(path), 0, size, 4)
    assert ranges[0][0] == 0 and ranges[-1][1] == size
    assert all(text.encode()[start - 1:start] == b"\n" for start, _ in ranges[1:])


def test_streamed_lm_trains_and_holds_out_a_bounded_end(lm_settings, shakespeare_files,
                                                        tmp_path, monkeypatch):
    monkeypatch.setattr(streams, "VALID_LIMIT_BYTES", 2000)
    settings = lm_settings(valid=None, streaming="on", epochs=1, units=8, embedding_dim=4)
    _, report = runner.train(LM, settings, tmp_path / "run", verbose=0)
    assert 1900 < report["chars"] <= 2000  # 5% would be 2,000 chars; the limit holds


@pytest.mark.long
def test_streamed_translation_trains_and_a_vanished_file_is_one_sentence(tmp_path):
    rows = [line.strip() for line in (ROOT / "tests/data/german_sentences.txt").read_text(
        encoding="utf-8").splitlines() if line.strip()]
    for lang, side in (("de", rows), ("en", [r.upper() for r in rows])):
        (tmp_path / f"train.{lang}").write_text("\n".join(side * 5) + "\n", encoding="utf-8")
    settings = TranslationSettings(data=str(tmp_path / "train"), source_lang="de",
                                   target_lang="en", streaming="on", epochs=1, units=8,
                                   embedding_dim=8, vocab_size=120, batch_size=16,
                                   shuffle_buffer=64)
    _, report = runner.train(TRANSLATION, settings, tmp_path / "run", verbose=0)
    assert report["epochs_run"] == 1 and report["sentences"] > 0
    train, valid = TRANSLATION.read_training_data(settings)
    inputters = runner.load_inputters(TRANSLATION, settings, tmp_path / "run")
    passes, _ = TRANSLATION.datasets(settings, inputters, train, valid)
    dataset = passes(0)  # the first pass (apps.training)
    assert sum(1 for _ in dataset) == int(dataset.cardinality())
    (tmp_path / "train.en").unlink()
    with pytest.raises(tf.errors.OpError) as raised:
        list(dataset)
    carried = carried_by_tensorflow(raised.value)
    assert carried is not None and carried.message.startswith(
        f"Cannot read '{tmp_path / 'train.en'}' while training")


@pytest.mark.long
def test_two_loopback_workers_each_read_their_own_half(tmp_path):
    """The same command on two workers: each says which shard it reads, both finish."""
    from tests.apps.test_distribute import free_ports

    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    command = [sys.executable, "-m", "apps", "sentiment", "train", "--data",
               str(SAMPLE / "train.tsv"), "--valid", str(SAMPLE / "valid.tsv"),
               "--streaming", "on", "--epochs", "1", "--units", "8", "--embedding-dim", "8",
               "--vocab-size", "200", "--batch-size", "16", "--strategy", "multi-worker",
               "--output", str(tmp_path / "run")]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, env={**os.environ, "PYTHONPATH": str(ROOT),
                                                  "TF_CONFIG": json.dumps({
                                                      "cluster": cluster, "task": {
                                                          "type": "worker", "index": index}})})
                 for index in (1, 0)]
    outputs = [process.communicate(timeout=900)[0] for process in processes]
    assert all(process.returncode == 0 for process in processes), outputs[0][-2000:]
    assert "this worker reads records 2, 4, ... (shard 2 of 2)" in outputs[0]
    assert "this worker reads records 1, 3, ... (shard 1 of 2)" in outputs[1]
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_a_large_text_is_sampled_in_blocks_of_whole_lines(tmp_path):
    lines = [f"line {i} of the corpus\n" for i in range(200_000)]
    path = tmp_path / "corpus.txt"
    path.write_text("".join(lines), encoding="utf-8")
    size = path.stat().st_size
    sample = streams.sampled_lines(path, size, 2000, seed=1)
    assert 1500 < len(sample) < 2500 and set(sample) <= set(lines)  # whole lines
    numbers = [int(line.split()[1]) for line in sample]
    assert min(numbers) < 20_000 and max(numbers) > 180_000  # spread over the text
    assert sample == streams.sampled_lines(path, size, 2000, seed=1)
    assert sample != streams.sampled_lines(path, size, 2000, seed=2)
    small = streams.sampled_lines(path, 1000, 2000, seed=1)  # the first 1,000 bytes: all
    assert "".join(small) == path.read_bytes()[:1000].decode()


@pytest.mark.long
def test_tfds_sets_stream_through_their_own_pipeline(tmp_path):
    import tensorflow_datasets as tfds

    from pipelines import records, sources

    rows = [line.strip() for line in (ROOT / "tests/data/german_sentences.txt").read_text(
        encoding="utf-8").splitlines() if line.strip()] * 5
    made = []

    def splits(builder, split, **_):
        made.append(str(split))
        if builder.name == "imdb_reviews":
            return tf.data.Dataset.from_tensor_slices({"text": rows[:30], "label":
                                                       [i % 2 for i in range(30)]})
        return tf.data.Dataset.from_tensor_slices({"pt": rows, "en": [r.upper() for r in rows]})

    settings = TranslationSettings(data="tfds:ted_hrlr_translate/pt_to_en", streaming="on",
                                   epochs=1, units=8, embedding_dim=8, vocab_size=120,
                                   batch_size=16, shuffle_buffer=64)
    with tfds.testing.mock_data(as_dataset_fn=splits):
        train, _ = TRANSLATION.read_training_data(settings)
        assert isinstance(train.reader, records.DatasetReader)
        assert train.scan.records == len(rows)  # counted in one pass, never listed
        _, report = runner.train(TRANSLATION, settings, tmp_path / "run", verbose=0)
        labeled = sources.labeled_reader("tfds:imdb_reviews")
        got = [values for _, values in labeled.records(records.SkippedRecords("imdb"))]
    assert report["epochs_run"] == 1 and report["sentences"] > 0
    assert made.count("train") >= 3  # the scan, then every training pass reads it again
    assert got[:2] == [(rows[0], "neg"), (rows[1], "pos")] and len(got) == 30
