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

import numpy as np
import tensorflow as tf

from apps.errors import DataError
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
