"""A small IMDB split for comparing `--long-text` policies on validation only.

Shuffles `sentiment/imdb/train.tsv` with a fixed seed and writes the first 4,000
reviews as train.tsv and the next 1,000 as valid.tsv under OUT (test.tsv is not
read): the first measurement of issue 20's long-review policy, docs/benchmarks.md.

    python bench/imdb_long_text_split.py ../shared/data/sentiment/imdb/train.tsv OUT
"""

from __future__ import annotations

import csv
import random
import sys
from pathlib import Path


def write(path: Path, rows) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["text", "label"])
        for row in rows:
            writer.writerow([row["text"].replace("\t", " ").replace("\n", " "), row["label"]])


def main(source: str, out: str, train: int = 4000, valid: int = 1000, seed: int = 0) -> None:
    csv.field_size_limit(10**8)
    with open(source, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    random.Random(seed).shuffle(rows)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    write(folder / "train.tsv", rows[:train])
    write(folder / "valid.tsv", rows[train : train + valid])


if __name__ == "__main__":
    main(*sys.argv[1:3])
