"""One training step of `RecurrentEncoder` alone: the CPU recurrence against stock Keras.

Times forward + backward (the gradient of every weight and of the inputs) of one
encoder layer on random right-padded batches, for `implementation="fused"`
(`apps.recurrence`) and `implementation="keras"` (the stock layers, automatic
gradient) holding the same weights. Both run in a `tf.function` with the batch and
time axes unknown, as in training with length bucketing. Prints one markdown row per
shape, medians of `--rounds` rounds of `--steps` steps, the two alternating.

    PYTHONPATH=. .venv/bin/python bench/encoder_step.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from apps.layers import RecurrentEncoder  # noqa: E402

# (cell, batch, steps, input size, units, bidirectional): the sentiment speed bench's
# model at MR's mean length in unigram pieces, its GRU twin, and the LM bench's layer.
SHAPES = [("lstm", 64, 30, 128, 128, True), ("gru", 64, 30, 128, 128, True),
          ("lstm", 32, 64, 64, 512, False)]


def training_step(encoder: RecurrentEncoder, size: int):
    @tf.function(input_signature=[tf.TensorSpec([None, None, size]),
                                  tf.TensorSpec([None, None], tf.bool)])
    def step(inputs, mask):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            sequence, _ = encoder(inputs, mask=mask, training=True)
            loss = tf.reduce_sum(sequence * sequence)
        return tape.gradient(loss, [inputs, *encoder.trainable_variables])
    return step


def milliseconds(shape, rounds: int, steps: int) -> dict[str, float]:
    cell, batch, length, size, units, bidirectional = shape
    inputs = tf.random.normal([batch, length, size])
    mask = tf.sequence_mask(tf.random.uniform([batch], length // 3, length + 1, tf.int32), length)
    encoders = {impl: RecurrentEncoder(cell, units, bidirectional=bidirectional,
                                       implementation=impl) for impl in ("fused", "keras")}
    for encoder in encoders.values():
        encoder(inputs, mask=mask)
    encoders["keras"].set_weights(encoders["fused"].get_weights())
    functions = {impl: training_step(encoder, size) for impl, encoder in encoders.items()}
    times = {impl: [] for impl in functions}
    for function in functions.values():
        for _ in range(3):  # trace and warm up
            function(inputs, mask)
    for _ in range(rounds):
        for impl, function in functions.items():
            start = time.perf_counter()
            for _ in range(steps):
                function(inputs, mask)
            times[impl].append(1000 * (time.perf_counter() - start) / steps)
    return {impl: statistics.median(values) for impl, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    print("| cell | batch x steps | units | directions | fused ms | keras ms | keras / fused |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for shape in SHAPES:
        cell, batch, length, _, units, bidirectional = shape
        ms = milliseconds(shape, args.rounds, args.steps)
        print(f"| {cell} | {batch} x {length} | {units} | {1 + bidirectional} | "
              f"{ms['fused']:.1f} | {ms['keras']:.1f} | {ms['keras'] / ms['fused']:.2f}x |",
              flush=True)


if __name__ == "__main__":
    main()
