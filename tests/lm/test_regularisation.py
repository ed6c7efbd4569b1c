"""AWD-LSTM's regularisers: locked dropout, embedding (row) dropout, weight drop.

Each acts while training only: the tests check the masks' shapes (shared over time,
whole rows), that inference is untouched, and that a regularised run exports and
reloads with the run's own outputs and no random op in any exported graph.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from apps import runner
from apps.layers import EmbeddingDropout, RecurrentEncoder, sequence_dropout
from apps.lm import task
from apps.lm.model import LanguageModel
from apps.sentiment.task import TASK as SENTIMENT
from tests.cli_helpers import run_cli

REGULARISED = dict(dropout=0.2, dropout_kind="locked", embedding_dropout=0.1,
                   weight_drop=0.5, epochs=1, units=24, embedding_dim=16)


@pytest.fixture(scope="module")
def regularised_run(tmp_path_factory, lm_settings):
    return runner.train(task.TASK, lm_settings(**REGULARISED),
                        tmp_path_factory.mktemp("runs") / "regularised", verbose=0)[0]


def test_locked_dropout_draws_one_mask_per_sequence_shared_over_time():
    ones = tf.ones([6, 20, 16])
    locked = sequence_dropout(0.5, "locked")(ones, training=True).numpy()
    np.testing.assert_array_equal(locked, np.repeat(locked[:, :1], 20, axis=1))
    assert set(np.unique(locked)) == {0.0, 2.0}
    standard = sequence_dropout(0.5, "standard")(ones, training=True).numpy()
    assert not np.array_equal(standard, np.repeat(standard[:, :1], 20, axis=1))
    np.testing.assert_array_equal(sequence_dropout(0.5, "locked")(ones, training=False), ones)


def test_the_language_model_and_its_encoder_use_the_locked_kind():
    model = LanguageModel(30, 8, dropout=0.5, encoder=dict(
        cell="gru", units=8, num_layers=2, dropout=0.5, dropout_kind="locked"))
    dropouts = [model.embedding_dropout, model.output_dropout, *model.encoder.dropouts]
    assert [layer.noise_shape for layer in dropouts] == [(None, 1, None)] * 4


def test_embedding_dropout_drops_whole_rows_and_is_the_identity_at_inference():
    vocab, layer = 12, EmbeddingDropout(0.5, 12, seed=3)
    ids = tf.constant(np.random.default_rng(0).integers(0, vocab, size=[4, 50]), tf.int32)
    embedded = tf.random.stateless_uniform([4, 50, 8], seed=[1, 2]) + 0.5
    ratio = (layer(ids, embedded, training=True) / embedded).numpy()
    ids = ids.numpy()
    for token in np.unique(ids):  # one factor per token, everywhere it occurs, every unit
        factors = ratio[ids == token]
        np.testing.assert_allclose(factors, factors[0, 0], rtol=1e-6)
        assert factors[0, 0] == pytest.approx(0.0) or factors[0, 0] == pytest.approx(2.0)
    kept = {round(float(ratio[ids == token][0, 0])) for token in np.unique(ids)}
    assert kept == {0, 2}  # some rows dropped, some kept (and scaled)
    np.testing.assert_array_equal(layer(ids, embedded, training=False), embedded)


def test_weight_drop_changes_training_outputs_but_not_inference():
    encoder = dict(cell="lstm", units=16, num_layers=2, implementation="fused")
    dropped = LanguageModel(20, 8, encoder={**encoder, "weight_drop": 0.5})
    plain = LanguageModel(20, 8, encoder=encoder)
    ids = tf.constant(np.random.default_rng(1).integers(0, 20, size=[3, 12]), tf.int32)
    dropped(ids), plain(ids)
    plain.set_weights(dropped.get_weights())  # the same variables: weight drop adds none
    inference = dropped.run(ids, training=False)[0]
    np.testing.assert_array_equal(inference, plain.run(ids, training=False)[0])
    first, second = (dropped.run(ids, training=True)[0] for _ in range(2))
    np.testing.assert_array_equal(plain.run(ids, training=True)[0], inference)
    assert not np.allclose(first, inference) and not np.allclose(first, second)
    with tf.GradientTape() as tape:  # the gradient reaches the undropped variable
        loss = tf.reduce_sum(dropped.run(ids, training=True)[0])
    kernel = dropped.encoder.rnns[0][0].cell.recurrent_kernel
    gradient = tape.gradient(loss, kernel.value)
    assert gradient is not None and 0.2 < float(np.mean(gradient.numpy() == 0)) < 0.8


def test_weight_drop_trains_through_the_fused_recurrence_even_when_keras_is_asked():
    encoder = RecurrentEncoder("gru", 8, bidirectional=True, implementation="keras",
                               weight_drop=0.3)
    assert encoder._use_fused(training=True) and not encoder._use_fused(training=False)
    x = tf.random.stateless_normal([2, 5, 4], seed=[3, 4])
    sequence, _ = encoder(x, training=True)
    assert sequence.shape == (2, 5, 16)


def test_a_regularised_run_exports_and_reloads_with_the_runs_outputs(regularised_run, corpus,
                                                                     tmp_path):
    config = json.loads((regularised_run / "config.json").read_text())
    assert {k: config[k] for k in ("embedding_dropout", "dropout_kind", "weight_drop")} == \
        {"embedding_dropout": 0.1, "dropout_kind": "locked", "weight_drop": 0.5}
    exported = runner.export(task.TASK, regularised_run, tmp_path / "saved_models")
    assert runner.evaluate(task.TASK, regularised_run, str(corpus[1])) == \
        runner.evaluate(task.TASK, exported, str(corpus[1]))
    import tensorflow_text  # noqa: F401

    # `score` reads the model and nothing else (the generating signatures sample).
    graph = tf.saved_model.load(str(exported)).signatures["score"].graph.as_graph_def()
    ops = {node.op for node in graph.node}
    ops |= {node.op for function in graph.library.function for node in function.node_def}
    assert "While" in ops or "StatelessWhile" in ops  # the recurrence's loop was read
    assert not {op for op in ops if "Random" in op}  # no dropout of any kind is exported


def test_init_from_a_regularised_lm_loads_into_a_classifier_and_an_lm(
        regularised_run, tmp_path, lm_settings, sentiment_settings):
    source = runner.load(task.TASK, regularised_run).model
    sizes = dict(units=REGULARISED["units"], embedding_dim=REGULARISED["embedding_dim"])
    tuned, _ = runner.train(task.TASK, lm_settings(
        init_from=str(regularised_run), epochs=1, freeze_epochs=1, weight_drop=0.0,
        embedding_dropout=0.0, dropout=0.0, **sizes), tmp_path / "tuned", verbose=0)
    np.testing.assert_array_equal(runner.load(task.TASK, tuned).model.embedding.get_weights()[0],
                                  source.embedding.get_weights()[0])
    path, _ = runner.train(SENTIMENT, sentiment_settings(
        init_from=str(regularised_run), epochs=1, freeze_epochs=1, bidirectional=False,
        members=1, tokenizer="char", vocab_size=2000, **sizes), tmp_path / "classifier",
        verbose=0)
    classifier = runner.load(SENTIMENT, path).model.members[0]
    for mine, theirs in zip(classifier.encoder.get_weights(), source.encoder.get_weights()):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("flag, value", [("--embedding-dropout", "1"), ("--weight-drop", "-0.1"),
                                         ("--dropout-kind", "gaussian")])
def test_bad_regularisation_options_are_one_sentence_errors(flag, value, corpus, tmp_path):
    result = run_cli("lm", "train", "--data", corpus[0], flag, value,
                     "--output", tmp_path / "run")
    assert result.exit_code != 0
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and flag in errors[0] and errors[0].count(". ") == 0
    assert not (tmp_path / "run").exists()
