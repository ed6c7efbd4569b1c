"""Parallel text: prefix pairs, tables of pairs, TFDS translation sets, and bad files."""

from __future__ import annotations

import json

import pytest
import tensorflow_datasets as tfds

from apps.errors import DataError
from pipelines import parallel


def pair(folder, name, source_lines, target_lines, langs=("de", "en")):
    for lang, lines in zip(langs, (source_lines, target_lines)):
        (folder / f"{name}.{lang}").write_text("".join(line + "\n" for line in lines),
                                               encoding="utf-8")
    return str(folder / name)


def test_prefix_pairs_read_line_by_line_and_skip_empty_pairs(tmp_path, caplog):
    prefix = pair(tmp_path, "train", ["Ein Hund.", "", "Zwei Männer."],
                  ["A dog.", "Nothing.", "Two men."])
    with caplog.at_level("WARNING"):
        pairs = parallel.read_parallel(prefix, "de", "en")
    assert pairs.sources == ["Ein Hund.", "Zwei Männer."]
    assert pairs.targets == ["A dog.", "Two men."]
    assert "Skipped 1 pair(s)" in caplog.text


def test_line_count_mismatch_names_both_files_and_counts(tmp_path):
    prefix = pair(tmp_path, "train", ["a", "b", "c"], ["x", "y"])
    with pytest.raises(DataError, match=r"train\.de' has 3 lines but '.*train\.en' has 2"):
        parallel.read_parallel(prefix, "de", "en")


def test_missing_empty_and_binary_language_files(tmp_path):
    prefix = pair(tmp_path, "train", ["a"], ["x"])
    with pytest.raises(DataError, match=r"Missing language file\(s\) '.*train\.fr'"):
        parallel.read_parallel(prefix, "de", "fr")
    with pytest.raises(DataError, match="pass --source-lang and --target-lang"):
        parallel.read_parallel(prefix)
    (tmp_path / "train.en").write_text("")
    with pytest.raises(DataError, match=r"train\.en' is empty"):
        parallel.read_parallel(prefix, "de", "en")
    (tmp_path / "train.en").write_bytes(b"\x00\x01\x02junk")
    with pytest.raises(DataError, match="binary file"):
        parallel.read_parallel(prefix, "de", "en")
    (tmp_path / "train.en").write_bytes(b"ok\n\xff\xfe broken\n")
    with pytest.raises(DataError, match="line 2 is not UTF-8"):
        parallel.read_parallel(prefix, "de", "en")


def test_tables_with_named_guessed_or_no_header(tmp_path):
    headerless = tmp_path / "pairs.tsv"
    headerless.write_text("Ein Hund.\tA dog.\nZwei Katzen.\tTwo cats.\n", encoding="utf-8")
    assert parallel.read_parallel(str(headerless)).targets == ["A dog.", "Two cats."]
    named = tmp_path / "named.csv"
    named.write_text("id,en,de\n1,A dog.,Ein Hund.\n2,\"Two, cats.\",Zwei Katzen.\n")
    pairs = parallel.read_parallel(str(named), "de", "en")
    assert pairs.sources == ["Ein Hund.", "Zwei Katzen."] and pairs.targets[1] == "Two, cats."
    lines = tmp_path / "pairs.jsonl"
    lines.write_text(json.dumps({"src": "Hallo", "tgt": "Hello"}) + "\n")
    assert parallel.read_parallel(str(lines)).targets == ["Hello"]
    custom = parallel.read_parallel(str(named), source_column="de", target_column="id")
    assert custom.targets == ["1", "2"]
    with pytest.raises(DataError, match="has no column 'fr'"):
        parallel.read_parallel(str(named), source_column="fr", target_column="en")
    with pytest.raises(DataError, match="holds the target"):
        parallel.read_parallel(str(named), "de")
    short = tmp_path / "short.tsv"
    short.write_text("only one column\n")
    with pytest.raises(DataError, match="fewer than 2 columns"):
        parallel.read_parallel(str(short))


def test_tfds_translation_sets_by_language_feature_offline():
    with tfds.testing.mock_data(num_examples=6):
        pairs = parallel.read_parallel("tfds:ted_hrlr_translate/pt_to_en")
        swapped = parallel.read_parallel("tfds:ted_hrlr_translate/pt_to_en", "en", "pt")
        with pytest.raises(DataError, match="has no feature 'de'"):
            parallel.read_parallel("tfds:ted_hrlr_translate/pt_to_en", "de", "en")
    assert len(pairs) == 6 and all(isinstance(s, str) for s in pairs.sources)
    assert swapped.sources == pairs.targets and swapped.targets == pairs.sources


@pytest.mark.parametrize("name, content", [
    ("pairs.tsv", "de\ten\nEin Hund.\tA dog.\nZwei Katzen.\tTwo cats.\n"),
    ("pairs.csv", "de,en\nEin Hund.,A dog.\nZwei Katzen.,Two cats.\n"),
    ("pairs.jsonl", '{"de": "Ein Hund.", "en": "A dog."}\n'
                    '{"de": "Zwei Katzen.", "en": "Two cats."}\n'),
])
def test_a_header_of_two_language_codes_names_the_sides_in_every_table_kind(
        tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    pairs = parallel.read_parallel(str(path))
    assert pairs.sources == ["Ein Hund.", "Zwei Katzen."]
    assert pairs.targets == ["A dog.", "Two cats."]
    swapped = parallel.read_parallel(str(path), "en", "de")
    assert swapped.sources == ["A dog.", "Two cats."]
    with pytest.raises(DataError, match="has the columns de, en, not fr"):
        parallel.read_parallel(str(path), "fr", "it")


def test_two_ordinary_words_are_still_a_pair_in_a_headerless_table(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("Hallo Welt.\tHello world.\nJa.\tYes.\n", encoding="utf-8")
    assert parallel.read_parallel(str(path)).sources == ["Hallo Welt.", "Ja."]
