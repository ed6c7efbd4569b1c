"""Token streams for language modelling: one long text as parallel, consecutive segments.

A corpus is read as a single stream of ids (`TextInputter.encode_stream`) that starts
with the begin id, so the model predicts every token of the text, the first one
included. For truncated
backpropagation through time the stream is cut into `streams` equal parts read side
by side: row b of batch k+1 continues row b of batch k, so a model may carry its
recurrent state from one batch to the next (stateful training) and still see every
token once per epoch.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from apps.errors import DataError
from apps.graphs import dataset_function
from pipelines.batching import prefetched
from pipelines.tokenizer import BOS_ID


def with_bos(ids: np.ndarray) -> np.ndarray:
    """The model's stream: the begin id, then the text's ids."""
    return np.concatenate([[BOS_ID], np.asarray(ids, dtype=np.int32)]).astype(np.int32)


def segments(stream: np.ndarray, streams: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), each [batches, streams, length]: targets are inputs shifted by one.

    The stream is cut into `streams` consecutive parts; batch k holds segment k of
    every part. The tail that does not fill a whole batch is left out.
    """
    per_stream = (len(stream) - 1) // streams
    batches = per_stream // length
    if batches < 1:
        raise ValueError(f"{len(stream)} tokens are too few for {streams} streams of {length}")
    used = per_stream * streams
    rows = lambda offset: stream[offset : offset + used].reshape(streams, per_stream)  # noqa: E731
    cut = lambda a: a[:, : batches * length].reshape(streams, batches, length)  # noqa: E731
    inputs, targets = cut(rows(0)), cut(rows(1))
    return inputs.transpose(1, 0, 2).copy(), targets.transpose(1, 0, 2).copy()


def fitting_streams(tokens: int, streams: int, length: int) -> int:
    """The most parallel streams (at most `streams`) that still fill one batch of `length`."""
    return max(1, min(streams, (tokens - 1) // length))


def fitting_length(tokens: int, streams: int, length: int) -> int:
    """The longest segment (at most `length`) with which `tokens` ids (the begin id
    included) fill one batch of `streams` rows; 0 when they cannot fill even one column.

    Validation keeps the training batch's rows (a stateful model carries one state per
    row) and shortens its segments when the text is short."""
    return max(0, min(length, (tokens - 1) // streams))


def stream_dataset(stream: np.ndarray, streams: int, length: int, what: str,
                   shuffle_seed: int | None = None) -> tf.data.Dataset:
    """((ids, first), targets) batches; `first` is True on the batch that starts the stream.

    A stateful model resets its carried state when `first` is True. `shuffle_seed`
    shuffles the order of the batches (for stateless training, where no state is
    carried between batches).
    """
    try:
        inputs, targets = segments(stream, streams, length)
    except ValueError:
        raise DataError(
            f"The {what} text has {len(stream) - 1} tokens, too few for one batch of "
            f"{streams} x {length}: give more text or lower --batch-size / "
            "--sequence-length."
        ) from None
    first = np.arange(len(inputs)) == 0
    dataset = tf.data.Dataset.from_tensor_slices(((inputs, first), targets))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(inputs), seed=shuffle_seed, reshuffle_each_iteration=True)
    return prefetched(dataset)


# ------------------------------------------------------------------ streamed from a file

READ_BLOCK = 1 << 16  # bytes read (and tokenised) at a time per stream


def line_start(handle, position: int) -> int:
    """The first line start at or after `position` of an open binary file."""
    if position <= 0:
        return 0
    handle.seek(position - 1)
    if handle.read(1) == b"\n":
        return position
    handle.readline()
    return handle.tell()


def byte_ranges(path, start: int, end: int, parts: int) -> list[tuple[int, int]]:
    """`parts` contiguous byte ranges of [start, end) of a file, cut at line starts."""
    with open(path, "rb") as handle:
        cuts = [start] + [min(end, line_start(handle, start + (end - start) * k // parts))
                          for k in range(1, parts)] + [end]
    return list(zip(cuts[:-1], cuts[1:]))


def text_blocks(path, start: int, end: int, cycle: bool = True):
    """The text of bytes [start, end) of a file in blocks that end at a line end (so no
    piece of an exact-text tokenizer is cut); invalid UTF-8 is replaced, as in memory.
    With `cycle` the range starts again at its end (the epoch's length is cut later)."""
    while True:
        with open(path, "rb") as handle:
            handle.seek(start)
            position, rest = start, b""
            while position < end:
                block = handle.read(min(READ_BLOCK, end - position))
                if not block:
                    raise DataError(f"'{path}' ended at byte {position} while training read "
                                    f"it (it had {end} before): the data changed.")
                position += len(block)
                block, cut = rest + block, (rest + block).rfind(b"\n") + 1
                if position < end and cut:
                    block, rest = block[:cut], block[cut:]
                else:
                    rest = b""
                yield block.decode("utf-8", errors="replace")
        if not cycle:
            return


def file_segments(path, ranges: list[tuple[int, int]], tokenize, length: int,
                  bos_first: bool) -> tf.data.Dataset:
    """(inputs, targets) [streams, length] from byte ranges of a file read side by side,
    tokenised by `tokenize` (strings [N] -> ragged ids, the graph op), nothing held:
    row b of batch k+1 continues row b of batch k. The first range starts with the
    begin id when `bos_first`, as the in-memory stream does."""
    def one(start, end, with_bos):
        blocks = tf.data.Dataset.from_generator(
            lambda: text_blocks(path, start, end), output_signature=tf.TensorSpec([], tf.string))
        ids = blocks.map(dataset_function(lambda text: tokenize(text[None]).flat_values))
        ids = ids.unbatch()
        if with_bos:
            ids = tf.data.Dataset.from_tensors(tf.constant(BOS_ID, tf.int32)).concatenate(ids)
        pieces = ids.batch(length, drop_remainder=True)
        # each segment with the first id of the next: its targets are shifted by one
        pairs = pieces.scan(tf.zeros([length], tf.int32), dataset_function(
            lambda previous, current: (current, (previous, current[0]))))
        return pairs.skip(1).map(dataset_function(lambda inputs, following: (
            inputs, tf.concat([inputs[1:], following[None]], 0))))

    parts = [one(start, end, bos_first and k == 0) for k, (start, end) in enumerate(ranges)]
    return tf.data.Dataset.zip(tuple(parts)).map(dataset_function(lambda *rows: (
        tf.stack([inputs for inputs, _ in rows]), tf.stack([targets for _, targets in rows]))))


def streamed_dataset(path, ranges: list[tuple[int, int]], tokenize, length: int, steps: int,
                     workers: int = 1, worker: int = 0,
                     shuffle_seed: int | None = None) -> tf.data.Dataset:
    """((ids, first), targets) batches streamed from `ranges` (one per row of the global
    batch), `steps` of them an epoch. With `workers`, this worker reads only the rows
    `worker`, `worker + workers`, ... (`apps.distribute` gives it those) and repeats
    each row `workers` times in place of the others'."""
    mine = ranges[worker::workers]
    dataset = file_segments(path, mine, tokenize, length, bos_first=worker == 0)
    if workers > 1:
        dataset = dataset.map(dataset_function(lambda inputs, targets: (
            tf.repeat(inputs, workers, axis=0), tf.repeat(targets, workers, axis=0))))
    dataset = dataset.take(steps).enumerate().map(dataset_function(
        lambda index, batch: ((batch[0], index == 0), batch[1])))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(1024, seed=shuffle_seed, reshuffle_each_iteration=True)
    return prefetched(dataset.apply(tf.data.experimental.assert_cardinality(steps)))


# ----------------------------------------------------------------- a corpus kept on disk

VALID_LIMIT_BYTES = 1 << 20  # a held-out validation text, at most (it is held in memory)


class CorpusFile:
    """A training text that stays on disk: bytes [0, end) of `path` (the rest, when
    validation is held out of its end), with the line sample its tokenizer learns from."""

    def __init__(self, path, end: int, sample: list[str]):
        self.path, self.end, self.sample = str(path), end, sample

    @classmethod
    def open(cls, path, hold_out: float | None, sample_size: int, seed: int
             ) -> tuple[CorpusFile, str | None]:
        """The corpus and, with `hold_out`, its held-out end as text: the last
        `hold_out` share of the file, cut at a line start, at most VALID_LIMIT_BYTES (so
        validation does not grow with the corpus), and its tokenizer's `sampled_lines`."""
        size = os.path.getsize(path)
        end, valid = size, None
        if hold_out:
            with open(path, "rb") as handle:
                end = line_start(handle, size - min(int(size * hold_out), VALID_LIMIT_BYTES))
                handle.seek(end)
                valid = handle.read().decode("utf-8", errors="replace")
            if end <= 0 or not valid.strip():
                raise DataError(f"'{path}' is too short to hold its end out for validation: "
                                "pass --valid.")
        return cls(path, end, sampled_lines(path, end, sample_size, seed)), valid


SAMPLE_BLOCK = 16 << 10  # bytes read at each sampled place of a large text, at most


def sampled_lines(path, end: int, size: int, seed: int) -> list[str]:
    """About `size` lines of bytes [0, end) of a text for its tokenizer: every line when
    the text is small, else the whole lines of seeded random blocks (at least 256 of
    them, of at most SAMPLE_BLOCK bytes) spread over the text: a sample by volume of
    text, which is what the piece statistics count, and a gigabyte costs a few thousand
    reads, not a pass in Python."""
    import random

    with open(path, "rb") as handle:
        head = handle.read(min(end, SAMPLE_BLOCK))
        per_line = len(head) / max(1, head.count(b"\n"))
        if end <= 4 * size * per_line:  # small: the lines themselves
            handle.seek(0)
            lines = handle.read(end).decode("utf-8", errors="replace").splitlines(True)
            return lines if len(lines) <= size else random.Random(seed).sample(lines, size)
        wanted = size * per_line
        width = int(max(1024, min(SAMPLE_BLOCK, wanted // 256)))
        blocks = max(1, round(wanted / width))
        starts = sorted(random.Random(seed).sample(range(end // width), blocks))
        lines: list[str] = []
        for block in starts:
            handle.seek(block * width)
            data = handle.read(min(width, end - block * width))
            if block and b"\n" in data[:-1]:  # from the first line start inside it
                data = data[data.find(b"\n") + 1:]
            data = data[: data.rfind(b"\n") + 1] or data  # to its last whole line, if any
            lines.extend(line.decode("utf-8", errors="replace")
                         for line in data.splitlines(keepends=True))
    return lines
