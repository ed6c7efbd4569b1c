"""Exports: temporaries of exports killed with -9 are cleaned up by the next one; each
signature is traced once and every variable it reads is saved."""

import os
import subprocess
import sys

from apps.export import export_saved_model, remove_abandoned_exports


def test_temporaries_of_dead_exports_go_and_live_ones_stay(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    dead_pid = int(finished.stdout)  # a process that has exited: its export was killed
    abandoned = tmp_path / f".export-{dead_pid}-k1ll3d"
    running = tmp_path / f".export-{os.getpid()}-running"  # a concurrent export, still going
    version, foreign = tmp_path / "3", tmp_path / ".export-half-written"
    for directory in (abandoned, running, version, foreign):
        (directory / "variables").mkdir(parents=True)

    remove_abandoned_exports(tmp_path)

    assert not abandoned.exists()
    assert running.is_dir() and version.is_dir() and foreign.is_dir()


def test_an_export_traces_each_signature_once_and_keeps_every_variable_it_reads(tmp_path):
    """One trace per signature (made as the save looks it up); the model's variables in
    order, and a variable only a signature reads (a shortlist table's kind), saved."""
    import keras
    import numpy as np
    import tensorflow as tf

    from apps.graphs import graph_function
    from apps.metadata import Metadata

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with tf.init_scope():
        offset = tf.Variable([10.0, 20.0], trainable=False, name="offset")
    traces = []

    @graph_function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def serving_default(x):
        traces.append(1)  # Python runs only while tracing
        return {"y": model(x) + offset}

    version = export_saved_model({"serving_default": serving_default}, [model], tmp_path,
                                 "toy", Metadata(task="toy"))
    assert len(traces) == 1
    loaded = tf.saved_model.load(str(version))
    x = np.ones((2, 3), np.float32)
    assert np.allclose(loaded.signatures["serving_default"](x=tf.constant(x))["y"],
                       model(x) + [10.0, 20.0])
    checkpoint = str(version / "variables" / "variables")
    for i, variable in enumerate(model.variables):  # what `apps.transfer` reads
        assert np.array_equal(tf.train.load_variable(
            checkpoint, f"variables/{i}/.ATTRIBUTES/VARIABLE_VALUE"), variable.numpy())
