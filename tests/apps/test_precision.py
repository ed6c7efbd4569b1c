"""Mixed precision: bfloat16 / float16 training learns, logits and exports stay float32."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from apps import precision, runner
from apps.lm import task as lm_task
from apps.lm.model import build as build_lm
from apps.sentiment import task


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_and_exports_float32(policy, tmp_path, sentiment_settings):
    settings = sentiment_settings(epochs=6, precision=policy)
    run_dir, report = runner.train(task.TASK, settings, tmp_path / "run", verbose=0)
    assert report["accuracy"] > 0.8  # chance is 0.5
    trained = runner.load(task.TASK, run_dir)  # a run loads at float32 whatever trained it
    assert {w.dtype for w in trained.model.weights} == {"float32"}
    version = runner.export(task.TASK, run_dir, tmp_path / "saved_models")
    scores = tf.saved_model.load(str(version)).signatures["serving_default"](
        text=tf.constant(["loved it", ""]))["scores"]
    assert scores.dtype == tf.float32 and np.isfinite(scores.numpy()).all()
    assert json.loads((run_dir / "config.json").read_text())["precision"] == policy


def test_logits_are_float32_under_bfloat16(lm_settings):
    settings = lm_settings(units=8, embedding_dim=4, tie_embeddings=True)
    with precision.policy("mixed_bfloat16"):
        model = build_lm(settings, vocab_size=40)
        logits = model(tf.zeros([2, 5], tf.int32))
        assert model.encoder.compute_dtype == "bfloat16"
    assert logits.dtype == tf.float32
    assert {w.dtype for w in model.weights} == {"float32"}


def test_float16_scales_the_loss(lm_settings, sentiment_settings, tmp_path):
    settings = lm_settings(epochs=1, units=8, embedding_dim=4, precision="mixed_float16")
    _, report = runner.train(lm_task.TASK, settings, tmp_path / "run", verbose=0)
    assert np.isfinite(report["nats_per_char"])
    settings = sentiment_settings(precision="mixed_float16")
    inputters = task.TASK.make_inputters(settings)
    task.TASK.fit_inputters(inputters, *task.TASK.read_training_data(settings), settings)
    with precision.policy("mixed_float16"):
        model = task.TASK.build_model(settings, inputters)
        task.TASK.compile_model(model, settings, None)
    assert type(model.optimizer).__name__ == "LossScaleOptimizer"


def test_auto_picks_bfloat16_only_where_the_cpu_has_amx(monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2", "amx_bf16", "amx_tile"})
    assert precision.resolve("auto") == "mixed_bfloat16"
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2", "avx512_bf16"})
    assert precision.resolve("auto") == "float32"
    assert precision.resolve("mixed_float16") == "mixed_float16"


def test_a_task_may_name_more_bfloat16_cpus(monkeypatch):
    from apps.translation import task as translation

    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2", "avx512_bf16"})
    assert precision.resolve("auto", translation.TASK.bfloat16_cpus) == "mixed_bfloat16"
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2", "avx512f"})
    assert precision.resolve("auto", translation.TASK.bfloat16_cpus) == "float32"
