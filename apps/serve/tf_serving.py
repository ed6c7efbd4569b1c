"""The path to stock TensorFlow Serving: the files it reads and the docker lines that run it.

`apps serve` and the `tensorflow/serving` image serve the same `saved_models/` tree;
this module writes what the image needs beside it (`models.config` comes from
`apps.layout`, the batching parameters from here) and spells out the commands.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from apps.layout import MODELS_CONFIG, atomic_write_text
from apps.serve.batching import BatchingParameters

BATCHING_CONFIG = "batching.config"
CPU_IMAGE = "tensorflow/serving"
GPU_IMAGE = "tensorflow/serving:latest-gpu"


def write_batching_config(path: Path, parameters: BatchingParameters) -> Path:
    """Write TF Serving's batching parameters file (text proto) atomically."""
    atomic_write_text(Path(path), parameters.to_text())
    return Path(path)


def docker_commands(
    base_path: Path, rest_port: int = 8501, grpc_port: int = 8500, batching: bool = True
) -> dict[str, str]:
    """`{"cpu": ..., "gpu": ...}` docker run lines serving `base_path` mounted at /models."""
    mount = f"{Path(base_path).resolve()}:/models"
    flags = [
        f"--model_config_file=/models/{MODELS_CONFIG}",
        "--model_config_file_poll_wait_seconds=60",
    ]
    if batching:
        flags += ["--enable_batching", f"--batching_parameters_file=/models/{BATCHING_CONFIG}"]
    ports = ["-p", f"{rest_port}:8501", "-p", f"{grpc_port}:8500"]
    commands = {}
    for kind, image, extra in (("cpu", CPU_IMAGE, []), ("gpu", GPU_IMAGE, ["--gpus", "all"])):
        words = ["docker", "run", "--rm", *extra, *ports, "-v", mount, image, *flags]
        commands[kind] = shlex.join(words)
    return commands
