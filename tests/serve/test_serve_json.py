"""TF Serving's JSON formats, on hand-made signatures (no model needed)."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from apps.serve import json_tensors
from apps.serve.errors import InvalidArgument
from apps.serve.signatures import Signature


def signature(**inputs) -> Signature:
    """A signature whose inputs are {key: (dtype, shape)}; it is never called here."""
    signature_def = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    for key, (dtype, shape) in inputs.items():
        info = signature_def.inputs[key]
        info.dtype = dtype.as_datatype_enum
        for size in shape:
            info.tensor_shape.dim.add(size=-1 if size is None else size)
    return Signature("serving_default", signature_def, lambda **kw: kw)


TEXT = signature(text=(tf.string, [None]))
LM = signature(
    prompt=(tf.string, [None]), max_tokens=(tf.int32, [None]), temperature=(tf.float32, [None])
)


def decode(document, sig=TEXT):
    return json_tensors.decode_request(document, sig)


def test_row_format_single_input_and_b64():
    form, inputs = decode(
        {"instances": ["loved it", {"b64": base64.b64encode(b"\xff\x00").decode()}]}
    )
    assert form == json_tensors.ROW
    assert inputs["text"].dtype == object and list(inputs["text"]) == [b"loved it", b"\xff\x00"]


def test_row_format_named_inputs_stack_per_key():
    form, inputs = decode(
        {
            "instances": [
                {"prompt": "a", "max_tokens": 5, "temperature": 0.5},
                {"prompt": "b", "max_tokens": 7, "temperature": 1},
            ]
        },
        LM,
    )
    assert inputs["max_tokens"].dtype == np.int32 and inputs["max_tokens"].tolist() == [5, 7]
    assert inputs["temperature"].dtype == np.float32 and inputs["temperature"].tolist() == [
        0.5,
        1.0,
    ]


def test_columnar_format_named_and_bare():
    assert decode({"inputs": {"text": ["x", "y"]}})[1]["text"].shape == (2,)
    form, inputs = decode({"inputs": ["x"]})
    assert form == json_tensors.COLUMNAR and inputs["text"].tolist() == [b"x"]


@pytest.mark.parametrize(
    "document",
    [
        {"instances": ["x"], "inputs": ["x"]},  # both
        {"signature_name": "serving_default"},  # neither
        {"instances": []},  # nothing to predict
        {"instances": "x"},  # not a list
        {"instances": [1]},  # a number for a string input
        {"instances": [{"b64": "!!!"}]},  # bad base64
        {"instances": [{"text": "x", "extra": 1}]},  # unknown named input
        {"instances": [["a", "b"], ["c"]]},  # ragged
        {"inputs": {"txt": ["x"]}},  # wrong key
    ],
)
def test_malformed_requests_are_invalid_arguments(document):
    with pytest.raises(InvalidArgument):
        decode(document)


@pytest.mark.parametrize(
    "instance",
    [
        {"prompt": "a", "max_tokens": 1.5, "temperature": 1},
        {"prompt": "a", "max_tokens": 2**40, "temperature": 1},
        {"prompt": "a", "max_tokens": True, "temperature": 1},
        {"prompt": "a", "max_tokens": 1},
    ],
)
def test_values_must_fit_the_declared_dtypes(instance):
    with pytest.raises(InvalidArgument):
        decode({"instances": [instance]}, LM)


def test_several_inputs_need_named_instances():
    with pytest.raises(InvalidArgument, match="naming every input"):
        decode({"instances": ["a"]}, LM)


@pytest.mark.parametrize(
    "body", [b"", b"{", b"[1, 2]", b"\xff\xfe junk", b"null", b"[" * 100000 + b"]" * 100000]
)
def test_junk_bodies_are_invalid_arguments(body):
    with pytest.raises(InvalidArgument):
        json_tensors.parse_body(body)


def test_responses_row_and_columnar():
    outputs = {
        "label": np.array([b"positive", b"negative"], dtype=object),
        "scores": np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32),
    }
    rows = json_tensors.encode_response(json_tensors.ROW, outputs)
    assert rows == {
        "predictions": [
            {"label": "positive", "scores": [0.25, 0.75]},
            {"label": "negative", "scores": [0.5, 0.5]},
        ]
    }
    columns = json_tensors.encode_response(json_tensors.COLUMNAR, outputs)
    assert columns == {
        "outputs": {"label": ["positive", "negative"], "scores": [[0.25, 0.75], [0.5, 0.5]]}
    }
    single = json_tensors.encode_response(json_tensors.ROW, {"label": outputs["label"]})
    assert single == {"predictions": ["positive", "negative"]}


def test_only_bytes_outputs_are_base64():
    outputs = {
        "audio_bytes": np.array([b"\x00\xff"], dtype=object),
        "text": np.array(["h\u00e9".encode()], dtype=object),
    }
    response = json_tensors.encode_response(json_tensors.COLUMNAR, outputs)["outputs"]
    assert response["audio_bytes"] == [{"b64": base64.b64encode(b"\x00\xff").decode()}]
    assert response["text"] == ["h\u00e9"]


def test_float32_outputs_print_as_float32():
    value = np.array([0.1], dtype=np.float32)
    assert json_tensors.to_json("p", value) == [0.1]  # not 0.10000000149011612
