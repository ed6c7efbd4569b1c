"""The translator's own shortcuts in a search give what the plain search gives."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from apps import decoding, training
from apps.translation.decoding import TranslatorDecoder
from apps.translation.model import Translator


class RepeatedContext(TranslatorDecoder):
    """The same decoder without `beam_context`: the beam search repeats its context."""

    beam_context = None


@pytest.mark.parametrize("attention", ["bahdanau", "luong"])
def test_beams_reading_one_memory_per_sentence_find_what_repeated_memories_find(attention):
    training.set_seed(5)
    model = Translator(30, 30, 8, attention, encoder=dict(cell="gru", units=6,
                                                          bidirectional=True))
    model.build()
    for weight in model.weights:
        weight.assign(tf.random.normal(weight.shape, stddev=0.8))
    source = tf.constant([[5, 6, 7, 0], [9, 4, 0, 0], [11, 12, 13, 14]])
    found = []
    for decoder in (TranslatorDecoder(model), RepeatedContext(model)):
        state, context = decoder.initial_state(source)
        found.append(decoding.beam_search(decoder, state, context, tf.constant([6, 6, 6]), 3,
                                          0.6, n_best=3))
    grouped, repeated = found
    assert np.array_equal(grouped.ids.numpy(), repeated.ids.numpy())
    assert np.array_equal(grouped.alignment.numpy(), repeated.alignment.numpy())
    assert np.allclose(grouped.scores.numpy(), repeated.scores.numpy(), atol=1e-5)
    assert len({tuple(row) for row in grouped.ids.numpy()[:, 0]}) > 1  # not one answer
