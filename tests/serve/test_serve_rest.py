"""The REST API over loopback, as a TF Serving client sees it."""

from __future__ import annotations

import base64
import random
import socket
import time

import numpy as np
import pytest
from serve_helpers import http

TEXTS = [
    "What a wonderful film, I loved every minute.",
    "Dull and far too long.",
    "",
    "Ünïcödé 😀 and\ttabs",
]


def test_status_lists_the_available_version(served):
    status, body = http(f"{served.url}/v1/models/sentiment")
    assert status == 200
    assert body == {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    assert http(f"{served.url}/v1/models/sentiment/versions/1")[1] == body


def test_metadata_describes_the_signatures(served):
    status, body = http(f"{served.url}/v1/models/sentiment/metadata")
    assert status == 200
    assert body["model_spec"] == {"name": "sentiment", "signature_name": "", "version": "1"}
    default = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    assert default["inputs"]["text"]["dtype"] == "DT_STRING"
    assert default["inputs"]["text"]["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}]
    assert set(default["outputs"]) == {"label", "label_id", "scores"}


def test_predict_row_format_matches_the_signature(served, in_process):
    status, body = http(
        f"{served.url}/v1/models/sentiment:predict",
        {"signature_name": "serving_default", "instances": TEXTS},
    )
    assert status == 200, body
    expected = in_process(TEXTS)
    assert [row["label"] for row in body["predictions"]] == [b.decode() for b in expected["label"]]
    assert [row["label_id"] for row in body["predictions"]] == expected["label_id"].tolist()
    np.testing.assert_allclose(
        [row["scores"] for row in body["predictions"]], expected["scores"], rtol=1e-6
    )


def test_predict_columnar_format_and_b64(served, in_process):
    encoded = {"b64": base64.b64encode(TEXTS[3].encode()).decode()}
    status, body = http(
        f"{served.url}/v1/models/sentiment/versions/1:predict",
        {"inputs": {"text": [TEXTS[0], encoded]}},
    )
    assert status == 200, body
    expected = in_process([TEXTS[0], TEXTS[3]])
    assert body["outputs"]["label_id"] == expected["label_id"].tolist()
    np.testing.assert_allclose(body["outputs"]["scores"], expected["scores"], rtol=1e-6)
    assert http(f"{served.url}/v1/models/sentiment:predict", {"inputs": [TEXTS[0]]})[0] == 200


@pytest.mark.parametrize(
    "path, body, code",
    [
        ("/v1/models/nothing:predict", {"instances": ["x"]}, 404),
        ("/v1/models/sentiment/versions/7:predict", {"instances": ["x"]}, 404),
        ("/v1/models/sentiment/versions/7", None, 404),
        ("/v1/models/sentiment:predict", {"instances": ["x"], "signature_name": "nope"}, 400),
        ("/v1/models/sentiment:predict", {"instances": ["x"], "inputs": ["x"]}, 400),
        ("/v1/models/sentiment:predict", {"instances": [3.5]}, 400),
        ("/v1/models/sentiment:predict", {"inputs": {"text": [["a"], ["b"]]}}, 400),
        ("/v1/models/sentiment:classify", {"examples": []}, 501),
        ("/v1/models/sentiment/versions/x1:predict", {"instances": ["x"]}, 400),
        ("/v1/models/sentiment/versions/99999999999999999999:predict", {"instances": ["x"]}, 400),
        ("/v1/models/sentiment/labels/stable:predict", {"instances": ["x"]}, 400),
        ("/v1/models", None, 400),
        ("/v1/models/sentiment/what", None, 400),
        ("/v2/models/sentiment", None, 404),
    ],
)
def test_errors_have_tf_serving_status_codes(served, path, body, code):
    status, answer = http(served.url + path, body)
    assert status == code, answer
    assert isinstance(answer, dict) and set(answer) == {"error"} and answer["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/..%2F..%2Fetc%2Fpasswd:predict",
        "/v1/models/%2e%2e:predict",
        "/v1/models/.hidden:predict",
        "/v1/models/sentiment%2F1:predict",
        "/v1/models/../sentiment:predict",
        "/v1/models/sentiment%00:predict",
        "/v1/models/" + "a" * 300 + ":predict",
        "/v1/models/sentiment/versions/-1:predict",
        "/v1/models/sentiment/versions/1%2F..%2F2:predict",
    ],
)
def test_path_tricks_are_refused(served, path):
    status, answer = http(served.url + path, {"instances": ["x"]})
    assert 400 <= status < 500 and "error" in answer, (status, answer)


def test_a_body_over_the_limit_is_refused_with_413(served):
    limit = served.server.options.body_limit
    big = {"instances": ["x" * (limit + 10)]}
    status, answer = http(f"{served.url}/v1/models/sentiment:predict", big)
    assert status == 413 and "limit" in answer["error"]


def _raw_post(port: int, head: bytes, body_chunks, wait: float = 10.0) -> tuple[bytes, int]:
    """Send `head`, then body chunks until the server answers; (answer, body bytes sent)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        answer = b""
        deadline = time.monotonic() + wait
        for chunk in body_chunks:
            try:
                answer += sock.recv(65536)
                break
            except BlockingIOError:
                pass
            except ConnectionError:
                break
            try:
                sent += sock.send(chunk)
            except BlockingIOError:
                time.sleep(0.001)
            except (BrokenPipeError, ConnectionResetError):
                break
            if time.monotonic() > deadline:
                break
        sock.setblocking(True)
        sock.settimeout(wait)
        try:
            while b"\r\n\r\n" not in answer:
                part = sock.recv(65536)
                if not part:
                    break
                answer += part
        except (ConnectionError, TimeoutError):
            pass
    return answer, sent


def test_a_huge_declared_body_is_refused_before_it_is_read(served):
    size = 256 * 1024 * 1024
    head = (
        f"POST /v1/models/sentiment:predict HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    ).encode()
    answer, sent = _raw_post(served.server.rest_port, head, iter(lambda: b"x" * 65536, None))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < size // 4


def test_a_chunked_body_over_the_limit_is_refused(served):
    head = (
        b"POST /v1/models/sentiment:predict HTTP/1.1\r\nHost: x\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    piece = b"x" * 65536
    chunk = b"%x\r\n" % len(piece) + piece + b"\r\n"
    answer, sent = _raw_post(served.server.rest_port, head, (chunk for _ in range(4096)))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 4096 * len(chunk) // 4


def test_expect_100_continue_is_refused_up_front(served):
    head = (
        b"POST /v1/models/sentiment:predict HTTP/1.1\r\nHost: x\r\n"
        b"Expect: 100-continue\r\nContent-Length: 999999999\r\n\r\n"
    )
    answer, sent = _raw_post(served.server.rest_port, head, iter([]))
    assert answer.startswith(b"HTTP/1.1 413") and sent == 0


def test_junk_bodies_are_400s_and_the_server_lives(served):
    rng = random.Random(3)
    junk = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2000))) for _ in range(40)]
    junk += [
        b"{",
        b"[]",
        b"null",
        b'{"instances": {"b64": 5}}',
        b'{"instances": [[[[[]]]]]}',
        b'{"inputs": {"text": ' + b"[" * 5000 + b"]" * 5000 + b"}}",
        b'{"instances": ["\\ud800"]}',
        '{"instances": ["\u00e9"]}'.encode("latin-1"),
    ]
    for body in junk:
        status, answer = http(f"{served.url}/v1/models/sentiment:predict", body)
        assert 400 <= status < 500, (body[:50], status, answer)
    for _ in range(5):  # garbage that is not even HTTP
        with socket.create_connection(("127.0.0.1", served.server.rest_port), timeout=5) as sock:
            sock.sendall(bytes(rng.randrange(256) for _ in range(500)) + b"\r\n\r\n")
            assert sock.recv(100).split(b" ")[1] == b"400"
    assert http(f"{served.url}/v1/models/sentiment:predict", {"instances": ["fine"]})[0] == 200
