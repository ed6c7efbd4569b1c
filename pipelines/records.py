"""Records read from files on every pass, never held: the streaming side of the sources.

A `RecordReader` reads a source (a pair of line-aligned files, a TSV / CSV / JSONL
table) one record at a time, each record a tuple of strings with the line number it
came from. A pass opens the files again, so a corpus of any size costs the memory of
one record plus the shuffle buffer. Bad records are skipped and counted, the first
one named by file and line (`SkippedRecords`); a file that goes missing or changes
length while training is one sentence naming it (`SourceChanged`).

`scan` reads the training source once before training: it counts the records, keeps
a reservoir sample for the tokenizer (`--tokenizer-sample`), a smaller one of whole
records (length statistics for the buckets), the label counts, and the records held
out for validation (a seeded, bounded choice, so validation does not grow with the
corpus). Training passes then read the shard of this worker, skip the held-out
records, and shuffle through a bounded buffer whose seed is a pure function of the
run's seed and the epoch (`DataOrder`).
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import logging
import math
import os
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from apps.errors import DataError

log = logging.getLogger(__name__)

HELD_OUT_LIMIT = 3000  # validation records taken from the training data, at most
PAIR_SAMPLE = 20_000  # whole records kept for length statistics


class SourceChanged(DataError):
    """A file that was read before training vanished or changed while training read it."""


@dataclass(frozen=True)
class Shard:
    """Records `index`, `index + count`, ... of a source: one worker's share."""

    index: int = 0
    count: int = 1

    @classmethod
    def of_this_worker(cls) -> Shard:
        """This worker's share under TF_CONFIG (chief and workers, in that order)."""
        config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
        cluster, task = config.get("cluster", {}), config.get("task", {})
        order = [("chief", i) for i in range(len(cluster.get("chief", [])))] + \
                [("worker", i) for i in range(len(cluster.get("worker", [])))]
        if not order:
            return cls()
        mine = (task.get("type", "worker"), int(task.get("index", 0)))
        return cls(order.index(mine) if mine in order else 0, len(order))

    def describe(self) -> str:
        if self.count == 1:
            return "every record"
        return (f"records {self.index + 1}, {self.index + 1 + self.count}, ... (shard "
                f"{self.index + 1} of {self.count})")


@dataclass
class SkippedRecords:
    """Records a pass skipped, how many, and the first of them by file and line."""

    source: str
    count: int = 0
    first: str = ""

    def add(self, where: str, why: str) -> None:
        self.count += 1
        if not self.first:
            self.first = f"{where} {why}"

    def report(self) -> None:
        if self.count:
            log.warning("Skipped %d record(s) of %s that could not be read (the first: %s).",
                        self.count, self.source, self.first)


# ---------------------------------------------------------------------------- readers


class RecordReader:
    """A source as records: `records(skipped)` yields (line number, values) per pass."""

    name: str
    width: int

    def records(self, skipped: SkippedRecords) -> Iterator[tuple[int, tuple[str, ...]]]:
        raise NotImplementedError


def _open(path: Path, what: str):
    try:
        return open(path, "rb")
    except OSError as error:
        raise SourceChanged(f"Cannot read '{path}' {what} ({error.strerror}): the data "
                            "must stay in place while training reads it.") from None


def _lines(path: Path, what: str) -> Iterator[tuple[int, bytes]]:
    with _open(path, what) as handle:
        try:
            yield from enumerate(handle, start=1)
        except OSError as error:
            raise SourceChanged(f"Reading '{path}' failed {what} ({error.strerror}).") \
                from None


@dataclass
class LinePairsReader(RecordReader):
    """Line N of each file makes record N (PREFIX.de / PREFIX.en)."""

    paths: tuple[Path, ...]
    lines: int | None = None  # known after the first pass: a change is an error
    name: str = ""

    def __post_init__(self):
        self.width = len(self.paths)
        self.name = self.name or " / ".join(map(str, self.paths))

    def records(self, skipped):
        # zip_longest in C, not a Python loop per line: a pass over 3M pairs takes seconds
        with contextlib.ExitStack() as files:
            handles = [files.enter_context(_open(path, "while training"))
                       for path in self.paths]
            number = 0
            try:
                for number, raws in enumerate(itertools.zip_longest(*handles), start=1):
                    if None in raws:
                        counts = self._count_lines()
                        raise SourceChanged(
                            f"'{self.paths[0]}' has {counts[0]} lines but '{self.paths[1]}' "
                            f"has {counts[1]}: line N of one must translate line N of the "
                            "other.")
                    try:
                        values = tuple([raw.decode("utf-8").rstrip("\r\n") for raw in raws])
                    except UnicodeDecodeError:
                        skipped.add(f"line {number} of {self.name}", "is not UTF-8")
                        continue
                    yield number, values
            except OSError as error:
                raise SourceChanged(f"Reading '{self.name}' failed while training "
                                    f"({error.strerror}).") from None
        if self.lines is not None and number != self.lines:
            raise SourceChanged(f"'{self.paths[0]}' had {self.lines} lines before training and "
                                f"{number} now: the data changed while training read it.")
        self.lines = number

    def _count_lines(self) -> list[int]:
        counts = []
        for path in self.paths:
            with _open(path, "while training") as handle:
                counts.append(sum(1 for _ in handle))
        return counts


@dataclass
class TableReader(RecordReader):
    """Chosen columns of a TSV or CSV file (after its header, if it has one)."""

    path: Path
    delimiter: str
    positions: tuple[int, ...]
    header: bool
    name: str = ""

    def __post_init__(self):
        self.width, self.name = len(self.positions), self.name or str(self.path)

    def records(self, skipped):
        quoting = csv.QUOTE_NONE if self.delimiter == "\t" else csv.QUOTE_MINIMAL
        numbers = {"line": 0}

        def decoded():
            for number, raw in _lines(self.path, "while training"):
                numbers["line"] = number
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError:
                    skipped.add(f"line {number} of {self.path}", "is not UTF-8")
        rows = csv.reader(decoded(), delimiter=self.delimiter, quoting=quoting)
        first = True
        for row in rows:
            if not any(cell.strip() for cell in row):
                continue
            if first and self.header:
                first = False
                continue
            first = False
            if len(row) <= max(self.positions):
                skipped.add(f"line {numbers['line']} of {self.path}",
                            f"has {len(row)} column(s), not {max(self.positions) + 1}")
                continue
            yield numbers["line"], tuple(row[p] for p in self.positions)


@dataclass
class JsonlReader(RecordReader):
    """Chosen keys of a JSON Lines file."""

    path: Path
    keys: tuple[str, ...]
    name: str = ""

    def __post_init__(self):
        self.width, self.name = len(self.keys), self.name or str(self.path)

    def records(self, skipped):
        for number, raw in _lines(self.path, "while training"):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError):
                skipped.add(f"line {number} of {self.path}", "is not valid JSON")
                continue
            if not isinstance(row, dict) or any(row.get(key) is None for key in self.keys):
                skipped.add(f"line {number} of {self.path}",
                            f"is not an object with {', '.join(self.keys)}")
                continue
            yield number, tuple(str(row[key]) for key in self.keys)


@dataclass
class DatasetReader(RecordReader):
    """Chosen features of a `tf.data` pipeline that reads its own files (a TFDS split,
    whose `as_dataset` is one): `make()` builds it again for every pass, which is read
    a chunk of records at a time; `convert` turns each feature's value into a string."""

    make: Callable[[], object]
    keys: tuple[str, ...]
    convert: tuple[Callable[[object], str], ...]
    name: str = ""

    def __post_init__(self):
        self.width = len(self.keys)

    def records(self, skipped):
        number = 0
        for chunk in self.make().batch(512).as_numpy_iterator():
            for values in zip(*(chunk[key] for key in self.keys)):
                number += 1
                yield number, tuple(f(value) for f, value in zip(self.convert, values))


# ------------------------------------------------------------------------------- scan


def held_out(index: int, seed: int, fraction: float) -> bool:
    """Whether record `index` is a validation candidate: a seeded hash, so the choice
    needs no list of the corpus and is the same on every pass and every worker."""
    mixed = (index * 2654435761 + (seed + 1) * 40503) & 0xFFFFFFFF
    mixed = ((mixed ^ (mixed >> 16)) * 0x45D9F3B) & 0xFFFFFFFF
    return (mixed ^ (mixed >> 16)) / 2**32 < fraction


@dataclass
class Scan:
    """What one pass over the training source learnt (see the module)."""

    records: int = 0
    text_samples: list[list[str]] = field(default_factory=list)  # one per text side
    record_sample: list[tuple[str, ...]] = field(default_factory=list)
    labels: Counter = field(default_factory=Counter)
    held_out: dict[int, tuple[str, ...]] = field(default_factory=dict)

    @property
    def text_sample(self) -> list[str]:
        """Every text side's sample together (what a joint tokenizer learns from)."""
        return [text for sample in self.text_samples for text in sample]

    @property
    def training_records(self) -> int:
        return self.records - len(self.held_out)


def scan(reader: RecordReader, seed: int, sample_size: int, text_sides: tuple[int, ...],
         label_side: int | None = None, hold_out_fraction: float | None = None,
         keep: Callable[[tuple[str, ...]], bool] = lambda values: True) -> Scan:
    """One pass: count, reservoir-sample records (their texts and lengths), count labels,
    hold out.

    `text_sides` are the positions whose texts feed the tokenizer sample, `sample_size`
    texts in all (a seeded `Reservoir` of records: the sample is the same on every
    worker). `keep` drops records the task never trains on (an empty side), counted as
    skipped.
    """
    found, skipped = Scan(), SkippedRecords(reader.name)
    per_side = max(1, sample_size // max(1, len(text_sides)))
    sample = Reservoir(max(per_side, PAIR_SAMPLE), random.Random(seed))
    hold = hold_out_fraction or 0.0
    index = seen = 0
    for number, values in reader.records(skipped):
        if not keep(values):
            skipped.add(f"line {number} of {reader.name}", "has an empty field")
            continue
        index = found.records
        found.records += 1
        if hold and held_out(index, seed, hold):
            found.held_out[index] = values
            if len(found.held_out) == HELD_OUT_LIMIT:
                hold = 0.0
            continue
        if seen >= sample.next:  # the reservoir's next taker: one comparison a record
            sample.take((seen, values), seen)
        seen += 1
        if label_side is not None:
            found.labels[values[label_side].strip()] += 1
    skipped.report()
    if not found.records:
        raise DataError(f"'{reader.name}' holds no record to train on.")
    chosen = sample.shuffled()
    # the texts in the order they were read: a sample of the whole set then teaches the
    # tokenizer what the in-memory path teaches it (SentencePiece breaks ties by order)
    in_order = sorted(chosen[:per_side], key=lambda item: item[0])
    found.text_samples = [[values[side] for _, values in in_order] for side in text_sides]
    found.record_sample = [values for _, values in chosen[:PAIR_SAMPLE]]
    return found


class Reservoir:
    """A uniform, seeded sample of `size` items of a stream of unknown length (Li's
    Algorithm L: after the first `size` items, random draws only for the items it takes,
    so the caller compares an item's position with `next` and calls `take` only then)."""

    def __init__(self, size: int, draw: random.Random):
        self.size, self.draw, self.items = size, draw, []
        self.next, self._weight = 0, 1.0

    def take(self, item, position: int) -> None:
        """Take item number `position` (which is `next`)."""
        if len(self.items) < self.size:
            self.items.append(item)
            self.next = position + 1
            if len(self.items) == self.size:
                self._weight = math.exp(math.log(self._uniform()) / self.size)
                self._skip(position)
            return
        self.items[self.draw.randrange(self.size)] = item
        self._weight *= math.exp(math.log(self._uniform()) / self.size)
        self._skip(position)

    def _skip(self, position: int) -> None:
        if self._weight >= 1.0:
            self.next = position + 1
            return
        self.next = position + 1 + int(math.log(self._uniform()) / math.log1p(-self._weight))

    def _uniform(self) -> float:
        while not (value := self.draw.random()):
            pass
        return value

    def shuffled(self) -> list:
        """The sample in a seeded random order, so any prefix of it is a uniform sample."""
        items = list(self.items)
        self.draw.shuffle(items)
        return items


# ---------------------------------------------------------------------------- passes


class DataOrder:
    """The order of the training records: epoch e reads the records in an order that is
    a pure function of (seed, e). `epoch` counts the passes started, from `first_pass`
    (the pass a dataset is made for: `apps.training` makes one per pass)."""

    def __init__(self, seed: int, first_pass: int = 0):
        self.seed, self.epoch = seed, first_pass

    def next_pass(self) -> random.Random:
        draw = random.Random(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1
        return draw


def training_records(reader: RecordReader, order: DataOrder, shard: Shard,
                     held: dict[int, tuple[str, ...]], buffer: int,
                     keep: Callable[[tuple[str, ...]], bool] = lambda values: True,
                     cycle: bool = True) -> Iterator[tuple[str, ...]]:
    """This worker's training records, shuffled through a buffer of `buffer` records;
    with `cycle`, the next pass follows (the epoch's length is cut by the caller)."""
    while True:
        draw, skipped = order.next_pass(), SkippedRecords(reader.name)
        pool: list[tuple[str, ...]] = []
        index = -1
        for _number, values in reader.records(skipped):
            if not keep(values):
                continue
            index += 1
            if index in held or index % shard.count != shard.index:
                continue
            if len(pool) < buffer:
                pool.append(values)
                continue
            slot = draw.randrange(buffer)
            pool[slot], values = values, pool[slot]
            yield values
        draw.shuffle(pool)
        yield from pool
        skipped.report()
        if not cycle:
            return


@dataclass
class Streamed:
    """Training examples that stay in their files: the reader and what `scan` learnt.
    Tasks receive it where they would receive lists (`Task.read_training_data`)."""

    reader: RecordReader
    scan: Scan
    shard: Shard = field(default_factory=Shard)

    def workers(self, batch_size: int) -> int:
        """How many workers share the global batch, each with its own shard; a batch
        they cannot share evenly is one sentence."""
        if batch_size % self.shard.count:
            raise DataError(f"--batch-size {batch_size} must be a multiple of the "
                            f"{self.shard.count} workers: each reads its own shard.")
        return self.shard.count

    def held_out_columns(self, sides: tuple[str, ...]) -> dict[str, list[str]]:
        """The held-out validation records by side, in file order."""
        rows = [self.scan.held_out[i] for i in sorted(self.scan.held_out)]
        return {side: [row[k] for row in rows] for k, side in enumerate(sides)}

    def training_records(self, order: DataOrder, buffer: int,
                         keep: Callable[[tuple[str, ...]], bool] = lambda values: True):
        """A generator function for `tf.data.Dataset.from_generator` (a new pass per call)."""
        return lambda: training_records(self.reader, order, self.shard, self.scan.held_out,
                                        buffer, keep)


def streamed_splits(reader: RecordReader, settings, sides: tuple[str, ...],
                    read_valid: Callable[[], dict], text_sides: tuple[int, ...],
                    label_side: int | None = None,
                    keep: Callable[[tuple[str, ...]], bool] = lambda values: True
                    ) -> tuple[Streamed, dict]:
    """(training, validation) for `Task.read_training_data` when streaming: the training
    records stay in their files (one `scan` first); validation is --valid read into
    memory, or a seeded hold-out of at most HELD_OUT_LIMIT records."""
    valid = read_valid() if settings.valid else None
    found = scan(reader, settings.seed, settings.tokenizer_sample, text_sides, label_side,
                 hold_out_fraction=None if valid else settings.valid_fraction, keep=keep)
    shard = Shard.of_this_worker() if settings.strategy == "multi-worker" else Shard()
    train = Streamed(reader, found, shard)
    if valid is None:
        valid = train.held_out_columns(sides)
        if not valid[sides[0]]:
            raise DataError(f"'{reader.name}' has too few records to hold some out for "
                            "validation: add data or pass --valid.")
        log.info("Held out %d of the %d records of %s for validation (at most %d).",
                 len(valid[sides[0]]), found.records, reader.name, HELD_OUT_LIMIT)
    log.info("Streaming %s (%d training records); this worker reads %s.", reader.name,
             found.training_records, shard.describe())
    return train, valid
