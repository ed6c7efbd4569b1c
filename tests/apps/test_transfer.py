"""--init-from: an LM's weights and tokenizer carried into a classifier, fine-tuning.

The synthetic task is built so that pretraining must help: every sentence is made of
words of one polarity (and neutral fillers). The labelled training set uses only a
few of the polar words; validation and test use the others, which only the
unlabelled text (read by the language model) shows together with the rest of their
polarity. A classifier from scratch has never seen them; one whose encoder read the
unlabelled text knows which sentences they make.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from apps import runner, transfer
from apps.errors import ConfigError
from apps.lm.task import TASK as LM
from apps.sentiment.task import TASK as SENTIMENT
from tests.cli_helpers import run_cli

WORDS = random.Random(7)
SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]


def word() -> str:
    return "".join(WORDS.choice(SYLLABLES) for _ in range(2))


POSITIVE = [word() for _ in range(10)]
NEGATIVE = [word() for _ in range(10)]
FILLERS = [word() for _ in range(6)]
SEEN = 3  # polar words of each side the labelled training set uses


def sentence(rng: random.Random, polar: list[str]) -> str:
    words = [rng.choice(polar) if rng.random() < 0.5 else rng.choice(FILLERS)
             for _ in range(rng.randint(6, 10))]
    words[rng.randrange(len(words))] = rng.choice(polar)
    return " ".join(words)


def labelled(path, count: int, seen: bool, seed: int) -> str:
    rng = random.Random(seed)
    rows = ["text\tlabel"]
    for i in range(count):
        label = ("positive", "negative")[i % 2]
        words = POSITIVE if label == "positive" else NEGATIVE
        rows.append(f"{sentence(rng, words[:SEEN] if seen else words[SEEN:])}\t{label}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def task_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    rng = random.Random(3)
    lines = [sentence(rng, POSITIVE if i % 2 else NEGATIVE) for i in range(1500)]
    (folder / "unlabelled.txt").write_text("\n".join(lines[:1300]) + "\n", encoding="utf-8")
    (folder / "unlabelled_valid.txt").write_text("\n".join(lines[1300:]) + "\n",
                                                 encoding="utf-8")
    return {"unlabelled": str(folder / "unlabelled.txt"),
            "unlabelled_valid": str(folder / "unlabelled_valid.txt"),
            "train": labelled(folder / "train.tsv", 120, True, 1),
            "valid": labelled(folder / "valid.tsv", 80, False, 2),
            "test": labelled(folder / "test.tsv", 200, False, 3)}


LM_SIZES = dict(tokenizer="unigram", vocab_size=80, units=32, embedding_dim=16)


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory, task_files, lm_settings):
    settings = lm_settings(data=task_files["unlabelled"], valid=task_files["unlabelled_valid"],
                           batch_size=16, sequence_length=32, epochs=4, **LM_SIZES)
    return runner.train(LM, settings, tmp_path_factory.mktemp("runs") / "lm", verbose=0)[0]


def classifier(sentiment_settings, task_files, **changes):
    return sentiment_settings(**{
        "data": task_files["train"], "valid": task_files["valid"], "units": 32,
        "embedding_dim": 16, "bidirectional": False, "pooling": "max", "dropout": 0.1,
        "epochs": 6, "batch_size": 16, "learning_rate": 3e-3, "vocab_size": 80,
        "tokenizer": "unigram", **changes})


def assert_holds_the_lm(member, path, lm_run) -> None:
    """A classifier member starts from the LM: its embedding and first forward layer
    equal the LM's, and the run's tokenizer is the LM's, byte for byte."""
    lm = runner.load(LM, lm_run).model
    np.testing.assert_array_equal(member.embedding.get_weights()[0],
                                  lm.embedding.get_weights()[0])
    for ours, theirs in zip(member.encoder.rnns[0][0].get_weights(),
                            lm.encoder.rnns[0][0].get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert (path / "tokenizer.model").read_bytes() == (lm_run / "tokenizer.model").read_bytes()


def test_lm_weights_and_tokenizer_appear_in_the_classifier(tmp_path, lm_run, task_files,
                                                           sentiment_settings):
    """Frozen for every epoch, the loaded layers hold the LM's values exactly after
    training; the tokenizer file is the LM's; config.json says what was loaded."""
    settings = classifier(sentiment_settings, task_files, init_from=str(lm_run), epochs=2,
                          freeze_epochs=2, members=2)
    path, _ = runner.train(SENTIMENT, settings, tmp_path / "fine", verbose=0)
    for member in runner.load(SENTIMENT, path).model.members:
        assert_holds_the_lm(member, path, lm_run)
    init = json.loads((path / "config.json").read_text())["init"]
    assert init["loaded"] == ["embedding", "encoder/0/forward"]
    assert "member_0/logits" in init["fresh"] and init["task"] == "lm"


def test_fine_tuned_classifier_beats_the_one_from_scratch(tmp_path, lm_run, task_files,
                                                          sentiment_settings):
    """Test sentences use only polar words the labelled data never shows."""
    scores = {}
    for name, changes in {"scratch": {},
                          "fine-tuned": {"init_from": str(lm_run), "freeze_epochs": 1,
                                         "lr_layer_decay": 0.5}}.items():
        path, _ = runner.train(SENTIMENT, classifier(sentiment_settings, task_files, **changes),
                               tmp_path / name, verbose=0)
        scores[name] = runner.evaluate(SENTIMENT, path, task_files["test"])["accuracy"]
    assert scores["fine-tuned"] >= scores["scratch"] + 0.15, scores
    assert scores["fine-tuned"] >= 0.65, scores


def test_shape_mismatch_names_the_layer_and_both_shapes(tmp_path, lm_run, task_files,
                                                        sentiment_settings):
    settings = classifier(sentiment_settings, task_files, init_from=str(lm_run), units=24)
    with pytest.raises(ConfigError, match=r"layer encoder/0/forward .*\(16, 128\) there and "
                                          r"\(16, 96\) here"):
        runner.train(SENTIMENT, settings, tmp_path / "bad", verbose=0)
    assert not (tmp_path / "bad").exists()


def test_contradicting_tokenizer_flag_is_one_sentence(tmp_path, lm_run, task_files):
    result = run_cli("sentiment", "train", "--data", task_files["train"], "--valid",
                     task_files["valid"], "--init-from", lm_run, "--vocab-size", "500",
                     "--output", tmp_path / "bad", "--quiet")
    assert result.exit_code != 0
    assert "--vocab-size 500 contradicts --init-from" in result.output
    assert not (tmp_path / "bad").exists()


def test_lm_fine_tunes_on_a_column_of_the_tasks_own_table(tmp_path, lm_run, task_files):
    """`apps lm train --init-from LM --data train.tsv --text-column text`: the LM's
    whole model (output layer included) is loaded, and it reads the table's texts."""
    result = run_cli("lm", "train", "--init-from", lm_run, "--data", task_files["train"],
                     "--valid", task_files["valid"], "--text-column", "text", "--epochs", "1",
                     "--batch-size", "4",
                     "--sequence-length", "16", "--output", tmp_path / "lm-tuned", "--quiet")
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "lm-tuned" / "config.json").read_text())
    assert config["tokenizer"] == "unigram" and config["vocab_size"] == 80
    assert (config["units"], config["embedding_dim"]) == (32, 16)  # the source's sizes
    assert config["init"]["loaded"] == ["embedding", "encoder/0/forward", "lm_output"]


def test_unfreezing_and_layer_rates_follow_the_depths():
    assert transfer.depths(["embedding", "encoder/0/forward", "encoder/1/forward",
                            "encoder/1/backward", "lm_output"]) == {
        "embedding": 3, "encoder/0/forward": 2, "encoder/1/forward": 1,
        "encoder/1/backward": 1, "lm_output": 0}


def test_a_resumed_run_does_not_load_again_and_equals_the_uninterrupted_one(
        tmp_path, monkeypatch, lm_run, task_files, sentiment_settings):
    """Interrupted after epoch 1 (the encoder still frozen), resumed without touching the
    source: the same weights as a run never stopped, unfreezing included."""
    from tests.resume_helpers import interrupt_after_backup, weight_arrays

    settings = classifier(sentiment_settings, task_files, init_from=str(lm_run), epochs=3,
                          freeze_epochs=1, lr_layer_decay=0.5)
    whole, _ = runner.train(SENTIMENT, settings, tmp_path / "whole", verbose=0)
    interrupt_after_backup(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        runner.train(SENTIMENT, settings, tmp_path / "resumed", verbose=0)
    monkeypatch.undo()
    monkeypatch.setattr(transfer, "load_shared", lambda *_: pytest.fail("loaded again"))
    resumed, _ = runner.train(SENTIMENT, settings, tmp_path / "resumed", verbose=0)
    ours, theirs = (weight_arrays(path / "checkpoints" / "best.weights.h5")
                    for path in (resumed, whole))
    assert ours.keys() == theirs.keys()
    for key in ours:
        np.testing.assert_array_equal(ours[key], theirs[key])


def test_layerwise_adam_holds_frozen_variables_and_scales_rates():
    import keras

    from apps.schedule import LayerwiseAdam

    full, half, frozen = (keras.Variable(np.ones(3, np.float32)) for _ in range(3))
    optimizer = LayerwiseAdam(0.1)
    optimizer.set_layer_rates([(half, 0.5, 0), (frozen, 1.0, 2)])
    optimizer.build([full, half, frozen])
    gradient = np.ones(3, np.float32)
    steps = []
    for _ in range(3):
        optimizer.apply_gradients([(gradient, full), (gradient, half), (gradient, frozen)])
        steps.append([float(v.numpy()[0]) for v in (full, half, frozen)])
    np.testing.assert_allclose(steps[0], [0.9, 0.95, 1.0], atol=1e-4)
    assert steps[1][2] == 1.0 and steps[2][2] < 0.95  # thawed at step 2


def test_concat_pooling_is_last_max_and_mean_side_by_side():
    from apps.layers import SequencePooling

    sequence = np.array([[[1.0, -2.0], [3.0, 0.0], [9.0, 9.0]]], np.float32)
    mask = np.array([[True, True, False]])
    last = np.array([[5.0, 6.0]], np.float32)
    pooled = SequencePooling("concat")(sequence, mask, last=last)
    np.testing.assert_allclose(pooled, [[5.0, 6.0, 3.0, 0.0, 2.0, -1.0]])


def test_an_exported_language_model_starts_a_classifier(tmp_path, lm_run, task_files,
                                                        sentiment_settings):
    """A SavedModel version (or its base directory) is a source like its run: the same
    values, and the tokenizer read out of its graph is the run's, byte for byte."""
    version = runner.export(LM, lm_run, tmp_path / "saved_models")
    settings = classifier(sentiment_settings, task_files, init_from=str(version.parent),
                          epochs=1, freeze_epochs=1)
    path, _ = runner.train(SENTIMENT, settings, tmp_path / "fine", verbose=0)
    assert_holds_the_lm(runner.load(SENTIMENT, path).model.members[0], path, lm_run)
    assert json.loads((path / "config.json").read_text())["init"]["task"] == "lm"
