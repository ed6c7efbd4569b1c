"""Connected speech from isolated recordings: --join-recordings in training and evaluate."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from cli_helpers import run_cli
from resume_helpers import assert_same_run, interrupted_then_resumed

from apps import runner
from apps.errors import ConfigError
from apps.speech import joining
from apps.speech.task import TASK
from pipelines.audio import AudioInputter, Joined

RATE = 8000


@pytest.fixture(scope="module")
def examples(corpus):
    return TASK.read_evaluation_data(str(corpus["test"]))


def test_joined_sequences_hold_several_recordings_with_silence_between(examples):
    sequences = joining.joined(examples, 6, 2, 4, seed=[7, 0])
    audio = AudioInputter(RATE)
    for joined, text, frames in zip(sequences["audio"], sequences["text"],
                                    sequences["frames"]):
        assert isinstance(joined, Joined) and 2 <= len(joined.parts) <= 4
        parts = [examples["audio"].index(part) for part in joined.parts]
        assert text == " ".join(examples["text"][i] for i in parts)
        samples = audio.read(joined)
        assert len(samples) == frames
        position = 0
        for i, part in enumerate(joined.parts):  # each recording, then zeros
            alone = audio.read(part)
            np.testing.assert_array_equal(samples[position : position + len(alone)], alone)
            position += len(alone)
            if i < len(joined.gaps):
                gap = int(round(joined.gaps[i] * RATE))
                assert 0.1 * RATE <= gap <= 0.3 * RATE
                assert not samples[position : position + gap].any()
                position += gap
        assert position == len(samples)


def test_the_draw_is_a_function_of_the_seed(examples):
    def draw(seed):
        return joining.joined(examples, 8, 2, 7, seed)

    assert draw([3, 0]) == draw([3, 0])
    assert draw([3, 0])["text"] != draw([4, 0])["text"]


def label_texts(trained, dataset) -> list[str]:
    text = trained.inputters["text"]
    return [text.tokenizer.decode([int(i) for i in row if i])
            for _, labels in dataset for row in labels.numpy()]


def test_every_training_pass_adds_its_own_joined_sequences(tiny_run, examples):
    trained = runner.load(TASK, tiny_run[0])
    settings = replace(trained.settings, join_recordings=10, join_min=2, join_max=3)
    passes, _ = TASK.datasets(settings, trained.inputters, examples, examples)
    first, again, second = (sorted(label_texts(trained, passes(p))) for p in (0, 0, 1))
    assert first == again and first != second
    assert len(first) == len(examples["text"]) + 10
    singles = set(examples["text"])
    joined = [t for t in first if t not in singles or first.count(t) > examples["text"].count(t)]
    assert len(joined) == 10 and all(len(t.split()) >= 2 for t in joined)


def test_validation_joins_its_own_recordings_in_proportion(speech_settings):
    settings = speech_settings(join_recordings=60, join_min=3, join_max=3)
    train, valid = TASK.read_training_data(settings)
    singles = [a for a in valid["audio"] if not isinstance(a, Joined)]
    joined = [a for a in valid["audio"] if isinstance(a, Joined)]
    assert len(joined) == round(60 * len(singles) / len(train["audio"]))
    assert {p for a in joined for p in a.parts} <= set(singles)
    assert all(len(a.parts) == 3 for a in joined)


def test_join_max_below_join_min_is_refused(speech_settings):
    with pytest.raises(ConfigError, match="join-max"):
        speech_settings(join_min=4, join_max=3).validate()


def test_evaluate_scores_joined_sequences(tiny_run, corpus):
    result = run_cli("speech", "evaluate", tiny_run[0], "--data", corpus["test"], "--json",
                     "--join-recordings", "12", "--join-min", "3", "--join-max", "3")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["utterances"] == 12
    assert all(" + " in row["path"] for row in report["worst"])
    plain = json.loads(run_cli("speech", "evaluate", tiny_run[0], "--data", corpus["test"],
                               "--json").output)
    assert plain["utterances"] == 30
    bad = run_cli("speech", "evaluate", tiny_run[0], "--data", corpus["test"],
                  "--join-recordings", "2", "--join-min", "4", "--join-max", "3")
    assert bad.exit_code != 0 and "--join-max" in bad.output and "Traceback" not in bad.output


@pytest.mark.slow
def test_a_resumed_joined_run_equals_the_uninterrupted_one(tmp_path, speech_settings,
                                                          monkeypatch):
    """The joined sequences are drawn from the pass seed: a run resumed mid-pass reads
    the same ones (apps.training's contract)."""
    settings = speech_settings(epochs=2, units=16, conv_filters=16, join_recordings=16,
                               join_max=3, checkpoint_every="3steps")
    whole = runner.train(TASK, settings, tmp_path / "whole", verbose=0)[0]
    resumed = interrupted_then_resumed(TASK, settings, tmp_path / "cut", 2, monkeypatch)
    assert_same_run(whole, resumed)
