"""Shared RNN layers: the fused CPU recurrence equals stock Keras, masks hold, cuDNN stays on."""

from __future__ import annotations

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf

from apps.layers import (
    CELLS,
    CudnnUnavailable,
    RecurrentEncoder,
    SequencePooling,
    cudnn_eligible_arguments,
    traced_recurrence,
)


def batch(seed=0, lengths=(7, 3, 5, 1)):
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(len(lengths), max(lengths), 6)).astype("float32")
    mask = np.arange(max(lengths))[None, :] < np.array(lengths)[:, None]
    return tf.constant(inputs * mask[:, :, None]), tf.constant(mask)


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("bidirectional", [True, False])
def test_fused_recurrence_equals_stock_keras_layers(cell, bidirectional):
    inputs, mask = batch()
    fused = RecurrentEncoder(cell, 5, num_layers=2, bidirectional=bidirectional,
                             implementation="fused")
    fused(inputs, mask=mask)
    stock = RecurrentEncoder.from_config({**fused.get_config(), "implementation": "keras"})
    stock(inputs, mask=mask)
    stock.set_weights(fused.get_weights())
    fused_seq, fused_states = fused(inputs, mask=mask)
    stock_seq, stock_states = stock(inputs, mask=mask)
    np.testing.assert_allclose(fused_seq, stock_seq, atol=1e-5)
    for fused_layer, stock_layer in zip(fused_states, stock_states):
        for a, b in zip(fused_layer, stock_layer):
            np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_a_row_with_no_real_step_gives_zeros_and_its_initial_state_on_both_paths(cell):
    """An empty text: cuDNN would refuse it, so the Keras path runs it one step and resets it."""
    inputs, mask = batch(lengths=(4, 0, 2, 0))
    fused = RecurrentEncoder(cell, 5, num_layers=2, bidirectional=True, implementation="fused")
    fused(inputs, mask=mask)
    stock = RecurrentEncoder.from_config({**fused.get_config(), "implementation": "keras"})
    stock(inputs, mask=mask)
    stock.set_weights(fused.get_weights())
    initial = [tuple(tf.random.normal(s.shape, seed=1) for s in layer)
               for layer in fused.zero_states(4)]
    for encoder in (fused, stock):
        sequence, states = encoder(inputs, mask=mask, initial_states=initial)
        np.testing.assert_allclose(tf.gather(sequence, [1, 3]), 0.0)
        for got, start in zip(tf.nest.flatten(states), tf.nest.flatten(initial)):
            np.testing.assert_allclose(tf.gather(got, [1, 3], axis=1),
                                       tf.gather(start, [1, 3], axis=1), atol=1e-6)
    np.testing.assert_allclose(fused(inputs, mask=mask)[0], stock(inputs, mask=mask)[0],
                               atol=1e-5)


def test_gpu_only_tracing_refuses_a_cell_without_cudnn_kernels():
    inputs, mask = batch()
    encoder = RecurrentEncoder("rnn", 4, implementation="keras")
    with traced_recurrence("cudnn"), pytest.raises(CudnnUnavailable, match="SimpleRNN"):
        encoder(inputs, mask=mask)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_padding_does_not_change_results(cell):
    encoder = RecurrentEncoder(cell, 4, bidirectional=True, implementation="fused")
    inputs, mask = batch(lengths=(3,))
    padded = tf.pad(inputs, [[0, 0], [0, 4], [0, 0]], constant_values=9.0)
    padded_mask = tf.pad(mask, [[0, 0], [0, 4]])
    short, short_states = encoder(inputs, mask=mask)
    long, long_states = encoder(padded, mask=padded_mask)
    np.testing.assert_allclose(long[:, :3], short, atol=1e-6)
    np.testing.assert_allclose(long[:, 3:], 0.0)
    np.testing.assert_allclose(encoder.last_output(long_states),
                               encoder.last_output(short_states), atol=1e-6)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_step_by_step_equals_whole_sequence(cell):
    encoder = RecurrentEncoder(cell, 4, num_layers=2, bidirectional=False, residual=True,
                               implementation="fused")
    inputs, mask = batch(lengths=(6, 6))
    sequence, _ = encoder(inputs, mask=mask)
    states = encoder.zero_states(2)
    for t in range(6):
        output, states = encoder.step(inputs[:, t], states)
        np.testing.assert_allclose(output, sequence[:, t], atol=1e-5)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_default_arguments_keep_cudnn_eligible(cell):
    """Keras picks cuDNN only with these values (keras/src/layers/rnn/{lstm,gru}.py)."""
    encoder = RecurrentEncoder(cell, 8, bidirectional=True)
    for layer in [rnn for layers in encoder.rnns for rnn in layers]:
        config = layer.get_config()
        assert config["activation"] == "tanh" and config["use_bias"] is True
        assert config["recurrent_dropout"] == 0 and config["unroll"] is False
        if cell != "rnn":
            assert config["recurrent_activation"] == "sigmoid"
        if cell == "gru":
            assert config["reset_after"] is True
    assert "recurrent_dropout" not in inspect.signature(RecurrentEncoder).parameters
    assert cudnn_eligible_arguments(cell)["recurrent_dropout"] == 0.0


def test_encoder_and_pooling_round_trip_through_keras_saving(tmp_path):
    ids = keras.Input((None, 6))
    mask = keras.Input((None,), dtype="bool")
    sequence, _ = RecurrentEncoder("gru", 4, num_layers=2, dropout=0.1)(ids, mask=mask)
    pooled = SequencePooling("attention")(sequence, mask)
    model = keras.Model([ids, mask], pooled)
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    inputs, mask_values = batch()
    np.testing.assert_allclose(model([inputs, mask_values]), restored([inputs, mask_values]),
                               atol=1e-6)


@pytest.mark.parametrize("mode", ["mean", "max", "attention"])
def test_pooling_ignores_padded_steps(mode):
    pooling = SequencePooling(mode)
    sequence = tf.constant([[[1.0, -2.0], [3.0, 0.5], [100.0, 100.0]]])
    mask = tf.constant([[True, True, False]])
    pooled = pooling(sequence, mask).numpy()[0]
    unpadded = pooling(sequence[:, :2], mask[:, :2]).numpy()[0]
    np.testing.assert_allclose(pooled, unpadded, atol=1e-6)
    assert pooled.max() < 100


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="cell must be one of"):
        RecurrentEncoder("transformer")
    with pytest.raises(ValueError, match="mode must be one of"):
        SequencePooling("median")


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("masked", [True, False])
def test_hand_written_gradient_equals_stock_keras_gradient(cell, masked):
    """`apps.recurrence` differentiates by hand; stock Keras layers by TensorFlow."""
    inputs, mask = batch(lengths=(7, 3, 5, 1) if masked else (7, 7))
    fused = RecurrentEncoder(cell, 5, num_layers=2, bidirectional=True, residual=True,
                             implementation="fused")
    fused(inputs, mask=mask)
    stock = RecurrentEncoder.from_config({**fused.get_config(), "implementation": "keras"})
    stock(inputs, mask=mask)
    stock.set_weights(fused.get_weights())
    weights = tf.random.stateless_normal([*inputs.shape[:2], 10], [3, 4])
    states = tf.nest.map_structure(lambda s: s + 0.3, fused.zero_states(inputs.shape[0]))

    def gradients(encoder):
        with tf.GradientTape() as tape:
            tape.watch([inputs, states])
            sequence, final = encoder(inputs, mask=mask if masked else None,
                                      initial_states=states)
            loss = tf.reduce_sum(sequence * weights) + sum(
                tf.reduce_sum(s) * (i + 2) for i, s in enumerate(tf.nest.flatten(final)))
        return tf.nest.flatten(tape.gradient(loss, [inputs, states, encoder.trainable_weights]))

    for got, expected in zip(gradients(fused), gradients(stock)):
        np.testing.assert_allclose(got, expected, atol=1e-5)


def _built_model(kind: str):
    """Each task's model, as its `build` makes it, with its first real input."""
    if kind == "sentiment":
        from apps.sentiment import model
        from apps.sentiment.task import SentimentSettings
        return (model.build(SentimentSettings(data="x", units=8, embedding_dim=8), 50, 3),
                tf.constant([[3, 4, 0]]))
    if kind == "lm":
        from apps.lm import model
        from apps.lm.task import LanguageModelSettings
        settings = LanguageModelSettings(data="x", units=8, embedding_dim=4, tie_embeddings=True)
        return model.build(settings, 30), tf.constant([[3, 4, 5]])
    from apps.speech import model
    from apps.speech.task import SpeechSettings
    settings = SpeechSettings(data="x", units=8, conv_filters=4)
    return model.build(settings, 12, 10), (tf.ones([2, 9, 10]), tf.constant([9, 5]))


@pytest.mark.parametrize("kind", ["sentiment", "lm", "speech"])
def test_a_model_creates_every_weight_from_shapes_without_calling_itself(kind, monkeypatch):
    """Building traces nothing (without `build`, Keras traces `call` to find the weights),
    and the first real call finds every weight there."""
    from apps.lm.model import LanguageModel
    from apps.sentiment.model import Member, SentimentClassifier
    from apps.speech.model import SpeechRecognizer

    with monkeypatch.context() as patch:
        for model_class in (SentimentClassifier, Member, LanguageModel, SpeechRecognizer):
            patch.setattr(model_class, "call", lambda *args, **kwargs: pytest.fail("called"))
        model, first_input = _built_model(kind)
    weights = [w.path for w in model.weights]
    assert weights and model.built
    model(first_input)
    assert [w.path for w in model.weights] == weights
