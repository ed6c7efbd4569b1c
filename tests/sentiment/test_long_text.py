"""--long-text: which --max-length tokens a longer review keeps, the same in training
(the inputter's `encode`) and in the exported graph (the signature's tokenizer)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from apps import runner
from apps.sentiment.task import TASK
from pipelines.inputters import TextInputter

WORDS = [f"w{i}" for i in range(40)]
LONG = " ".join(WORDS[:20])


def fitted(long_text: str) -> TextInputter:
    inputter = TextInputter("word", 100, max_length=8, long_text=long_text)
    inputter.fit([" ".join(WORDS)] * 3 + WORDS)
    return inputter


def test_each_policy_keeps_its_pieces_in_training_and_in_the_graph():
    ids = fitted("head").tokenizer.encode([LONG])[0]
    expected = {"head": ids[:8], "tail": ids[-8:], "head+tail": ids[:2] + ids[-6:]}
    for policy, kept in expected.items():
        inputter = fitted(policy)
        assert inputter.encode([LONG, "w1 w2"]).rows() == [kept, ids[1:3]], policy
        assert inputter.preprocess(tf.constant([LONG])).numpy()[0].tolist() == kept, policy


@pytest.mark.long
def test_the_export_keeps_head_and_tail(tmp_path, sentiment_settings):
    settings = sentiment_settings(epochs=1, max_length=8, long_text="head+tail")
    run, _ = runner.train(TASK, settings, tmp_path / "run", verbose=0)
    exported = runner.load(TASK, runner.export(TASK, run, tmp_path / "saved_models"))
    assert exported.metadata.inputters["text"]["long_text"] == "head+tail"
    trained = runner.load(TASK, run)
    text = trained.inputters["text"]
    end = " and in the end i loved it all"  # eight words: at least the six tail pieces
    review = "great fun " + "dull boring awful " * 10 + end
    ids = text.tokenizer.encode([review])[0]
    kept = np.array([ids[:2] + ids[-6:]], np.int32)

    def scores(words):
        return exported.signatures["serving_default"](text=tf.constant([words]))["scores"]

    np.testing.assert_allclose(scores(review), trained.model.scores(kept), rtol=1e-5)
    middle_changed = "great fun " + "superb lovely " * 15 + end
    np.testing.assert_allclose(scores(middle_changed), scores(review), rtol=1e-6)
    assert not np.allclose(scores("awful dull " + review[10:]), scores(review))
