"""Greedy and beam search on hand-written step functions, where the best answer is known."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from apps.translation import decoding
from pipelines.tokenizer import BOS_ID, EOS_ID

A, B = 4, 5  # two real tokens after the four special ids


def table_step(table):
    """A step function whose next-token probabilities depend only on the previous token."""
    log_table = tf.math.log(tf.constant(table, tf.float32) + 1e-12)

    def step(previous, state, context):
        return tf.gather(log_table, previous), state

    return step


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


def run(search, *args):
    state, context = tf.zeros([2, 1]), tf.zeros([2, 1])
    return search(table_step(TRAP), state, context, tf.constant([3, 3]), *args)


def test_beam_search_finds_the_better_output_greedy_misses():
    greedy = run(decoding.greedy_search)
    beam = run(decoding.beam_search, 2)
    assert greedy.ids.numpy()[0, :2].tolist() == [A, EOS_ID]
    assert beam.ids.numpy()[0, :2].tolist() == [B, EOS_ID]
    assert np.allclose(greedy.scores.numpy(), math.log(0.6 * 0.35), atol=1e-4)
    assert np.allclose(beam.scores.numpy(), math.log(0.4), atol=1e-4)
    assert (beam.scores.numpy() > greedy.scores.numpy()).all()
    assert beam.lengths.numpy().tolist() == greedy.lengths.numpy().tolist() == [1, 1]


def test_beam_of_one_is_greedy_and_limits_force_the_end():
    loop = probabilities(bos=[0, 0, 0, 0.1, 0.9, 0], a=[0, 0, 0, 0.2, 0.8, 0])
    limits = tf.constant([0, 2, 5])
    state, context = tf.zeros([3, 1]), tf.zeros([3, 1])
    greedy = decoding.greedy_search(table_step(loop), state, context, limits)
    beam = decoding.beam_search(table_step(loop), state, context, limits, 1)
    assert np.array_equal(greedy.ids.numpy(), beam.ids.numpy())
    assert np.allclose(greedy.scores.numpy(), beam.scores.numpy())
    assert greedy.lengths.numpy().tolist() == [0, 2, 5]  # A repeats until each row's limit


def test_search_runs_inside_a_graph_with_a_tensor_beam_size():
    @tf.function(input_signature=[tf.TensorSpec([], tf.int32)])
    def searched(beam_size):
        return run(decoding.beam_search, beam_size).ids

    assert searched(tf.constant(2)).numpy()[0, :2].tolist() == [B, EOS_ID]
    assert searched(tf.constant(1)).numpy()[0, :2].tolist() == [A, EOS_ID]


def test_gather_tree_follows_parents_back():
    step_ids = tf.constant([[[1, 2]], [[3, 4]], [[5, 6]]])  # [T=3, B=1, K=2]
    parents = tf.constant([[[0, 0]], [[1, 0]], [[1, 1]]])
    tree = decoding.gather_tree(step_ids, parents).numpy()[:, 0, :].T.tolist()
    assert tree == [[1, 4, 5], [1, 4, 6]]
