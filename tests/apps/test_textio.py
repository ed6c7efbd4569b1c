"""The shared reader of `--input`: line N of the output answers line N of the input."""

from __future__ import annotations

import io

import click
import pytest

from apps.errors import DataError
from apps.textio import InputLines, answer, decode_lines, read_inputs

LATIN1 = "caf\xe9 au lait\n".encode("latin-1")  # not UTF-8


def test_an_undecodable_line_keeps_its_place():
    lines = decode_lines(io.BytesIO(b"one\r\n" + LATIN1 + b"\nthree"))
    assert lines.texts == ["one", "", "", "three"]
    assert list(lines.errors) == [1] and "line 2 is not valid UTF-8" in lines.errors[1]
    assert lines.readable == ["one", "", "three"]


def test_answer_puts_error_entries_in_place():
    lines = InputLines(["a", "", "c", "d"], {1: "line 2 is not valid UTF-8", 3: "bad"})
    seen = []

    def compute(texts):
        seen.append(texts)
        return [{"text": text.upper()} for text in texts]

    rows = answer(lines, compute)
    assert seen == [["a", "c"]]
    assert rows == [{"text": "A"}, {"line": 2, "error": "line 2 is not valid UTF-8"},
                    {"text": "C"}, {"line": 4, "error": "bad"}]
    assert answer(InputLines([""], {0: "bad"}), compute) == [{"line": 1, "error": "bad"}]
    assert seen == [["a", "c"]]  # nothing readable: the model is not asked


def test_blank_lines_refused_for_file_lists():
    lines = InputLines(["a.wav", " ", "b.wav"]).refuse_blank("no file to transcribe")
    assert lines.errors == {1: "line 2 is blank: no file to transcribe"}


def test_arguments_and_input_errors(tmp_path):
    assert read_inputs(["x", "y"], None, "texts").texts == ["x", "y"]
    with pytest.raises(click.UsageError, match="not both"):
        read_inputs(["x"], str(tmp_path), "texts")
    with pytest.raises(click.UsageError, match="or --input FILE"):
        read_inputs([], None, "texts")
    with pytest.raises(DataError, match="does not exist"):
        read_inputs([], str(tmp_path / "missing.txt"), "texts")
    with pytest.raises(DataError, match="is a directory"):
        read_inputs([], str(tmp_path), "texts")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert len(read_inputs([], str(empty), "texts")) == 0
