"""Exact tokenizer round trips and the stream batches that truncated BPTT reads."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from apps.errors import DataError
from pipelines import streams
from pipelines.inputters import TextInputter, text_chunks
from pipelines.tokenizer import BOS_ID, UNK_ID

AWKWARD = "  two leading spaces\n\n\nthree newlines,   runs of spaces  \nend without newline  "


@pytest.fixture(scope="module", params=["char", "bpe", "unigram"])
def exact_tokenizer(request, shakespeare):
    train, valid = shakespeare
    inputter = TextInputter(request.param, 600, exact_text=True)
    lines = (train + valid).splitlines(keepends=True)  # every character of both is known
    inputter.fit(lines, total=len(lines))
    return inputter


def test_round_trip_is_exact_on_shakespeare(exact_tokenizer, shakespeare):
    _, valid = shakespeare
    for text in (valid, AWKWARD, "", "\n", " "):
        ids = exact_tokenizer.encode_stream(text)
        assert UNK_ID not in ids
        assert exact_tokenizer.tokenizer.decode(ids) == text
        assert "".join(exact_tokenizer.tokenizer.decode([i]) for i in ids) == text  # streamed


def test_chunked_encoding_equals_whole_python_and_graph_encoding(exact_tokenizer, shakespeare):
    """The stream is tokenised by the graph op in newline-aligned chunks: the same ids as
    the Python tokenizer on the whole text, and the graph detokenises it back exactly."""
    _, valid = shakespeare
    text = valid[:20_000]
    whole = exact_tokenizer.tokenizer.encode([text])[0]
    assert list(exact_tokenizer.encode_stream(text)) == whole
    chunks = list(text_chunks(text, size=1000))
    assert len(chunks) > 5 and "".join(chunks) == text
    chunked = np.concatenate([exact_tokenizer.encode([c]).values for c in chunks])
    assert list(chunked) == whole
    graph_ids = exact_tokenizer.tokenize(tf.constant([text, AWKWARD]))
    back = exact_tokenizer.detokenize(graph_ids).numpy()
    assert [b.decode() for b in back] == [text, AWKWARD]


def test_unseen_characters_become_unknown(exact_tokenizer):
    ids = exact_tokenizer.tokenizer.encode(["abc\u00e9\u65e5"])[0]
    assert ids.count(UNK_ID) >= 1 and ids[:3] != [UNK_ID] * 3


def test_segments_are_consecutive_parallel_streams():
    stream = np.arange(1, 2 * 3 * 4 + 4, dtype=np.int32)  # 27 tokens
    inputs, targets = streams.segments(stream, streams=3, length=4)
    assert inputs.shape == targets.shape == (2, 3, 4)  # (27 - 1) // 3 = 8 per stream
    np.testing.assert_array_equal(targets, inputs + 1)
    for row in range(3):  # row r of batch k+1 continues row r of batch k
        joined = np.concatenate([inputs[0, row], inputs[1, row]])
        np.testing.assert_array_equal(joined, stream[row * 8 : row * 8 + 8])


def test_stream_dataset_marks_the_first_batch_and_refuses_short_text():
    stream = streams.with_bos(np.arange(4, 104, dtype=np.int32))
    assert stream[0] == BOS_ID
    batches = list(streams.stream_dataset(stream, 2, 10, "training").as_numpy_iterator())
    assert [bool(first) for (_, first), _ in batches] == [True] + [False] * 4  # 50 each
    assert batches[0][0][0].shape == (2, 10)
    with pytest.raises(DataError, match="too few for one batch of 64 x 10"):
        streams.stream_dataset(stream, 64, 10, "training")
    assert streams.fitting_streams(101, 64, 10) == 10
