"""The exported recogniser under `apps serve`, over loopback: WAV bytes in, text out."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
from speech_helpers import RATE, sound, write_wav

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))  # the serving helpers
from serve_helpers import ServerThread, http, options  # noqa: E402


def b64(path) -> dict:
    return {"b64": base64.b64encode(Path(path).read_bytes()).decode()}


def test_served_transcripts_equal_the_saved_models(exported, corpus, tmp_path):
    wavs = sorted((corpus["test"].parent / "wavs").glob("2_*.wav"))[:4]
    signature = tf.saved_model.load(str(exported)).signatures["serving_default"]
    expected = signature(audio=tf.constant([p.read_bytes() for p in wavs]))
    clip = sound(["high"], np.random.default_rng(5))
    eight = write_wav(tmp_path / "eight.wav", clip, width=1)
    fast = write_wav(tmp_path / "fast.wav", clip, rate=2 * RATE)
    with ServerThread(options(exported.parent.parent)) as server:
        url = f"{server.url}/v1/models/speech:predict"
        status, body = http(url, {"instances": [b64(p) for p in wavs]})
        assert status == 200, body
        assert [row["transcript"] for row in body["predictions"]] == \
            [t.decode() for t in expected["transcript"].numpy()]
        np.testing.assert_allclose([row["score"] for row in body["predictions"]],
                                   expected["score"].numpy(), rtol=1e-5)
        status, body = http(url, {"instances": [b64(wavs[0]), b64(eight)]})
        assert status == 400 and "16-bit" in body["error"], body
        status, body = http(url, {"instances": [b64(fast)]})
        assert status == 400 and "not sampled at 8000 Hz" in body["error"], body
        status, body = http(url, {"instances": [{"b64": base64.b64encode(b"RIFFjunk").decode()}]})
        assert status == 400, body
