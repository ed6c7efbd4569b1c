"""Every task from every kind of source it reads: the same set, the same results.

Each real small set (MR, Tiny Shakespeare, Multi30k, FSDD) is written in a temporary
folder as each kind of source its task reads (plain text, PREFIX.src/.tgt files, TSV,
CSV, JSONL, speech manifests CSV / JSONL) and presented as a `tfds:` name through
`tfds.testing.mock_data` (TFDS' own `tfds.load` and `tf.data` pipeline, fed the same
examples offline); each is trained with fixed seeds and the settings of
bench/configs/source_kinds.yaml (short: a fixed number of epochs or steps), with
`--streaming off` and `on` where the task streams that kind. The first kind also
trains with a second seed: a kind's metric should lie within that spread.

    python bench/source_kinds.py [--tasks sentiment lm translation speech]
        [--kinds KIND ...] [--seed2 2] [--config bench/configs/source_kinds.yaml]

Prints one row per run (the task's validation metric, training seconds) and the load.
The validation data is each set's own (MR dev, Tiny Shakespeare valid, the first 500
pairs of Multi30k val, FSDD test), written in the matching kind where the task needs it.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml
from common import ROOT, SHARED, LoadMonitor, machine

sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CONFIG = ROOT / "bench" / "configs" / "source_kinds.yaml"
METRIC = {"sentiment": "accuracy", "lm": "val_bits_per_char", "translation": "bleu",
          "speech": "wer"}
IMDB_NAMES = {"negative": "neg", "positive": "pos"}  # imdb_reviews' label names
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


# ------------------------------------------------------------------------- writing


def write_table(path: Path, columns: list[str], rows) -> str:
    """Rows as TSV, CSV or JSONL by the suffix; a TSV field cannot hold a tab (one
    Multi30k German line has one), so there it becomes a space."""
    if path.suffix == ".jsonl":
        with path.open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(dict(zip(columns, row)), ensure_ascii=False) + "\n"
                              for row in rows)
        return str(path)
    tsv = path.suffix == ".tsv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t" if tsv else ",", lineterminator="\n",
                            quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL,
                            quotechar=None if tsv else '"')  # TSV: quotes are text
        writer.writerow(columns)
        writer.writerows([[f.replace("\t", " ") if tsv and isinstance(f, str) else f
                           for f in row] for row in rows])
    return str(path)


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def mocked(splits: dict):
    """`tfds.testing.mock_data` whose split S yields `splits[S]` (a function giving a
    `tf.data.Dataset`)."""
    import tensorflow_datasets as tfds

    return tfds.testing.mock_data(
        as_dataset_fn=lambda builder, split, **_: splits[str(split).split("[")[0]]())


# --------------------------------------------------------------------------- tasks


def sentiment_kinds(folder: Path) -> dict:
    """kind -> (settings changes, TFDS mock or None)."""
    import tensorflow as tf

    from pipelines.sources import read_labeled

    mr = SHARED / "sentiment" / "mr"
    train, dev = read_labeled(str(mr / "train.tsv")), read_labeled(str(mr / "dev.tsv"))
    rows = list(zip(train.texts, train.labels))
    kinds = {}
    for suffix in (".tsv", ".csv", ".jsonl"):
        data = write_table(folder / f"mr{suffix}", ["text", "label"], rows)
        for streaming in ("off", "on"):
            kinds[f"{suffix[1:]} --streaming {streaming}"] = (
                dict(data=data, valid=str(mr / "dev.tsv"), streaming=streaming), None)

    def labelled(found):
        ids = [sorted(IMDB_NAMES.values()).index(IMDB_NAMES[label]) for label in found.labels]
        return lambda: tf.data.Dataset.from_tensor_slices({"text": found.texts, "label": ids})

    splits = {"train": labelled(train), "test": labelled(dev)}
    for streaming in ("off", "on"):
        kinds[f"tfds --streaming {streaming}"] = (
            dict(data="tfds:imdb_reviews", valid="tfds:imdb_reviews:test", streaming=streaming),
            splits)
    return kinds


def lm_kinds(folder: Path) -> dict:
    import tensorflow as tf

    shakespeare = SHARED / "lm" / "tinyshakespeare"
    valid = str(shakespeare / "valid.txt")
    text = (shakespeare / "train.txt").read_text(encoding="utf-8")
    kinds = {f"text --streaming {streaming}": (
        dict(data=str(shakespeare / "train.txt"), valid=valid, streaming=streaming), None)
        for streaming in ("off", "on")}
    rows = [(line,) for line in text.splitlines() if line.strip()]  # a table drops blanks
    for suffix in (".tsv", ".csv", ".jsonl"):
        kinds[suffix[1:]] = (dict(data=write_table(folder / f"shakespeare{suffix}", ["text"],
                                                   rows), valid=valid), None)
    kinds["tfds"] = (dict(data="tfds:tiny_shakespeare", valid=valid),  # one text, as TFDS'
                     {"train": lambda: tf.data.Dataset.from_tensor_slices({"text": [text]})})
    return kinds


def translation_kinds(folder: Path) -> dict:
    import tensorflow as tf

    multi30k = SHARED / "translate" / "multi30k"
    de, en = lines(multi30k / "train.de"), lines(multi30k / "train.en")
    val_de, val_en = lines(multi30k / "val.de")[:500], lines(multi30k / "val.en")[:500]
    for lang, side in (("de", val_de), ("en", val_en), ("pt", val_de)):
        (folder / f"val.{lang}").write_text("".join(s + "\n" for s in side), encoding="utf-8")
    langs = dict(source_lang="de", target_lang="en", valid=str(folder / "val"))
    kinds = {f"PREFIX.de/.en --streaming {streaming}": (
        dict(data=str(multi30k / "train"), streaming=streaming, **langs), None)
        for streaming in ("off", "on")}
    for suffix in (".tsv", ".csv", ".jsonl"):
        data = write_table(folder / f"multi30k{suffix}", ["de", "en"], zip(de, en))
        for streaming in ("off", "on"):
            kinds[f"{suffix[1:]} --streaming {streaming}"] = (
                dict(data=data, streaming=streaming, **langs), None)
    splits = {"train": lambda: tf.data.Dataset.from_tensor_slices({"pt": de, "en": en})}
    for streaming in ("off", "on"):  # ted_hrlr_translate's pt side carries the German
        kinds[f"tfds --streaming {streaming}"] = (
            dict(data="tfds:ted_hrlr_translate/pt_to_en", streaming=streaming,
                 **{**langs, "source_lang": "pt"}), splits)
    return kinds


def speech_kinds(folder: Path) -> dict:
    import numpy as np
    import soundfile
    import tensorflow as tf

    fsdd = SHARED / "speech" / "fsdd"
    rows = list(csv.DictReader((fsdd / "train.csv").open(encoding="utf-8")))
    manifest = folder / "train.jsonl"
    manifest.write_text("".join(json.dumps({
        "audio_filepath": str(fsdd / row["wav_filename"]), "text": row["transcript"]}) + "\n"
        for row in rows), encoding="utf-8")
    valid = str(fsdd / "test.csv")

    def recordings():  # FSDD's own form in TFDS: int samples, a digit label, the file name
        for row in rows:
            samples, _ = soundfile.read(fsdd / row["wav_filename"], dtype="int16")
            yield {"audio": samples.astype(np.int64),
                   "label": DIGITS.index(row["transcript"]),
                   "audio/filename": Path(row["wav_filename"]).name}

    splits = {"train": lambda: tf.data.Dataset.from_generator(recordings, output_signature={
        "audio": tf.TensorSpec([None], tf.int64), "label": tf.TensorSpec([], tf.int64),
        "audio/filename": tf.TensorSpec([], tf.string)})}
    return {"manifest csv": (dict(data=str(fsdd / "train.csv"), valid=valid), None),
            "manifest jsonl": (dict(data=str(manifest), valid=valid), None),
            "tfds": (dict(data="tfds:spoken_digit", valid=valid), splits)}


KINDS = {"sentiment": sentiment_kinds, "lm": lm_kinds, "translation": translation_kinds,
         "speech": speech_kinds}


def task_of(name: str):
    from apps.lm.task import TASK as LM
    from apps.sentiment.task import TASK as SENTIMENT
    from apps.speech.task import TASK as SPEECH
    from apps.translation.task import TASK as TRANSLATION

    return {"sentiment": SENTIMENT, "lm": LM, "translation": TRANSLATION,
            "speech": SPEECH}[name]


def train_once(name: str, changes: dict, splits, folder: Path) -> dict:
    from apps import runner

    task = task_of(name)
    settings = task.settings_class(**changes)
    start = time.perf_counter()
    with mocked(splits) if splits else contextlib.nullcontext():
        run, report = runner.train(task, settings, folder, verbose=0)
    # The LM's figure is its validation loss over the training batch's parallel streams
    # (chars, so nats/token = nats/char): a 300-step model read as ONE stream can fall
    # into a runaway state on an all-capitals speaker line and stay there (measured:
    # 6.4 nats/char from valid.txt's first line, 2.5 from its tenth character on), which
    # would compare the kinds by that accident.
    metric = report["best_value"] / math.log(2) if name == "lm" else report[METRIC[name]]
    with (Path(run) / "history.csv").open() as handle:  # short runs decode little that
        best = [row for row in csv.DictReader(handle)    # differs: the loss tells more
                if int(row["epoch"]) == report["best_epoch"]][0]
    return {"metric": metric, "val_loss": round(float(best["val_loss"]), 4),
            "train_seconds": report["train_seconds"],
            "wall": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=list(KINDS), default=list(KINDS))
    parser.add_argument("--kinds", nargs="+", help="only kinds whose name starts so")
    parser.add_argument("--seed2", type=int, default=2, help="the first kind's second seed")
    parser.add_argument("--config", type=Path, default=CONFIG, help="settings per task")
    options = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    config = yaml.safe_load(options.config.read_text())
    print(f"machine: {machine()}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="source_kinds-") as tmp, LoadMonitor() as monitor:
        for name in options.tasks:
            folder = Path(tmp) / name
            folder.mkdir()
            kinds = KINDS[name](folder)
            chosen = [k for k in kinds if not options.kinds or
                      any(k.startswith(prefix) for prefix in options.kinds)]
            first = next(iter(kinds))
            runs = [(kind, config[name]["seed"]) for kind in chosen]
            if first in chosen:
                runs.insert(1, (first, options.seed2))
            for number, (kind, seed) in enumerate(runs):
                changes, splits = kinds[kind]
                got = train_once(name, {**config[name], **changes, "seed": seed}, splits,
                                 folder / f"run-{number}")
                row = {"task": name, "kind": kind, "seed": seed, METRIC[name]: got["metric"],
                       **got, "load": round(os.getloadavg()[0], 1)}
                del row["metric"]
                results.append(row)
                print(json.dumps(row), flush=True)
    print("\n| task | source kind | seed | metric | validation loss | train s | wall s |\n"
          "| --- | --- | --- | --- | --- | --- | --- |")
    for row in results:
        print(f"| {row['task']} | {row['kind']} | {row['seed']} | {METRIC[row['task']]} "
              f"{row[METRIC[row['task']]]:.4g} | {row['val_loss']:.4f} | "
              f"{row['train_seconds']:.0f} | {row['wall']:.0f} |")
    print(f"\nmachine: {machine()}; load during the runs: {monitor.summary()}")


if __name__ == "__main__":
    main()
