"""Batches of similar length with dynamic padding: no batch is padded to the corpus maximum.

Variable-length data (token ids, audio samples) is held as `Ragged`: one flat array and
the length of each row, which `tf.data` slices without building a tensor per example.
`bucketed_dataset` batches any number of such columns side by side (a text and its
label, a source and its target), grouping rows of similar length with `tf.data`'s
`bucket_by_sequence_length` and right-padding each batch to its own longest row with
0, the tokenizer's pad id, which is what masks look for and the only layout cuDNN
accepts with masks. Inference sorts by length instead (`sorted_batches`) and puts the
results back in input order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from apps.graphs import dataset_function
from pipelines.tokenizer import PAD_ID


@dataclass(frozen=True)
class Ragged:
    """Rows of different lengths as one flat `values` array plus `lengths` [rows]."""

    values: np.ndarray
    lengths: np.ndarray

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence], dtype=np.int32) -> Ragged:
        lengths = np.array([len(row) for row in rows], dtype=np.int64)
        values = np.fromiter((v for row in rows for v in row), dtype=dtype,
                             count=int(lengths.sum()))
        return cls(values, lengths)

    @classmethod
    def from_tensor(cls, ragged: tf.RaggedTensor) -> Ragged:
        return cls(ragged.flat_values.numpy(), ragged.row_lengths().numpy().astype(np.int64))

    @classmethod
    def concat(cls, parts: Sequence[Ragged]) -> Ragged:
        if not parts:
            return cls(np.zeros([0], np.int32), np.zeros([0], np.int64))
        return cls(np.concatenate([p.values for p in parts]),
                   np.concatenate([p.lengths for p in parts]))

    @property
    def starts(self) -> np.ndarray:
        return np.cumsum(self.lengths) - self.lengths

    def __len__(self) -> int:
        return len(self.lengths)

    def row(self, index: int) -> np.ndarray:
        start = int(self.starts[index]) if index else 0
        return self.values[start : start + int(self.lengths[index])]

    def rows(self) -> list[list]:
        return [row.tolist() for row in np.split(self.values, np.cumsum(self.lengths)[:-1])] \
            if len(self) else []


def bucket_boundaries(lengths: Sequence[int], batch_size: int, max_buckets: int = 16) -> list[int]:
    """Bucket edges at length quantiles, so each bucket holds a similar share of the data."""
    lengths = np.asarray(lengths)
    num_buckets = int(min(max_buckets, max(1, len(lengths) // (batch_size * 2))))
    if num_buckets <= 1:
        return []
    quantiles = np.quantile(lengths, np.linspace(0, 1, num_buckets + 1)[1:-1])
    edges = sorted({int(q) + 1 for q in quantiles})
    return [edge for edge in edges if edge > 1]


def pad_batch(ids: Sequence[Sequence[int]]) -> np.ndarray:
    """Right-pad a list of id lists to their own longest length (at least one column)."""
    width = max(1, max(len(seq) for seq in ids))
    batch = np.full((len(ids), width), PAD_ID, dtype=np.int32)
    for row, seq in enumerate(ids):
        batch[row, : len(seq)] = seq
    return batch


def prefetched(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Prefetch two batches, with tf.data's autotuning off.

    With autotuning on, Keras' `fit` stalled for seconds at some epoch boundaries on
    a 2-core machine (13-second epochs took up to 41 s; a stack dump showed it
    dropping the previous epoch's iterator), far more than tuning gains on pipelines
    this cheap (docs/benchmarks.md).
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(2).with_options(options)


def _slicer(column: Ragged | np.ndarray):
    """index -> that row of `column`, from constants built once for the whole column."""
    if isinstance(column, Ragged):
        values = tf.constant(column.values)
        starts = tf.constant(column.starts)
        ends = tf.constant(column.starts + column.lengths)
        return lambda index: values[starts[index] : ends[index]]
    array = tf.constant(np.asarray(column))
    return lambda index: array[index]


def bucketed_dataset(
    columns: Sequence[Ragged | np.ndarray], batch_size: int, seed: int, shuffle: bool = True,
    lengths: np.ndarray | None = None,
) -> tf.data.Dataset:
    """Tuples of batched columns, rows of similar length together, reshuffled every epoch.

    `Ragged` columns are right-padded (ids with PAD_ID, floats with 0) to the longest
    row of their batch; other columns (labels, one value per row) are stacked.
    `lengths` picks the bucket of each row: by default its longest ragged column.
    """
    rows = {len(column) for column in columns}
    if len(rows) != 1:
        raise ValueError(f"columns of different lengths: {sorted(rows)}")
    if lengths is None:
        ragged = [c.lengths for c in columns if isinstance(c, Ragged)]
        lengths = np.max(ragged, axis=0) if ragged else np.ones(rows.pop(), np.int64)
    slicers = [_slicer(column) for column in columns]
    dataset = tf.data.Dataset.range(len(lengths))
    if shuffle:
        dataset = dataset.shuffle(len(lengths), seed=seed, reshuffle_each_iteration=True)
    bucket_lengths = tf.constant(np.asarray(lengths, np.int32))
    dataset = dataset.map(dataset_function(lambda index: (
        bucket_lengths[index], tuple(slicer(index) for slicer in slicers))))
    boundaries = bucket_boundaries(lengths, batch_size)
    padding = tuple((PAD_ID if np.issubdtype(c.values.dtype, np.integer) else 0.0)
                    if isinstance(c, Ragged) else None for c in columns)
    dataset = dataset.bucket_by_sequence_length(
        element_length_func=lambda length, _row: length,
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        padding_values=(None, padding),
        pad_to_bucket_boundary=False,
    ).map(dataset_function(lambda _lengths, row: row))
    batches = bucketed_batches(lengths, boundaries, batch_size)
    return prefetched(dataset.apply(tf.data.experimental.assert_cardinality(batches)))


RECORD_CHUNK = 512  # records per step of a streamed source's Python generator


def record_dataset(generator, width: int, chunk: int = RECORD_CHUNK) -> tf.data.Dataset:
    """Chunks of records (`width` string vectors) from a Python generator function of
    records that reads the files again on every call: nothing of the corpus is held.
    Records travel `chunk` at a time (one Python call each, not one per record)."""
    def chunks():
        columns = [[] for _ in range(width)]
        for values in generator():
            for column, value in zip(columns, values):
                column.append(value.encode("utf-8"))
            if len(columns[0]) == chunk:
                yield tuple(np.array(c, dtype=object) for c in columns)
                columns = [[] for _ in range(width)]
        if columns[0]:
            yield tuple(np.array(c, dtype=object) for c in columns)

    return tf.data.Dataset.from_generator(
        chunks, output_signature=tuple(tf.TensorSpec([None], tf.string) for _ in range(width)))


def tokenized_rows(chunks: tf.data.Dataset, tokenize) -> tf.data.Dataset:
    """Chunks of records tokenised by `tokenize` (strings [N]... -> ragged ids), the
    graph op the export uses, then one row per element."""
    return chunks.map(dataset_function(tokenize)).unbatch()


def streamed_batches(rows: tf.data.Dataset, batch_size: int, boundaries: list[int],
                     steps: int, workers: int = 1, padding=None) -> tf.data.Dataset:
    """Batches of rows of similar length from an endless stream, `steps` of them an epoch.

    The first element of a row picks its bucket (its longest side when the caller
    orders them so, or pass rows whose first element is the length). With `workers`
    (each reading its own shard) a worker batches `batch_size / workers` of its own
    rows and repeats each `workers` times: `apps.distribute` gives worker w the rows
    w, w + workers, ... of every global batch, which are then exactly its own rows.
    """
    local = batch_size // workers
    dataset = rows.bucket_by_sequence_length(
        element_length_func=lambda length, *_: length,
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[local] * (len(boundaries) + 1),
        padding_values=padding,
        pad_to_bucket_boundary=False,
    ).map(dataset_function(lambda _lengths, *columns: columns))
    if workers > 1:
        dataset = dataset.map(dataset_function(lambda *columns: tuple(
            tf.repeat(c, workers, axis=0) for c in columns)))
    dataset = dataset.take(steps).apply(tf.data.experimental.assert_cardinality(steps))
    return prefetched(dataset)


def stream_steps(records: int, batch_size: int, boundaries: list[int]) -> int:
    """Batches in a streamed epoch: every record once, rounded up per bucket (the last
    batch of each bucket may be short), the rest filled from the next pass."""
    return -(-records // batch_size) + len(boundaries) + 1


def bucketed_batches(lengths: np.ndarray, boundaries: list[int], batch_size: int) -> int:
    """How many batches `bucket_by_sequence_length` makes: each bucket is batched alone,
    so an epoch's length is known before it runs (progress bars, schedules)."""
    buckets = np.searchsorted(np.asarray(boundaries), np.asarray(lengths), side="right")
    counts = np.bincount(buckets, minlength=len(boundaries) + 1)
    return int(sum(-(-count // batch_size) for count in counts))


def sorted_batches(ids: Ragged | Sequence[Sequence[int]], batch_size: int
                   ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(original positions, padded ids) in length order, for inference with little padding."""
    rows = ids.rows() if isinstance(ids, Ragged) else ids
    order = np.argsort([len(seq) for seq in rows], kind="stable")
    for start in range(0, len(order), batch_size):
        positions = order[start : start + batch_size]
        yield positions, pad_batch([rows[i] for i in positions])
