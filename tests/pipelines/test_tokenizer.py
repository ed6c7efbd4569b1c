"""The Python tokeniser (training) and the graph tokeniser (export) must give the same ids."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import tensorflow as tf

from apps.errors import ConfigError, DataError
from pipelines.sources import read_labeled_file, read_lines
from pipelines.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer

DATA = Path(__file__).resolve().parents[1] / "data"

ODD_UNICODE = [
    "naïve café — “quotes” and ‘apostrophes’",
    "emoji 😀👍🏽 and a family 👨‍👩‍👧",
    "Ελληνικά, русский, 日本語のテキスト, العربية",
    "zero\u200bwidth, combining e\u0301, fullwidth ＡＢＣ, tab\tinside",
    "   leading and trailing spaces   ",
    "",
    "\u00a0non-breaking\u00a0space",
]


def graph_ids(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
    with tf.device("/CPU:0"):
        ragged = tokenizer.graph_tokenizer().tokenize(tf.constant(texts))
    return ragged.to_list()


def corpora(sentiment_sample, shakespeare):
    """Texts the repository carries: reviews, Shakespeare, German (and a few others)."""
    reviews = read_labeled_file(sentiment_sample / "train.tsv").texts
    lines = shakespeare[0].splitlines()[:3000]
    german = list(read_lines(DATA / "german_sentences.txt"))
    return {"reviews": reviews, "shakespeare": lines, "german": german}


@pytest.mark.parametrize("model_type", ["unigram", "bpe", "char", "word"])
def test_python_and_graph_tokenisers_agree_on_real_text(sentiment_sample, shakespeare,
                                                        model_type):
    texts = corpora(sentiment_sample, shakespeare)
    tokenizer = Tokenizer.train(itertools.chain(*texts.values()), model_type, vocab_size=800)
    for name, sample in texts.items():
        probe = sample[:300] + ODD_UNICODE
        assert tokenizer.encode(probe) == graph_ids(tokenizer, probe), name


def test_exact_text_tokenisers_agree_too(shakespeare):
    lines = shakespeare[0].splitlines(keepends=True)
    tokenizer = Tokenizer.train(lines, "bpe", vocab_size=400, exact_text=True)
    probe = lines[:300] + ODD_UNICODE + ["two\n\nlines\n", "  spaced  "]
    assert tokenizer.encode(probe) == graph_ids(tokenizer, probe)


def test_reserved_ids_and_round_trip():
    tokenizer = Tokenizer.train(["the cat sat on the mat"] * 20 + ODD_UNICODE, "unigram", 120)
    assert [tokenizer.id_to_piece(i) for i in (PAD_ID, UNK_ID, BOS_ID, EOS_ID)] == [
        "<pad>", "<unk>", "<s>", "</s>"]
    ids = tokenizer.encode(["the cat sat"])[0]
    assert PAD_ID not in ids and tokenizer.decode(ids) == "the cat sat"


def test_exact_text_keeps_whitespace():
    text = "  two  spaces\tand a tab  "
    tokenizer = Tokenizer.train([text] * 10, "char", 100, exact_text=True)
    assert tokenizer.decode(tokenizer.encode([text])[0]) == text


def test_save_and_load(tmp_path):
    tokenizer = Tokenizer.train(["some words here"] * 10, "char", 30)
    tokenizer.save(tmp_path / "tokenizer.model")
    assert Tokenizer.load(tmp_path / "tokenizer.model").encode(["words"]) == tokenizer.encode(
        ["words"])


def test_bad_settings_and_data(tmp_path):
    with pytest.raises(ConfigError, match="--tokenizer"):
        Tokenizer.train(["x"], "wordpiece", 100)
    with pytest.raises(ConfigError, match="--vocab-size"):
        Tokenizer.train(["x"], "unigram", 2)
    with pytest.raises(DataError, match="no text"):
        Tokenizer.train(["", ""], "unigram", 100)
    with pytest.raises(ConfigError, match="--vocab-size 10 is too small"):
        Tokenizer.train(["abcdefghijklmnopqrstuvwxyz"], "unigram", 10)
    junk = tmp_path / "junk.model"
    junk.write_bytes(b"\x00\x01 not a model")
    with pytest.raises(DataError, match="not a SentencePiece model"):
        Tokenizer.load(junk)
