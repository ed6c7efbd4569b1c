"""--init-from for a translator: each side from a language model of its language
(--init-encoder-from, --init-decoder-from), a translator from a translator, and
exported SavedModels as sources. Values of the loaded layers are compared with the
source's, after an epoch in which they stay frozen (--freeze-epochs)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from apps import runner
from apps.errors import ConfigError
from apps.lm.task import TASK as LM
from apps.translation import task
from tests.cli_helpers import run_cli

LM_SIZES = dict(units=32, embedding_dim=16, cell="gru", epochs=1, sequence_length=16,
                batch_size=8)


@pytest.fixture(scope="module")
def language_models(tmp_path_factory, digits, lm_settings):
    """A "source-language" and a "target-language" model: one epoch each on that side
    of the digit pairs."""
    folder = tmp_path_factory.mktemp("lms")
    return {side: runner.train(LM, lm_settings(data=f"{digits['train']}.{side}",
                                               valid=f"{digits['valid']}.{side}", **LM_SIZES),
                               folder / side, verbose=0)[0]
            for side in ("src", "tgt")}


def assert_same(ours, theirs):
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)


def frozen_epoch(translation_settings, **changes):
    return translation_settings(epochs=1, freeze_epochs=1, embedding_dim=16, **changes)


def test_each_side_from_its_language_model(tmp_path, language_models, translation_settings):
    settings = frozen_epoch(translation_settings, init_encoder_from=str(language_models["src"]),
                            init_decoder_from=str(language_models["tgt"]))
    path, _ = runner.train(task.TASK, settings, tmp_path / "t", verbose=0)
    config = json.loads((path / "config.json").read_text())
    assert config["separate_vocab"] is True
    assert (config["units"], config["embedding_dim"], config["cell"]) == (32, 16, "gru")
    assert config["init"]["sources"] == {
        "encoder": {"task": "lm", "loaded": ["source_embedding", "encoder/0/forward"]},
        "decoder": {"task": "lm", "loaded": ["target_embedding", "decoder/0/forward"]}}
    assert "encoder/0/backward" in config["init"]["fresh"]
    for side, file in (("src", "source.model"), ("tgt", "target.model")):
        assert (path / file).read_bytes() == (language_models[side] /
                                              "tokenizer.model").read_bytes()
    model = runner.load(task.TASK, path).model
    source_lm, target_lm = (runner.load(LM, language_models[s]).model for s in ("src", "tgt"))
    assert_same(model.source_embedding.get_weights(), source_lm.embedding.get_weights())
    assert_same(model.encoder.rnns[0][0].get_weights(), source_lm.encoder.rnns[0][0].get_weights())
    assert_same(model.target_embedding.get_weights(), target_lm.embedding.get_weights())
    # Bahdanau: the decoder's first layer reads [embedding; context]: the embedding's rows
    kernel, recurrent, bias = model.decoder.rnns[0][0].get_weights()
    lm_kernel, lm_recurrent, lm_bias = target_lm.encoder.rnns[0][0].get_weights()
    np.testing.assert_array_equal(kernel[:16], lm_kernel)
    assert kernel.shape[0] == 16 + 64  # the context's rows start fresh
    assert_same([recurrent, bias], [lm_recurrent, lm_bias])


def test_a_translator_from_a_translator_and_from_its_export(tmp_path, tiny_run, tiny_export,
                                                             translation_settings):
    """The whole model, its tokenizer and its sizes, from the run and from the export."""
    source = runner.load(task.TASK, tiny_run[0]).model
    for name, start in (("run", tiny_run[0]), ("export", tiny_export[1])):
        settings = translation_settings(epochs=1, freeze_epochs=1, init_from=str(start),
                                        units=32)
        path, _ = runner.train(task.TASK, settings, tmp_path / name, verbose=0)
        init = json.loads((path / "config.json").read_text())["init"]
        assert init["task"] == "translation" and init["fresh"] == [], (name, init)
        assert (path / "tokenizer.model").read_bytes() == \
            (tiny_run[0] / "tokenizer.model").read_bytes()
        assert_same(runner.load(task.TASK, path).model.get_weights(), source.get_weights())


def test_an_exported_language_model_starts_the_encoder(tmp_path, language_models,
                                                       translation_settings):
    base = runner.export(LM, language_models["src"], tmp_path / "saved_models")
    settings = frozen_epoch(translation_settings, init_encoder_from=str(base.parent))
    path, _ = runner.train(task.TASK, settings, tmp_path / "t", verbose=0)
    lm = runner.load(LM, language_models["src"]).model
    model = runner.load(task.TASK, path).model
    assert_same(model.source_embedding.get_weights(), lm.embedding.get_weights())
    assert_same(model.encoder.rnns[0][0].get_weights(), lm.encoder.rnns[0][0].get_weights())
    assert (path / "source.model").read_bytes() == \
        (language_models["src"] / "tokenizer.model").read_bytes()


def test_a_shape_mismatch_names_the_layer_and_both_shapes(tmp_path, language_models,
                                                          translation_settings):
    settings = translation_settings(epochs=1, init_encoder_from=str(language_models["src"]),
                                    units=24, embedding_dim=16)
    with pytest.raises(ConfigError, match=r"--init-encoder-from .*layer encoder/0/forward .*"
                                          r"\(16, 96\) there and \(16, 72\) here"):
        runner.train(task.TASK, settings, tmp_path / "bad", verbose=0)
    assert not (tmp_path / "bad").exists()


def test_contradictions_are_one_sentence(tmp_path, language_models, tiny_run, digits):
    common = ["translation", "train", "--data", digits["train"], "--valid", digits["valid"],
              "--source-lang", "src", "--target-lang", "tgt", "--quiet"]
    joint = run_cli(*common, "--init-encoder-from", language_models["src"],
                    "--no-separate-vocab", "--output", tmp_path / "a")
    assert joint.exit_code != 0
    assert "--no-separate-vocab contradicts --init-encoder-from" in joint.output
    both = run_cli(*common, "--init-from", tiny_run[0], "--init-decoder-from",
                   language_models["tgt"], "--output", tmp_path / "b")
    assert both.exit_code != 0 and "pass one or the other" in both.output
    wrong = run_cli(*common, "--init-from", language_models["src"], "--output", tmp_path / "c")
    assert wrong.exit_code != 0
    assert "--init-from takes a model of task translation" in wrong.output
    assert not any((tmp_path / name).exists() for name in "abc")
