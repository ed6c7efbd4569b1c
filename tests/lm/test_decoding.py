"""One-step generation equals the full sequence; sampling rules; scoring on known cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from apps import decoding as search
from apps.lm import decoding
from apps.lm.model import LanguageModel
from apps.lm.task import stream_report
from pipelines.tokenizer import BOS_ID, PAD_ID, UNK_ID

VOCAB = 23


def tiny_model(cell="lstm", tie=False, units=12, embedding_dim=8, layers=2):
    model = LanguageModel(VOCAB, embedding_dim, tie_embeddings=tie,
                          encoder=dict(cell=cell, units=units, num_layers=layers,
                                       implementation="fused"))
    model(tf.zeros([1, 1], tf.int32))
    return model


def random_ids(rows, steps, seed=0):
    return np.random.default_rng(seed).integers(4, VOCAB, size=(rows, steps)).astype("int32")


@pytest.mark.parametrize("cell,tie,units", [("lstm", False, 12), ("gru", True, 8),
                                            ("rnn", True, 12)])
def test_step_by_step_equals_full_sequence_logits(cell, tie, units):
    model = tiny_model(cell, tie, units)
    ids = random_ids(3, 9)
    logits, final = model.run(ids)
    states = model.zero_states(3)
    for t in range(9):
        step_logits, states = model.step(ids[:, t], states)
        np.testing.assert_allclose(step_logits, logits[:, t], atol=1e-5)
    for a, b in zip(tf.nest.flatten(states), tf.nest.flatten(final)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_carried_state_equals_one_long_pass():
    model = tiny_model()
    ids = random_ids(2, 12)
    whole, _ = model.run(ids)
    first, states = model.run(ids[:, :5])
    second, _ = model.run(ids[:, 5:], states)
    np.testing.assert_allclose(tf.concat([first, second], 1), whole, atol=1e-5)


def test_log_likelihood_reads_chunks_as_one_stream():
    model = tiny_model()
    ids = random_ids(2, 11)
    lengths = tf.constant([11, 6])
    logits, _ = model.run(np.concatenate([np.full([2, 1], BOS_ID, np.int32), ids[:, :-1]], 1))
    log_probs = tf.nn.log_softmax(logits).numpy()
    expected = [sum(log_probs[r, t, ids[r, t]] for t in range(n)) for r, n in enumerate([11, 6])]
    score = tf.function(decoding.log_likelihood)
    for chunk in (3, 1024):
        got = score(model, ids, lengths, chunk=chunk).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_nats_per_char_on_a_uniform_model():
    """Zero output weights: every token has probability 1/V, so the answer is known."""
    model = tiny_model()
    model.logits_layer.set_weights([np.zeros_like(w) for w in model.logits_layer.get_weights()])
    ids = random_ids(1, 40)
    total = float(tf.function(decoding.log_likelihood)(model, ids, tf.constant([40]))[0])
    assert total == pytest.approx(-40 * math.log(VOCAB), rel=1e-6)
    report = stream_report(total, tokens=40, chars=100)  # e.g. 2.5 characters per token
    assert report["nats_per_char"] == pytest.approx(40 * math.log(VOCAB) / 100)
    assert report["bits_per_char"] == pytest.approx(report["nats_per_char"] / math.log(2))
    assert report["perplexity"] == pytest.approx(VOCAB)


def test_greedy_top_k_top_p_and_special_ids():
    logits = tf.constant([[9.0, 9.0, 9.0, 9.0, 1.0, 3.0, 2.0, 0.5]] * 2)
    row = lambda value, dtype: tf.constant([value] * 2, dtype)  # noqa: E731
    choose = tf.function(search.next_tokens)
    pick = lambda temperature, k=0, p=1.0, seed=1, position=0: choose(  # noqa: E731
        logits, row(temperature, tf.float32), row(k, tf.int32), row(p, tf.float32),
        tf.constant([seed, seed + 1], tf.int64), tf.constant(position)).numpy().tolist()
    assert pick(0.0) == [5, 5]  # special ids 0-3 are never produced
    assert pick(1.0, k=1) == [5, 5] and pick(1.0, p=0.01) == [5, 5]
    draws = {tuple(pick(1.0, k=2, seed=s)) for s in range(40)}
    assert {t for d in draws for t in d} == {5, 6}
    samples = [pick(1.5, seed=s, position=p) for s in range(20) for p in range(5)]
    assert all(t >= 4 for s in samples for t in s)
    assert pick(1.0, seed=7, position=3) == pick(1.0, seed=7, position=3)


def test_generate_loop_rows_equal_single_rows():
    """Prompts of different lengths in one batch give what each gives alone."""
    model = tiny_model()
    prompts = [[BOS_ID, 5, 6, 7], [BOS_ID], [BOS_ID, 9, 10]]
    width = max(map(len, prompts))
    padded = np.array([p + [PAD_ID] * (width - len(p)) for p in prompts], np.int32)
    lengths = tf.constant([len(p) for p in prompts])
    knobs = lambda n: (tf.fill([n], 0.7), tf.fill([n], 0), tf.fill([n], 1.0),  # noqa: E731
                       tf.constant([3], tf.int64))
    max_new = tf.constant([5, 7, 0])
    loop = tf.function(lambda *args: decoding.generate_loop(model, *args))
    together = loop(padded, lengths, max_new, *knobs(3)[:3],
                    tf.constant([3, 3, 3], tf.int64)).to_list()
    assert [len(row) for row in together] == [5, 7, 0]
    for r, prompt in enumerate(prompts):
        alone = loop(np.array([prompt], np.int32), tf.constant([len(prompt)]),
                     max_new[r : r + 1], *knobs(1)).to_list()[0]
        assert alone == together[r]
    assert UNK_ID not in sum(together, [])


def test_n_best_continuations_are_ordered_and_the_first_is_the_one_best():
    model = tiny_model()
    prompts = np.array([[BOS_ID, 5, 6], [BOS_ID, 9, PAD_ID]], np.int32)
    lengths, max_new = tf.constant([3, 2]), tf.constant([4, 3])
    found = decoding.n_best_loop(model, prompts, lengths, max_new, 3)
    scores, ids = found.scores.numpy(), found.ids.numpy()
    assert (np.diff(scores, axis=1) <= 0).all() and found.lengths.numpy().tolist() == [[4] * 3,
                                                                                       [3] * 3]
    for row in range(2):
        assert len({tuple(hypothesis) for hypothesis in ids[row]}) == 3
    # one beam is greedy: the sampler at temperature 0 continues the same way
    best = decoding.n_best_loop(model, prompts, lengths, max_new, 1)
    knobs = (tf.zeros([2]), tf.zeros([2], tf.int32), tf.ones([2]), tf.constant([1, 1], tf.int64))
    sampled = decoding.generate_loop(model, prompts, lengths, max_new, *knobs).to_list()
    assert [row[:n] for row, n in zip(best.ids.numpy()[:, 0].tolist(), [4, 3])] == sampled
    # an n-best score is the log-likelihood the scorer gives the continuation
    for row, prompt in enumerate([[5, 6], [9]]):
        whole = prompt + ids[row, 0, : found.lengths.numpy()[row, 0]].tolist()
        total = lambda ids: decoding.log_likelihood(  # noqa: E731
            model, np.array([ids], np.int32), tf.constant([len(ids)]))[0]
        gain = total(whole) - total(prompt)
        assert float(gain) == pytest.approx(scores[row, 0], abs=1e-4)
