"""The exported recogniser under `apps serve`, over loopback: WAV bytes in, text out."""

from __future__ import annotations

import base64
import io
import logging
import sys
from pathlib import Path

import numpy as np
import soundfile
import tensorflow as tf
from cli_helpers import run_cli
from speech_helpers import RATE, sound, write_wav

from apps.speech import task

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))  # the serving helpers
from serve_helpers import ServerThread, http, options  # noqa: E402


def b64(path) -> dict:
    return {"b64": base64.b64encode(Path(path).read_bytes()).decode()}


def test_served_transcripts_equal_the_saved_models(exported, corpus, tmp_path):
    wavs = sorted((corpus["test"].parent / "wavs").glob("2_*.wav"))[:4]
    signature = tf.saved_model.load(str(exported)).signatures["serving_default"]
    expected = signature(audio=tf.constant([p.read_bytes() for p in wavs]))
    with ServerThread(options(exported.parent.parent)) as server:
        url = f"{server.url}/v1/models/speech:predict"
        status, body = http(url, {"instances": [b64(p) for p in wavs]})
        assert status == 200, body
        assert [row["transcript"] for row in body["predictions"]] == \
            [t.decode() for t in expected["transcript"].numpy()]
        np.testing.assert_allclose([row["score"] for row in body["predictions"]],
                                   expected["score"].numpy(), rtol=1e-5)


def wav_of(samples, subtype: str, rate: int = RATE) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


BAD = {  # name -> (bytes, the reason both the CLI and REST give)
    "zero": (b"", "the file is empty (0 bytes)."),
    "header": (wav_of(np.zeros(0, np.float32), "PCM_16"), "it holds no samples."),
    "random": (np.random.default_rng(9).bytes(3000), "it is not a WAV"),
    "riff": (b"RIFFjunk", "it is not a WAV"),
}


def test_bad_audio_gets_one_sentence_over_rest_as_on_the_command_line(exported, tiny_run,
                                                                      tmp_path):
    clip = sound(["high"], np.random.default_rng(5)).astype(np.float32)
    with ServerThread(options(exported.parent.parent)) as server:
        url = f"{server.url}/v1/models/speech:predict"
        for name, (data, reason) in BAD.items():
            status, body = http(url, {"instances": [{"b64": base64.b64encode(data).decode()}]})
            assert status == 400, (name, body)
            assert body["error"].startswith("The audio cannot be transcribed: " + reason), body
            assert "Graph execution" not in body["error"] and "[Op:" not in body["error"]
            assert "\n" not in body["error"], body
            path = tmp_path / f"{name}.wav"
            path.write_bytes(data)
            result = run_cli("speech", "transcribe", tiny_run[0], path)
            assert result.exit_code == 1
            assert f"'{path}' cannot be transcribed: {reason}" in result.output, result.output
        status, body = http(url, {"instances": [b64(write_wav(tmp_path / "fast.wav", clip,
                                                              rate=2 * RATE))]})
        assert status == 400
        assert body["error"] == ("The audio cannot be transcribed: it is sampled at 16000 Hz, "
                                 "not at the 8000 Hz of this model: resample it first."), body
        # 8-, 24-bit and float PCM and stereo are read, as on the command line
        stereo = np.stack([clip, clip * 0.5], axis=1)
        forms = {"8-bit": wav_of(clip, "PCM_U8"), "24-bit": wav_of(clip, "PCM_24"),
                 "float": wav_of(clip, "FLOAT"), "stereo": wav_of(stereo, "PCM_16")}
        status, body = http(url, {"instances": [{"b64": base64.b64encode(data).decode()}
                                                for data in forms.values()]})
        assert status == 200, body
        for (name, data), row in zip(forms.items(), body["predictions"]):
            path = tmp_path / f"{name}.wav"
            path.write_bytes(data)
            [alone] = task.transcribe_files(exported, [str(path)])
            assert row["transcript"] == alone["transcript"], name
            np.testing.assert_allclose(row["score"], alone["score"], rtol=1e-4, atol=1e-4)


def test_the_warm_up_of_apps_serve_passes(exported, caplog):
    """apps serve warms every signature up before serving: speech answers it."""
    with caplog.at_level(logging.INFO), ServerThread(options(exported.parent.parent)) as server:
        status, body = http(f"{server.url}/v1/models/speech")
        assert status == 200, body
    assert "inputs refused" not in caplog.text, caplog.text
