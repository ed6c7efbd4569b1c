"""Streamed records: one scan, bounded samples and hold-out, shards, order, bad input."""

from __future__ import annotations

import json
import logging
from collections import Counter

import pytest

from apps.errors import DataError
from pipelines import parallel, records, sources


def prefix_pair(folder, count, bad_line=None):
    lines = {lang: [f"{lang} sentence {i}" for i in range(count)] for lang in ("de", "en")}
    for lang, rows in lines.items():
        data = "".join(row + "\n" for row in rows).encode()
        if bad_line is not None and lang == "de":
            parts = data.split(b"\n")
            parts[bad_line - 1] = b"\xff\xfe broken"
            data = b"\n".join(parts)
        (folder / f"train.{lang}").write_bytes(data)
    return str(folder / "train")


def every_record(reader):
    return list(reader.records(records.SkippedRecords(reader.name)))


def test_scan_samples_are_bounded_seeded_and_the_hold_out_is_capped(tmp_path, monkeypatch):
    reader = parallel.pair_reader(prefix_pair(tmp_path, 5000), "de", "en")
    monkeypatch.setattr(records, "HELD_OUT_LIMIT", 100)
    first = records.scan(reader, seed=3, sample_size=200, text_sides=(0, 1),
                         hold_out_fraction=0.5)
    again = records.scan(reader, seed=3, sample_size=200, text_sides=(0, 1),
                         hold_out_fraction=0.5)
    assert first.records == 5000 and len(first.held_out) == 100
    assert first.training_records == 4900
    assert [len(sample) for sample in first.text_samples] == [100, 100]
    assert first.text_samples == again.text_samples and first.held_out == again.held_out
    assert len(set(first.text_samples[0])) == 100  # a sample, not the first lines
    assert max(int(text.split()[-1]) for text in first.text_samples[0]) > 1000
    other = records.scan(reader, seed=4, sample_size=200, text_sides=(0, 1))
    assert other.text_samples != first.text_samples and not other.held_out


def test_an_epoch_reads_every_training_record_once_in_an_order_of_seed_and_epoch(tmp_path):
    reader = parallel.pair_reader(prefix_pair(tmp_path, 300), "de", "en")
    held = {5: ("x", "y"), 7: ("x", "y")}

    def epoch(seed, number):
        order = records.DataOrder(seed)
        order.epoch = number
        return list(records.training_records(reader, order, records.Shard(), held, buffer=50,
                                             cycle=False))

    rows = epoch(1, 0)
    assert sorted(rows) == sorted(v for n, (_, v) in enumerate(every_record(reader))
                                  if n not in held)
    assert rows == epoch(1, 0)  # a pure function of (seed, epoch): resumable
    assert rows != epoch(1, 1) and rows != epoch(2, 0)
    assert rows != sorted(rows)  # shuffled


def test_two_workers_read_disjoint_halves_that_cover_the_corpus(tmp_path, monkeypatch):
    reader = parallel.pair_reader(prefix_pair(tmp_path, 101), "de", "en")
    halves = []
    for index in (0, 1):
        monkeypatch.setenv("TF_CONFIG", json.dumps({
            "cluster": {"worker": ["localhost:1", "localhost:2"]},
            "task": {"type": "worker", "index": index}}))
        shard = records.Shard.of_this_worker()
        assert shard == records.Shard(index, 2)
        assert f"shard {index + 1} of 2" in shard.describe()
        halves.append(set(records.training_records(reader, records.DataOrder(1), shard, {},
                                                   buffer=10, cycle=False)))
    assert not halves[0] & halves[1]
    assert len(halves[0]) == 51 and len(halves[1]) == 50
    assert halves[0] | halves[1] == {values for _, values in every_record(reader)}


def test_a_malformed_record_deep_in_a_file_is_named_counted_and_skipped(tmp_path, caplog):
    path = tmp_path / "pairs.jsonl"
    lines = [json.dumps({"de": f"Satz {i}", "en": f"Sentence {i}"}) for i in range(30_000)]
    lines[28_999] = '{"de": "kaputt", "en": '
    lines[29_500] = '["not", "an", "object"]'
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    reader = parallel.pair_reader(str(path))
    with caplog.at_level(logging.WARNING):
        found = records.scan(reader, seed=1, sample_size=10, text_sides=(0, 1))
    assert found.records == 29_998
    assert f"Skipped 2 record(s) of {path}" in caplog.text
    assert f"the first: line 29000 of {path} is not valid JSON" in caplog.text


def test_bad_lines_of_tables_and_prefix_files_are_skipped_in_step(tmp_path, caplog):
    reader = parallel.pair_reader(prefix_pair(tmp_path, 50, bad_line=20), "de", "en")
    with caplog.at_level(logging.WARNING):
        rows = every_record(reader)
        records.scan(reader, seed=1, sample_size=10, text_sides=(0, 1))
    assert len(rows) == 49 and all(de[3:] == en[3:] for _, (de, en) in rows)  # still aligned
    assert "line 20 of" in caplog.text and "is not UTF-8" in caplog.text
    table = tmp_path / "labels.tsv"
    table.write_text("text\tlabel\ngood\tpos\nno label here\nbad\tneg\n", encoding="utf-8")
    labeled = sources.labeled_reader(str(table))
    found = records.scan(labeled, seed=1, sample_size=10, text_sides=(0,), label_side=1)
    assert found.labels == Counter({"pos": 1, "neg": 1})
    assert f"line 3 of {table} has 1 column(s), not 2" in caplog.text


def test_a_file_that_vanishes_or_changes_while_training_is_one_sentence(tmp_path):
    prefix = prefix_pair(tmp_path, 20)
    reader = parallel.pair_reader(prefix, "de", "en")
    every_record(reader)
    (tmp_path / "train.en").write_text("one line\n")
    with pytest.raises(records.SourceChanged, match=r"train\.de' has 20 lines but .*train\.en' "
                                                    r"has 1"):
        every_record(reader)
    (tmp_path / "train.en").unlink()
    with pytest.raises(records.SourceChanged, match=r"Cannot read '.*train\.en' while training "
                                                    r"\(No such file or directory\)"):
        every_record(reader)


def test_the_streaming_readers_pick_the_same_columns_as_the_in_memory_ones(tmp_path):
    table = tmp_path / "pairs.tsv"
    table.write_text("de\ten\nEin Hund.\tA dog.\n", encoding="utf-8")
    assert [v for _, v in every_record(parallel.pair_reader(str(table)))] == \
        [("Ein Hund.", "A dog.")]
    headerless = tmp_path / "plain.tsv"
    headerless.write_text("Ein Hund.\tA dog.\n", encoding="utf-8")
    assert [v for _, v in every_record(parallel.pair_reader(str(headerless)))] == \
        [("Ein Hund.", "A dog.")]
    with pytest.raises(DataError, match="pass --source-lang and --target-lang"):
        parallel.pair_reader(str(tmp_path / "train"))


def test_the_reservoir_is_a_uniform_seeded_sample_of_a_long_stream():
    import random

    def sample(seed, size=1000, length=100_000):
        reservoir = records.Reservoir(size, random.Random(seed))
        for position in range(length):
            if position >= reservoir.next:
                reservoir.take(position, position)
        return reservoir.shuffled()

    chosen = sample(1)
    assert len(chosen) == len(set(chosen)) == 1000 and chosen == sample(1)
    assert chosen != sample(2)
    # uniform: the mean position is 49,999.5 give or take 913 (one standard error)
    assert abs(sum(chosen) / 1000 - 49_999.5) < 4 * 913
    assert abs(sum(x < 50_000 for x in chosen) - 500) < 4 * 16
    assert abs(sum(chosen[:100]) / 100 - 49_999.5) < 4 * 2887  # a prefix too
    assert sorted(sample(1, size=10, length=7)) == list(range(7))
