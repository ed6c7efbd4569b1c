"""Peer: the plain Keras recipe for attentional translation, the baseline of the targets.

"Plain" means what the Keras / TensorFlow seq2seq tutorials do, nothing more:

- the project's joint SentencePiece model (`--tokenizer`, the same vocabulary) turns
  each side into ids once; pairs longer than `--max-length` are dropped and the rest
  padded to that one length in NumPy arrays (no tf.data, no bucketing);
- Embedding(V, 256, mask_zero=True) -> Bidirectional(GRU(256)) encoder; the decoder's
  initial state is Dense(256, tanh) of both final states; a GRU(256) decoder over the
  whole target with teacher forcing, then `keras.layers.AdditiveAttention` over the
  encoder outputs, concat -> Dense(256, tanh) -> Dense(V) logits;
- Adam(1e-3), masked sparse cross-entropy, `model.fit` on the arrays, batch 64,
  validation loss every epoch, the best validation epoch's weights kept, stopped by
  `--time-budget` (checked after every batch);
- batched greedy decoding: a Python loop of `predict_on_batch` on a one-step decoder
  model, until every row has produced the end id or `--max-length` tokens.

`--model-dir DIR` keeps the trained peer: an empty (or new) DIR gets its weights and
what its training measured (seconds, epochs, validation BLEU, the tokenizer's digest);
a DIR holding them is loaded instead of training (the same tokenizer required), so a
briefly trained peer's longer outputs need not be timed: train it once, time its
decoding many times.

Prints one JSON line: wall_seconds (from the first line, imports included),
epoch_seconds, val_bleu and test_bleu / test_chrf (sacreBLEU on detokenized output,
with their signatures),
greedy_sentences_per_second on the test set.
"""

import time

START = time.perf_counter()

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import sacrebleu  # noqa: E402
import sentencepiece as spm  # noqa: E402

PAD, BOS, EOS = 0, 2, 3
UNITS = 256
WEIGHTS, TRAINED = "model.weights.h5", "trained.json"  # what --model-dir holds


def read_pairs(prefix: Path):
    lines = lambda lang: Path(f"{prefix}.{lang}").read_text(encoding="utf-8").splitlines()  # noqa: E731
    return lines("de"), lines("en")


def arrays(sp, sources, targets, length):
    """Padded source, decoder input and decoder target ids; long pairs dropped."""
    src_ids, tgt_ids = sp.encode(sources), sp.encode(targets)
    keep = [i for i in range(len(src_ids))
            if len(src_ids[i]) <= length and len(tgt_ids[i]) + 1 <= length]
    src = np.zeros([len(keep), length], np.int32)
    tgt_in = np.zeros([len(keep), length], np.int32)
    tgt_out = np.zeros([len(keep), length], np.int32)
    for row, i in enumerate(keep):
        src[row, : len(src_ids[i])] = src_ids[i]
        tgt_in[row, : len(tgt_ids[i]) + 1] = [BOS] + tgt_ids[i]
        tgt_out[row, : len(tgt_ids[i]) + 1] = tgt_ids[i] + [EOS]
    return src, tgt_in, tgt_out


def build(vocab):
    src = keras.Input([None], dtype="int32", name="source")
    tgt = keras.Input([None], dtype="int32", name="target_in")
    src_embedding = keras.layers.Embedding(vocab, UNITS, mask_zero=True)
    tgt_embedding = keras.layers.Embedding(vocab, UNITS, mask_zero=True)
    encoder = keras.layers.Bidirectional(keras.layers.GRU(UNITS, return_sequences=True,
                                                          return_state=True))
    bridge = keras.layers.Dense(UNITS, activation="tanh")
    decoder = keras.layers.GRU(UNITS, return_sequences=True, return_state=True)
    attention = keras.layers.AdditiveAttention()
    key_layer = keras.layers.Dense(UNITS, use_bias=False)  # memory at the query's size
    combine = keras.layers.Dense(UNITS, activation="tanh")
    logits_layer = keras.layers.Dense(vocab)

    memory, forward, backward = encoder(src_embedding(src))
    state = bridge(keras.layers.Concatenate()([forward, backward]))
    keys = key_layer(memory)
    src_mask = keras.ops.not_equal(src, PAD)

    def decode(tokens, initial):
        outputs, final = decoder(tgt_embedding(tokens), initial_state=initial)
        context = attention([outputs, memory, keys], mask=[None, src_mask])
        return logits_layer(combine(keras.layers.Concatenate()([outputs, context]))), final

    logits, _ = decode(tgt, state)
    model = keras.Model([src, tgt], logits)
    encoder_model = keras.Model(src, [memory, keys, state])
    # one decoder step, for greedy decoding
    token = keras.Input([1], dtype="int32")
    previous = keras.Input([UNITS])
    memory_in = keras.Input([None, 2 * UNITS])
    keys_in = keras.Input([None, UNITS])
    src_in = keras.Input([None], dtype="int32")
    outputs, final = decoder(tgt_embedding(token), initial_state=previous)
    context = attention([outputs, memory_in, keys_in],
                        mask=[None, keras.ops.not_equal(src_in, PAD)])
    step_logits = logits_layer(combine(keras.layers.Concatenate()([outputs, context])))
    step_model = keras.Model([token, previous, memory_in, keys_in, src_in],
                             [step_logits, final])
    return model, encoder_model, step_model


def greedy(encoder_model, step_model, sp, sentences, length, batch_size=64,
           by_length=False):
    """Translations in input order; `by_length` batches sentences of similar word counts
    (stable order), as bench/translate_multi30k.py does for the SavedModel."""
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i].split())) \
        if by_length else list(range(len(sentences)))
    out = []
    for start in range(0, len(sentences), batch_size):
        ids = sp.encode([sentences[i] for i in order[start : start + batch_size]])
        src = np.zeros([len(ids), length], np.int32)
        for row, seq in enumerate(ids):
            seq = seq[:length]
            src[row, : len(seq)] = seq
        memory, keys, state = encoder_model.predict_on_batch(src)
        token = np.full([len(ids), 1], BOS, np.int32)
        done = np.zeros(len(ids), bool)
        produced = [[] for _ in ids]
        for _ in range(length):
            logits, state = step_model.predict_on_batch([token, state, memory, keys, src])
            logits = np.asarray(logits)[:, 0]
            logits[:, [PAD, 1, BOS]] = -1e9
            token = logits.argmax(-1).astype(np.int32)[:, None]
            for row in np.flatnonzero(~done):
                if token[row, 0] == EOS:
                    done[row] = True
                else:
                    produced[row].append(int(token[row, 0]))
            if done.all():
                break
        out += [sp.decode(p) for p in produced]
    in_order = [""] * len(sentences)
    for position, translation in zip(order, out):
        in_order[position] = translation
    return in_order


class TimeBudget(keras.callbacks.Callback):
    def __init__(self, seconds):
        super().__init__()
        self.seconds, self.epoch_seconds = seconds, []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if time.perf_counter() - START > self.seconds:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(round(time.perf_counter() - self.epoch_start, 1))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_trained(model, folder: Path, tokenizer: Path) -> dict | None:
    """What a --model-dir run measured, its weights loaded into `model`; None if the
    folder holds no trained peer."""
    if not (folder / WEIGHTS).is_file() or not (folder / TRAINED).is_file():
        return None
    trained = json.loads((folder / TRAINED).read_text())
    if trained["tokenizer_sha256"] != digest(tokenizer):
        raise SystemExit(f"'{folder}' holds a peer trained with another tokenizer than "
                         f"'{tokenizer}': give the same one, or an empty --model-dir.")
    model.load_weights(folder / WEIGHTS)
    return {**trained, "loaded": True}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="Folder of Multi30k (train, val, "
                        "test_2016_flickr), or give the three prefixes:")
    parser.add_argument("--train", type=Path, help="PREFIX of the training pairs "
                        "(PREFIX.de, PREFIX.en) [default: DATA/train].")
    parser.add_argument("--valid", type=Path, help="Validation pairs [default: DATA/val].")
    parser.add_argument("--test", type=Path, help="Test pairs [default: "
                        "DATA/test_2016_flickr].")
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--max-length", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--time-budget", type=float, default=1800.0,
                        help="Seconds from the start until training stops.")
    parser.add_argument("--decode-batch-size", type=int, default=64,
                        help="Sentences per batch of the timed greedy decoding.")
    parser.add_argument("--sort-by-length", action="store_true",
                        help="Batch the timed decoding by source word count.")
    parser.add_argument("--model-dir", type=Path,
                        help="Save the trained peer here, or load it from here if it "
                             "holds one (no training then).")
    args = parser.parse_args()
    for name, part in (("train", "train"), ("valid", "val"), ("test", "test_2016_flickr")):
        if getattr(args, name) is None:
            if args.data is None:
                parser.error(f"--{name} (or --data) is required")
            setattr(args, name, args.data / part)
    keras.utils.set_random_seed(1)
    sp = spm.SentencePieceProcessor(model_file=str(args.tokenizer))
    model, encoder_model, step_model = build(sp.get_piece_size())
    trained = load_trained(model, args.model_dir, args.tokenizer) if args.model_dir else None
    if trained is None:
        trained = train(model, encoder_model, step_model, sp, args)
        if args.model_dir:
            args.model_dir.mkdir(parents=True, exist_ok=True)
            model.save_weights(args.model_dir / WEIGHTS)
            (args.model_dir / TRAINED).write_text(json.dumps(
                {**trained, "tokenizer_sha256": digest(args.tokenizer)}))
    if trained.get("loaded"):  # warm up as validation decoding does after training
        greedy(encoder_model, step_model, sp, read_pairs(args.valid)[0][: args.decode_batch_size],
               args.max_length, args.decode_batch_size)
    trained_seconds, val_bleu = trained["train_seconds"], trained["val_bleu"]
    budget_epochs = trained["epoch_seconds"]
    test_sources, test_targets = read_pairs(args.test)
    started = time.perf_counter()
    hypotheses = greedy(encoder_model, step_model, sp, test_sources, args.max_length,
                        args.decode_batch_size, args.sort_by_length)
    decode_seconds = time.perf_counter() - started
    bleu, chrf = sacrebleu.BLEU(), sacrebleu.CHRF()  # corpus_bleu's and corpus_chrf's
    print(json.dumps({
        "peer": "keras_translation_recipe", "train_seconds": round(trained_seconds, 1),
        "wall_seconds": round(time.perf_counter() - START, 1),
        "epoch_seconds": budget_epochs, "epochs": len(budget_epochs),
        "loaded_from": str(args.model_dir) if trained.get("loaded") else None,
        "val_bleu": round(val_bleu, 2),
        "test_bleu": round(bleu.corpus_score(hypotheses, [test_targets]).score, 2),
        "test_chrf": round(chrf.corpus_score(hypotheses, [test_targets]).score, 2),
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
        "greedy_sentences_per_second": round(len(test_sources) / decode_seconds, 1),
        "mean_output_pieces": round(float(np.mean([len(sp.encode(h)) for h in hypotheses])),
                                    1)}))


def train(model, encoder_model, step_model, sp, args) -> dict:
    """`model.fit` until the time budget: the seconds from the start, the epochs' seconds
    and the validation BLEU of greedy decoding."""
    train_arrays = arrays(sp, *read_pairs(args.train), args.max_length)
    val_sources, val_targets = read_pairs(args.valid)
    valid = arrays(sp, val_sources, val_targets, args.max_length)
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    budget = TimeBudget(args.time_budget)
    best = keras.callbacks.EarlyStopping(patience=args.epochs, restore_best_weights=True)
    model.fit([train_arrays[0], train_arrays[1]], train_arrays[2],
              sample_weight=(train_arrays[2] != PAD).astype("float32"),
              validation_data=([valid[0], valid[1]], valid[2],
                               (valid[2] != PAD).astype("float32")),
              batch_size=64, epochs=args.epochs, callbacks=[budget, best], verbose=2)
    trained_seconds = time.perf_counter() - START
    val_bleu = sacrebleu.corpus_bleu(
        greedy(encoder_model, step_model, sp, val_sources, args.max_length),
        [val_targets]).score
    return {"train_seconds": round(trained_seconds, 1), "val_bleu": round(val_bleu, 2),
            "epoch_seconds": budget.epoch_seconds}


if __name__ == "__main__":
    main()
