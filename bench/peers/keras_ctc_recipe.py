"""Peer: the plain keras.io CTC speech recognition recipe, trained for a fixed wall time.

What the keras.io "CTC ASR" example does, scaled as issue 11 measured it:

- features: STFT magnitudes (`tf.signal.stft`, 25 ms windows, 10 ms hop at 8 kHz, 256-point
  FFT), square-rooted, normalised per utterance (mean and standard deviation);
- every utterance padded to the longest training one: padded NumPy arrays, `model.fit`;
- characters (a-z, space, apostrophe) through `StringLookup`;
- Conv2D(32, [11, 41], strides [2, 2]) -> BN -> ReLU -> Conv2D(32, [11, 21], strides
  [1, 2]) -> BN -> ReLU -> two Bidirectional(GRU(128)) -> Dense(256, relu) -> dropout ->
  Dense(characters + 1), CTC loss, Adam(1e-4 in the recipe; 1e-3 here, as the recipe's
  rate barely moves in minutes), batch 32;
- greedy CTC decoding (`keras.ops.ctc_decode`), WER with jiwer on the validation data
  after every epoch (the recipe's CallbackEval).

Training stops at the end of the batch that passes --seconds of training. Prints one
JSON line: wall seconds, the validation WER after every epoch with the training seconds
so far, and the final test WER (isolated and connected digits).
"""

import time

START = time.perf_counter()

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import wave  # noqa: E402
from pathlib import Path  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jiwer  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

CHARACTERS = list("abcdefghijklmnopqrstuvwxyz' ")
to_ids = keras.layers.StringLookup(vocabulary=CHARACTERS, oov_token="")
to_chars = keras.layers.StringLookup(vocabulary=to_ids.get_vocabulary(), oov_token="",
                                     invert=True)


def read(manifest: Path):
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle))
    audio = []
    for row in rows:
        with wave.open(str(manifest.parent / row["wav_filename"])) as reader:
            audio.append(np.frombuffer(reader.readframes(reader.getnframes()), "<i2")
                         .astype(np.float32) / 32768.0)
    return audio, [row["transcript"] for row in rows]


def spectrogram(samples: np.ndarray) -> np.ndarray:
    stft = tf.signal.stft(tf.constant(samples), 200, 80, 256)
    magnitude = tf.math.pow(tf.abs(stft), 0.5)
    mean = tf.reduce_mean(magnitude, 1, keepdims=True)
    std = tf.math.reduce_std(magnitude, 1, keepdims=True)
    return ((magnitude - mean) / (std + 1e-10)).numpy()


def padded(audio, length=None):
    features = [spectrogram(a) for a in audio]
    length = length or max(len(f) for f in features)
    out = np.zeros((len(features), length, features[0].shape[1]), np.float32)
    for i, f in enumerate(features):
        out[i, : min(len(f), length)] = f[:length]
    return out


def labels(texts):
    ids = [to_ids(tf.strings.unicode_split(t, "UTF-8")).numpy() for t in texts]
    out = np.zeros((len(ids), max(len(i) for i in ids)), np.int64)
    for row, i in enumerate(ids):
        out[row, : len(i)] = i
    return out


def build(features: int, classes: int) -> keras.Model:
    spectrum = keras.Input((None, features))
    x = keras.layers.Reshape((-1, features, 1))(spectrum)
    x = keras.layers.Conv2D(32, [11, 41], strides=[2, 2], padding="same", use_bias=False)(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.Conv2D(32, [11, 21], strides=[1, 2], padding="same", use_bias=False)(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.Reshape((-1, x.shape[-2] * x.shape[-1]))(x)
    for _ in range(2):
        x = keras.layers.Bidirectional(keras.layers.GRU(128, return_sequences=True))(x)
        x = keras.layers.Dropout(0.3)(x)
    x = keras.layers.Dropout(0.3)(keras.layers.Dense(256, activation="relu")(x))
    return keras.Model(spectrum, keras.layers.Dense(classes + 1, activation="softmax")(x))


def ctc_loss(y_true, y_pred):
    batch = tf.shape(y_pred)[0]
    label_length = tf.reduce_sum(tf.cast(y_true != 0, tf.int32), axis=1)
    logit_length = tf.fill([batch], tf.shape(y_pred)[1])
    return tf.nn.ctc_loss(tf.cast(y_true, tf.int32), tf.math.log(y_pred + 1e-8), label_length,
                          logit_length, logits_time_major=False, blank_index=-1)


def transcribe(model, features, batch=64):
    texts = []
    for start in range(0, len(features), batch):
        probabilities = model.predict(features[start : start + batch], verbose=0)
        lengths = np.full(len(probabilities), probabilities.shape[1])
        decoded = keras.ops.ctc_decode(probabilities, lengths, strategy="greedy")[0][0]
        for row in np.asarray(decoded):
            text = tf.strings.reduce_join(to_chars(row[row > 0])).numpy().decode()
            texts.append(" ".join(text.split()))
    return texts


class Budget(keras.callbacks.Callback):
    """Stop after --seconds of training; validation WER after every epoch."""

    def __init__(self, seconds, valid, valid_texts):
        super().__init__()
        self.seconds, self.valid, self.valid_texts = seconds, valid, valid_texts
        self.trained, self.curve = 0.0, []

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if time.perf_counter() - self.started >= self.seconds:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        wer = jiwer.wer(self.valid_texts, transcribe(self.model, self.valid))
        self.curve.append({"epoch": epoch, "seconds": round(time.perf_counter() - self.started,
                                                             1), "val_wer": wer})
        print(json.dumps(self.curve[-1]), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("train", "valid", "test", "connected"):
        parser.add_argument(f"--{name}", type=Path, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)
    train_audio, train_texts = read(args.train)
    train = padded(train_audio)
    valid_audio, valid_texts = read(args.valid)
    valid = padded(valid_audio)
    model = build(train.shape[-1], to_ids.vocabulary_size())
    model.compile(keras.optimizers.Adam(1e-3), ctc_loss)
    budget = Budget(args.seconds, valid, valid_texts)
    model.fit(train, labels(train_texts), batch_size=32, epochs=10_000, callbacks=[budget],
              verbose=0)
    report = {"peer": "keras_ctc_recipe", "train_seconds": round(time.perf_counter()
                                                                  - budget.started, 1),
              "epochs": len(budget.curve), "curve": budget.curve}
    for name in ("test", "connected"):
        audio, texts = read(getattr(args, name))
        report[f"{name}_wer"] = jiwer.wer(texts, transcribe(model, padded(audio)))
    report["wall_seconds"] = round(time.perf_counter() - START, 1)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
