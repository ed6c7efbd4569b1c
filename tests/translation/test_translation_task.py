"""The translator learns a real task, searches as it says, and exports what it translates."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from apps import runner, training
from apps.decoding import first
from apps.translation import decoding, metrics, task, translate
from apps.translation.model import build
from pipelines.tokenizer import EOS_ID


def test_a_tiny_translator_learns_to_reverse_digits(tiny_run, translation_settings, digits):
    run_dir, report = tiny_run
    trained = runner.load(task.TASK, run_dir)
    untrained = runner.load(task.TASK, run_dir)
    training.set_seed(1)
    untrained.model = build(trained.settings, trained.inputters["source"].vocab_size,
                            trained.inputters["target"].vocab_size)
    test = task.TASK.read(str(digits["test"]), "test", "src", "tgt")
    learned = task.TASK.score(trained, test)
    chance = task.TASK.score(untrained, test)
    assert chance["bleu"] < 20 < 70 < learned["bleu"]
    assert report["bleu"] > 70 and report["sentences"] == 60
    assert "tok:13a" in learned["signature"] and learned["chrf"] > chance["chrf"]
    rows = list(csv.DictReader((run_dir / "history.csv").open()))
    assert "val_bleu" in rows[0] and report["best_epoch"] == 1 + int(np.argmax(
        [float(r["val_bleu"]) for r in rows]))


def test_beam_one_is_greedy_and_an_empty_sentence_translates_to_nothing(tiny_run):
    trained = runner.load(task.TASK, tiny_run[0])
    texts = ["1 2 3", "", "9 8 7 6 5 4", "4 4"]
    greedy = translate.translate(trained, texts, beam_size=1)
    source = trained.inputters["source"]
    ids = tf.constant(source.preprocess(tf.constant(texts)))
    beam = first(decoding.translate_ids(trained.model, ids, tf.constant(1), 64, 0.6, 2.0))
    words = [source.tokenizer.decode(row[:n]) for row, n in zip(beam.ids.numpy(),
                                                                 beam.lengths.numpy())]
    assert [row["translation"] for row in greedy] == words
    assert np.allclose([row["score"] for row in greedy], beam.scores.numpy(), atol=1e-5)
    assert greedy[1]["translation"] == "" and greedy[0]["translation"] == "3 2 1"


def test_beam_search_never_scores_below_greedy(tiny_run, digits):
    trained = runner.load(task.TASK, tiny_run[0])
    sources = task.TASK.read(str(digits["test"]), "test", "src", "tgt")["source"][:30]
    greedy = translate.translate(trained, sources, beam_size=1)
    # with no length penalty, the beam's best is at least as likely as greedy's output
    unpenalised = runner.trained_run(
        task.TASK, tiny_run[0], dataclasses.replace(trained.settings, length_penalty=0.0),
        trained.inputters, trained.model)
    beam = translate.translate(unpenalised, sources, beam_size=4)
    assert len(beam) == len(greedy) == 30
    assert all(b["score"] >= g["score"] - 1e-4 for b, g in zip(beam, greedy))


def test_export_translates_as_the_run_does(tiny_run, tiny_export):
    run_dir, _ = tiny_run
    base, version = tiny_export
    metadata = json.loads((version / "assets" / "metadata.json").read_text())
    assert metadata["beam_size"] == 3 and metadata["task"] == "translation"
    assert set(metadata["signatures"]) == {"serving_default", "translate", "translate_n_best",
                                           "score"}
    texts = ["1 2 3 4", "", "7 7 0 1 2", "5"]
    run = translate.translate(runner.load(task.TASK, run_dir), texts, beam_size=3)
    import tensorflow_text  # noqa: F401

    loaded = tf.saved_model.load(str(version))
    served = loaded.signatures["serving_default"](text=tf.constant(texts))
    assert [t.decode() for t in served["translation"].numpy()] == \
        [row["translation"] for row in run]
    assert served["score"].dtype == tf.float32
    assert np.allclose(served["score"].numpy(), [row["score"] for row in run], atol=1e-4)
    exported = runner.load(task.TASK, version)
    for beam_size in (1, 3):  # one path: the same signature, so the same numbers
        from_export = translate.translate(exported, texts, beam_size=beam_size)
        from_run = translate.translate(runner.load(task.TASK, run_dir), texts,
                                       beam_size=beam_size)
        assert from_export == from_run
    report = task.TASK.score(exported, {"source": texts, "target": ["4 3 2 1", "", "", "5"]})
    assert report["beam_size"] == 3 and report["sentences"] == 4


def test_a_bfloat16_export_holds_bfloat16_products_and_translates_as_its_run(tiny_run,
                                                                              tmp_path):
    """`export --precision mixed_bfloat16`: the graph multiplies in bfloat16, says so, and
    a run loaded with the same products answers as the export (one path)."""
    from tensorflow.core.protobuf import saved_model_pb2

    run_dir, _ = tiny_run
    version = runner.export(task.TASK, run_dir, tmp_path, arithmetic="mixed_bfloat16")
    metadata = json.loads((version / "assets" / "metadata.json").read_text())
    assert metadata["resolved"]["serving"]["precision"] == "mixed_bfloat16"
    saved = saved_model_pb2.SavedModel.FromString((version / "saved_model.pb").read_bytes())
    products = [node.attr["T"].type for function in saved.meta_graphs[0].graph_def.library.function
                for node in function.node_def if node.op in ("MatMul", "BatchMatMulV2")]
    assert tf.bfloat16.as_datatype_enum in products
    texts = ["1 2 3 4", "7 7 0 1 2", "5"]
    run = runner.load(task.TASK, run_dir, "mixed_bfloat16")
    assert run.metadata.precision == "mixed_bfloat16"
    exported = runner.load(task.TASK, version)
    for beam_size in (1, 3):
        assert translate.translate(exported, texts, beam_size=beam_size) == \
            translate.translate(run, texts, beam_size=beam_size)
    assert runner.load(task.TASK, run_dir).metadata.precision == "float32"


def test_long_pairs_are_dropped_and_counted(tiny_run, caplog):
    trained = runner.load(task.TASK, tiny_run[0])
    examples = {"source": ["1 2", "1 2 3 4 5 6 7 8", "3"], "target": ["2 1", "8 7", "3"]}
    with caplog.at_level("WARNING"):
        sources, targets = task.pair_ids(trained.inputters, examples, 4, "pairs.tsv")
    assert "Dropped 1 of 3 pair(s) of pairs.tsv longer than --max-length 4" in caplog.text
    assert len(sources) == 2 and targets.row(0)[-1] == EOS_ID


def test_separate_vocabularies_and_luong_attention(tmp_path, translation_settings, digits):
    run_dir, report = runner.train(task.TASK, translation_settings(
        data=str(digits["valid"]), valid=str(digits["test"]), separate_vocab=True,
        attention="luong", cell="lstm", epochs=1, layers=2, residual=True),
        tmp_path / "luong", verbose=0)
    assert (run_dir / "source.model").is_file() and (run_dir / "target.model").is_file()
    assert not (run_dir / "tokenizer.model").exists()
    trained = runner.load(task.TASK, run_dir)
    assert trained.inputters["source"] is not trained.inputters["target"]
    assert trained.model.source_embedding is not trained.model.target_embedding
    assert len(translate.translate(trained, ["1 2 3", ""], beam_size=2)) == 2
    assert metrics.bleu(["a b c d"], ["a b c d"]) > 99


@pytest.mark.long
def test_an_interrupted_run_resumes_after_its_last_epoch(tmp_path, translation_settings,
                                                         digits, monkeypatch):
    settings = translation_settings(data=str(digits["valid"]), valid=str(digits["test"]),
                                    epochs=4, units=8, embedding_dim=8)
    scored = task.TranslationTask.validation_metrics
    epochs = []

    def power_cut_in_the_third_epoch(self, trained, valid, *decoded):
        epochs.append(len(epochs))
        if len(epochs) == 3:
            raise KeyboardInterrupt
        return scored(self, trained, valid, *decoded)

    monkeypatch.setattr(task.TranslationTask, "validation_metrics",
                        power_cut_in_the_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        runner.train(task.TASK, settings, tmp_path / "run", verbose=0)
    assert len(list(csv.DictReader((tmp_path / "run" / "history.csv").open()))) == 2
    monkeypatch.undo()
    run_dir, report = runner.train(task.TASK, settings, tmp_path / "run", verbose=0)
    rows = list(csv.DictReader((run_dir / "history.csv").open()))
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3, 4]
    assert report["epochs_run"] == 4 and not (run_dir / "backup").exists()


def test_a_ten_thousand_word_sentence_is_cut_with_a_warning(tiny_run, caplog):
    trained = runner.load(task.TASK, tiny_run[0])
    with caplog.at_level("WARNING"):
        rows = translate.translate(trained, [" ".join(["5"] * 10_000), "1 2"])
    assert "1 sentence(s) are longer than --max-length 64 tokens" in caplog.text
    assert 0 < len(rows[0]["translation"].split()) <= 64 and rows[1]["translation"] == "2 1"
