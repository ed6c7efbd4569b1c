"""Waveform augmentation: speed perturbation and additive noise, in training only."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import tensorflow as tf
from resume_helpers import assert_same_run, interrupted_then_resumed

from apps import runner
from apps.errors import ConfigError
from apps.speech.task import TASK, SpeechSettings
from pipelines.audio import add_noise, speed_perturb

RATE = 8000


def tones(frequency: float, lengths: list[int]) -> tuple[tf.Tensor, tf.Tensor]:
    """A batch of sine tones of the given lengths, right-padded with zeros."""
    rows = np.zeros((len(lengths), max(lengths)), np.float32)
    for row, length in zip(rows, lengths):
        row[:length] = 0.5 * np.sin(2 * np.pi * frequency * np.arange(length) / RATE)
    return tf.constant(rows), tf.constant(lengths, tf.int32)


def peak_hz(row: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(row))
    return float(np.argmax(spectrum) * RATE / len(row))


def test_speed_perturbation_changes_tempo_and_pitch_together():
    tf.random.set_seed(3)
    samples, lengths = tones(1000.0, [8000, 6000, 4000, 8000])
    out, new_lengths = speed_perturb(samples, lengths, 0.2, [1, 2])
    out, new_lengths = out.numpy(), new_lengths.numpy()
    for row, old, new in zip(out, lengths.numpy(), new_lengths):
        factor = old / new
        assert 0.8 - 1e-3 <= factor <= 1.2 + 1e-3
        assert np.all(row[new:] == 0)
        # the tone is `factor` times higher: as many cycles in 1/factor of the time
        assert peak_hz(row[:new]) == pytest.approx(1000.0 * factor, rel=0.02)
    assert len(set(new_lengths.tolist())) == 4  # a factor of its own for every utterance


def test_no_speed_perturbation_leaves_the_samples_alone():
    samples, lengths = tones(440.0, [800, 500])
    out, new_lengths = speed_perturb(samples, lengths, 0.0, [1, 2])
    assert out is samples and new_lengths is lengths


def test_noise_is_added_at_the_asked_signal_to_noise_ratio_inside_the_length_only():
    tf.random.set_seed(4)
    samples, lengths = tones(300.0, [8000] * 16 + [4000] * 16)
    noisy = add_noise(samples, lengths, 10.0, 10.0, [1, 2]).numpy()
    clean = samples.numpy()
    for row, noise, length in zip(clean, noisy - clean, lengths.numpy()):
        assert np.all(noise[length:] == 0)
        snr = 10 * np.log10(np.mean(row[:length] ** 2) / np.mean(noise[:length] ** 2))
        assert snr == pytest.approx(10.0, abs=0.5)


def frames_by_count(dataset) -> dict[int, list[np.ndarray]]:
    found: dict[int, list[np.ndarray]] = {}
    for (features, frames), _labels in dataset:
        for row, count in zip(features.numpy(), frames.numpy()):
            found.setdefault(int(count), []).append(row[:count])
    return found


@pytest.mark.parametrize("augmentation", [dict(speed_perturb=0.2), dict(noise_snr=5.0)])
def test_augmentation_changes_training_frames_and_leaves_validation_alone(
        tiny_run, corpus, augmentation):
    """Same recordings as training and validation data: with the augmentation on, no
    training utterance keeps its clean frames; validation frames are the clean ones,
    which (augmentation off) training gives as well."""
    trained = runner.load(TASK, tiny_run[0])
    examples = TASK.read_evaluation_data(str(corpus["test"]))
    plain = replace(trained.settings, time_masks=0, freq_masks=0, speed_perturb=0.0,
                    noise_snr=None)
    clean_train, clean_valid = TASK.datasets(plain, trained.inputters, examples, examples)
    clean = frames_by_count(clean_valid)
    assert {k: len(v) for k, v in frames_by_count(clean_train(0)).items()} == \
        {k: len(v) for k, v in clean.items()}
    train, valid = TASK.datasets(replace(plain, **augmentation), trained.inputters,
                                 examples, examples)
    for count, rows in frames_by_count(valid).items():
        for row, reference in zip(rows, clean[count]):
            np.testing.assert_array_equal(row, reference)
    augmented = [(count, row) for count, rows in frames_by_count(train(0)).items()
                 for row in rows]
    assert len(augmented) == len(examples["audio"])
    for count, row in augmented:
        assert not any(np.allclose(row, reference, atol=1e-3)
                       for reference in clean.get(count, []))


def test_speed_perturbation_must_stay_below_one(corpus):
    with pytest.raises(ConfigError, match="speed-perturb"):
        SpeechSettings(data=str(corpus["train"]), speed_perturb=1.0).validate()


@pytest.mark.long
def test_a_run_resumed_within_an_epoch_equals_the_uninterrupted_one(tmp_path, speech_settings,
                                                                    monkeypatch):
    """Speed perturbation, noise and SpecAugment draw from (pass seed, batch index), so a
    resumed run reads and augments the same batches: its history and weights are those
    of the run never stopped (apps.training's contract)."""
    settings = speech_settings(epochs=2, units=16, conv_filters=16, speed_perturb=0.2,
                               noise_snr=20.0, checkpoint_every="3steps")
    whole = runner.train(TASK, settings, tmp_path / "whole", verbose=0)[0]
    resumed = interrupted_then_resumed(TASK, settings, tmp_path / "cut", 2, monkeypatch)
    assert_same_run(whole, resumed)
