"""What stock TF Serving needs: only its ops, the tokeniser on the CPU, atomic versions."""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from serve_helpers import ROOT
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.config import model_server_config_pb2

from apps.layout import list_versions
from apps.serve.signatures import read_signature_defs

LIST_OPS = """
import json
from tensorflow.core.framework import op_def_pb2
from tensorflow.python.client import pywrap_tf_session as c_api

def registered():
    buffer = c_api.TF_GetAllOpList()
    try:
        ops = op_def_pb2.OpList.FromString(c_api.TF_GetBuffer(buffer))
    finally:
        c_api.TF_DeleteBuffer(buffer)
    return {op.name for op in ops.op}

core = registered()
import tensorflow_text  # noqa: E402,F401
print(json.dumps({"core": sorted(core), "text": sorted(registered() - core)}))
"""


@pytest.fixture(scope="module")
def op_registry():
    """Ops registered by plain TensorFlow, and those tensorflow-text adds (a fresh process)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    output = subprocess.run(
        [sys.executable, "-c", LIST_OPS],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=300,
    ).stdout
    found = json.loads(output.strip().splitlines()[-1])
    return set(found["core"]), set(found["text"])


def graph_nodes(version_dir):
    """(function or 'graph', node) for every node of the serving MetaGraph and its functions."""
    saved_model = saved_model_pb2.SavedModel.FromString(
        (version_dir / "saved_model.pb").read_bytes()
    )
    (meta_graph,) = saved_model.meta_graphs
    library = meta_graph.graph_def.library
    functions = {function.signature.name for function in library.function}
    nodes = [("graph", node) for node in meta_graph.graph_def.node]
    nodes += [(f.signature.name, node) for f in library.function for node in f.node_def]
    return nodes, functions, meta_graph


def test_exported_graphs_hold_only_tf_serving_ops(exported, op_registry):
    core, text = op_registry
    assert "SentencepieceOp" in text and "SentencepieceOp" not in core
    for version_dir in (exported / "sentiment").iterdir():
        if not version_dir.name.isdigit():
            continue
        nodes, functions, _ = graph_nodes(version_dir)
        ops = {node.op for _, node in nodes} - functions  # calls of the graph's own functions
        assert not ops - core - text, f"ops stock TF Serving lacks: {sorted(ops - core - text)}"
        assert ops & text, "the tokeniser should be inside the graph"


@pytest.mark.parametrize("kind", ["lm", "translation", "speech"])
def test_every_kind_holds_only_tf_serving_ops(all_kinds, op_registry, kind):
    """The per-row parameters (Assert, broadcasting, the translator's grouping by beam
    size: Unique, InvertPermutation) are core ops too."""
    core, text = op_registry
    nodes, functions, _ = graph_nodes(all_kinds / kind / "1")
    ops = {node.op for _, node in nodes} - functions
    assert not ops - core - text, f"ops stock TF Serving lacks: {sorted(ops - core - text)}"


def test_the_tokeniser_is_placed_on_the_cpu(exported, op_registry):
    _, text = op_registry
    nodes, _, meta_graph = graph_nodes(exported / "sentiment" / "1")
    tokeniser = [(where, node) for where, node in nodes if node.op in text]
    assert {node.op for _, node in tokeniser} >= {"SentencepieceOp", "SentencepieceTokenizeOp"}
    for where, node in tokeniser:
        assert "CPU" in node.device.upper(), f"{node.op} {node.name} in {where}: {node.device!r}"
    resources = [n.resource for n in meta_graph.object_graph_def.nodes if n.HasField("resource")]
    assert resources and all("CPU" in r.device.upper() for r in resources)


EXPORT_LOOP = """
import sys
from pathlib import Path
from apps import runner
from apps.sentiment import task
run, base = Path(sys.argv[1]), Path(sys.argv[2])
while True:
    print(runner.export(task.TASK, run, base, "sentiment").name, flush=True)
"""


def kill_exports_at_random(run_dir, base, rounds: int, rng: random.Random) -> list[float]:
    """Start an export loop `rounds` times; kill -9 it a random moment after its first export."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    delays = []
    for _ in range(rounds):
        process = subprocess.Popen(
            [sys.executable, "-c", EXPORT_LOOP, str(run_dir), str(base)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        lines: queue.Queue = queue.Queue()

        def read(process=process, lines=lines):
            for line in process.stdout:
                lines.put(line)

        threading.Thread(target=read, daemon=True).start()
        lines.get(timeout=180)  # one export done: later ones are under way when we kill
        delays.append(round(rng.uniform(0.0, 3.0), 2))
        time.sleep(delays[-1])
        os.kill(process.pid, signal.SIGKILL)
        process.wait(30)
    return delays


def check_versions_complete(base, in_process, delays) -> None:
    """Every numeric version loads and answers as the exported run does; nothing half-written."""
    import tensorflow_text  # noqa: F401

    model_dir = base / "sentiment"
    numeric = [p for p in model_dir.iterdir() if p.name.isdigit()]
    leftovers = [p.name for p in model_dir.iterdir() if not p.name.isdigit()]
    context = f"kills after {delays}s; leftover temporary directories {leftovers}"
    assert len(numeric) >= len(delays), context
    assert sorted(int(p.name) for p in numeric) == list_versions(model_dir), context
    text_format.Parse(
        (base / "models.config").read_text(), model_server_config_pb2.ModelServerConfig()
    )
    expected = in_process(["still the same model"])
    for version_dir in numeric:
        assert "serving_default" in read_signature_defs(version_dir), context
        assert (version_dir / "variables" / "variables.index").is_file(), context
        assert json.loads((version_dir / "assets" / "metadata.json").read_text())["task"]
        signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
        scores = signature(text=tf.constant(["still the same model"]))["scores"].numpy()
        np.testing.assert_allclose(scores, expected["scores"], rtol=1e-6, err_msg=context)


KILL_SEED = int(os.environ.get("APPS_TEST_SEED", "17"))  # APPS_TEST_SEED tries other moments


@pytest.mark.long
def test_exports_killed_at_random_moments_leave_only_complete_versions(
    tmp_path, serve_run, in_process
):
    rng = random.Random(KILL_SEED)  # fixed: a failure names delays that can be replayed
    delays = kill_exports_at_random(serve_run, tmp_path / "models", 2, rng)
    check_versions_complete(tmp_path / "models", in_process, delays)


@pytest.mark.slow
def test_many_killed_exports_leave_only_complete_versions(tmp_path, serve_run, in_process):
    """Four more kill moments (six with the test above), 0-3 s after an export: each
    is a fresh process that imports TensorFlow, so the count is kept small."""
    rng = random.Random(KILL_SEED + 1)
    delays = kill_exports_at_random(serve_run, tmp_path / "models", 4, rng)
    check_versions_complete(tmp_path / "models", in_process, delays)
