"""tf.distribute: two replicas or two workers train as one device does with the same
global batch; a worker killed with -9 resumes with the others from the last epoch.

Each training here runs in its own process: logical devices and a worker's cluster are
fixed when TensorFlow starts.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import run_cli

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "apps" / "sentiment" / "sample"
TRAIN = ["sentiment", "train", "--data", SAMPLE / "train.tsv", "--valid", SAMPLE / "valid.tsv",
         "--vocab-size", 300, "--units", 16, "--embedding-dim", 16, "--batch-size", 32,
         "--dropout", 0, "--patience", 0, "--quiet"]

ONE_STEP = """
import sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from apps import distribute, training
from apps.sentiment import task
settings = task.SentimentSettings(data=sys.argv[1], valid=sys.argv[1], vocab_size=300,
                                  units=16, embedding_dim=16, batch_size=32, dropout=0.0)
train, valid = task.TASK.read_training_data(settings)
inputters = task.TASK.make_inputters(settings)
task.TASK.fit_inputters(inputters, train, valid, settings)
data, _ = task.TASK.datasets(settings, inputters, train, valid)
taken = list(data(0).take(3))  # each pass reshuffles: both strategies get these three
batches = tf.data.Dataset.from_generator(lambda: taken, output_signature=data(0).element_spec)
weights = {}
for name in ("one-device", "mirrored"):
    strategy = distribute.make_strategy(name)
    training.set_seed(1)
    with strategy.scope():
        model = task.TASK.build_model(settings, inputters)
        task.TASK.compile_model(model, settings, None)
    loop = training.TrainingLoop(model, strategy, taken[0])
    splits = distribute.distribute(strategy, batches)
    for split in splits:  # one trace serves the three steps
        loop.step("train", splits.element_spec)(split)
    assert loop.traces["train"] == strategy.num_replicas_in_sync, loop.traces  # per replica
    weights[name] = [w.numpy() for w in model.weights]
    print(name, strategy.num_replicas_in_sync)
worst = max(float(np.abs(a - b).max()) for a, b in zip(weights["one-device"],
                                                       weights["mirrored"]))
print("largest difference", worst)
"""


def apps(*args, env=None, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "apps", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **kwargs)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def workers(output: Path, *flags) -> list[subprocess.Popen]:
    """Two workers on loopback, started as a user would: the same command, own TF_CONFIG."""
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    return [apps(*TRAIN, "--strategy", "multi-worker", "--output", output, *flags,
                 env={"TF_CONFIG": json.dumps(
                     {"cluster": cluster, "task": {"type": "worker", "index": index}})})
            for index in (1, 0)]


def history(path: Path) -> list[dict]:
    if not (path / "history.csv").exists():
        return []
    return [{k: float(v) for k, v in row.items()}
            for row in csv.DictReader((path / "history.csv").open())]


@pytest.mark.long
def test_one_step_on_two_replicas_is_the_one_device_step():
    """MirroredStrategy over two logical CPU devices: the same weights after three steps."""
    result = subprocess.run([sys.executable, "-c", ONE_STEP, str(SAMPLE / "train.tsv")],
                            capture_output=True, text=True, timeout=600, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT),
                                 "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "mirrored 2" in result.stdout  # two replicas really ran
    largest = float(result.stdout.split("largest difference")[1])
    assert largest < 1e-5  # float rounding of the split batch, nothing more


@pytest.mark.slow
def test_two_workers_train_as_one_and_one_killed_resumes_from_the_last_epoch(tmp_path):
    """Two workers on loopback train as one device does with the same global batch;
    worker 1 killed with -9 mid-epoch, the same command on both resumes from the last
    epoch. (One pair of workers serves both checks: each start imports TensorFlow; the
    one-device run they are compared with runs in this process.)"""
    output = tmp_path / "run"
    first = workers(output, "--epochs", 4)  # no collective timeout: the closed socket tells
    deadline = time.time() + 600
    while len(history(output)) < 2 and time.time() < deadline:
        assert all(p.poll() is None for p in first), "training ended before the kill"
        time.sleep(0.1)
    first[0].send_signal(signal.SIGKILL)  # worker 1, mid-epoch
    survivor_output, _ = first[1].communicate(timeout=300)
    first[0].wait()
    assert first[1].returncode != 0 and "Traceback" not in survivor_output
    assert "Lost contact with another worker" in survivor_output, survivor_output[-2000:]
    done = len(history(output))
    assert 2 <= done < 4 and (output / "backup" / "state.json").is_file()

    # the one-device run of the two epochs compared: the same command in this process
    alone = run_cli(*TRAIN, "--epochs", 2, "--output", tmp_path / "alone")
    assert alone.exit_code == 0, alone.output[-3000:]
    one, two = history(tmp_path / "alone"), history(output)
    assert [row["epoch"] for row in two[:2]] == [1, 2]
    # Stated tolerance: the first epoch's training loss within 0.1 %; the steps differ
    # only in float rounding (each worker computes half of every batch), and training
    # amplifies rounding slowly, so the second epoch is held to 2 %. (The sentiment
    # schedule is constant: four planned epochs train their first two as two would.)
    assert two[0]["loss"] == pytest.approx(one[0]["loss"], rel=1e-3)
    assert two[1]["loss"] == pytest.approx(one[1]["loss"], rel=2e-2)

    again = workers(output, "--epochs", 4)
    for process in again:
        log, _ = process.communicate(timeout=900)
        assert process.returncode == 0, log[-3000:]
    assert [int(row["epoch"]) for row in history(output)] == list(range(1, 5))
    assert (output / "metrics.json").is_file()
    assert not (output / "backup").exists() and not list(tmp_path.glob("run.worker-*"))
