"""The translator's serving functions: raw text in, raw text, scores and alignments out.

Tokenising and detokenising run in the graph on the CPU (the inputters pin them), the
search is `apps.decoding`'s `tf.while_loop`, so a TF Serving client sends sentences
and gets translations with no loop of its own. Only core TensorFlow and
tensorflow-text ops. The same functions answer for a run directory (traced in memory:
`apps.runner.InMemorySignatures`) and are traced into the SavedModel's signatures.

- `serving_default`: text [N] -> translation [N], score [N] (log-probability), with
  the beam size chosen at export (`assets/metadata.json` says which).

The searches of the three translating signatures run over the batch's vocabulary
shortlist when the metadata's "shortlist" says so (`apps.translation.shortlist`: their
scores are then normalised over the shortlist).
- `translate`: text [N], beam_size, max_length -> translation, score, aligned_source
  [N, T] (per target piece, the source piece it attended to most; -1 past the row's
  pieces); what `apps translation translate` and `evaluate` call, on a SavedModel and (built
  in memory) a run alike. beam_size and
  max_length are one value for the request (TF Serving's columnar form) or one per
  text (its row form, `instances`); texts asking for different beam sizes are searched
  in groups.
- `translate_n_best`: text, beam_size, max_length, n_best -> translations [N, K],
  scores [N, K], aligned_source [N, K, T], best first (K = n_best; the beam is at least
  n_best wide; beam_size and n_best: the largest value given is used for the request).
- `score`: source [N], target [N] -> score [N] (forced decoding: the log-probability
  of the target over the full vocabulary, end id included), token_scores [N, T] and
  pieces [N, T] (per target piece, then the end id; padding after), tokens [N],
  aligned_source [N, T].
"""

from __future__ import annotations

import tensorflow as tf

from apps import decoding as search_decoding
from apps.graphs import graph_function
from apps.signature_inputs import parameter_spec, per_row
from apps.translation import decoding
from pipelines.inputters import TextInputter


def signatures(trained, beam_size: int, shortlist=None) -> dict:
    """`shortlist`: the lexical table's part the searches use (numpy candidates [source
    vocab, M] and frequent ids [F], `apps.translation.shortlist`), held once as
    non-trainable variables every signature reads (`shortlist_variables`); None: the
    full vocabulary. `score` is always over the full vocabulary."""
    reader, writer = trained.inputters["source"], trained.inputters["target"]
    model, metadata = trained.model, trained.metadata
    writer.graph_tokenizer  # noqa: B018 - created eagerly, outside every trace
    length_penalty, ratio = metadata["length_penalty"], metadata["max_length_ratio"]
    table = None if shortlist is None else shortlist_variables(shortlist)

    def found_for(text, beam, max_length, n_best=1, alignments=True):
        return decoding.translate_ids(model, reader.preprocess(text), beam, max_length,
                                      length_penalty, ratio, n_best, table, alignments)

    def run(text, beam, max_length, alignments=True):
        found = search_decoding.first(found_for(text, beam, max_length, 1, alignments))
        out = {"translation": _detokenized(writer, found.ids, found.lengths),
               "score": found.scores}
        if alignments:
            out["aligned_source"] = pieces_only(found.alignment, found.lengths)
        return out

    @graph_function(input_signature=[TextInputter.input_spec("text")])
    def serving_default(text):  # no alignments: its search does not track them
        return run(text, int(beam_size), int(metadata["max_length"]), alignments=False)

    @graph_function(input_signature=[TextInputter.input_spec("text"),
                                     parameter_spec(tf.int32, "beam_size"),
                                     parameter_spec(tf.int32, "max_length")])
    def translate(text, beam_size, max_length):
        rows = tf.shape(text)[0]
        beams = tf.maximum(per_row(beam_size, rows, "beam_size"), 1)
        limits = tf.maximum(per_row(max_length, rows, "max_length"), 0)
        return by_beam_size(run, text, beams, limits)

    @graph_function(input_signature=[TextInputter.input_spec("text"),
                                     parameter_spec(tf.int32, "beam_size"),
                                     parameter_spec(tf.int32, "max_length"),
                                     parameter_spec(tf.int32, "n_best")])
    def translate_n_best(text, beam_size, max_length, n_best):
        rows = tf.shape(text)[0]
        beams = tf.maximum(tf.reduce_max(tf.reshape(beam_size, [-1])), 1)
        n = tf.maximum(tf.reduce_max(tf.reshape(n_best, [-1])), 1)
        limits = tf.maximum(per_row(max_length, rows, "max_length"), 0)
        found = found_for(text, beams, limits, n)
        shape = tf.shape(found.lengths)
        flat_ids = tf.reshape(found.ids, [shape[0] * shape[1], -1])
        texts = _detokenized(writer, flat_ids, tf.reshape(found.lengths, [-1]))
        return {"translations": tf.reshape(texts, shape), "scores": found.scores,
                "aligned_source": pieces_only(found.alignment, found.lengths)}

    @graph_function(input_signature=[TextInputter.input_spec("source"),
                                     TextInputter.input_spec("target")])
    def score(source, target):
        target_ids = writer.tokenize(target, cut=False).to_tensor()
        token_scores, alignment, total, tokens = decoding.score_ids(
            model, reader.preprocess(source), target_ids)
        with tf.device("/CPU:0"):
            pieces = writer.graph_tokenizer.id_to_string(decoding.with_end(target_ids))
        real = tf.sequence_mask(tokens, tf.shape(token_scores)[1])
        return {"score": total, "token_scores": token_scores, "tokens": tokens,
                "aligned_source": alignment, "pieces": tf.where(real, pieces, "")}

    return {"serving_default": serving_default, "translate": translate,
            "translate_n_best": translate_n_best, "score": score}


def shortlist_variables(shortlist) -> tuple[tf.Variable, tf.Variable]:
    """The table as two non-trainable variables, created outside every trace: the
    SavedModel stores their values once in its checkpoint (graph constants would be
    copied into each signature's function), and every signature captures the same
    ones. On the CPU, as the tokenizers: the searches gather a few rows per batch."""
    candidates, frequent = shortlist
    with tf.init_scope(), tf.device("/CPU:0"):
        return (tf.Variable(candidates, trainable=False, name="shortlist_candidates"),
                tf.Variable(frequent, trainable=False, name="shortlist_frequent"))


def pieces_only(alignment, lengths):
    """Alignment [..., T] with -1 from each hypothesis' end id on: one index per piece."""
    inside = tf.range(tf.shape(alignment)[-1]) < lengths[..., None]
    return tf.where(inside, alignment, search_decoding.NO_ALIGNMENT)


def _detokenized(writer, ids, lengths):
    return writer.detokenize(tf.RaggedTensor.from_tensor(ids, lengths=lengths))


def by_beam_size(run, text, beams, limits) -> dict:
    """`run` once per distinct beam size (a search has one), each row answered in place.

    One loop whose pass runs the rows of one beam size: the usual single size is one
    pass (and `run` is traced once: a `tf.cond` around a plain call would trace it
    twice, encoder and both searches each time).
    """
    sizes, group = tf.unique(beams)
    width = tf.reduce_max(tf.concat([limits, [0]], 0)) + 1  # every group's alignment width

    def body(i, translations, scores, alignments, rows, widest):
        members = tf.cast(tf.where(tf.equal(group, i))[:, 0], tf.int32)
        found = run(tf.gather(text, members), sizes[i], tf.gather(limits, members))
        aligned = found["aligned_source"]
        widest = tf.maximum(widest, tf.shape(aligned)[1])
        aligned = tf.pad(aligned, [[0, 0], [0, width - tf.shape(aligned)[1]]],
                         constant_values=search_decoding.NO_ALIGNMENT)
        return (i + 1, translations.write(i, found["translation"]),
                scores.write(i, found["score"]), alignments.write(i, aligned),
                rows.write(i, members), widest)

    def parts(dtype, shape=(None,)):
        return tf.TensorArray(dtype, size=tf.size(sizes), infer_shape=False,
                              element_shape=list(shape))

    _, translations, scores, alignments, rows, widest = tf.while_loop(
        lambda i, *_: i < tf.size(sizes), body,
        (0, parts(tf.string), parts(tf.float32), parts(tf.int32, (None, None)),
         parts(tf.int32), 0))
    order = tf.math.invert_permutation(rows.concat())
    return {"translation": tf.gather(translations.concat(), order),
            "score": tf.gather(scores.concat(), order),
            "aligned_source": tf.gather(alignments.concat(), order)[:, :widest]}
