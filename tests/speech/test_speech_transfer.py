"""--init-from for a recogniser: another speech run or its export. The front end and
the encoder load; the output layer only where this run's vocabulary is the source's."""

from __future__ import annotations

import json

import numpy as np
import pytest

from apps import runner
from apps.errors import ConfigError
from apps.speech.task import TASK


def frozen(model):
    """The weights --init-from loads, by layer (front end, norm, encoder)."""
    return [*model.front[0].get_weights(), *model.front[1].get_weights(),
            *model.norm.get_weights(), *model.encoder.get_weights()]


@pytest.mark.parametrize("kind", ["run", "export"])
def test_a_recogniser_from_a_recogniser(tmp_path, tiny_run, exported, speech_settings, kind):
    """From the run and from its export; one epoch with every loaded layer frozen."""
    start = tiny_run[0] if kind == "run" else exported
    settings = speech_settings(epochs=1, freeze_epochs=1, init_from=str(start))
    path, _ = runner.train(TASK, settings, tmp_path / "tuned", verbose=0)
    init = json.loads((path / "config.json").read_text())["init"]
    assert init["loaded"] == ["front/0", "front/1", "front/norm", "encoder/0/forward",
                              "encoder/0/backward", "ctc_output"]
    source, model = (runner.load(TASK, p).model for p in (tiny_run[0], path))
    for ours, theirs in zip(frozen(model) + model.logits.get_weights(),
                            frozen(source) + source.logits.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_another_vocabulary_keeps_a_fresh_output_layer(tmp_path, tiny_run, corpus,
                                                       speech_settings):
    """Transcripts spelt otherwise ("low" -> "deep"): other characters, a fresh output."""
    manifest = corpus["train"].read_text().replace(",low", ",deep").replace(" low", " deep")
    other = corpus["train"].with_name("other.csv")
    other.write_text(manifest)
    settings = speech_settings(data=str(other), epochs=1, init_from=str(tiny_run[0]))
    path, _ = runner.train(TASK, settings, tmp_path / "other", verbose=0)
    init = json.loads((path / "config.json").read_text())["init"]
    assert "ctc_output" in init["fresh"] and "ctc_output" not in init["loaded"]
    assert "encoder/0/forward" in init["loaded"]


def test_a_shape_mismatch_names_the_layer(tmp_path, tiny_run, speech_settings):
    settings = speech_settings(epochs=1, init_from=str(tiny_run[0]), conv_filters=16)
    with pytest.raises(ConfigError, match=r"layer front/0 .* has shape \(5, 40, 32\) there "
                                          r"and \(5, 40, 16\) here"):
        runner.train(TASK, settings, tmp_path / "bad", verbose=0)
    assert not (tmp_path / "bad").exists()


def test_only_a_speech_model_starts_a_recogniser(tmp_path, speech_settings):
    from tests.cli_helpers import run_cli

    lm = tmp_path / "lm"
    lm.mkdir()
    (lm / "config.json").write_text(json.dumps({"task": "lm"}))
    (lm / "checkpoints").mkdir()
    (lm / "checkpoints" / "best.weights.h5").write_bytes(b"")
    result = run_cli("speech", "train", "--data", speech_settings().data, "--init-from", lm,
                     "--output", tmp_path / "bad", "--quiet")
    assert result.exit_code != 0
    assert "--init-from takes a model of task speech" in result.output
    assert not (tmp_path / "bad").exists()
