"""Versioned, atomic SavedModel export in TF Serving's layout.

Every task builds its serving functions and hands them here with the objects they
use; this module writes `BASE/<name>/<next version>/` through a temporary sibling
whose name is not a number (TF Serving ignores it) and renames it into place, so a
version directory is complete or absent even under `kill -9`. It then adds
`assets/metadata.json` (`apps.metadata`, inside the temporary directory, before the
rename) and rewrites `BASE/models.config`.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf
from tensorflow.python.saved_model import save_context  # a save's tracing context
from tensorflow.saved_model.experimental import TrackableResource

from apps import metadata as metadata_file
from apps.errors import AppError
from apps.layout import write_models_config
from apps.metadata import Metadata

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"


def write_warmup_requests(directory: Path, requests: Mapping[str, Mapping[str, Any]]) -> None:
    """TF Serving's warm-up file: one PredictionLog (a predict request) per signature."""
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    (directory / WARMUP_FILE).parent.mkdir(exist_ok=True)
    with tf.io.TFRecordWriter(str(directory / WARMUP_FILE)) as writer:
        for signature, inputs in requests.items():
            request = predict_pb2.PredictRequest()
            request.model_spec.signature_name = signature
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def next_version(model_dir: Path) -> int:
    """One more than any numeric child (complete or not), so versions never repeat."""
    if not model_dir.is_dir():
        return 1
    numbers = [int(c.name) for c in model_dir.iterdir() if c.name.isdigit()]
    return max(numbers, default=0) + 1


def _fsync_tree(root: Path) -> None:
    """Flush every file so the rename publishes data that is on disk."""
    for folder, _dirs, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as handle:
                os.fsync(handle.fileno())


def pin_cpu_only_resources(tracked: list) -> None:
    """Record CPU placement on tensorflow-text resources, so the saved graph carries it.

    `SentencepieceOp` has only a CPU kernel, but tensorflow-text creates its model
    resource with no device, and SavedModel re-creates resources with the device the
    resource recorded, not the `tf.device` scope it was built under: without this the
    saved `SentencepieceOp` nodes have an empty device (placement left open on a GPU
    server, tensorflow/serving issues 2016, 1696).
    """
    for item in tracked:
        resource = getattr(item, "_model_resource", None)
        if resource is None or not type(resource).__module__.startswith("tensorflow_text"):
            continue
        if getattr(resource, "_apps_pinned_to_cpu", False):
            continue
        resource._apps_pinned_to_cpu = True
        resource._resource_device = "/device:CPU:0"  # what save.py writes for the resource
        create = resource._create_resource

        def create_on_cpu(create=create):
            with tf.device("/device:CPU:0"):
                return create()

        resource._create_resource = create_on_cpu  # what the exported creator function runs


def _saved_root(endpoints: Mapping[str, Any], tracked: list, options):
    """What `tf.saved_model.save` writes: the endpoints, the tracked models' variables,
    the variables the endpoints read besides (a translator's shortlist table) and the
    tracked objects' resources (tokenizers), as `keras.export.ExportArchive` lays them
    out (`variables[i]` is the first model's `variables[i]`; `apps.transfer` reads both).

    Each endpoint is traced once, here, the way the save looks it up (inside a save
    context with the same `options`), and the save reuses the trace; the archive traced
    every endpoint twice, once outside that context.
    """
    with save_context.save_context(options):
        traced = [function.get_concrete_function() for function in endpoints.values()]
    root = tf.__internal__.tracking.AutoTrackable()  # tf.Module's `variables` is read-only
    models = [item for item in tracked if isinstance(item, keras.layers.Layer)]
    root.variables = [v for model in models for v in model.variables]
    root.trainable_variables = [v for model in models for v in model.trainable_variables]
    root.non_trainable_variables = [v for model in models
                                    for v in model.non_trainable_variables]
    read = {id(v): v for function in traced for v in function.variables}
    root._all_variables = list(read.values())
    root._misc_assets = [resource for item in tracked
                         if not isinstance(item, keras.layers.Layer)
                         for resource in tf.train.TrackableView(item).descendants()
                         if isinstance(resource, TrackableResource)]
    for name, function in endpoints.items():
        setattr(root, name, function)
    return root


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def remove_abandoned_exports(model_dir: Path) -> None:
    """Delete `.export-PID-*` temporaries whose exporting process is gone (kill -9).

    They are never versions (TF Serving ignores dot names), only wasted disk; one
    whose process still runs is a concurrent export and is left alone.
    """
    for tmp in model_dir.glob(".export-*-*"):
        pid = tmp.name.split("-")[1]
        if pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


class _GradientsLeftOut(logging.Filter):
    """Drops TensorFlow's warning, on loading an export, that its custom gradients were
    not saved: exports leave them out on purpose (serving never differentiates, and
    saving them traces every gradient function once more), so it asks nothing of a user."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "unsaved custom gradients" not in record.getMessage()


def load_saved_model(path, tags: list[str] | None = None):
    """`tf.saved_model.load` of an export, without that warning."""
    quiet, absl = _GradientsLeftOut(), logging.getLogger("absl")
    absl.addFilter(quiet)
    try:
        return tf.saved_model.load(str(path), tags=tags)
    finally:
        absl.removeFilter(quiet)


def export_saved_model(
    endpoints: Mapping[str, tf.types.experimental.GenericFunction],
    tracked: list,
    base_path: Path,
    name: str,
    metadata: Metadata,
    warmup: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """Write the endpoints as the next version of `base_path/name`; return its directory.

    `endpoints` maps signature names to `tf.function`s with an input signature (one
    must be `serving_default`); `tracked` holds the layers, models and TF resources
    they use (Keras models, tensorflow-text tokenizers), so their variables and
    assets are saved with the graph.
    """
    if "serving_default" not in endpoints:
        raise ValueError("an export needs a 'serving_default' endpoint")
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise AppError(f"--name '{name}' must be letters, digits, '-', '_' or '.'.")
    model_dir = Path(base_path) / name
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise AppError(f"Cannot create '{model_dir}': {error.strerror}.") from None
    remove_abandoned_exports(model_dir)
    tmp = Path(tempfile.mkdtemp(dir=model_dir, prefix=f".export-{os.getpid()}-"))
    pin_cpu_only_resources(tracked)
    try:
        # no gradient functions: `_GradientsLeftOut`
        options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
        tf.saved_model.save(_saved_root(endpoints, tracked, options), str(tmp),
                            signatures=dict(endpoints), options=options)
        metadata_file.write(tmp, metadata, list(endpoints))
        if warmup:
            write_warmup_requests(tmp, warmup)
        _fsync_tree(tmp)
        while True:  # another export may take a number first: take the next one
            target = model_dir / str(next_version(model_dir))
            try:
                os.rename(tmp, target)
                break
            except OSError:
                if not target.exists():
                    raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_models_config(model_dir.parent)
    return target


def check_runs_here(metadata: Metadata | None, path: Path) -> None:
    """Refuse, in one sentence, a GPU-only export on a host without a GPU."""
    from apps.layers import gpu_available

    if metadata is not None and metadata.recurrence == "cudnn" and not gpu_available():
        raise AppError(
            f"'{path}' is a GPU-only export (its graph holds cuDNN kernels, which have no "
            "CPU version) and this host has no GPU: serve it on a GPU host, or export the "
            "run again without --gpu-only.")
