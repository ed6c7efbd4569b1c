"""Readers: files with named columns, TFDS by name (mocked offline), and bad input."""

from __future__ import annotations

import json
import logging

import pytest
import tensorflow_datasets as tfds

from apps.errors import DataError
from pipelines import sources


def write(path, text, mode="w"):
    if mode == "wb":
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_tsv_csv_jsonl_give_the_same_rows(tmp_path):
    rows = [("a \"quoted\" text", "pos"), ("commas, inside", "neg")]
    tsv_rows = "".join(f"{text}\t{label}\n" for text, label in rows)
    tsv = write(tmp_path / "d.tsv", "sentence\tlabel\n" + tsv_rows)
    csv_ = write(tmp_path / "d.csv", 'text,label\n"a ""quoted"" text",pos\n"commas, inside",neg\n')
    jsonl_rows = "".join(json.dumps({"text": text, "label": label}) + "\n" for text, label in rows)
    jsonl = write(tmp_path / "d.jsonl", jsonl_rows)
    for path in (tsv, csv_, jsonl):
        data = sources.read_labeled_file(path)
        assert list(zip(data.texts, data.labels)) == rows, path.suffix


def test_the_bundled_sample(sentiment_sample):
    data = sources.read_labeled_file(sentiment_sample / "train.tsv")
    assert len(data) == 400 and set(data.labels) == {"negative", "positive"}


def test_named_columns_and_wrong_columns(tmp_path):
    path = write(tmp_path / "d.tsv", "id\tbody\tstars\n1\tgood\t5\n2\tbad\t1\n")
    with pytest.raises(DataError, match="pass --text-column"):
        sources.read_labeled_file(path)
    data = sources.read_labeled_file(path, text_column="body", label_column="stars")
    assert data.texts == ["good", "bad"] and data.labels == ["5", "1"]
    with pytest.raises(DataError, match="no column 'review'.*it has: id, body, stars"):
        sources.read_labeled_file(path, text_column="review", label_column="stars")


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ("", "is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    ("text\tlabel\n\t\n", "no rows with both"),
])
def test_bad_files_get_one_clear_error(tmp_path, content, message):
    path = tmp_path / "data.tsv"
    if content is not None:
        write(path, content, "wb" if isinstance(content, bytes) else "w")
    with pytest.raises(DataError, match=message):
        sources.read_labeled_file(path)


def test_directory_and_bad_jsonl(tmp_path):
    with pytest.raises(DataError, match="is a directory"):
        sources.read_labeled_file(tmp_path)
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        sources.read_labeled_file(
            write(tmp_path / "d.jsonl", '{"text": "a", "label": 1}\n{oops\n'))


def test_undecodable_lines_are_skipped_and_counted(tmp_path, caplog):
    content = b"text\tlabel\ngood\tpos\n\xff\xfe broken\tneg\nbad\tneg\n"
    path = write(tmp_path / "d.tsv", content, "wb")
    with caplog.at_level(logging.WARNING):
        data = sources.read_labeled_file(path)
    assert data.texts == ["good", "bad"]
    assert "Skipped 1 line(s)" in caplog.text


def test_tfds_spec_parsing():
    spec = sources.TfdsSpec.parse("tfds:imdb_reviews/plain_text:train[:10%]")
    assert (spec.name, spec.split) == ("imdb_reviews/plain_text", "train[:10%]")
    assert sources.TfdsSpec.parse("tfds:imdb_reviews").split is None
    with pytest.raises(DataError, match="names no data set"):
        sources.TfdsSpec.parse("tfds:")


def test_tfds_through_the_real_api_offline():
    with tfds.testing.mock_data(num_examples=12):
        data = sources.read_labeled("tfds:imdb_reviews")
        corpus = sources.read_corpus("tfds:tiny_shakespeare")
    assert len(data) == 12 and set(data.labels) <= {"neg", "pos"}
    assert all(isinstance(text, str) for text in data.texts)
    assert isinstance(corpus, str) and corpus


def test_tfds_unknown_name_is_a_clear_error():
    with pytest.raises(DataError, match="Could not load TensorFlow Datasets 'no_such_set'"):
        sources.read_labeled("tfds:no_such_set")
