"""The exported translator's signatures: raw text in, raw text and its score out.

Tokenising and detokenising run in the graph on the CPU (the inputters pin them), the
search is `apps.translation.decoding`'s `tf.while_loop`, so a TF Serving client sends
sentences and gets translations with no loop of its own. Only core TensorFlow and
tensorflow-text ops.

- `serving_default`: text [N] -> translation [N], score [N] (log-probability), with
  the beam size chosen at export (`assets/metadata.json` says which).
- `translate`: text [N], beam_size [], max_length [] -> the same; what `apps
  translation translate` and `evaluate` call on a SavedModel.
"""

from __future__ import annotations

import tensorflow as tf

from apps.translation import decoding
from pipelines.inputters import TextInputter


def signatures(trained, beam_size: int) -> dict:
    source, target = trained.inputters["source"], trained.inputters["target"]
    model, settings = trained.model, trained.settings

    def run(text, beam, max_length):
        found = decoding.translate_ids(model, source.preprocess(text), beam, max_length,
                                       settings.length_penalty, settings.max_length_ratio)
        tokens = tf.RaggedTensor.from_tensor(found.ids, lengths=found.lengths)
        return {"translation": target.detokenize(tokens), "score": found.scores}

    @tf.function(input_signature=[TextInputter.input_spec("text")])
    def serving_default(text):
        return run(text, int(beam_size), settings.max_length)

    @tf.function(input_signature=[TextInputter.input_spec("text"),
                                  tf.TensorSpec([], tf.int32, name="beam_size"),
                                  tf.TensorSpec([], tf.int32, name="max_length")])
    def translate(text, beam_size, max_length):
        return run(text, tf.maximum(beam_size, 1), tf.maximum(max_length, 0))

    return {"serving_default": serving_default, "translate": translate}
