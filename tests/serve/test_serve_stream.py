"""`:stream` (server-sent events) over loopback: tokens as produced, the `:predict` text at
the end, refusals as TF Serving-style JSON errors, and a client that leaves stops the work."""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlparse

from serve_helpers import http as call

SAMPLING = {"temperature": 0.9, "top_k": 0, "top_p": 1.0, "seed": 11}


def open_stream(server, body, model="lm"):
    address = urlparse(server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    connection.request("POST", f"/v1/models/{model}:stream", json.dumps(body),
                       {"Content-Type": "application/json"})
    return connection, connection.getresponse()


def events(response):
    """(name, data) for each event, as they arrive."""
    name, data = None, ""
    while True:
        line = response.readline()
        if not line:
            return
        line = line.decode("utf-8").rstrip("\n")
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif not line and name:
            yield name, json.loads(data)
            name, data = None, ""


def test_stream_gives_pieces_then_the_text_predict_gives(kinds_server):
    body = {"signature_name": "generate",
            "instances": [{"prompt": "ROMEO:", "max_tokens": 40, **SAMPLING}]}
    connection, response = open_stream(kinds_server, body)
    assert response.status == 200
    assert response.getheader("Content-Type").startswith("text/event-stream")
    received = list(events(response))
    connection.close()
    pieces = [data["text"] for name, data in received if name == "token"]
    (done,) = [data for name, data in received if name == "done"]
    assert len(pieces) >= 4 and received[-1][0] == "done"
    assert done["text"] == "ROMEO:" + "".join(pieces) and done["tokens"] == 40
    status, answer = call(f"{kinds_server.url}/v1/models/lm:predict", body)
    assert status == 200 and answer["predictions"][0]["text"] == done["text"]


def test_stream_takes_the_columnar_form_too(kinds_server):
    body = {"signature_name": "generate",
            "inputs": {"prompt": ["To be"], "max_tokens": 10, **SAMPLING}}
    connection, response = open_stream(kinds_server, body)
    done = [data for name, data in events(response) if name == "done"][0]
    connection.close()
    status, answer = call(f"{kinds_server.url}/v1/models/lm:predict", body)
    assert done["text"] == answer["outputs"]["text"][0]


def test_a_client_that_disconnects_stops_the_generation(kinds_server):
    body = {"signature_name": "generate",
            "instances": [{"prompt": "KING", "max_tokens": 5000, **SAMPLING}]}
    call(f"{kinds_server.url}/v1/models/lm:predict", {**body, "instances": [
        {**body["instances"][0], "max_tokens": 1}]})  # make sure the batcher exists
    batcher = kinds_server.server.registry.get("lm").batchers["generate"]
    before = batcher.calls
    connection, response = open_stream(kinds_server, body)
    stream = events(response)
    assert next(stream)[0] == "token"
    connection.sock.close()
    connection.close()
    time.sleep(2.0)
    after = batcher.calls
    time.sleep(1.5)
    assert batcher.calls == after  # nothing runs for the departed client
    assert after - before < 5000 // 16  # far fewer chunks than the whole text needs


def test_refusals_are_json_errors_before_the_stream_starts(kinds_server):
    url = f"{kinds_server.url}/v1/models"
    status, answer = call(f"{url}/lm:stream", {"signature_name": "score",
                                               "instances": ["some text"]})
    assert status == 400
    assert answer["error"].startswith("Signature 'score' cannot stream")
    status, answer = call(f"{url}/no_such_model:stream", {"instances": ["x"]})
    assert status == 404 and "no_such_model" in answer["error"]
    status, answer = call(f"{url}/lm:stream", {"signature_name": "generate", "instances": [
        {"prompt": p, "max_tokens": 3, **SAMPLING} for p in ("a", "b")]})
    assert status == 400 and "one prompt" in answer["error"]
    status, answer = call(f"{url}/lm:stream", {"signature_name": "generate", "instances": [
        {"prompt": "a", "max_tokens": 10**6, **SAMPLING}]})
    assert status == 400 and "max_tokens must be between 0 and 10000" in answer["error"]
