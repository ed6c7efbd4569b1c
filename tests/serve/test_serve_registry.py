"""Versions: hot reload after warm-up, broken versions, policies from models.config."""

from __future__ import annotations

import os
import shutil
import threading
import time

import grpc
import tensorflow as tf
from serve_helpers import ServerThread, http, options
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from apps.serve.registry import ModelRegistry, warm_up


def publish(base, name, version, source_version=1, source_name="sentiment"):
    """Copy a version the way export does: a non-numeric sibling, then rename."""
    target = base / name / str(version)
    tmp = base / name / f".copy-{version}"
    shutil.copytree(base / source_name / str(source_version), tmp)
    os.rename(tmp, target)
    return target


def served_version(server) -> int:
    channel = grpc.insecure_channel(server.grpc_target)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "sentiment"
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(["which version?"]))
    response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
        request, timeout=30
    )
    channel.close()
    return response.model_spec.version.value


def states(server, name="sentiment"):
    status, body = http(f"{server.url}/v1/models/{name}")
    assert status == 200, body
    return {
        int(s["version"]): (s["state"], s["status"]["error_code"])
        for s in body["model_version_status"]
    }


def test_a_new_version_is_served_only_after_its_warm_up(model_base):
    gate, warming = threading.Event(), threading.Event()

    def slow_warm_up(loaded):
        warm_up(loaded)
        if loaded.version == 2:
            warming.set()
            assert gate.wait(60)

    registry = ModelRegistry(model_base, poll_seconds=0, warmer=slow_warm_up)
    with ServerThread(options(model_base), registry) as server:
        assert served_version(server) == 1
        publish(model_base, "sentiment", 2)
        poller = threading.Thread(target=registry.poll)
        poller.start()
        assert warming.wait(60)
        assert states(server) == {2: ("LOADING", "OK"), 1: ("AVAILABLE", "OK")}
        assert served_version(server) == 1  # still the old one while 2 warms up
        assert (
            http(f"{server.url}/v1/models/sentiment/versions/2:predict", {"instances": ["x"]})[0]
            == 503
        )
        gate.set()
        poller.join(60)
        assert states(server) == {2: ("AVAILABLE", "OK"), 1: ("END", "OK")}
        assert served_version(server) == 2


def test_a_broken_version_never_replaces_the_working_one(model_base):
    registry = ModelRegistry(model_base, poll_seconds=0)
    with ServerThread(options(model_base), registry) as server:
        junk = model_base / "sentiment" / "2"
        (junk / "variables").mkdir(parents=True)
        (junk / "saved_model.pb").write_bytes(b"this is not a protocol buffer \x00\xff" * 10)
        registry.poll()
        status = states(server)
        assert status[1] == ("AVAILABLE", "OK")
        assert status[2][0] == "END" and status[2][1] != "OK"
        _, body = http(f"{server.url}/v1/models/sentiment/versions/2")
        assert body["model_version_status"][0]["status"]["error_message"]
        assert served_version(server) == 1
        assert (
            http(f"{server.url}/v1/models/sentiment/versions/2:predict", {"instances": ["x"]})[0]
            == 404
        )
        registry.poll()  # unchanged files: not retried, still reported
        assert states(server)[2][0] == "END"


def test_a_version_that_fails_warm_up_is_not_served(model_base):
    def failing_warm_up(loaded):
        if loaded.version == 2:
            raise RuntimeError("warm-up exploded")
        warm_up(loaded)

    registry = ModelRegistry(model_base, poll_seconds=0, warmer=failing_warm_up)
    with ServerThread(options(model_base), registry) as server:
        publish(model_base, "sentiment", 2)
        registry.poll()
        _, body = http(f"{server.url}/v1/models/sentiment/versions/2")
        assert "warm-up exploded" in body["model_version_status"][0]["status"]["error_message"]
        assert served_version(server) == 1


def test_the_base_path_is_polled_for_new_versions_and_models(model_base):
    with ServerThread(options(model_base, poll_seconds=0.2)) as server:
        publish(model_base, "sentiment", 5)
        publish(model_base, "copy", 1)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if server.server.registry.available() == {"copy": [1], "sentiment": [5]}:
                break
            time.sleep(0.2)
        assert server.server.registry.available() == {"copy": [1], "sentiment": [5]}
        assert http(f"{server.url}/v1/models/copy:predict", {"instances": ["hi"]})[0] == 200
        half_written = model_base / "sentiment" / ".export-half-written"
        half_written.mkdir()
        assert half_written.is_dir()
        time.sleep(0.5)  # a non-numeric directory is never a version
        assert server.server.registry.available()["sentiment"] == [5]


def test_models_config_version_policy_is_honoured(model_base):
    publish(model_base, "sentiment", 2)
    publish(model_base, "sentiment", 3)
    config = model_base / "models.config"
    config.write_text(
        "model_config_list { config { name: 'sentiment' base_path: "
        "'/models/sentiment' model_platform: 'tensorflow' model_version_policy "
        "{ specific { versions: 1 versions: 2 } } } }\n"
    )
    registry = ModelRegistry(model_base, poll_seconds=0)
    registry.poll()
    assert registry.available() == {"sentiment": [1, 2]}
    assert registry.get("sentiment").version == 2
    config.write_text(
        config.read_text().replace(
            "specific { versions: 1 versions: 2 }", "latest { num_versions: 1 }"
        )
    )
    registry.poll()
    assert registry.available() == {"sentiment": [3]}
