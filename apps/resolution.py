"""What the `auto` settings became on this host, recorded beside the settings themselves.

`--precision auto`, `--implementation auto` and `--strategy auto` decide from the
hardware when training starts; `config.json` (under "resolved") and the export's
metadata keep the decision, so a run says how it was trained, not only how it was asked.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from apps import precision
from apps.layers import gpu_available

STRATEGY_NAMES = {"MirroredStrategy": "mirrored", "MultiWorkerMirroredStrategy": "multi-worker",
                  "TPUStrategy": "tpu"}


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    """The --strategy word for a strategy object (the default strategy: one-device)."""
    for klass in type(strategy).__mro__:
        if klass.__name__ in STRATEGY_NAMES:
            return STRATEGY_NAMES[klass.__name__]
    return "one-device"


def implementation_name(implementation: str) -> str:
    """The recurrence that trains: `auto` is keras (cuDNN) with a GPU, else fused."""
    if implementation != "auto":
        return implementation
    return "keras" if gpu_available() else "fused"


def resolved_settings(settings, strategy: tf.distribute.Strategy,
                      bfloat16_cpus: tuple[str, ...] = precision.AMX_ONLY) -> dict[str, Any]:
    """{"precision", "implementation", "strategy", "replicas"} as this run trains."""
    found: dict[str, Any] = {"precision": precision.resolve(settings.precision, bfloat16_cpus)}
    if hasattr(settings, "implementation"):
        found["implementation"] = implementation_name(settings.implementation)
    found.update(strategy=strategy_name(strategy), replicas=strategy.num_replicas_in_sync)
    return found
