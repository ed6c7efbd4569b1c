"""Length buckets with dynamic padding: every example once, no batch padded to the corpus max."""

from __future__ import annotations

import numpy as np

from pipelines import batching
from pipelines.batching import Ragged
from pipelines.tokenizer import PAD_ID


def sequences(count=600, seed=0):
    rng = np.random.default_rng(seed)
    lengths = np.concatenate([rng.integers(1, 30, count - 5), [200] * 5])
    return [list(range(1, n + 1)) for n in lengths]


def test_training_batches_are_padded_to_their_own_longest():
    ids = sequences()
    targets = np.arange(len(ids))
    seen, widths = [], []
    dataset = batching.bucketed_dataset([Ragged.from_rows(ids), targets], batch_size=32, seed=1)
    for batch, batch_targets in dataset:
        batch, batch_targets = batch.numpy(), batch_targets.numpy()
        lengths = (batch != PAD_ID).sum(axis=1)
        assert batch.shape[1] == lengths.max()  # dynamic padding: no wasted column
        for row, target in zip(batch, batch_targets):  # right-padded, content intact
            assert list(row[: len(ids[target])]) == ids[target]
        seen.extend(batch_targets)
        widths.append(batch.shape[1])
    assert sorted(seen) == list(range(len(ids)))
    assert np.median(widths) < 40  # only batches holding the long tail are wide
    assert int(dataset.cardinality()) == len(widths)  # known before the epoch runs


def test_reshuffled_each_epoch_but_seeded():
    ids, targets = sequences(200), np.arange(200)
    columns = [Ragged.from_rows(ids), targets]
    dataset = batching.bucketed_dataset(columns, batch_size=16, seed=3)
    first = [t.numpy().tolist() for _, t in dataset]
    second = [t.numpy().tolist() for _, t in dataset]
    again = [t.numpy().tolist() for _, t in batching.bucketed_dataset(columns, 16, seed=3)]
    assert first != second and first == again


def test_several_ragged_columns_pad_each_to_its_own_longest():
    """Pairs (a source and a target, or audio samples and ids) batch side by side."""
    rng = np.random.default_rng(2)
    sources = [list(range(1, n + 1)) for n in rng.integers(1, 20, 300)]
    targets = [[7] * n for n in rng.integers(1, 40, 300)]
    samples = Ragged.from_rows([rng.normal(size=n) for n in rng.integers(1, 9, 300)],
                               dtype=np.float32)
    dataset = batching.bucketed_dataset(
        [Ragged.from_rows(sources), Ragged.from_rows(targets), samples, np.arange(300)],
        batch_size=16, seed=0, shuffle=False)
    seen = []
    for source, target, audio, index in dataset.as_numpy_iterator():
        assert source.dtype == np.int32 and audio.dtype == np.float32
        for row, i in enumerate(index):
            assert list(source[row, : len(sources[i])]) == sources[i]
            assert (source[row, len(sources[i]):] == PAD_ID).all()
            assert list(target[row, : len(targets[i])]) == targets[i]
            np.testing.assert_array_equal(audio[row, : samples.lengths[i]], samples.row(i))
        assert target.shape[1] == max(len(targets[i]) for i in index)
        seen.extend(index)
    assert sorted(seen) == list(range(300))


def test_ragged_rows_round_trip():
    rows = [[1, 2, 3], [], [4]]
    ragged = Ragged.from_rows(rows)
    assert ragged.rows() == rows and len(ragged) == 3 and ragged.row(2).tolist() == [4]
    assert Ragged.concat([ragged, ragged]).rows() == rows + rows


def test_sorted_batches_cover_everything_in_length_order():
    ids = Ragged.from_rows(sequences(100))
    positions = []
    for batch_positions, batch in batching.sorted_batches(ids, 16):
        assert batch.shape == (len(batch_positions),
                               max(ids.lengths[i] for i in batch_positions))
        positions.extend(batch_positions)
    assert sorted(positions) == list(range(100))


def test_pad_batch_pads_to_the_longest_row():
    assert batching.pad_batch([[4], [4, 5, 6]]).tolist() == [[4, 0, 0], [4, 5, 6]]


def test_bucket_boundaries_follow_quantiles():
    lengths = list(range(1, 1001))
    edges = batching.bucket_boundaries(lengths, batch_size=32)
    assert edges == sorted(edges) and 8 <= len(edges) <= 16
    assert batching.bucket_boundaries([3, 4, 5], batch_size=32) == []
