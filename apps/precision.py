"""Mixed precision while training: which Keras policy, and what `auto` picks on this host.

Weights stay float32 under every policy (a run directory and an export are the same
whatever the training precision); only the products and activations of training use
bfloat16 or float16. Models keep their logits and losses in float32, and `mixed_float16`
scales the loss (Keras' `LossScaleOptimizer`) so small gradients survive.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import keras
import tensorflow as tf

log = logging.getLogger(__name__)


def cpu_flags() -> set[str]:
    """The instruction-set flags of this CPU (Linux), empty where unknown."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


AMX_ONLY = ("amx_bf16",)


def resolve(name: str, bfloat16_cpus: tuple[str, ...] = AMX_ONLY) -> str:
    """A Keras policy name for --precision; "auto" decides from the hardware.

    auto: mixed_bfloat16 on CPUs with one of `bfloat16_cpus` (flags of /proc/cpuinfo):
    by default AMX (bfloat16 tile products, about 4x float32 on large matrix products);
    a task whose training is dominated by one large product may name `avx512_bf16`
    too (`Task.bfloat16_cpus`). float32 everywhere else, GPUs included, where mixed
    precision has not been measured for these models (docs/scaling.md).
    """
    if name != "auto":
        return name
    if not tf.config.list_logical_devices("GPU") and cpu_flags() & set(bfloat16_cpus):
        return "mixed_bfloat16"
    return "float32"


@contextlib.contextmanager
def policy(name: str, bfloat16_cpus: tuple[str, ...] = AMX_ONLY):
    """Build and train under the Keras dtype policy `name` (resolved), then restore."""
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(resolve(name, bfloat16_cpus))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)
