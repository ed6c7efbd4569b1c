"""Peer: the plain keras.io BiLSTM recipe on MR, the baseline of the speed target.

"Plain" means what the keras.io text-classification examples do, nothing more:

- `keras.layers.TextVectorization(max_tokens=8000)` with its default standardisation
  (lower case, strip punctuation, split on whitespace), adapted on the training texts;
  or, with `--tokens pieces`, the project's default tokens for a like-for-like
  comparison: a SentencePiece unigram model of 8,000 pieces trained on the training
  texts (the `sentencepiece` package, the project's settings), ids padded with 0;
- fixed-length padding: every text is padded (or cut) to one `output_sequence_length`,
  by default the longest training text (59 words on MR). `--max-length 200` gives
  keras.io's IMDB `maxlen` instead;
- the texts are vectorised once into NumPy arrays and `model.fit` runs on those
  arrays: no `tf.data`, no length bucketing;
- Embedding(8000, 128, mask_zero=True) -> Bidirectional(LSTM(128,
  return_sequences=True)) -> GlobalMaxPooling1D -> Dense(1, sigmoid), Adam(1e-3),
  binary cross-entropy, batch 64, 4 epochs, validated on dev every epoch;
- the best dev epoch is kept (`EarlyStopping(restore_best_weights=True)` with a
  patience that never stops early) and scored on test.

Prints one JSON line: {"peer": "keras_recipe", "wall_seconds": ..., "test_accuracy": ...,
"epoch_seconds": [...]}; `wall_seconds` runs from the first line of this script, imports
included; `epoch_seconds` times each epoch of `fit`, validation included.
"""

import time

START = time.perf_counter()

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

DATA = Path(__file__).resolve().parents[3] / "shared/data/sentiment/mr"


def read_tsv(path: Path) -> tuple[list[str], np.ndarray]:
    """Texts and 0/1 labels (positive = 1) of a `text<TAB>label` file with a header."""
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r["text"] for r in rows], np.array([r["label"] == "positive" for r in rows], "int32")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder with {train,dev,test}.tsv")
    parser.add_argument("--max-length", type=int, default=0,
                        help="fixed sequence length; 0: the longest training text")
    parser.add_argument("--tokens", choices=["words", "pieces"], default="words",
                        help="TextVectorization words, or SentencePiece unigram pieces")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)

    train_x, train_y = read_tsv(args.data / "train.tsv")
    dev_x, dev_y = read_tsv(args.data / "dev.tsv")
    test_x, test_y = read_tsv(args.data / "test.tsv")

    if args.tokens == "pieces":
        train_ids, dev_ids, test_ids = pieces(train_x, (train_x, dev_x, test_x), args.max_length)
        length = train_ids.shape[1]
    else:
        vectorizer = keras.layers.TextVectorization(max_tokens=8000)
        vectorizer.adapt(train_x)
        length = args.max_length or int(vectorizer(train_x).shape[1])  # the longest text
        vectorizer = keras.layers.TextVectorization(
            max_tokens=8000, output_sequence_length=length,
            vocabulary=vectorizer.get_vocabulary())
        train_ids, dev_ids, test_ids = (vectorizer(tf.constant(x)).numpy()
                                        for x in (train_x, dev_x, test_x))

    model = keras.Sequential([
        keras.Input(shape=(length,), dtype="int32"),
        keras.layers.Embedding(8000, 128, mask_zero=True),
        keras.layers.Bidirectional(keras.layers.LSTM(128, return_sequences=True)),
        keras.layers.GlobalMaxPooling1D(),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy",
                  metrics=["accuracy"])
    keep_best = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max",
                                              patience=args.epochs, restore_best_weights=True)
    clock = EpochClock()
    history = model.fit(train_ids, train_y, batch_size=args.batch_size, epochs=args.epochs,
                        validation_data=(dev_ids, dev_y), callbacks=[keep_best, clock],
                        verbose=0)
    _, test_accuracy = model.evaluate(test_ids, test_y, batch_size=args.batch_size, verbose=0)
    print(json.dumps({"peer": "keras_recipe", "tokens": args.tokens,
                      "wall_seconds": round(time.perf_counter() - START, 3),
                      "test_accuracy": round(float(test_accuracy), 4), "sequence_length": length,
                      "train_examples": len(train_x), "epoch_seconds": clock.seconds,
                      "best_epoch": int(np.argmax(history.history["val_accuracy"]))}))


class EpochClock(keras.callbacks.Callback):
    """Seconds of each epoch (training and validation)."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(round(time.perf_counter() - self._start, 3))


def pieces(train_texts: list[str], parts, max_length: int):
    """Texts as SentencePiece unigram ids (8,000 pieces, trained as the project trains it),
    padded with 0 to the longest training text."""
    import io

    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(train_texts), model_writer=model, model_type="unigram",
        vocab_size=8000, hard_vocab_limit=False, pad_id=0, unk_id=1, bos_id=2, eos_id=3,
        character_coverage=0.9995, num_threads=2, minloglevel=2)
    processor = spm.SentencePieceProcessor(model_proto=model.getvalue())
    encoded = [processor.encode(list(texts)) for texts in parts]
    length = max_length or max(len(ids) for ids in encoded[0])
    return [keras.utils.pad_sequences(ids, maxlen=length, padding="post", truncating="post")
            for ids in encoded]


if __name__ == "__main__":
    main()
