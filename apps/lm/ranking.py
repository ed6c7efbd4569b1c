"""What a reranker needs from a language model: n-best continuations and text scores.

Both go through the serving functions (`generate_n_best`, `score`), so a run directory
(functions traced in memory) and its SavedModel (signatures) answer alike.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from apps.task import Trained


def n_best(trained: Trained, prompt: str, max_tokens: int, count: int) -> list[dict[str, Any]]:
    """The `count` likeliest continuations of `prompt` (beam search), best first: one
    {"text" (prompt included), "score" (nats of the new tokens), "tokens"} each."""
    out = trained.signature("generate_n_best")(
        prompt=tf.constant([prompt]), max_tokens=tf.constant(max_tokens, tf.int32),
        n_best=tf.constant(count, tf.int32))
    return [{"text": text.decode("utf-8"), "score": float(score), "tokens": int(tokens)}
            for text, score, tokens in zip(out["texts"].numpy()[0], out["scores"].numpy()[0],
                                           out["tokens"].numpy()[0])]


def score_texts(trained: Trained, texts: list[str], batch_size: int = 64
                ) -> list[dict[str, Any]]:
    """One {"text", "log_likelihood" (nats, from the begin id), "tokens", "chars",
    "nats_per_char"} per text, in order."""
    function = trained.signature("score")
    rows = []
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        out = function(text=tf.constant(batch))
        for i, text in enumerate(batch):
            total, chars = float(out["log_likelihood"][i]), int(out["chars"][i])
            rows.append({"text": text, "log_likelihood": total, "tokens": int(out["tokens"][i]),
                         "chars": chars,
                         "nats_per_char": -total / chars if chars else None})
    return rows
