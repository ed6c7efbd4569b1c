"""The exported language model's signatures: raw strings in, generated text or scores out.

Tokenisation and detokenisation run inside the graph on the CPU (the text inputter
pins them there: SentencePiece has no GPU kernel), with only core TensorFlow and
tensorflow-text ops:

Every parameter (max_tokens, temperature, top_k, top_p, seed) is one value per prompt
or one value for the whole request, so TF Serving's row form (`instances`: each input
one per row) and its columnar form (`inputs`: a scalar parameter) both work.

- `serving_default`: prompt, max_tokens, temperature -> text (prompt included). The
  generation loop is a `tf.while_loop` in the graph, so TF Serving needs no client loop.
- `generate`: the same plus top_k, top_p and seed -> text, tokens, unknown (the
  prompt's unknown tokens); what `apps lm generate` calls, on a SavedModel and (built
  in memory) a run alike.
- `generate_n_best`: prompt, max_tokens, n_best -> texts [N, K] (prompt included),
  scores [N, K] (natural-log probability of the new tokens), tokens [N, K]: the K
  likeliest continuations by beam search (K beams), best first; n_best is one value
  for the request (the largest given).
- `score`: text -> log_likelihood (natural log, summed over the text's tokens read
  from the begin id), tokens, chars; what `apps lm evaluate` calls, for either kind.
"""

from __future__ import annotations

import tensorflow as tf

from apps.graphs import graph_function
from apps.lm import decoding
from apps.signature_inputs import parameter_spec, per_row
from pipelines.tokenizer import BOS_ID, PAD_ID, UNK_ID


def _strings(name):
    return tf.TensorSpec([None], tf.string, name=name)


def prompted(inputter, prompt):
    """(ids [N, P] with the begin id first, right padded; lengths [N]; the prompts'
    unknown tokens [N]): how `generate` and a run's stream (`apps.lm.generation`) read
    prompts [N]."""
    ids = inputter.tokenize(prompt)
    begin = tf.fill([ids.nrows(), 1], BOS_ID)
    prompt_ids = tf.concat([begin, ids.to_tensor(default_value=PAD_ID)], axis=1)
    unknown = tf.reduce_sum(tf.cast(tf.equal(ids, UNK_ID), tf.int32), axis=1)
    return prompt_ids, tf.cast(ids.row_lengths(), tf.int32) + 1, unknown


def signatures(model, inputter) -> dict:
    """tf.functions for `apps.export.export_saved_model`; `inputter` is the `TextInputter`."""

    def run_generation(prompt, max_tokens, temperature, top_k, top_p, seed):
        prompt_ids, lengths, unknown = prompted(inputter, prompt)
        new_ids = decoding.generate_loop(model, prompt_ids, lengths, max_tokens, temperature,
                                         top_k, top_p, seed)
        continuation = inputter.detokenize(new_ids)
        return {"text": tf.strings.join([prompt, continuation]),
                "tokens": tf.cast(new_ids.row_lengths(), tf.int32), "unknown": unknown}

    @graph_function(input_signature=[
        _strings("prompt"), parameter_spec(tf.int32, "max_tokens"),
        parameter_spec(tf.float32, "temperature")])
    def serving_default(prompt, max_tokens, temperature):
        rows = tf.shape(prompt)[0]
        seed = tf.random.uniform([rows], maxval=tf.int64.max, dtype=tf.int64)
        out = run_generation(prompt, per_row(max_tokens, rows, "max_tokens"),
                             per_row(temperature, rows, "temperature"),
                             tf.zeros([rows], tf.int32), tf.ones([rows], tf.float32), seed)
        return {"text": out["text"]}

    @graph_function(input_signature=[
        _strings("prompt"), parameter_spec(tf.int32, "max_tokens"),
        parameter_spec(tf.float32, "temperature"), parameter_spec(tf.int32, "top_k"),
        parameter_spec(tf.float32, "top_p"), parameter_spec(tf.int64, "seed")])
    def generate(prompt, max_tokens, temperature, top_k, top_p, seed):
        rows = tf.shape(prompt)[0]
        return run_generation(prompt, per_row(max_tokens, rows, "max_tokens"),
                              per_row(temperature, rows, "temperature"),
                              per_row(top_k, rows, "top_k"), per_row(top_p, rows, "top_p"),
                              per_row(seed, rows, "seed"))

    @graph_function(input_signature=[
        _strings("prompt"), parameter_spec(tf.int32, "max_tokens"),
        parameter_spec(tf.int32, "n_best")])
    def generate_n_best(prompt, max_tokens, n_best):
        rows = tf.shape(prompt)[0]
        prompt_ids, lengths, _ = prompted(inputter, prompt)
        n = tf.maximum(tf.reduce_max(tf.reshape(n_best, [-1])), 1)
        found = decoding.n_best_loop(model, prompt_ids, lengths,
                                     per_row(max_tokens, rows, "max_tokens"), n)
        shape = tf.shape(found.lengths)
        flat = tf.RaggedTensor.from_tensor(tf.reshape(found.ids, [shape[0] * shape[1], -1]),
                                           lengths=tf.reshape(found.lengths, [-1]))
        continuations = tf.reshape(inputter.detokenize(flat), shape)
        return {"texts": tf.strings.join([tf.repeat(prompt[:, None], shape[1], axis=1),
                                          continuations]),
                "scores": found.scores, "tokens": found.lengths}

    @graph_function(input_signature=[_strings("text")])
    def score(text):
        ids = inputter.tokenize(text)
        lengths = tf.cast(ids.row_lengths(), tf.int32)
        dense = ids.to_tensor(default_value=PAD_ID)
        total = decoding.log_likelihood(model, dense, lengths)
        chars = tf.strings.length(text, unit="UTF8_CHAR")
        return {"log_likelihood": tf.cast(total, tf.float32), "tokens": lengths,
                "chars": tf.cast(chars, tf.int32)}

    return {"serving_default": serving_default, "generate": generate,
            "generate_n_best": generate_n_best, "score": score}
