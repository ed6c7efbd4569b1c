"""Nothing per task: a model with several typed inputs and two signatures (the LM's shape)."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import tensorflow as tf
from serve_helpers import ServerThread, http, options
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc


class ToyLanguageModel(tf.Module):
    """serving_default(prompt, max_tokens, temperature) -> text; score(text) -> numbers, bytes."""

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="prompt"),
            tf.TensorSpec([None], tf.int32, name="max_tokens"),
            tf.TensorSpec([None], tf.float32, name="temperature"),
        ]
    )
    def generate(self, prompt, max_tokens, temperature):
        parts = [
            prompt,
            tf.strings.as_string(max_tokens),
            tf.strings.as_string(temperature, precision=1),
        ]
        return {"text": tf.strings.join(parts, separator="|")}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def score(self, text):
        return {"log_likelihood": -tf.cast(tf.strings.length(text), tf.float32), "text_bytes": text}


@pytest.fixture(scope="module")
def toy_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("toy")
    model = ToyLanguageModel()
    tf.saved_model.save(
        model,
        str(base / "lm" / "1"),
        signatures={"serving_default": model.generate, "score": model.score},
    )
    with ServerThread(options(base, request_timeout=5.0)) as server:
        yield server


def test_named_instances_with_typed_inputs(toy_server):
    instances = [
        {"prompt": "Once", "max_tokens": 5, "temperature": 0.7},
        {"prompt": "Twice", "max_tokens": 9, "temperature": 1},
    ]
    status, body = http(f"{toy_server.url}/v1/models/lm:predict", {"instances": instances})
    assert status == 200, body
    assert body == {"predictions": ["Once|5|0.7", "Twice|9|1.0"]}
    columnar = {"inputs": {"prompt": ["Once"], "max_tokens": [5], "temperature": [0.7]}}
    assert http(f"{toy_server.url}/v1/models/lm:predict", columnar)[1] == {
        "outputs": ["Once|5|0.7"]
    }


def test_a_second_signature_and_bytes_outputs(toy_server):
    body = {
        "signature_name": "score",
        "instances": [{"b64": base64.b64encode(b"\x00\xffab").decode()}],
    }
    status, answer = http(f"{toy_server.url}/v1/models/lm:predict", body)
    assert status == 200, answer
    (row,) = answer["predictions"]
    assert row == {
        "log_likelihood": -4.0,
        "text_bytes": {"b64": base64.b64encode(b"\x00\xffab").decode()},
    }


def test_concurrent_multi_input_requests_are_batched_correctly(toy_server):
    def one(i):
        instance = {"prompt": f"p{i}", "max_tokens": i, "temperature": 0.5}
        return http(f"{toy_server.url}/v1/models/lm:predict", {"instances": [instance]})

    with ThreadPoolExecutor(12) as clients:
        answers = list(clients.map(one, range(24)))
    assert [a[1]["predictions"] for a in answers] == [[f"p{i}|{i}|0.5"] for i in range(24)]


def test_grpc_with_several_inputs(toy_server):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "lm"
    request.inputs["prompt"].CopyFrom(tf.make_tensor_proto(["Once"]))
    request.inputs["max_tokens"].CopyFrom(tf.make_tensor_proto([3], dtype=tf.int32))
    request.inputs["temperature"].CopyFrom(tf.make_tensor_proto([0.2], dtype=tf.float32))
    with grpc.insecure_channel(toy_server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, timeout=10)
    assert tf.make_ndarray(response.outputs["text"]).tolist() == [b"Once|3|0.2"]


def test_a_slow_request_times_out_with_504(tmp_path):
    base = tmp_path / "toy"
    model = ToyLanguageModel()
    tf.saved_model.save(
        model, str(base / "lm" / "1"), signatures={"serving_default": model.generate}
    )
    from apps.serve.batching import BatchingParameters

    slow = BatchingParameters(max_batch_size=64, batch_timeout_micros=3_000_000)
    with ServerThread(options(base, request_timeout=0.2, batching=slow)) as server:
        instance = {"prompt": "x", "max_tokens": 1, "temperature": 0.0}
        status, body = http(f"{server.url}/v1/models/lm:predict", {"instances": [instance]})
    assert status == 504 and "request-timeout" in body["error"]


class StrictDecoder(tf.Module):
    """A model whose graph refuses made-up bytes, as a WAV decoder refuses "warm-up"."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="data")])
    def serve(self, data):
        check = tf.debugging.assert_equal(tf.strings.substr(data, 0, 4), "RIFF",
                                          message="data must start with RIFF")
        with tf.control_dependencies([check]):
            return {"size": tf.strings.length(data)}


def test_a_graph_that_refuses_the_warm_up_input_still_loads_and_says_400(tmp_path):
    model = StrictDecoder()
    tf.saved_model.save(model, str(tmp_path / "strict" / "1"),
                        signatures={"serving_default": model.serve})
    with ServerThread(options(tmp_path)) as server:
        url = f"{server.url}/v1/models/strict:predict"
        status, body = http(url, {"instances": ["RIFF1234"]})
        assert status == 200 and body["predictions"] == [8]
        status, body = http(url, {"instances": ["nope"]})
        assert status == 400 and "data must start with RIFF" in body["error"]
