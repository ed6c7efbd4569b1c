"""Is a pretrained language model worth transferring? A linear probe of its features.

Pools an `apps lm` run's encoder outputs over labelled texts (concat pooling: last, max,
mean, as the sentiment classifier does; reviews longer than --max-length keep head and
tail), fits a logistic regression on the first --train texts and scores the rest. The
same probe on the same architecture at random initialisation and on the LM's embeddings
alone says whether pretraining taught the encoder anything a classifier can use: if the
pretrained encoder does no better than a random one, fine-tuning starts from nothing.

    PYTHONPATH=. python bench/lm_feature_probe.py RUN --data ../shared/data/sentiment/imdb/train.tsv
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import tensorflow as tf
from common import machine

from apps import runner
from apps.info import task_named
from apps.layers import SequencePooling
from pipelines.inputters import keep_ends


def texts_and_labels(path: Path, count: int, seed: int) -> tuple[list[str], np.ndarray]:
    csv.field_size_limit(1 << 30)
    with path.open(encoding="utf-8") as file:
        rows = list(csv.DictReader(file, delimiter="\t"))
    np.random.default_rng(seed).shuffle(rows)
    rows = rows[:count]
    first = rows[0]["label"]
    return [row["text"] for row in rows], np.array([row["label"] == first for row in rows],
                                                   np.float32)


def padded(ids: list[list[int]], length: int) -> np.ndarray:
    """Ids [N, length]; a longer text keeps its first quarter and last three quarters,
    as `--long-text head+tail` does (`pipelines.inputters.keep_ends`)."""
    kept = keep_ends(tf.ragged.constant(ids, tf.int32), length // 4, length - length // 4)
    return kept.to_tensor(shape=[len(ids), length]).numpy()


def encoder_features(embedding, encoder, ids: np.ndarray) -> np.ndarray:
    pooling, out = SequencePooling("concat"), []
    for start in range(0, len(ids), 100):
        batch = tf.constant(ids[start:start + 100])
        mask = tf.not_equal(batch, 0)
        sequence, states = encoder(embedding(batch), mask=mask, training=False)
        out.append(pooling(sequence, mask, last=encoder.last_output(states)).numpy())
    return np.concatenate(out)


def embedding_features(embedding, ids: np.ndarray) -> np.ndarray:
    out = []
    for start in range(0, len(ids), 100):
        batch = ids[start:start + 100]
        vectors, keep = embedding(tf.constant(batch)).numpy(), (batch > 0)[..., None]
        mean = (vectors * keep).sum(1) / np.maximum(keep.sum(1), 1)
        out.append(np.concatenate([mean, np.where(keep, vectors, -1e9).max(1)], axis=1))
    return np.concatenate(out)


def probe(features: np.ndarray, labels: np.ndarray, train: int) -> dict[str, float]:
    """Train and held-out accuracy of an L2-regularised logistic regression."""
    tf.keras.utils.set_random_seed(0)
    centre, scale = features[:train].mean(0), features[:train].std(0) + 1e-6
    features = (features - centre) / scale
    model = tf.keras.Sequential([tf.keras.layers.Dense(
        1, kernel_regularizer=tf.keras.regularizers.l2(1e-3))])
    model.compile(tf.keras.optimizers.Adam(1e-2),
                  tf.keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[tf.keras.metrics.BinaryAccuracy(threshold=0.0)])
    model.fit(features[:train], labels[:train], epochs=60, batch_size=256, verbose=0)
    return {"train": round(model.evaluate(features[:train], labels[:train], verbose=0)[1], 4),
            "held_out": round(model.evaluate(features[train:], labels[train:], verbose=0)[1], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="An `apps lm` run directory.")
    parser.add_argument("--data", type=Path, required=True, help="A TSV with text and label.")
    parser.add_argument("--texts", type=int, default=4000, help="Texts read (a random sample).")
    parser.add_argument("--train", type=int, default=3000, help="Of which the probe fits on.")
    parser.add_argument("--max-length", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(machine(), flush=True)
    task = task_named("lm", args.run)
    trained = runner.load(task, args.run)
    texts, labels = texts_and_labels(args.data, args.texts, args.seed)
    ids = padded(trained.inputters["text"].tokenizer.encode(texts), args.max_length)
    tf.keras.utils.set_random_seed(args.seed)
    fresh = task.build_model(trained.settings, trained.inputters)
    model = trained.model
    for name, features in [
            ("pretrained encoder", encoder_features(model.embedding, model.encoder, ids)),
            ("random encoder", encoder_features(fresh.embedding, fresh.encoder, ids)),
            ("pretrained embeddings", embedding_features(model.embedding, ids))]:
        print(json.dumps({"features": name, **probe(features, labels, args.train)}), flush=True)


if __name__ == "__main__":
    main()
