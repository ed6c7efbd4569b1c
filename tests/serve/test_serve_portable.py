"""Exports run on any host: one traced as a GPU machine would trace it still serves here.

No GPU is visible on this machine, so Keras never takes its cuDNN branch by itself.
The tests below answer Keras' "is there a GPU?" with yes while exporting, as a GPU
machine would, and check the saved graphs: the default export holds only ops with a
CPU kernel (and serves here, empty strings included), the --gpu-only one holds
`CudnnRNNV3` (no CPU kernel) and `apps serve` refuses it here in one sentence.
"""

from __future__ import annotations

import importlib
import json

import pytest
import tensorflow as tf
from serve_helpers import ServerThread, http, options
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import kernels

from apps import layers, runner
from apps.errors import AppError
from apps.sentiment import task

TINY = dict(epochs=1, units=8, embedding_dim=8, vocab_size=100, batch_size=32)


def saved_ops(version_dir) -> set[str]:
    """Every op type in the SavedModel's graph and its functions (function calls aside)."""
    saved = saved_model_pb2.SavedModel.FromString((version_dir / "saved_model.pb").read_bytes())
    (graph,) = saved.meta_graphs
    functions = {f.signature.name for f in graph.graph_def.library.function}
    nodes = list(graph.graph_def.node)
    nodes += [node for f in graph.graph_def.library.function for node in f.node_def]
    return {node.op for node in nodes} - functions


def kernel_devices(op: str) -> set[str]:
    return {k.device_type for k in kernels.get_registered_kernels_for_op(op).kernel}


def runs_on_cpu(op: str) -> bool:
    return bool({"CPU", "DEFAULT"} & kernel_devices(op))  # DEFAULT kernels run anywhere


@pytest.fixture(scope="module")
def runs(tmp_path_factory, sentiment_sample):
    """Tiny LSTM runs trained with each recurrence: stock Keras layers and the fused loop."""
    files = dict(data=str(sentiment_sample / "train.tsv"),
                 valid=str(sentiment_sample / "valid.tsv"))
    folder = tmp_path_factory.mktemp("portable")
    return {implementation: runner.train(
        task.TASK, task.SentimentSettings(**files, **TINY, implementation=implementation),
        folder / implementation, verbose=0)[0] for implementation in ("keras", "fused")}


def test_an_export_traced_as_on_a_gpu_machine_serves_on_this_cpu(runs, tmp_path, monkeypatch):
    import tensorflow_text  # noqa: F401  (its ops' kernels are listed too)

    keras_rnn = importlib.import_module("keras.src.backend.tensorflow.rnn")

    with monkeypatch.context() as gpu_machine:
        gpu_machine.setattr(keras_rnn, "_is_gpu_available", lambda: True)
        gpu_machine.setattr(layers, "gpu_available", lambda: True)
        portable = runner.export(task.TASK, runs["keras"], tmp_path, "portable")
        gpu_only = runner.export(task.TASK, runs["keras"], tmp_path, "gpu", gpu_only=True)

    assert "CudnnRNNV3" in saved_ops(gpu_only)  # the GPU machine's branch was taken
    assert not runs_on_cpu("CudnnRNNV3")
    ops = saved_ops(portable)
    assert not [op for op in ops if not runs_on_cpu(op)]
    assert not {"CudnnRNN", "CudnnRNNV2", "CudnnRNNV3"} & ops

    metadata = json.loads((portable / "assets/metadata.json").read_text())
    assert (metadata["recurrence"], metadata["runs_on"]) == ("fused", ["cpu", "gpu"])
    gpu_metadata = json.loads((gpu_only / "assets/metadata.json").read_text())
    assert (gpu_metadata["recurrence"], gpu_metadata["runs_on"]) == ("cudnn", ["gpu"])

    with ServerThread(options(tmp_path)) as server:
        status, body = http(f"{server.url}/v1/models/portable:predict",
                            {"instances": ["loved every minute", "", "dull"]})
        assert status == 200 and len(body["predictions"]) == 3
        status, body = http(f"{server.url}/v1/models/gpu")
        (version,) = body["model_version_status"]
        assert version["state"] == "END"
        assert "GPU-only export" in version["status"]["error_message"]
        assert "this host has no GPU" in version["status"]["error_message"]
    with pytest.raises(AppError, match="GPU-only export .* no GPU"):
        task.predict(gpu_only, ["text"])


def test_metadata_holds_no_path_of_the_exporting_machine(runs, tmp_path):
    version = runner.export(task.TASK, runs["fused"], tmp_path, "sentiment")
    text = (version / "assets/metadata.json").read_text()
    metadata = json.loads(text)
    assert str(runs["fused"].parent) not in text and str(tmp_path) not in text

    def strings(value):
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return [value] if isinstance(value, str) else []

    assert not [s for s in strings(metadata) if s.startswith("/")]
    assert metadata["config"]["data"] == "train.tsv"  # a path given absolute keeps its name
    assert metadata["inputters"]["text"]["file"] == "tokenizer.model"
    assert metadata["inputters"]["label"]["labels"] == ["negative", "positive"]


@pytest.mark.parametrize("implementation", ["keras", "fused"])
def test_empty_strings_answer_on_every_path(runs, tmp_path, implementation):
    """Run directory (the training recurrence) and SavedModel: an empty text gets the priors."""
    texts = ["", "what a wonderful film", "", "dull"]
    version = runner.export(task.TASK, runs[implementation], tmp_path, "sentiment")
    labels = json.loads((runs[implementation] / "labels.json").read_text())
    priors = [count / sum(labels["counts"]) for count in labels["counts"]]
    for source in (runs[implementation], version):
        rows = task.predict(source, texts)
        assert [r["text"] for r in rows] == texts
        for row in (rows[0], rows[2]):
            assert list(row["scores"].values()) == pytest.approx(priors, abs=1e-6)
    served = tf.saved_model.load(str(version)).signatures["serving_default"]
    assert served(text=tf.constant([""]))["scores"].shape == (1, 2)
