"""bfloat16 against float32 matrix products on this CPU: what `--precision auto` rests on.

Times the product the scaling issue quotes (256x1024 by 1024x4096) and one the size of a
recurrent step of the benchmark models (64x128 by 128x512, a BiLSTM-128 gate product),
in float32 and bfloat16, alternating so that both see the same load, and prints GFLOP/s
with the CPU model and its bfloat16 features (`amx_bf16`, `avx512_bf16`).

    PYTHONPATH=. .venv/bin/python bench/matmul_precision.py
"""

from __future__ import annotations

import statistics
import time

import tensorflow as tf
from common import machine

from apps.precision import cpu_flags

SHAPES = {"issue's product": (256, 1024, 4096), "recurrent step": (64, 128, 512)}


def seconds_per_product(a: tf.Tensor, b: tf.Tensor, repeats: int) -> float:
    product = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)))
    product(a, b)  # trace and warm up
    start = time.perf_counter()
    for _ in range(repeats):
        product(a, b).numpy()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    flags = sorted(cpu_flags() & {"amx_bf16", "avx512_bf16", "avx512f", "avx2"})
    print(f"{machine()}; bfloat16-related CPU flags: {', '.join(flags) or 'none'}")
    print("| product | float32 GFLOP/s | bfloat16 GFLOP/s | bfloat16 / float32 |")
    print("| --- | ---: | ---: | ---: |")
    for name, (m, k, n) in SHAPES.items():
        flops = 2 * m * k * n
        repeats = max(5, int(2e10 // flops))
        a, b = tf.random.normal([m, k]), tf.random.normal([k, n])
        rates = {"float32": [], "bfloat16": []}
        for _ in range(5):
            for dtype in rates:
                seconds = seconds_per_product(tf.cast(a, dtype), tf.cast(b, dtype), repeats)
                rates[dtype].append(flops / seconds / 1e9)
        f32, bf16 = (statistics.median(rates[d]) for d in ("float32", "bfloat16"))
        print(f"| {name} {m}x{k} by {k}x{n} | {f32:.1f} | {bf16:.1f} | {bf16 / f32:.2f}x |")


if __name__ == "__main__":
    main()
