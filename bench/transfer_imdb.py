"""IMDB and MR from a language model pretrained on IMDB's unlabelled reviews (issue 20).

ULMFiT's three steps, each one `apps` command with its settings in bench/configs/:

1. `apps lm train --config bench/configs/imdb_lm.yaml --data lm/imdb/unsup.txt`
2. `apps lm train --init-from STEP1 --data sentiment/imdb/train.tsv --text-column text`
   (the LM fine-tuned on the task's own text; the same config, a shorter budget)
3. `apps sentiment train --config bench/configs/imdb_sentiment.yaml --init-from STEP2`
   on train.tsv with validation carved from it (--valid-fraction), then `evaluate` on
   test.tsv once; and with --mr, MR from STEP1 (`bench/configs/mr_transfer.yaml`).

`--scratch` also trains the same classifier from scratch (the LM's sizes and tokenizer
kind, no --init-from, one learning rate for every layer, the same budget): the gain
from pretraining is the difference. `--scratch-only` runs only that.

`--smoke` runs every step on a few thousand lines with one-minute budgets: it checks
the pipeline, and its figures mean nothing. Writes one JSON line per step.

    PYTHONPATH=. python bench/transfer_imdb.py [--mr] [--smoke] [--workdir runs/transfer]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml
from common import ROOT, SHARED, apps, machine

CONFIGS = ROOT / "bench" / "configs"
IMDB, UNSUP, MR = SHARED / "sentiment" / "imdb", SHARED / "lm" / "imdb", SHARED / "sentiment" / "mr"


def head(source: Path, lines: int, target: Path) -> Path:
    """The first `lines` lines of `source` (a table keeps its header)."""
    with source.open(encoding="utf-8") as read, target.open("w", encoding="utf-8") as write:
        for number, line in enumerate(read):
            if number > lines:
                break
            write.write(line)
    return target


def timed(step: str, *args) -> dict:
    start = time.perf_counter()
    apps(*args)
    row = {"step": step, "wall_seconds": round(time.perf_counter() - start, 1)}
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def classifier(output: Path, train: Path, test: Path, *extra) -> dict:
    """Step 3: the IMDB classifier (validation carved from train), scored on test once."""
    row = timed(output.name, "sentiment", "train", "--config",
                CONFIGS / "imdb_sentiment.yaml", "--data", train, "--valid-fraction", "0.1",
                "--output", output, "--quiet", *extra)
    row["test"] = json.loads(apps("sentiment", "evaluate", output, "--data", test,
                                  "--json").stdout)["accuracy"]
    return row


def scratch_sizes(smoke: bool) -> list[str]:
    """The pretrained classifier's sizes and tokenizer kind (imdb_lm.yaml's), no transfer."""
    lm = yaml.safe_load((CONFIGS / "imdb_lm.yaml").read_text())
    sizes = {key: lm[key] for key in ("tokenizer", "vocab_size", "cell", "layers", "units",
                                      "embedding_dim")}
    if smoke:
        sizes.update(vocab_size=2000, units=64, embedding_dim=32)
    flags = [item for key, value in sizes.items()
             for item in (f"--{key.replace('_', '-')}", value)]
    return [*flags, "--freeze-epochs", "0", "--lr-layer-decay", "1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "transfer")
    parser.add_argument("--mr", action="store_true", help="Also MR from the IMDB LM.")
    parser.add_argument("--smoke", action="store_true", help="Tiny slices, short budgets.")
    parser.add_argument("--scratch", action="store_true",
                        help="Also the IMDB classifier from scratch, same settings and budget.")
    parser.add_argument("--scratch-only", action="store_true",
                        help="Only the IMDB classifier from scratch.")
    args = parser.parse_args()
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    print(machine(), file=sys.stderr)
    unsup, train, test = UNSUP / "unsup.txt", IMDB / "train.tsv", IMDB / "test.tsv"
    mr = {split: MR / f"{split}.tsv" for split in ("train", "dev", "test")}
    short = []
    if args.smoke:
        unsup = head(unsup, 3000, work / "unsup.txt")
        train, test = head(train, 1000, work / "train.tsv"), head(test, 500, work / "test.tsv")
        mr = {split: head(path, 600, work / f"mr-{split}.tsv") for split, path in mr.items()}
        short = ["--time-budget", "60s", "--epochs", "1", "--vocab-size", "2000",
                 "--units", "64", "--embedding-dim", "32"]
    smoke_classifier = ["--time-budget", "60s", "--epochs", "2"] if args.smoke else []
    rows = []
    if args.scratch or args.scratch_only:
        rows.append(classifier(work / "imdb-scratch", train, test, *scratch_sizes(args.smoke),
                               *smoke_classifier))
    if args.scratch_only:
        print(json.dumps({"bench": "transfer_imdb", "smoke": args.smoke, "machine": machine(),
                          "steps": rows}))
        return
    rows += [timed("pretrain", "lm", "train", "--config", CONFIGS / "imdb_lm.yaml", "--data",
                   unsup, "--output", work / "lm", "--quiet", *short)]
    tune = ["--time-budget", "60s", "--epochs", "1"] if args.smoke else \
        ["--time-budget", "10m", "--steps-per-epoch", "500", "--epochs", "2"]
    rows.append(timed("lm-fine-tune", "lm", "train", "--init-from", work / "lm", "--data",
                      train, "--text-column", "text", "--output", work / "lm-tuned",
                      "--quiet", *tune))
    rows.append(classifier(work / "imdb", train, test, "--init-from", work / "lm-tuned",
                           *smoke_classifier))
    if args.mr:
        rows.append(timed("mr", "sentiment", "train", "--config", CONFIGS / "mr_transfer.yaml",
                          "--init-from", work / "lm", "--data", mr["train"], "--valid",
                          mr["dev"], "--output", work / "mr", "--quiet", *smoke_classifier))
        rows[-1]["test"] = json.loads(apps("sentiment", "evaluate", work / "mr", "--data",
                                           mr["test"], "--json").stdout)["accuracy"]
    print(json.dumps({"bench": "transfer_imdb", "smoke": args.smoke, "machine": machine(),
                      "steps": rows}))


if __name__ == "__main__":
    main()
