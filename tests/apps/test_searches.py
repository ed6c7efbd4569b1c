"""The shared searches on hand-written decoders, where the best answers are known."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from apps import decoding
from pipelines.tokenizer import BOS_ID, EOS_ID

A, B = 4, 5  # two real tokens after the four special ids


class TableDecoder:
    """Next-token probabilities that depend only on the previous token; attention [N, 3]
    puts its weight on source position (previous token mod 3)."""

    def __init__(self, table):
        self.log_table = tf.math.log(tf.constant(table, tf.float32) + 1e-12)

    def initial_state(self, rows):
        return tf.zeros([rows, 1]), tf.zeros([rows, 1])

    def step(self, previous, state, context):
        return (tf.gather(self.log_table, previous), state,
                tf.one_hot(previous % 3, 3))


def probabilities(**rows):
    """A [6, 6] table: row = previous token, column = next token."""
    table = np.full([6, 6], 1e-9, np.float32)
    for previous, row in rows.items():
        table[{"bos": BOS_ID, "a": A, "b": B}[previous]] = row
    return table


# After the begin id, A is likelier than B; after A every continuation is unlikely, after
# B the end is certain: greedy takes A (0.6) then ends at 0.6 * 0.35, beam search finds
# B then the end at 0.4 * 1.0.
TRAP = probabilities(bos=[0, 0, 0, 0, 0.6, 0.4], a=[0, 0, 0, 0.35, 0.33, 0.32],
                     b=[0, 0, 0, 1.0, 0, 0])


def run(search, *args, **kwargs):
    decoder = TableDecoder(TRAP)
    return decoding.first(search(decoder, *decoder.initial_state(2), tf.constant([3, 3]),
                                 *args, **kwargs))


def test_beam_search_finds_the_better_output_greedy_misses():
    greedy = run(decoding.greedy_search)
    beam = run(decoding.beam_search, 2)
    assert greedy.ids.numpy()[0, :2].tolist() == [A, EOS_ID]
    assert beam.ids.numpy()[0, :2].tolist() == [B, EOS_ID]
    assert np.allclose(greedy.scores.numpy(), math.log(0.6 * 0.35), atol=1e-4)
    assert np.allclose(beam.scores.numpy(), math.log(0.4), atol=1e-4)
    assert beam.lengths.numpy().tolist() == greedy.lengths.numpy().tolist() == [1, 1]
    # the attention of the step that chose each token: begin id 2 -> position 2
    assert greedy.alignment.numpy()[0, :2].tolist() == [BOS_ID % 3, A % 3]


def test_beam_of_one_is_greedy_and_limits_force_the_end():
    loop = TableDecoder(probabilities(bos=[0, 0, 0, 0.1, 0.9, 0], a=[0, 0, 0, 0.2, 0.8, 0]))
    limits = tf.constant([0, 2, 5])
    state, context = loop.initial_state(3)
    greedy = decoding.greedy_search(loop, state, context, limits)
    beam = decoding.beam_search(loop, state, context, limits, 1)
    assert np.array_equal(greedy.ids.numpy(), beam.ids.numpy())
    assert np.allclose(greedy.scores.numpy(), beam.scores.numpy())
    assert greedy.lengths.numpy()[:, 0].tolist() == [0, 2, 5]  # A repeats to each limit


def test_n_best_is_ordered_distinct_and_starts_with_the_one_best():
    decoder = TableDecoder(TRAP)
    state, context = decoder.initial_state(2)
    limits = tf.constant([3, 3])
    best = decoding.first(decoding.beam_search(decoder, state, context, limits, 4))
    found = decoding.beam_search(decoder, state, context, limits, 4, n_best=3)
    scores = found.scores.numpy()
    assert scores.shape == (2, 3) and (np.diff(scores, axis=1) <= 0).all()
    hypotheses = [tuple(ids[:n]) for ids, n in zip(found.ids.numpy()[0], found.lengths.numpy()[0])]
    assert len(set(hypotheses)) == 3
    assert np.array_equal(found.ids.numpy()[:, 0, :best.ids.shape[1]], best.ids.numpy())
    assert np.allclose(scores[:, 0], best.scores.numpy())
    # the second best is A then the end: 0.6 * 0.35
    assert hypotheses[1] == (A,) and math.isclose(scores[0, 1], math.log(0.21), rel_tol=1e-4)


def test_forced_decoding_gives_the_search_its_own_score():
    decoder = TableDecoder(TRAP)
    state, context = decoder.initial_state(2)
    found = decoding.beam_search(decoder, state, context, tf.constant([3, 3]), 4, n_best=3)
    ids = tf.reshape(found.ids, [6, -1])  # every hypothesis, end id included
    state, context = decoder.initial_state(6)
    token_scores, alignment = decoding.forced_log_probs(decoder, state, context, ids)
    assert np.allclose(tf.reduce_sum(token_scores, 1), tf.reshape(found.scores, [-1]),
                       atol=1e-5)
    lengths = tf.reshape(found.lengths, [-1]).numpy()
    assert np.array_equal(alignment.numpy()[:, 0], [BOS_ID % 3] * 6)
    assert all((alignment.numpy()[r, n + 1:] == -1).all() for r, n in enumerate(lengths))


class CountingDecoder:
    """Row r writes A for context[r] steps, then the end; its state counts its steps and
    its attention is on position (steps mod 3): a row that received another row's
    state or context ends at another length."""

    def step(self, previous, state, context):
        ending = state[:, 0] >= context[:, 0]
        logits = 9.0 * tf.where(ending[:, None], tf.one_hot([EOS_ID], 6), tf.one_hot([A], 6))
        return logits, state + 1, tf.one_hot(tf.cast(state[:, 0], tf.int32) % 3, 3)


def test_rows_leave_a_greedy_batch_as_they_finish_and_every_row_is_its_own():
    wanted = [5, 0, 7, 1, 1, 3, 2, 6, 0, 4]  # the running rows halve several times
    decoder, context = CountingDecoder(), tf.constant(wanted, tf.float32)[:, None]
    batch = decoding.first(decoding.greedy_search(
        decoder, tf.zeros([len(wanted), 1]), context, tf.fill([len(wanted)], 10)))
    assert batch.lengths.numpy().tolist() == wanted
    for row, length in enumerate(wanted):
        alone = decoding.first(decoding.greedy_search(decoder, tf.zeros([1, 1]),
                                                      context[row : row + 1], tf.constant([10])))
        width = length + 1
        assert batch.ids.numpy()[row, :width].tolist() == [A] * length + [EOS_ID]
        assert not batch.ids.numpy()[row, width:].any()  # padding after the end
        assert np.array_equal(batch.ids.numpy()[row, :width], alone.ids.numpy()[0, :width])
        assert batch.alignment.numpy()[row, :width].tolist() == [t % 3 for t in range(width)]
        assert (batch.alignment.numpy()[row, width:] == -1).all()
        assert np.isclose(batch.scores.numpy()[row], alone.scores.numpy()[0])


def test_a_vocabulary_without_an_end_runs_every_row_to_its_limit():
    decoder = TableDecoder(TRAP)
    state, context = decoder.initial_state(2)
    limits = tf.constant([2, 4])
    for found in (decoding.greedy_search(decoder, state, context, limits,
                                         vocabulary=decoding.CONTINUATION),
                  decoding.beam_search(decoder, state, context, limits, 3, n_best=2,
                                       vocabulary=decoding.CONTINUATION)):
        assert found.lengths.numpy()[:, 0].tolist() == [2, 4]
        assert EOS_ID not in found.ids.numpy()


def test_search_runs_inside_a_graph_with_tensor_beam_and_n_best():
    @tf.function(input_signature=[tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32)])
    def searched(beam_size, n_best):
        decoder = TableDecoder(TRAP)
        return decoding.search(decoder, *decoder.initial_state(2), tf.constant([3, 3]),
                               beam_size, n_best=n_best).ids

    assert searched(tf.constant(2), tf.constant(1)).numpy()[0, 0, :2].tolist() == [B, EOS_ID]
    assert searched(tf.constant(1), tf.constant(1)).numpy()[0, 0, :2].tolist() == [A, EOS_ID]
    assert searched(tf.constant(1), tf.constant(2)).numpy().shape[:2] == (2, 2)


def test_gather_tree_follows_parents_back():
    step_ids = tf.constant([[[1, 2]], [[3, 4]], [[5, 6]]])  # [T=3, B=1, K=2]
    parents = tf.constant([[[0, 0]], [[1, 0]], [[1, 1]]])
    tree = decoding.gather_tree(step_ids, parents).numpy()[:, 0, :].T.tolist()
    assert tree == [[1, 4, 5], [1, 4, 6]]


def test_the_chunked_top_k_is_tensorflows_top_k_ties_included():
    rng = np.random.default_rng(0)
    for rows, width, k in ((7, 1250, 8), (3, 40, 8), (2, 9, 9), (5, 8003, 6), (4, 100, 1)):
        values = rng.normal(size=[rows, width]).astype(np.float32)
        values[:, ::7] = np.round(values[:, ::7])  # many exact ties, some among the best
        values[0, :] = 1.0  # a row of nothing but ties
        found, ids = decoding._top_k(tf.constant(values), tf.constant(k))
        expected, expected_ids = tf.math.top_k(values, k)
        assert np.array_equal(found.numpy(), expected.numpy())
        assert np.array_equal(ids.numpy(), expected_ids.numpy()), (rows, width, k)


def test_a_search_not_asked_for_alignments_finds_the_same_and_aligns_nothing():
    for search, args in ((decoding.greedy_search, ()), (decoding.beam_search, (2, 0.6, 2))):
        aligned = run(search, *args)
        plain = run(search, *args, alignments=False)
        for name in ("ids", "lengths", "scores"):
            assert np.array_equal(getattr(aligned, name).numpy(), getattr(plain, name).numpy())
        assert (aligned.alignment.numpy()[:, 0] >= 0).all()
        assert (plain.alignment.numpy() == decoding.NO_ALIGNMENT).all()
