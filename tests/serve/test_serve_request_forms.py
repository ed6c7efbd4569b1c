"""Every kind of model answers both request forms TF Serving clients send, and warms up.

Row form (`instances`): every input one value per row, so parameters arrive as [N].
Columnar form (`inputs`): parameters may be sent once, as scalars. The exported LM,
translation and sentiment signatures accept both, over REST and through the
official gRPC stub, and a TF Serving warm-up file in the row form loads for every kind.
"""

from __future__ import annotations

import shutil

import grpc
import numpy as np
import pytest
import tensorflow as tf
from serve_helpers import http
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2, prediction_service_pb2_grpc

from apps.serve.errors import InvalidArgument, ServingError
from apps.serve.registry import WARMUP_FILE, load_version, read_warmup_requests, warm_up

SAMPLING = {"max_tokens": 12, "temperature": 0.9, "top_k": 0, "top_p": 1.0, "seed": 5}


def predict(server, model, body):
    status, answer = http(f"{server.url}/v1/models/{model}:predict", body)
    assert status == 200, answer
    return answer


def test_lm_generate_row_and_columnar_forms_agree(kinds_server):
    rows = [{"prompt": prompt, **SAMPLING} for prompt in ("ROMEO:", "To be")]
    by_rows = predict(kinds_server, "lm", {"signature_name": "generate", "instances": rows})
    columnar = predict(kinds_server, "lm", {"signature_name": "generate",
                                            "inputs": {"prompt": ["ROMEO:", "To be"], **SAMPLING}})
    texts = [row["text"] for row in by_rows["predictions"]]
    assert texts == columnar["outputs"]["text"]
    assert texts[0].startswith("ROMEO:") and len(texts[0]) > len("ROMEO:")
    assert by_rows["predictions"][0]["tokens"] == 12
    # serving_default: a scalar max_tokens and temperature for the whole request
    default = predict(kinds_server, "lm", {"inputs": {"prompt": ["a", "b"], "max_tokens": 3,
                                                      "temperature": 0.5}})
    assert [len(text) for text in default["outputs"]] == [4, 4]  # character model: 3 tokens


def test_a_parameter_of_the_wrong_length_is_refused(kinds_server):
    status, answer = http(f"{kinds_server.url}/v1/models/lm:predict", {
        "signature_name": "generate",
        "inputs": {"prompt": ["a", "b", "c"], **SAMPLING, "seed": [1, 2]}})
    assert status == 400
    assert "seed must be one value, or one value per row" in answer["error"]


def test_translate_takes_beam_size_per_row_or_per_request(kinds_server):
    texts = ["3 1 4", "1 5 9 2", "6 5"]
    rows = [{"text": t, "beam_size": beam, "max_length": 20} for t, beam in zip(texts, (1, 3, 2))]
    mixed = predict(kinds_server, "translation", {"signature_name": "translate",
                                                  "instances": rows})["predictions"]
    assert len(mixed) == 3
    for text, beam, answer in zip(texts, (1, 3, 2), mixed):  # each as if it came alone
        alone = predict(kinds_server, "translation", {
            "signature_name": "translate",
            "inputs": {"text": [text], "beam_size": beam, "max_length": 20}})["outputs"]
        pieces = lambda aligned: [i for i in aligned if i >= 0]  # noqa: E731 - no padding
        assert answer["translation"] == alone["translation"][0]
        assert answer["score"] == alone["score"][0]
        assert pieces(answer["aligned_source"]) == pieces(alone["aligned_source"][0])
    default = predict(kinds_server, "translation", {"instances": texts})["predictions"]
    beam2 = predict(kinds_server, "translation", {
        "signature_name": "translate", "inputs": {"text": texts, "beam_size": 2,
                                                  "max_length": 256}})["outputs"]
    assert [row["translation"] for row in default] == beam2["translation"]  # exported beam: 2


def tensor(values, dtype):
    return tf.make_tensor_proto(np.asarray(values), dtype=dtype)


def test_grpc_stub_sends_scalars_or_vectors(kinds_server):
    channel = grpc.insecure_channel(kinds_server.grpc_target)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    answers = []
    for beam, limit in ((2, 20), ([2, 2], [20, 20])):
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = "translation", "translate"
        request.inputs["text"].CopyFrom(tensor([b"3 1 4", b"2 7"], tf.string))
        request.inputs["beam_size"].CopyFrom(tensor(beam, tf.int32))
        request.inputs["max_length"].CopyFrom(tensor(limit, tf.int32))
        reply = stub.Predict(request, timeout=60)
        answers.append(tf.make_ndarray(reply.outputs["translation"]).tolist())
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "lm", "generate"
    request.inputs["prompt"].CopyFrom(tensor([b"KING"], tf.string))
    for key, dtype in (("max_tokens", tf.int32), ("temperature", tf.float32),
                       ("top_k", tf.int32), ("top_p", tf.float32), ("seed", tf.int64)):
        request.inputs[key].CopyFrom(tensor(SAMPLING[key], dtype))
    text = tf.make_ndarray(stub.Predict(request, timeout=60).outputs["text"])[0].decode()
    channel.close()
    assert answers[0] == answers[1] and len(answers[0]) == 2
    assert text == predict(kinds_server, "lm", {"signature_name": "generate", "instances": [
        {"prompt": "KING", **SAMPLING}]})["predictions"][0]["text"]


def row_form_request(signature_name, signature):
    """A PredictRequest as a row-form client sends it: every input one value for one row."""
    request = predict_pb2.PredictRequest()
    request.model_spec.signature_name = signature_name
    for key, value in signature.warm_up_inputs().items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(np.reshape(value, (1,)),
                                                          dtype=signature.inputs[key].dtype))
    return request


@pytest.mark.parametrize("kind", ["sentiment", "lm", "translation", "speech"])
def test_made_up_warm_up_inputs_and_a_tf_serving_warm_up_file_run_every_signature(
        all_kinds, tmp_path, kind):
    """The warm-up built from the SignatureDefs alone (nothing per task) runs each graph;
    only audio may refuse made-up bytes, and then as an invalid argument. TF Serving's
    assets.extra/tf_serving_warmup_requests, one row-form request per signature, is read
    back and replayed by apps serve for every kind but speech (whose made-up bytes are
    no audio). One load of each export serves both checks."""
    version = tmp_path / kind / "1"
    shutil.copytree(all_kinds / kind / "1", version)
    loaded = load_version(kind, 1, version)
    signatures = loaded.signatures
    for signature in signatures.values():
        try:
            outputs = signature.run(signature.warm_up_inputs())
        except ServingError as error:
            assert kind == "speech" and error.code == InvalidArgument.code, error.message
            continue
        assert outputs and all(np.shape(value)[:1] == (1,) for value in outputs.values())
    if kind == "speech":
        return
    (version / WARMUP_FILE).parent.mkdir()
    with tf.io.TFRecordWriter(str(version / WARMUP_FILE)) as writer:
        for name, signature in signatures.items():
            log = prediction_log_pb2.PredictionLog()
            log.predict_log.request.CopyFrom(row_form_request(name, signature))
            writer.write(log.SerializeToString())
    assert {name for name, _ in read_warmup_requests(version)} == set(signatures)
    warm_up(loaded)  # replays the file; raises if any recorded request is refused


class ScalarParameter(tf.Module):
    """A signature with a true scalar input, as the translator's used to be."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                  tf.TensorSpec([], tf.int32, name="max_length")])
    def cut(self, text, max_length):
        return {"text": tf.strings.substr(text, 0, max_length)}


def test_a_scalar_input_is_warmed_up_with_a_scalar(tmp_path):
    module = ScalarParameter()
    tf.saved_model.save(module, str(tmp_path / "cut" / "1"),
                        signatures={"serving_default": module.cut})
    loaded = load_version("cut", 1, tmp_path / "cut" / "1")
    assert np.shape(loaded.signatures["serving_default"].warm_up_inputs()["max_length"]) == ()
    warm_up(loaded)
