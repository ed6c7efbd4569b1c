"""Training learns, evaluation equals the SavedModel's score, generation is reproducible."""

from __future__ import annotations

import csv
import json
import logging

import keras
import numpy as np
import pytest
import tensorflow as tf

from apps import runner
from apps.errors import DataError
from apps.lm import decoding, generation, task
from apps.lm.generation import Sampling
from apps.lm.model import build


def load_signatures(path):
    import tensorflow_text  # noqa: F401

    return tf.saved_model.load(str(path)).signatures


def test_tiny_model_learns_real_text(tiny_run):
    run_dir, report = tiny_run
    rows = list(csv.DictReader((run_dir / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"]) - 0.3
    # Below the characters' unigram entropy (3.3 nats): it learned more than frequencies.
    assert report["nats_per_char"] < 2.6
    assert report["tokens"] == report["chars"]  # a character tokenizer
    metrics = json.loads((run_dir / "metrics.json").read_text())["valid"]
    assert {"nats_per_char", "bits_per_char", "perplexity", "tokens", "chars"} <= set(metrics)
    assert (run_dir / "tokenizer.model").is_file() and (run_dir / "plots/history.png").is_file()
    assert not (run_dir / "backup").exists()


def test_score_signature_equals_evaluate(tiny_run, tiny_export, corpus):
    run_dir, _ = tiny_run
    from_run = runner.evaluate(task.TASK, run_dir, str(corpus[1]))
    from_saved_model = runner.evaluate(task.TASK, tiny_export, str(corpus[1]))
    assert from_run == from_saved_model  # one path: the `score` signature of either
    assert from_run["tokens"] == from_run["chars"] > 1000
    texts = ["ROMEO:\nWhat say you?\n", "", "a"]
    batch = load_signatures(tiny_export)["score"](text=tf.constant(texts))
    assert batch["tokens"].numpy().tolist() == [len(t) for t in texts]
    assert batch["chars"].numpy().tolist() == [len(t) for t in texts]
    trained = runner.load(task.TASK, run_dir)
    for text, value in zip(texts, batch["log_likelihood"].numpy()):
        # each text alone, tokenised in Python and read by the model outside any signature
        ids = trained.inputters["text"].encode_stream(text)
        alone = decoding.log_likelihood(trained.model, tf.constant(ids[None, :]),
                                        tf.constant([len(ids)], tf.int32))[0] if text else 0.0
        assert value == pytest.approx(float(alone), rel=1e-5, abs=1e-4)


def test_greedy_text_is_the_same_from_the_run_and_the_saved_model(tiny_run, tiny_export):
    greedy = Sampling(max_tokens=80, temperature=0)
    for prompt in ("ROMEO:", "", "First Citizen:\nWe"):
        from_run = generation.generate(tiny_run[0], prompt, greedy)[0]
        served = load_signatures(tiny_export)["serving_default"](
            prompt=tf.constant([prompt]), max_tokens=tf.constant([80]),
            temperature=tf.constant([0.0]))["text"].numpy()[0].decode()
        assert from_run["text"] == served and from_run["text"].startswith(prompt)
        assert from_run["tokens"] == 80


def test_sampling_is_reproducible_with_a_seed(tiny_run, tiny_export):
    sampling = Sampling(max_tokens=40, temperature=1.0, top_k=20, top_p=0.95, seed=7,
                             num_samples=2)
    first = [s["text"] for s in generation.generate(tiny_run[0], "KING:", sampling)]
    again = [s["text"] for s in generation.generate(tiny_run[0], "KING:", sampling)]
    served = [s["text"] for s in generation.generate(tiny_export, "KING:", sampling)]
    assert first == again == served
    assert first[0] != first[1]  # sample i uses seed + i


def test_text_goes_to_emit_and_stops_at_the_stop_string(tiny_run):
    pieces = []
    sample = generation.generate(tiny_run[0], "", Sampling(max_tokens=300, temperature=0.8),
                           emit=pieces.append)[0]
    assert "".join(pieces) == sample["text"] and sample["tokens"] == 300
    stop = sample["text"][100:102]
    pieces = []
    stopped = generation.generate(tiny_run[0], "", Sampling(max_tokens=300, temperature=0.8,
                                                           stop=stop), emit=pieces.append)[0]
    assert stopped["stopped"] and stop not in stopped["text"]
    assert "".join(pieces) == stopped["text"] and sample["text"].startswith(stopped["text"])


def test_a_run_streams_in_chunks_the_text_its_signature_and_its_export_give(tiny_run,
                                                                           tiny_export):
    sampling = Sampling(max_tokens=60, temperature=1.0, top_k=20, seed=5, num_samples=2)
    pieces = []
    streamed = generation.generate(tiny_run[0], "KING:", sampling, emit=pieces.append)
    whole = generation.generate(tiny_run[0], "KING:", sampling)  # `generate`, no stream
    served = generation.generate(tiny_export, "KING:", sampling)
    assert [s["text"] for s in streamed] == [s["text"] for s in whole] == \
        [s["text"] for s in served]
    assert "".join(pieces) == "".join(s["text"][len("KING:"):] for s in streamed)
    assert len(pieces) >= 2 * 3 and all(s["tokens"] == 60 for s in streamed)


def test_stop_filter_holds_back_a_possible_stop():
    shown = []
    stop = generation.StopFilter("\n\n", shown.append)
    for piece in ["ab", "\n", "c\n", "\nlater"]:
        stop.add(piece)
    stop.flush()
    assert "".join(shown) == "ab\nc" and stop.stopped


def test_unseen_prompt_characters_are_read_as_unknown(tiny_run, tiny_export, caplog):
    with caplog.at_level(logging.WARNING):
        sample = generation.generate(tiny_run[0], "Caf\u00e9 \u65e5", Sampling(max_tokens=5))[0]
        served = generation.generate(tiny_export, "Caf\u00e9 \u65e5", Sampling(max_tokens=5))[0]
    assert sample["text"].startswith("Caf\u00e9 \u65e5") and sample["tokens"] == 5
    assert served["text"].startswith("Caf\u00e9 \u65e5")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all("never saw" in w for w in warnings)


def test_state_is_carried_between_batches_and_reset_on_the_first(lm_settings):
    settings = lm_settings(units=8, embedding_dim=4)
    model = build(settings, vocab_size=70)
    model.carry_state(2, 2)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(True))
    ids = np.random.default_rng(0).integers(4, 70, size=(2, 5)).astype("int32")

    def carried_after(first):
        model.test_step(((tf.constant(ids), tf.constant(first)), tf.constant(ids)))
        return [v.numpy() for v in model._carry["valid"].variables]

    _, expected = model.run(ids)
    np.testing.assert_allclose(carried_after(True), [s.numpy() for s in
                                                     tf.nest.flatten(expected)], atol=1e-6)
    _, continued = model.run(ids, expected)
    np.testing.assert_allclose(carried_after(False), [s.numpy() for s in
                                                      tf.nest.flatten(continued)], atol=1e-6)


def test_time_budget_shorter_than_one_step_keeps_a_model(lm_settings, tmp_path, caplog):
    settings = lm_settings(time_budget="0.001s", units=8, embedding_dim=4)
    with caplog.at_level(logging.WARNING):
        run_dir, report = runner.train(task.TASK, settings, tmp_path / "run", verbose=0)
    assert report["stopped_by_time_budget"] and report["epochs_run"] == 1
    assert any("time budget ran out" in r.getMessage() for r in caplog.records)
    assert (run_dir / "checkpoints/best.weights.h5").is_file()


@pytest.mark.parametrize("changes", [
    dict(tokenizer="bpe", vocab_size=300, cell="gru", stateful=False, tie_embeddings=True),
    dict(tokenizer="unigram", vocab_size=300, cell="rnn", layers=2, embedding_dim=16,
         tie_embeddings=True, lr_schedule="constant", dropout=0.1),
])
def test_other_tokenizers_cells_and_options_train_and_export(corpus, lm_settings, tmp_path,
                                                             changes):
    settings = lm_settings(epochs=1, units=16, **changes)
    run_dir, report = runner.train(task.TASK, settings, tmp_path / "run", verbose=0)
    assert report["tokens"] < report["chars"]  # pieces longer than one character
    text = corpus[0].read_text()[-2000:]
    trained = runner.load(task.TASK, run_dir)
    ids = trained.inputters["text"].encode_stream(text)
    assert trained.inputters["text"].tokenizer.decode(ids) == text
    exported = runner.export(task.TASK, run_dir, tmp_path / "saved_models")
    greedy = Sampling(max_tokens=20, temperature=0)
    from_run = generation.generate(run_dir, "To be", greedy)[0]
    assert from_run["text"] == generation.generate(exported, "To be", greedy)[0]["text"]


def test_schedule_warms_up_then_decays_by_steps_or_by_the_time_budget():
    from apps.schedule import WarmupCosine

    rate = WarmupCosine(1.0, total_steps=110, warmup_steps=10)
    values = [float(rate(step)) for step in (0, 9, 10, 60, 110, 500)]
    assert values == pytest.approx([0.1, 1.0, 1.0, 0.5, 0.0, 0.0], abs=1e-6)
    clock = tf.Variable(50.0, dtype=tf.float64)  # the runner's: seconds trained so far
    timed = WarmupCosine(1.0, total_steps=10**6, budget_seconds=100.0, clock=clock)
    assert float(timed(1)) == pytest.approx(0.5, abs=0.02)  # half the budget: half way down
    clock.assign(100.0)
    assert float(timed(1)) == 0.0


def test_trains_on_tfds_by_name_offline(lm_settings, tmp_path):
    import tensorflow_datasets as tfds

    settings = lm_settings(data="tfds:tiny_shakespeare", valid=None, epochs=1, units=8,
                           embedding_dim=4, batch_size=2, sequence_length=8)
    with tfds.testing.mock_data(num_examples=40):
        run_dir, report = runner.train(task.TASK, settings, tmp_path / "run", verbose=0)
    assert report["chars"] > 0 and (run_dir / "metrics.json").is_file()


def test_a_short_validation_text_trains_with_shorter_validation_segments(lm_settings, corpus,
                                                                          tmp_path):
    """An 8 KB corpus with its automatic hold-out (800 characters: fewer than batch x
    segment length) used to end in a shape error after a wasted epoch."""
    small = tmp_path / "small.txt"
    small.write_text(corpus[0].read_text()[:8000], encoding="utf-8")
    settings = lm_settings(data=str(small), valid=None, epochs=1, units=8, embedding_dim=4,
                           batch_size=32, sequence_length=64)
    _, report = runner.train(task.TASK, settings, tmp_path / "run", verbose=0)
    assert report["epochs_run"] == 1 and report["chars"] > 700


def test_a_validation_text_too_short_for_the_batch_is_refused_before_training(
        lm_settings, tmp_path):
    tiny = tmp_path / "valid.txt"
    tiny.write_text("To be.\n", encoding="utf-8")
    settings = lm_settings(valid=str(tiny), batch_size=32)
    with pytest.raises(DataError, match="fewer than the 32 parallel streams of --batch-size"):
        runner.train(task.TASK, settings, tmp_path / "run", verbose=0)
    assert not (tmp_path / "run").exists()
