"""tf.distribute for the runner: which strategy, how batches reach the replicas, who writes.

Every task trains through the same loop (`apps.training.fit`) under one of these
strategies; with one device it is the default strategy, which adds nothing.

`--batch-size` is the global batch: the batches the task's datasets make are the
same whatever the strategy, and each is split by rows across the replicas (row r
goes to replica r mod N, so a language model's streams stay on their replica from
one batch to the next). Every worker builds the same batches from the same seed, so
every worker runs the same number of steps, which collective ops require. The
learning rate is not changed: a run on N replicas is the same run as on one device
with the same global batch, up to float rounding and dropout masks (drawn per replica).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import tensorflow as tf

from apps.errors import ConfigError
from apps.graphs import dataset_function
from apps.settings import STRATEGIES

log = logging.getLogger(__name__)
# Seconds a worker may wait in one collective op for its peers (unset: no limit). A dead
# peer is noticed without it (its closed connection, or TensorFlow's peer health checks,
# fail the collective); a limit only helps against a peer that hangs. It is not the
# default because TensorFlow parks one thread per collective op for that long: the MR
# ensemble grew to 5,000 threads a worker within a minute with 600 s and ran out of them.
COLLECTIVE_TIMEOUT_SECONDS = float(os.environ["APPS_COLLECTIVE_TIMEOUT"]) if os.environ.get(
    "APPS_COLLECTIVE_TIMEOUT") else None


def make_strategy(name: str, tpu: str | None = None) -> tf.distribute.Strategy:
    """The strategy `--strategy` names; "auto": mirrored over several local GPUs, else one."""
    if name == "auto":
        name = "mirrored" if len(tf.config.list_logical_devices("GPU")) > 1 else "one-device"
    if name == "one-device":
        return tf.distribute.get_strategy()  # the default: no scope, no copies
    if name == "mirrored":  # every local GPU; without one, every (logical) CPU device
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if name == "multi-worker":
        if "TF_CONFIG" not in os.environ:
            raise ConfigError("--strategy multi-worker needs TF_CONFIG (the cluster and this "
                              "worker's index), as TensorFlow defines it: see docs/scaling.md.")
        options = tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=COLLECTIVE_TIMEOUT_SECONDS)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, tf.errors.OpError) as error:
            reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
            raise ConfigError(f"Cannot reach the TPU {tpu or '(local)'}: {reason}. Name it "
                              "with --tpu on a Cloud TPU VM or host.") from None
        return tf.distribute.TPUStrategy(resolver)
    raise ConfigError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {name!r}.")


def worker_index() -> int:
    """This worker's index in TF_CONFIG (0 without one)."""
    task = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}").get("task", {})
    return int(task.get("index", 0))


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run directory: the chief, or worker 0 without one."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def worker_directory(output: Path, strategy: tf.distribute.Strategy) -> Path:
    """Where this worker writes: the run directory for the chief, a temporary beside it
    (`<output>.worker-<index>`: its own backups, to resume from) for the others, removed
    when the run finishes."""
    output = Path(output)
    if is_chief(strategy):
        return output
    return output.with_name(f"{output.name}.worker-{worker_index()}")


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return strategy.extended._in_multi_worker_mode()  # noqa: SLF001 - TF's own test


def _split_rows(value, part: int, parts: int):
    """Rows part, part + parts, ... of a batched tensor; scalars (flags) stay as they are."""
    if parts == 1 or not value.shape.rank:
        return value
    return value[part::parts]


def distribute(strategy: tf.distribute.Strategy, dataset: tf.data.Dataset):
    """`dataset` (global batches) as the replicas read it: each batch split by rows."""
    if strategy.num_replicas_in_sync == 1 and not is_multi_worker(strategy):
        return dataset

    def per_pipeline(context: tf.distribute.InputContext) -> tf.data.Dataset:
        pipelines, pipeline = context.num_input_pipelines, context.input_pipeline_id
        replicas = context.num_replicas_in_sync // pipelines

        def pieces(*batch):
            mine = tf.nest.map_structure(lambda t: _split_rows(t, pipeline, pipelines), batch)
            return tf.data.Dataset.range(replicas).map(dataset_function(
                lambda replica: tf.nest.map_structure(
                    lambda t: _split_rows(t, replica, replicas), mine)))

        return dataset.flat_map(dataset_function(pieces))

    options = tf.distribute.InputOptions(experimental_fetch_to_device=True)
    return strategy.distribute_datasets_from_function(per_pipeline, options)
