"""A recording's transcript and score do not depend on what else is in its batch.

Each path is checked with neighbours much longer and much shorter than the recording:
the model alone (random weights: the property holds for any weights), the run
directory's `transcribe`, the CLI's `--input`, the exported SavedModel, and
concurrent single-file requests to `apps serve`, which batches them.
"""

from __future__ import annotations

import base64
import json
import sys
import threading
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from cli_helpers import run_cli
from speech_helpers import RATE, sound, write_wav

from apps import runner
from apps.serve.batching import BatchingParameters
from apps.speech import task
from apps.speech.task import TASK, Trained

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))  # the serving helpers
from serve_helpers import ServerThread, http, options  # noqa: E402

SCORE_TOLERANCE = dict(rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> list[str]:
    """Eight recordings from 0.1 s to 3 s, shortest and longest far apart."""
    folder = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(11)
    clips = [sound(["low", "high", "hiss", "low", "high", "hiss", "low"], rng),
             sound(["high"], rng)[: RATE // 10],
             sound(["hiss", "low"], rng), sound(["low"], rng)[: RATE // 4],
             sound(["high", "hiss", "low"], rng), sound(["low", "high"], rng)[: RATE // 2 + 37],
             sound(["hiss"], rng), sound(["high", "low", "hiss", "high"], rng)]
    return [str(write_wav(folder / f"m{i}.wav", clip)) for i, clip in enumerate(clips)]


def alone_and_batched(transcribe_batch, paths):
    """(alone, batched): lists of (transcript, score), each file alone and all at once."""
    alone = [transcribe_batch([path])[0] for path in paths]
    return alone, transcribe_batch(paths)


def assert_same(alone, batched):
    assert [t for t, _ in batched] == [t for t, _ in alone]
    np.testing.assert_allclose([s for _, s in batched], [s for _, s in alone],
                               **SCORE_TOLERANCE)


def random_recogniser(run_dir: Path, seed: int) -> Trained:
    """The run's inputters with a freshly initialised model: other, arbitrary weights."""
    trained = runner.load(TASK, run_dir)
    keras.utils.set_random_seed(seed)
    model = TASK.build_model(trained.settings, trained.inputters)
    # larger weights than the initialiser's make every frame's argmax matter
    for variable in model.trainable_variables:
        variable.assign(variable * 3.0)
    return runner.trained_run(TASK, run_dir, trained.settings, trained.inputters, model)


@pytest.mark.parametrize("seed", [1, 2])
def test_random_weights_give_the_same_answer_alone_and_batched(tiny_run, mixed, seed):
    trained = random_recogniser(tiny_run[0], seed)
    audio = {path: trained.inputters["audio"].read(path) for path in mixed}

    def run(paths):
        words, scores = task.transcribe(trained, [audio[p] for p in paths],
                                        batch_size=len(paths))
        return list(zip(words, scores))

    alone, batched = alone_and_batched(run, mixed)
    assert len({t for t, _ in alone}) > 1  # the answers say something about the input
    assert_same(alone, batched)


def test_logits_of_real_frames_do_not_see_the_padding(tiny_run, mixed):
    """The model's per-frame scores, not only the decoded text: equal on every real frame."""
    trained = random_recogniser(tiny_run[0], 3)
    audio = trained.inputters["audio"]
    wavs = [Path(p).read_bytes() for p in mixed]
    features, frames = audio.preprocess(tf.constant(wavs))
    logits, lengths = trained.model((features, frames), training=False)
    for row, wav in enumerate(wavs):
        alone, alone_lengths = trained.model(audio.preprocess(tf.constant([wav])),
                                             training=False)
        length = int(alone_lengths[0])
        assert int(lengths[row]) == length
        np.testing.assert_allclose(logits[row, :length], alone[0], rtol=1e-4, atol=1e-4)


def test_the_run_and_the_cli_input_file_answer_as_alone(tiny_run, mixed, tmp_path):
    trained = runner.load(TASK, tiny_run[0])  # once: the CLI below loads the run by its path

    def run(paths):
        rows = task.transcribe_files(trained, paths, batch_size=len(paths))
        return [(r["transcript"], r["score"]) for r in rows]

    alone, batched = alone_and_batched(run, mixed)
    assert_same(alone, batched)
    listing = tmp_path / "files.txt"
    listing.write_text("\n".join(mixed) + "\n")
    result = run_cli("speech", "transcribe", tiny_run[0], "--input", listing, "--json")
    assert result.exit_code == 0, result.output
    batched = [(row["transcript"], row["score"])
               for row in map(json.loads, result.output.splitlines())]
    assert_same(alone, batched)


def test_the_saved_model_answers_as_alone(exported, mixed):
    signature = tf.saved_model.load(str(exported)).signatures["serving_default"]

    def run(paths):
        answer = signature(audio=tf.constant([Path(p).read_bytes() for p in paths]))
        return [(t.decode(), float(s)) for t, s in zip(answer["transcript"].numpy(),
                                                      answer["score"].numpy())]

    assert_same(*alone_and_batched(run, mixed))


def test_concurrent_single_file_requests_answer_as_alone(exported, mixed):
    """The server batches concurrent requests: every answer equals the file alone."""
    signature = tf.saved_model.load(str(exported)).signatures["serving_default"]
    alone = {}
    for path in mixed:
        answer = signature(audio=tf.constant([Path(path).read_bytes()]))
        alone[path] = (answer["transcript"].numpy()[0].decode(), float(answer["score"][0]))
    requests = [mixed[i % len(mixed)] for i in range(3 * len(mixed))]
    answers: dict[int, tuple] = {}
    # wait long enough for the concurrent requests to share batches
    served = options(exported.parent.parent,
                     batching=BatchingParameters(batch_timeout_micros=50_000))
    with ServerThread(served) as server:
        url = f"{server.url}/v1/models/speech:predict"

        def ask(number, path):
            body = {"instances": [{"b64": base64.b64encode(Path(path).read_bytes()).decode()}]}
            answers[number] = http(url, body)

        threads = [threading.Thread(target=ask, args=(n, p)) for n, p in enumerate(requests)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    served_rows = []
    for number in range(len(requests)):
        status, body = answers[number]
        assert status == 200, body
        served_rows.append((body["predictions"][0]["transcript"],
                            body["predictions"][0]["score"]))
    assert_same([alone[path] for path in requests], served_rows)
