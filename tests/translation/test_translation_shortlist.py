"""The vocabulary shortlist: its table, its per-batch ids, and decoding over it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from apps import runner, training
from apps.decoding import first
from apps.translation import decoding, task, translate
from apps.translation import shortlist as shortlists
from apps.translation.model import Translator

TEXTS = ["1 2 3 4", "", "7 7 0 1 2", "5"]


def test_train_writes_a_table_whose_candidates_are_the_batch_pieces_translations(tiny_run):
    run_dir = tiny_run[0]
    table = shortlists.LexicalTable.load(run_dir)
    assert table is not None and table.candidates.shape[1] == shortlists.STORED_CANDIDATES
    trained = runner.load(task.TASK, run_dir)
    tokenizer = trained.inputters["source"].tokenizer
    digits = [tokenizer.encode([str(d)])[0][0] for d in range(10)]
    # a digit's translation is the same digit: the best Dice score of its row
    assert [int(table.candidates[d, 0]) for d in digits] == digits
    assert not set(table.frequent[:4].tolist()) & set(range(shortlists.SPECIAL))
    candidates, frequent = table.cut(1, 2)
    source = trained.inputters["source"].preprocess(tf.constant(["1 2", "7"]))
    vocab = trained.inputters["target"].vocab_size
    ids = shortlists.shortlist_ids(candidates, frequent, source, vocab).numpy().tolist()
    wanted = set(range(shortlists.SPECIAL)) | set(frequent.tolist()) | {
        digits[1], digits[2], digits[7]}
    assert ids == sorted(wanted)


def test_a_covering_shortlist_decodes_as_the_full_vocabulary_and_a_short_one_stays_inside(
        tiny_run):
    trained = runner.load(task.TASK, tiny_run[0])
    table = shortlists.LexicalTable.load(tiny_run[0])
    source = trained.inputters["source"].preprocess(tf.constant(TEXTS))
    covering = tuple(tf.constant(a) for a in table.cut(shortlists.STORED_CANDIDATES, 10_000))
    short = tuple(tf.constant(a) for a in table.cut(1, 0))
    for beam in (1, 3):
        full = first(decoding.translate_ids(trained.model, source, beam, 64, 0.6, 2.0))
        listed = first(decoding.translate_ids(trained.model, source, beam, 64, 0.6, 2.0,
                                              shortlist=covering))
        assert np.array_equal(full.ids.numpy(), listed.ids.numpy())
        assert np.allclose(full.scores.numpy(), listed.scores.numpy(), atol=1e-5)
        found = first(decoding.translate_ids(trained.model, source, beam, 64, 0.6, 2.0,
                                             shortlist=short))
        allowed = shortlists.shortlist_ids(
            *short, source, trained.inputters["target"].vocab_size).numpy()
        assert set(found.ids.numpy().ravel()) <= set(allowed)
        assert len(allowed) < trained.inputters["target"].vocab_size
        # the short list still holds every digit the batch needs, so nothing is lost
        assert np.array_equal(full.ids.numpy(), found.ids.numpy())


def test_run_and_export_agree_with_a_short_list_and_an_old_run_still_translates(
        tiny_run, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(shortlists, "PER_SOURCE_PIECE", 1)
    monkeypatch.setattr(shortlists, "FREQUENT", 0)
    run = runner.load(task.TASK, tiny_run[0])
    assert run.metadata.entries["shortlist_sizes"] == {"per_source_piece": 1, "frequent": 0}
    version = runner.export(task.TASK, tiny_run[0], tmp_path / "sm", beam_size=3)
    metadata = json.loads((version / "assets" / "metadata.json").read_text())
    assert metadata["shortlist"] is True and metadata["shortlist_sizes"]["frequent"] == 0
    exported = runner.load(task.TASK, version)
    for beam_size in (1, 3):
        assert translate.translate(exported, TEXTS, beam_size=beam_size) == \
            translate.translate(run, TEXTS, beam_size=beam_size)
    full = runner.load(task.TASK, tiny_run[0], shortlist=False)
    assert full.metadata.entries["shortlist"] is False
    scores = [row["score"] for row in translate.translate(full, TEXTS[:1], beam_size=1)]
    listed = [row["score"] for row in translate.translate(run, TEXTS[:1], beam_size=1)]
    assert listed[0] > scores[0]  # normalised over fewer pieces
    # a run trained before tables: computed from its training data, else the full vocabulary
    old = tmp_path / "old"
    shutil.copytree(tiny_run[0], old)
    (old / shortlists.FILENAME).unlink()
    with caplog.at_level("WARNING"):
        rows = translate.translate(runner.load(task.TASK, old), TEXTS, beam_size=1)
    assert "computing it from" in caplog.text and rows[0]["translation"] == "4 3 2 1"
    config = json.loads((old / "config.json").read_text())
    (old / "config.json").write_text(json.dumps({**config, "data": str(tmp_path / "gone")}))
    caplog.clear()
    with caplog.at_level("WARNING"):
        trained = runner.load(task.TASK, old)
        rows = translate.translate(trained, TEXTS, beam_size=1)
    assert "decoding over the full vocabulary" in caplog.text
    assert trained.metadata.entries["shortlist"] is False
    assert [row["translation"] for row in rows] == \
        [row["translation"] for row in translate.translate(full, TEXTS, beam_size=1)]


@pytest.mark.parametrize("attention", ["bahdanau", "luong"])
def test_a_step_over_the_projected_memory_is_the_plain_step(attention):
    training.set_seed(3)
    model = Translator(40, 40, 8, attention, encoder=dict(cell="lstm", units=6, num_layers=2,
                                                          bidirectional=True))
    model.build()
    for weight in model.weights:
        weight.assign(tf.random.normal(weight.shape, stddev=0.5))
    source = tf.constant([[5, 6, 7, 0], [9, 4, 0, 0]])
    context, state = model.encode(source)
    plain = model.step(tf.constant([4, 8]), state, context)
    projected = model.step(tf.constant([4, 8]), state, model.decoding_context(context))
    for a, b in zip(tf.nest.flatten(plain), tf.nest.flatten(projected)):
        assert a.shape == b.shape and np.allclose(a.numpy(), b.numpy(), atol=1e-5)
    assert not np.allclose(plain[0].numpy()[0], plain[0].numpy()[1], atol=1e-3)


def test_an_export_holds_the_table_once_as_variables_not_per_signature_constants(
        tiny_run, tiny_export):
    from tensorflow.core.protobuf import saved_model_pb2

    candidates, frequent = task.TASK.shortlist_of(runner.load(task.TASK, tiny_run[0]))
    version = tiny_export[1]
    graph = saved_model_pb2.SavedModel.FromString(
        (version / "saved_model.pb").read_bytes()).meta_graphs[0].graph_def
    nodes = [node for function in graph.library.function for node in function.node_def]
    nodes += list(graph.node)
    constants = [tf.make_ndarray(node.attr["value"].tensor) for node in nodes
                 if node.op == "Const"]
    held = [c for c in constants for part in (candidates, frequent)
            if c.shape == part.shape and np.array_equal(c, part)]
    assert not held  # no signature's function copies the table
    saved = tf.train.load_checkpoint(str(version / "variables" / "variables"))
    values = [saved.get_tensor(key) for key, dtype in saved.get_variable_to_dtype_map().items()
              if dtype == tf.int32]
    for part in (candidates, frequent):  # once each, in the checkpoint
        assert sum(v.shape == part.shape and np.array_equal(v, part) for v in values) == 1
    translate_signature = tf.saved_model.load(str(version)).signatures["translate"]
    outputs = translate_signature(text=tf.constant(TEXTS), beam_size=tf.constant(1),
                                  max_length=tf.constant(64))
    assert outputs["translation"].numpy()[0].decode() == "4 3 2 1"


@pytest.mark.parametrize("attention", ["bahdanau", "luong"])
def test_a_step_over_a_shortlists_prepared_rows_is_the_full_step_at_its_ids(attention):
    """The shortlist's input-projection table (`Translator.step_weights(ids)`) read by
    position gives the full step's logits at those ids, its state and its attention."""
    training.set_seed(4)
    model = Translator(40, 40, 8, attention, encoder=dict(cell="gru", units=6,
                                                          bidirectional=True))
    model.build()
    for weight in model.weights:
        weight.assign(tf.random.normal(weight.shape, stddev=0.5))
    context, state = model.encode(tf.constant([[5, 6, 7, 0], [9, 4, 0, 0]]))
    full = model.step(tf.constant([4, 8]), state, context)
    ids = tf.constant([0, 1, 2, 3, 4, 8, 11, 30])
    listed = model.prepared_step(tf.constant([4, 5]), state, model.decoding_context(context),
                                 model.step_weights(ids))
    assert np.allclose(tf.gather(full[0], ids, axis=1).numpy(), listed[0].numpy(), atol=1e-5)
    for a, b in zip(tf.nest.flatten(full[1:]), tf.nest.flatten(listed[1:])):
        assert np.allclose(a.numpy(), b.numpy(), atol=1e-5)
    assert not np.allclose(full[0].numpy()[0], full[0].numpy()[1], atol=1e-3)
