"""CTC beam search fused with an `apps lm` character model (--lm, --lm-weight, --word-bonus)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
from cli_helpers import run_cli

from apps import runner
from apps.decoding import first
from apps.lm.task import TASK as LM_TASK
from apps.lm.task import LanguageModelSettings
from apps.speech import decoding, fusion
from apps.speech.task import TASK


@pytest.fixture(scope="module")
def language_model(tmp_path_factory):
    """A tiny character LM of transcripts that are nearly always "high"."""
    folder = tmp_path_factory.mktemp("lm")
    corpus = folder / "transcripts.txt"
    corpus.write_text("low\nhiss\nhigh low\n" + "high\n" * 400)  # the end validates
    settings = LanguageModelSettings(data=str(corpus), tokenizer="char", units=32,
                                     embedding_dim=8, batch_size=8, sequence_length=16,
                                     epochs=6, learning_rate=1e-2, seed=1)
    return runner.train(LM_TASK, settings, folder / "run", verbose=0)[0]


@pytest.fixture(scope="module")
def speech(tiny_run):
    return runner.load(TASK, tiny_run[0])


def near_tie(tokenizer, first: str, second: str, lead: float = 0.04) -> np.ndarray:
    """Frame log-probabilities [T, V]: each frame spells `first` with probability
    0.5 + lead and `second` with 0.5 - lead (padded with blanks), so CTC alone prefers
    `first` by a little."""
    def frames(word):
        ids = tokenizer.encode([word])[0]
        return [i for piece in ids for i in (piece, 0)]

    a, b = frames(first), frames(second)
    steps = max(len(a), len(b))
    a, b = a + [0] * (steps - len(a)), b + [0] * (steps - len(b))
    probs = np.full([steps, tokenizer.vocab_size], 1e-6)
    for t in range(steps):
        probs[t, a[t]] += 0.5 + lead
        probs[t, b[t]] += 0.5 - lead
    return np.log(probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)


def test_a_language_model_that_prefers_a_transcript_flips_a_near_tie(speech, language_model):
    tokenizer = speech.inputters["text"].tokenizer
    scorer = fusion.LanguageModelScorer(runner.load(LM_TASK, language_model), tokenizer)
    log_probs = near_tie(tokenizer, "low", "high")

    def best(weight):
        ids, _ = fusion.prefix_beam_search(log_probs, scorer, 8, weight, 0.0)
        return tokenizer.decode(ids)

    assert best(0.0) == "low"  # CTC alone
    assert best(1.0) == "high"  # the LM's preference outweighs the small lead
    reverse = near_tie(tokenizer, "high", "low")
    ids, _ = fusion.prefix_beam_search(reverse, scorer, 8, 1.0, 0.0)
    assert tokenizer.decode(ids) == "high"  # and agrees where CTC already prefers it


def test_without_weight_it_finds_what_the_plain_beam_search_finds(speech, language_model,
                                                                  corpus):
    """Weight 0, no bonus: the prefix beam search is CTC beam search (core TF's), on a
    tiny model's real frame scores."""
    examples = TASK.read_evaluation_data(str(corpus["test"]))
    audio, text = speech.inputters["audio"], speech.inputters["text"].tokenizer
    scorer = fusion.LanguageModelScorer(runner.load(LM_TASK, language_model), text)
    agree = 0
    for path in examples["audio"][:10]:
        samples = audio.read(path)
        features, frames = audio.features(tf.constant(samples[None]),
                                          tf.constant([len(samples)]))
        logits, lengths = speech.model((features, frames), training=False)
        best = first(decoding.beam_search(logits, lengths, 8))
        mine, _ = fusion.prefix_beam_search(
            tf.nn.log_softmax(logits, axis=-1)[0].numpy(), scorer, 8, 0.0, 0.0)
        agree += mine == best.ids[0, : best.lengths[0]].numpy().tolist()
    assert agree >= 9


@pytest.mark.slow
def test_evaluate_and_transcribe_take_the_language_model(tiny_run, language_model, corpus):
    args = ["--beam-size", "4", "--lm", language_model, "--lm-weight", "0.3"]
    result = run_cli("speech", "evaluate", tiny_run[0], "--data", corpus["test"], "--json",
                     *args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["utterances"] == 30
    wav = TASK.read_evaluation_data(str(corpus["test"]))["path"][0]
    result = run_cli("speech", "transcribe", tiny_run[0], str(corpus["test"].parent / wav),
                     "--json", *args)
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.output)) == {"path", "transcript", "score"}


def test_language_model_options_are_refused_in_one_sentence(tiny_run, language_model, corpus,
                                                            exported):
    for model, bad, message in (
            (tiny_run[0], ["--beam-size", "1", "--lm", language_model], "--beam-size 2"),
            (tiny_run[0], ["--lm-weight", "0.3"], "need --lm"),
            (exported, ["--beam-size", "4", "--lm", language_model], "needs a run directory")):
        result = run_cli("speech", "evaluate", model, "--data", corpus["test"], *bad)
        assert result.exit_code == 2 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
