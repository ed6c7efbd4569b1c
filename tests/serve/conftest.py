"""Real SavedModels for the serving tests: one tiny sentiment run, exported once a session."""

from __future__ import annotations

import shutil

import pytest

from apps import runner
from apps.sentiment import task

TINY = dict(epochs=1, units=8, embedding_dim=8, vocab_size=100, bidirectional=False)


@pytest.fixture(scope="session")
def serve_run(tmp_path_factory, sentiment_sample):
    """A one-epoch sentiment run directory (the model need not be good, only real)."""
    settings = task.SentimentSettings(
        data=str(sentiment_sample / "train.tsv"), valid=str(sentiment_sample / "valid.tsv"), **TINY
    )
    output = tmp_path_factory.mktemp("serve") / "run"
    run_dir, _ = runner.train(task.TASK, settings, output=output, verbose=0)
    return run_dir


@pytest.fixture(scope="session")
def exported(tmp_path_factory, serve_run):
    """`BASE` holding `sentiment/1` exported from the run (read-only for tests)."""
    base = tmp_path_factory.mktemp("saved_models")
    runner.export(task.TASK, serve_run, base, "sentiment")
    return base


@pytest.fixture
def model_base(tmp_path, exported):
    """A private copy of the exported base that a test may change (new versions, junk)."""
    base = tmp_path / "saved_models"
    shutil.copytree(exported, base)
    return base


@pytest.fixture(scope="session")
def in_process(exported):
    """The exported `serving_default` called directly: the answer both protocols must give."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    signature = tf.saved_model.load(str(exported / "sentiment" / "1")).signatures["serving_default"]

    def call(texts):
        return {k: v.numpy() for k, v in signature(text=tf.constant(texts)).items()}

    return call


@pytest.fixture(scope="session")
def served(exported):
    """One server over the session's export for tests that only read."""
    from serve_helpers import ServerThread, options

    with ServerThread(options(exported, body_limit=64 * 1024)) as server:
        yield server


# ------------------------------------------------------ one tiny model of every kind


def _load_helpers(name: str, path):
    """A helper module of another test folder (its fixtures' data makers), by file path."""
    import importlib.util
    import sys

    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def all_kinds(request, tmp_path_factory, shakespeare):
    """`BASE` with sentiment, lm, translation and speech: tiny real models of every kind.

    The data come from the other test folders' helpers (a Tiny Shakespeare slice, the
    reversed-digits pairs, the synthetic tone recordings, here at 16 kHz); each model
    trains for an epoch or two: real graphs, not good models. `APPS_TEST_MODELS=DIR`
    reuses a base this fixture filled before (for work on the page).
    """
    import os
    from pathlib import Path

    from apps.lm import task as lm
    from apps.speech import task as speech
    from apps.translation import task as translation

    reuse = os.environ.get("APPS_TEST_MODELS")
    if reuse and all((Path(reuse) / kind).is_dir() for kind in KINDS):
        return Path(reuse)
    tests = Path(__file__).resolve().parents[1]
    digits = _load_helpers("translation_fixtures", tests / "translation" / "conftest.py")
    sounds = _load_helpers("speech_helpers", tests / "speech" / "speech_helpers.py")
    base = Path(reuse) if reuse else tmp_path_factory.mktemp("all_kinds")
    exported = request.getfixturevalue("exported")
    shutil.copytree(exported / "sentiment", base / "sentiment", dirs_exist_ok=True)
    work = tmp_path_factory.mktemp("all_kinds_runs")

    (work / "train.txt").write_text(shakespeare[0][:6000], encoding="utf-8")
    (work / "valid.txt").write_text(shakespeare[1][:3000], encoding="utf-8")
    settings = lm.LanguageModelSettings(
        data=str(work / "train.txt"), valid=str(work / "valid.txt"), tokenizer="char",
        units=16, embedding_dim=8, batch_size=4, sequence_length=16, epochs=1, seed=1)
    run, _ = runner.train(lm.TASK, settings, work / "lm", verbose=0)
    runner.export(lm.TASK, run, base, "lm")

    pairs = digits.write_pair(work / "digits", *digits.reversed_digits(160, 0))
    settings = translation.TranslationSettings(
        data=str(pairs), **{**digits.TINY, "units": 8, "embedding_dim": 8, "epochs": 1})
    run, _ = runner.train(translation.TASK, settings, work / "translation", verbose=0)
    runner.export(translation.TASK, run, base, "translation", beam_size=2)

    manifest = sounds.write_corpus(work / "sounds", 16, 1, rate=16000, name="train.csv")
    settings = speech.SpeechSettings(data=str(manifest), **{
        **sounds.TINY, "epochs": 1, "units": 8, "conv_filters": 4, "batch_size": 8})
    run, _ = runner.train(speech.TASK, settings, work / "speech", verbose=0)
    runner.export(speech.TASK, run, base, "speech")
    return base


KINDS = ("sentiment", "lm", "translation", "speech")


@pytest.fixture(scope="session")
def kinds_server(tmp_path_factory, all_kinds):
    """One server over every kind, plus `retired`: a sentiment copy a test may take away."""
    from serve_helpers import ServerThread, options

    base = tmp_path_factory.mktemp("kinds_served")
    for child in all_kinds.iterdir():
        if child.is_dir():
            shutil.copytree(child, base / child.name)
    shutil.copytree(all_kinds / "sentiment", base / "retired")
    save_toy_translator(base / "toy_translator" / "1")
    with ServerThread(options(base, request_timeout=60.0), start_timeout=600) as server:
        server.base = base
        yield server


def save_toy_translator(path):
    """A translator-shaped SavedModel with n-best and attention outputs (the exported
    translator has neither): it "translates" by reversing the words, the second best
    keeps their order, and attention looks at the mirrored word."""
    import tensorflow as tf

    class ToyTranslator(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                      tf.TensorSpec(None, tf.int32, name="n_best")])
        def translate(self, text, n_best):
            words = tf.strings.split(text).to_tensor("")
            length = tf.shape(words)[1]
            backwards = tf.reverse(words, axis=[1])
            sentences = tf.stack([tf.strings.reduce_join(backwards, axis=1, separator=" "),
                                  tf.strings.reduce_join(words, axis=1, separator=" ")], axis=1)
            keep = tf.minimum(tf.reduce_max(n_best), 2)
            mirror = tf.reverse(tf.eye(length), axis=[1])
            rows = tf.shape(text)[0]
            return {"translations": tf.strings.strip(sentences[:, :keep]),
                    "scores": tf.tile([[-0.5, -1.25]], [rows, 1])[:, :keep],
                    "alignment": tf.tile(mirror[None], [rows, 1, 1]) * 0.8 + 0.05,
                    "source_tokens": words, "target_tokens": backwards}

    module = ToyTranslator()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.translate})
