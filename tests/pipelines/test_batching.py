"""Length buckets with dynamic padding: every example once, no batch padded to the corpus max."""

from __future__ import annotations

import numpy as np

from pipelines import batching
from pipelines.tokenizer import PAD_ID


def sequences(count=600, seed=0):
    rng = np.random.default_rng(seed)
    lengths = np.concatenate([rng.integers(1, 30, count - 5), [200] * 5])
    return [list(range(1, n + 1)) for n in lengths]


def test_training_batches_are_padded_to_their_own_longest():
    ids = sequences()
    targets = np.arange(len(ids))
    seen, widths = [], []
    for batch, batch_targets in batching.training_dataset(ids, targets, batch_size=32, seed=1):
        batch, batch_targets = batch.numpy(), batch_targets.numpy()
        lengths = (batch != PAD_ID).sum(axis=1)
        assert batch.shape[1] == lengths.max()  # dynamic padding: no wasted column
        for row, target in zip(batch, batch_targets):  # right-padded, content intact
            assert list(row[: len(ids[target])]) == ids[target]
        seen.extend(batch_targets)
        widths.append(batch.shape[1])
    assert sorted(seen) == list(range(len(ids)))
    assert np.median(widths) < 40  # only batches holding the long tail are wide


def test_reshuffled_each_epoch_but_seeded():
    ids, targets = sequences(200), np.arange(200)
    dataset = batching.training_dataset(ids, targets, batch_size=16, seed=3)
    first = [t.numpy().tolist() for _, t in dataset]
    second = [t.numpy().tolist() for _, t in dataset]
    again = [t.numpy().tolist() for _, t in batching.training_dataset(ids, targets, 16, seed=3)]
    assert first != second and first == again


def test_sorted_batches_cover_everything_in_length_order():
    ids = sequences(100)
    positions = []
    for batch_positions, batch in batching.sorted_batches(ids, 16):
        assert batch.shape == (len(batch_positions), max(len(ids[i]) for i in batch_positions))
        positions.extend(batch_positions)
    assert sorted(positions) == list(range(100))


def test_truncate_and_empty_texts():
    assert batching.truncate([[5, 6, 7], []], 2) == [[5, 6], [PAD_ID]]
    assert batching.pad_batch([[4], [4, 5, 6]]).tolist() == [[4, 0, 0], [4, 5, 6]]


def test_bucket_boundaries_follow_quantiles():
    lengths = list(range(1, 1001))
    edges = batching.bucket_boundaries(lengths, batch_size=32)
    assert edges == sorted(edges) and 8 <= len(edges) <= 16
    assert batching.bucket_boundaries([3, 4, 5], batch_size=32) == []
