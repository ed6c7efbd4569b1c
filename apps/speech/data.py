"""Training and validation batches of recordings, read from their files as batches are made.

Only the transcripts' ids, the paths and each recording's length are held; the samples
are read (soundfile), resampled (soxr) and mixed down inside the `tf.data` pipeline,
a few batches ahead of training, then turned into features there. Recordings of similar
length share a batch (length buckets), shuffled through a bounded buffer.

A recording that cannot be read when its batch is made (deleted since the manifest
was read, a corrupt FLAC) is skipped: one warning names it and counts the recordings
skipped so far; the epoch goes on and keeps its number of batches.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from apps.errors import DataError
from apps.graphs import dataset_function
from pipelines import batching
from pipelines.audio import AudioInputter, AudioProblem, resampled_length
from pipelines.tokenizer import PAD_ID

log = logging.getLogger(__name__)
SHUFFLE_BUFFER = 4096  # recordings (indices only: a few bytes each)


class SkippingReader:
    """Reads recording `index` as samples at the model's rate; one that fails is read as
    no samples (which the pipeline drops), named in a warning the first time, counted."""

    def __init__(self, audio: AudioInputter, sources: Sequence, names: Sequence[str],
                 source: str):
        self.audio, self.sources, self.names, self.source = audio, sources, names, source
        self.skipped: set[int] = set()
        self._lock = threading.Lock()

    def __call__(self, index) -> np.ndarray:
        index = int(index)
        try:
            return self.audio.read(self.sources[index])
        except (AudioProblem, OSError) as error:
            reason = str(error) if isinstance(error, AudioProblem) else \
                f"it cannot be read ({error.strerror or error})"
            with self._lock:
                if index not in self.skipped:
                    self.skipped.add(index)
                    log.warning("Skipped '%s' of %s: %s (%d recording(s) skipped so far).",
                                self.names[index], self.source, reason, len(self.skipped))
                if len(self.skipped) == len(self.sources):
                    raise DataError(f"No recording of {self.source} can be read any more "
                                    f"(the last, '{self.names[index]}': {reason}).") from None
            return np.zeros([0], np.float32)


def recording_batches(audio: AudioInputter, examples: dict, ids: batching.Ragged,
                      batch_size: int, seed: int, source: str, training: bool,
                      augment: Callable | None = None) -> tf.data.Dataset:
    """((features, frames), labels) batches. `augment(samples, lengths, seed) ->
    (features, frames)` replaces plain features where given (training); its seed is
    (`seed`, the batch's index), so reading the batches again draws the same."""
    lengths = np.asarray([resampled_length(frames, rate, audio.sample_rate)
                          for frames, rate in zip(examples["frames"], examples["rate"])],
                         np.int64)
    reader = SkippingReader(audio, examples["audio"], examples["path"], source)
    labels = tf.RaggedTensor.from_row_lengths(np.asarray(ids.values, np.int32),
                                              np.asarray(ids.lengths, np.int64))
    count = len(lengths)
    dataset = tf.data.Dataset.range(count)
    if training:
        dataset = dataset.shuffle(min(count, SHUFFLE_BUFFER), seed=seed)

    def load(index):
        samples = tf.numpy_function(reader, [index], tf.float32, stateful=False)
        samples.set_shape([None])
        return samples, tf.size(samples, out_type=tf.int32), labels[index]

    dataset = dataset.map(dataset_function(load), num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=True)
    dataset = dataset.filter(dataset_function(lambda _samples, length, _labels: length > 0))
    boundaries = batching.bucket_boundaries(lengths, batch_size)
    dataset = dataset.bucket_by_sequence_length(
        element_length_func=lambda _samples, length, _labels: length,
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        padding_values=(0.0, 0, PAD_ID), pad_to_bucket_boundary=False)

    def features(index, batch):
        samples, sample_lengths, label_ids = batch
        if augment is not None:
            batch_seed = tf.stack([tf.constant(seed % 2**63, tf.int64), index])
            return augment(samples, sample_lengths, batch_seed), label_ids
        return audio.features(samples, sample_lengths), label_ids

    dataset = dataset.enumerate().map(dataset_function(features),
                                      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if training:
        # as many batches as planned even when a recording is skipped mid-epoch (a few
        # of the next pass' batches fill in): the schedule counts on the number
        batches = batching.bucketed_batches(lengths, boundaries, batch_size)
        dataset = dataset.repeat().take(batches)
    return batching.prefetched(dataset)
