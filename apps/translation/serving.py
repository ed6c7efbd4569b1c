"""The exported translator's signatures: raw text in, raw text and its score out.

Tokenising and detokenising run in the graph on the CPU (the inputters pin them), the
search is `apps.translation.decoding`'s `tf.while_loop`, so a TF Serving client sends
sentences and gets translations with no loop of its own. Only core TensorFlow and
tensorflow-text ops.

- `serving_default`: text [N] -> translation [N], score [N] (log-probability), with
  the beam size chosen at export (`assets/metadata.json` says which).
- `translate`: text [N], beam_size, max_length -> the same; what `apps translation
  translate` and `evaluate` call, on a SavedModel and (built in memory) a run alike.
  beam_size and max_length are one value for the request (TF Serving's columnar form)
  or one per text (its row form, `instances`); texts asking for different beam sizes
  are searched in groups.
"""

from __future__ import annotations

import tensorflow as tf

from apps.signature_inputs import parameter_spec, per_row
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
                                  parameter_spec(tf.int32, "beam_size"),
                                  parameter_spec(tf.int32, "max_length")])
    def translate(text, beam_size, max_length):
        rows = tf.shape(text)[0]
        beams = tf.maximum(per_row(beam_size, rows, "beam_size"), 1)
        limits = tf.maximum(per_row(max_length, rows, "max_length"), 0)
        return by_beam_size(run, text, beams, limits)

    return {"serving_default": serving_default, "translate": translate}


def by_beam_size(run, text, beams, limits) -> dict:
    """`run` once per distinct beam size (a search has one), each row answered in place.

    One beam size for every row (the usual case) is one plain call, as before.
    """
    sizes, group = tf.unique(beams)
    return tf.cond(tf.equal(tf.size(sizes), 1), lambda: run(text, sizes[0], limits),
                   lambda: _in_groups(run, text, sizes, group, limits))


def _in_groups(run, text, sizes, group, limits) -> dict:
    def body(i, translations, scores, rows):
        members = tf.cast(tf.where(tf.equal(group, i))[:, 0], tf.int32)
        found = run(tf.gather(text, members), sizes[i], tf.gather(limits, members))
        return (i + 1, translations.write(i, found["translation"]),
                scores.write(i, found["score"]), rows.write(i, members))

    def parts(dtype):
        return tf.TensorArray(dtype, size=tf.size(sizes), infer_shape=False, element_shape=[None])

    _, translations, scores, rows = tf.while_loop(
        lambda i, *_: i < tf.size(sizes), body,
        (0, parts(tf.string), parts(tf.float32), parts(tf.int32)))
    order = tf.math.invert_permutation(rows.concat())
    return {"translation": tf.gather(translations.concat(), order),
            "score": tf.gather(scores.concat(), order)}
