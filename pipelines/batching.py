"""Batches of similar length with dynamic padding: no batch is padded to the corpus maximum.

Sequences are right-padded with 0 (the tokenizer's pad id), the only layout cuDNN
accepts with masks. Training batches come from `tf.data`'s
`bucket_by_sequence_length`; evaluation and prediction sort by length and restore
the original order afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf

from pipelines.tokenizer import PAD_ID


def truncate(ids: Sequence[Sequence[int]], max_length: int) -> list[list[int]]:
    """Cut every sequence to at most `max_length` ids, keeping empty ones as one pad."""
    return [list(seq[:max_length]) or [PAD_ID] for seq in ids]


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
    """Right-pad a list of id lists to their own longest length."""
    width = max(1, max(len(seq) for seq in ids))
    batch = np.full((len(ids), width), PAD_ID, dtype=np.int32)
    for row, seq in enumerate(ids):
        batch[row, : len(seq)] = seq
    return batch


def prefetched(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Prefetch two batches, with tf.data's autotuning off.

    With autotuning on, Keras' `fit` stalled for seconds at some epoch boundaries on
    this 2-core machine (13-second epochs took up to 41 s; a stack dump showed it
    dropping the previous epoch's iterator), far more than tuning gains on pipelines
    this cheap (docs/benchmarks.md).
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(2).with_options(options)


def training_dataset(
    ids: Sequence[Sequence[int]], targets: np.ndarray, batch_size: int, seed: int,
    shuffle: bool = True,
) -> tf.data.Dataset:
    """(padded ids, targets) batches bucketed by length, reshuffled every epoch."""
    lengths = np.array([len(seq) for seq in ids], dtype=np.int64)
    flat = tf.constant(np.fromiter((i for seq in ids for i in seq), dtype=np.int32,
                                   count=int(lengths.sum())))
    starts, ends = tf.constant(np.cumsum(lengths) - lengths), tf.constant(np.cumsum(lengths))
    targets = tf.constant(np.asarray(targets))

    def example(index):  # slices of one flat array: no per-sequence tensors to build
        return flat[starts[index] : ends[index]], targets[index]

    dataset = tf.data.Dataset.range(len(ids))
    if shuffle:
        dataset = dataset.shuffle(len(ids), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(example)
    boundaries = bucket_boundaries(lengths, batch_size)
    dataset = dataset.bucket_by_sequence_length(
        element_length_func=lambda seq, _target: tf.shape(seq)[0],
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        padding_values=(PAD_ID, None),
        pad_to_bucket_boundary=False,
    )
    return prefetched(dataset)


def sorted_batches(
    ids: Sequence[Sequence[int]], batch_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(original positions, padded ids) in length order, for inference with little padding."""
    order = np.argsort([len(seq) for seq in ids], kind="stable")
    for start in range(0, len(order), batch_size):
        positions = order[start : start + batch_size]
        yield positions, pad_batch([ids[i] for i in positions])
