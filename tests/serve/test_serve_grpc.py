"""gRPC through the official tensorflow-serving-api stubs, and parity with REST."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tensorflow as tf
from serve_helpers import http
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

TEXTS = [
    "A gripping, beautifully acted story.",
    "Tedious from start to finish.",
    "",
    "Ünïcödé 😀",
    "ok",
]


@pytest.fixture(scope="module")
def stubs(served):
    channel = grpc.insecure_channel(served.grpc_target)
    yield (
        prediction_service_pb2_grpc.PredictionServiceStub(channel),
        model_service_pb2_grpc.ModelServiceStub(channel),
    )
    channel.close()


def predict_request(texts, name="sentiment", version=None, signature=""):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(texts, dtype=tf.string))
    return request


def test_model_status(stubs):
    _, model_service = stubs
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "sentiment"
    (status,) = model_service.GetModelStatus(request, timeout=10).model_version_status
    assert status.version == 1
    assert status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert status.status.error_code == 0


def test_model_metadata(stubs):
    prediction, _ = stubs
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "sentiment"
    request.metadata_field.append("signature_def")
    response = prediction.GetModelMetadata(request, timeout=10)
    assert response.model_spec.version.value == 1
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    default = signatures.signature_def["serving_default"]
    assert default.inputs["text"].dtype == tf.string.as_datatype_enum
    assert set(default.outputs) == {"label", "label_id", "scores"}


def test_rest_grpc_and_in_process_answers_are_equal(served, stubs, in_process):
    prediction, _ = stubs
    response = prediction.Predict(predict_request(TEXTS), timeout=30)
    assert response.model_spec.name == "sentiment" and response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"
    by_grpc = {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}
    status, by_rest = http(f"{served.url}/v1/models/sentiment:predict", {"inputs": TEXTS})
    assert status == 200
    expected = in_process(TEXTS)
    assert set(by_grpc) == set(by_rest["outputs"]) == set(expected)
    assert by_grpc["label"].tolist() == expected["label"].tolist()
    assert by_rest["outputs"]["label"] == [b.decode() for b in expected["label"]]
    assert (
        by_grpc["label_id"].tolist()
        == by_rest["outputs"]["label_id"]
        == expected["label_id"].tolist()
    )
    np.testing.assert_array_equal(by_grpc["scores"], expected["scores"])
    np.testing.assert_array_equal(np.float32(by_rest["outputs"]["scores"]), expected["scores"])


def test_output_filter(stubs):
    prediction, _ = stubs
    request = predict_request(["fine"], version=1)
    request.output_filter.append("label")
    assert set(prediction.Predict(request, timeout=30).outputs) == {"label"}


@pytest.mark.parametrize(
    "change, code",
    [
        (dict(name="nothing"), grpc.StatusCode.NOT_FOUND),
        (dict(version=42), grpc.StatusCode.NOT_FOUND),
        (dict(name="../etc"), grpc.StatusCode.INVALID_ARGUMENT),
        (dict(signature="nope"), grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
def test_errors_carry_tf_serving_codes(stubs, change, code):
    prediction, _ = stubs
    with pytest.raises(grpc.RpcError) as raised:
        prediction.Predict(predict_request(["x"], **change), timeout=30)
    assert raised.value.code() == code


def test_wrong_dtype_and_missing_input_are_invalid(stubs):
    prediction, _ = stubs
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "sentiment"
    request.inputs["text"].CopyFrom(tf.make_tensor_proto([1.0, 2.0]))
    with pytest.raises(grpc.RpcError) as raised:
        prediction.Predict(request, timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    del request.inputs["text"]
    with pytest.raises(grpc.RpcError) as raised:
        prediction.Predict(request, timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_messages_over_the_limit_are_refused(served, stubs):
    prediction, _ = stubs
    big = "x" * (served.server.options.body_limit + 100)
    with pytest.raises(grpc.RpcError) as raised:
        prediction.Predict(predict_request([big]), timeout=30)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert prediction.Predict(predict_request(["still alive"]), timeout=30).outputs
