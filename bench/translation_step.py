"""Where one greedy decoding step of the translator spends its time.

Builds the Multi30k bench's model (bench/configs/translate_multi30k.yaml: bidirectional
GRU 256, Bahdanau attention, 8,000 tied output pieces) with random weights, float32,
and times each part of `Translator.step` on `--batch` rows inside a `tf.while_loop` of
20 iterations, as the exported search runs it (milliseconds per iteration, medians of
`--rounds`). The parts do not add up exactly to the whole step: each is timed alone.
The same parts with a vocabulary shortlist of `--shortlist` pieces (the rows of the
output matrix a batch's shortlist keeps, `apps.translation.shortlist`) follow.

    PYTHONPATH=. .venv/bin/python bench/translation_step.py [--batch 64] [--shortlist 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from common import machine  # noqa: E402

from apps.translation.model import Translator  # noqa: E402

ITERATIONS = 20


def per_iteration(part, rounds: int) -> float:
    """Milliseconds per loop iteration of `part(dependency) -> scalar` (the dependency on
    the loop variable keeps TensorFlow from computing it once outside the loop)."""

    @tf.function
    def looped():
        return tf.while_loop(lambda t, _: t < ITERATIONS,
                             lambda t, total: (t + 1, total + part(total)),
                             (0, tf.zeros([])))[1]

    looped()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        looped()
        times.append((time.perf_counter() - start) / ITERATIONS * 1e3)
    return statistics.median(times)


def choice(logits):
    """What greedy search computes of a step's logits (`apps.decoding._greedy_choice`)."""
    chosen = tf.argmax(logits[:, 3:], -1, output_type=tf.int32) + 3
    return tf.gather(logits, chosen, batch_dims=1) - tf.reduce_logsumexp(logits, -1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--source-length", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--shortlist", type=int, default=1000,
                        help="Pieces of the shortlist timed beside the full vocabulary.")
    args = parser.parse_args()
    model = Translator(8000, 8000, 256, "bahdanau",
                       encoder=dict(cell="gru", units=256, bidirectional=True))
    model.build()
    rows = args.batch
    source = tf.random.uniform([rows, args.source_length], 4, 8000, tf.int32)
    context, state = model.encode(source)
    memory, keys, mask = context
    previous = tf.fill([rows], 5)
    query = state[-1]
    cell_input = tf.random.normal([rows, 256 + memory.shape[-1]])
    hidden, attended = tf.random.normal([rows, 256]), tf.random.normal([rows, memory.shape[-1]])
    logits = tf.random.normal([rows, 8000])
    zero = lambda x: tf.reduce_sum(tf.cast(x, tf.float32)) * 0.0  # noqa: E731
    parts = {
        "whole step (`Translator.step`)":
            lambda d: zero(model.step(previous, tuple(s + d for s in state), context)[0]),
        "attention (Bahdanau)":
            lambda d: zero(model.attention((query + d)[:, None], keys, memory, mask)[0]),
        "GRU cell": lambda d: zero(model.decoder.step(cell_input + d,
                                                      model._layered(state))[0]),
        "output layer (readout + 8,000-piece product + bias)":
            lambda d: zero(model._logits(hidden + d, attended)),
        "of which the 8,000-piece product":
            lambda d: zero(tf.matmul(hidden + d, model.target_embedding.embeddings,
                                     transpose_b=True)),
        "log-softmax + argmax (the previous greedy choice)":
            lambda d: zero(tf.argmax(tf.nn.log_softmax(logits + d), -1)),
        "argmax + logsumexp (greedy's choice)": lambda d: zero(choice(logits + d)),
    }
    listed = tf.sort(tf.random.shuffle(tf.range(8000))[: args.shortlist])
    output = (tf.gather(model.target_embedding.embeddings, listed),
              tf.gather(model.output_bias, listed))
    short_logits = tf.random.normal([rows, args.shortlist])
    k = f"{args.shortlist:,}"
    projected = model.decoding_context(context)
    parts.update({
        "whole step, projected memory (`decoding_context`)":
            lambda d: zero(model.step(previous, tuple(s + d for s in state), projected)[0]),
        f"whole step, shortlist of {k} pieces":
            lambda d: zero(model.step(previous, tuple(s + d for s in state), context,
                                      output)[0]),
        f"whole step, projected memory and shortlist of {k} pieces":
            lambda d: zero(model.step(previous, tuple(s + d for s in state), projected,
                                      output)[0]),
        f"output layer, shortlist of {k} pieces":
            lambda d: zero(model._logits(hidden + d, attended, output=output)),
        f"of which the {k}-piece product":
            lambda d: zero(tf.matmul(hidden + d, output[0], transpose_b=True)),
        f"greedy's choice over {k} pieces": lambda d: zero(choice(short_logits + d)),
    })
    print(f"{machine()}; batch {rows}, source length {args.source_length}\n")
    print("| part | ms per step |\n| --- | ---: |")
    for name, part in parts.items():
        print(f"| {name} | {per_iteration(part, args.rounds):.2f} |", flush=True)


if __name__ == "__main__":
    main()
