"""Readers: turn a data source named on the command line into raw Python examples.

A source is either a local file (TSV, CSV, JSONL or plain text) or a TensorFlow
Datasets name written `tfds:NAME[/CONFIG][:SPLIT]`. Readers only read: they never
tokenise, and they fail early with one sentence that names the file and the fix.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from apps.errors import DataError

log = logging.getLogger(__name__)

TFDS_PREFIX = "tfds:"
TEXT_COLUMN_GUESSES = ("text", "sentence", "review", "content", "document")
LABEL_COLUMN_GUESSES = ("label", "labels", "sentiment", "class", "polarity", "target")
STREAM_ABOVE_BYTES = 64 << 20  # --streaming auto: larger training files are streamed
csv.field_size_limit(1 << 28)


@dataclass(frozen=True)
class TfdsSpec:
    """A parsed `tfds:NAME[/CONFIG][:SPLIT]`."""

    name: str
    split: str | None

    @classmethod
    def parse(cls, spec: str) -> TfdsSpec:
        body = spec[len(TFDS_PREFIX) :]
        name, _, split = body.partition(":")
        if not name:
            raise DataError(f"'{spec}' names no data set: write tfds:NAME[/CONFIG][:SPLIT].")
        return cls(name=name, split=split or None)


def is_tfds(spec: str) -> bool:
    return str(spec).startswith(TFDS_PREFIX)


@dataclass
class LabeledTexts:
    """Parallel lists of texts and their label names, as read."""

    texts: list[str]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.texts)


# --------------------------------------------------------------------------- files


def check_file(path: Path) -> Path:
    """`path` if it is a readable, non-empty text file; else one sentence saying why."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"Data file '{path}' does not exist: check the path.")
    if path.is_dir():
        raise DataError(f"'{path}' is a directory: name a TSV, CSV, JSONL or text file.")
    if path.stat().st_size == 0:
        raise DataError(f"Data file '{path}' is empty.")
    with open(path, "rb") as handle:
        head = handle.read(8192)
    if b"\x00" in head:
        raise DataError(
            f"'{path}' looks like a binary file (it holds NUL bytes): "
            "give a UTF-8 TSV, CSV, JSONL or text file."
        )
    return path


def read_lines(path: Path) -> Iterator[str]:
    """Lines of a UTF-8 file without their newline; undecodable lines are skipped, counted."""
    path = check_file(path)
    skipped = 0
    with open(path, "rb") as handle:
        for raw in handle:
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                skipped += 1
                continue
            yield line.rstrip("\r\n")
    if skipped:
        log.warning("Skipped %d line(s) of %s that are not valid UTF-8.", skipped, path)


def read_text(path: Path) -> str:
    """A whole UTF-8 text file, exactly as written (for language modelling)."""
    path = check_file(path)
    raw = path.read_bytes()
    text = raw.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - raw.decode("utf-8", errors="ignore").count("\ufffd")
    if bad:
        log.warning("Replaced %d byte sequence(s) of %s that are not valid UTF-8.", bad, path)
    return text


def _pick_column(columns: list[str], wanted: str | None, guesses: tuple, what: str, path) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise DataError(
                f"'{path}' has no column '{wanted}' (it has: {', '.join(columns)}): "
                f"pass --{what}-column with one of those."
            )
        return wanted
    lowered = {c.lower(): c for c in columns}
    for guess in guesses:
        if guess in lowered:
            return lowered[guess]
    raise DataError(
        f"Cannot tell which column of '{path}' holds the {what} (columns: "
        f"{', '.join(columns) or 'none'}): pass --{what}-column."
    )


def _read_table(path: Path, delimiter: str) -> tuple[list[str], Iterator[dict]]:
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    lines = read_lines(path)
    reader = csv.DictReader(lines, delimiter=delimiter, quoting=quoting)
    columns = [c for c in (reader.fieldnames or []) if c is not None]
    return columns, reader


def json_objects(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a JSON Lines file; a line that
    is not a JSON object is a one-sentence DataError naming it."""
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"'{path}' line {number} is not valid JSON ({error.msg}).") from None
        if not isinstance(row, dict):
            raise DataError(f"'{path}' line {number} is not a JSON object.")
        yield number, row


def read_jsonl(path: Path) -> tuple[list[str], Iterator[dict]]:
    """(the first object's keys, every object) of a JSON Lines file."""
    rows = [row for _, row in json_objects(path)]
    columns = list(rows[0]) if rows else []
    return columns, iter(rows)


def read_labeled_file(
    path: Path, text_column: str | None = None, label_column: str | None = None
) -> LabeledTexts:
    """Texts and labels from a TSV, CSV or JSONL file with named columns."""
    path = check_file(Path(path))
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        columns, rows = read_jsonl(path)
    elif suffix == ".csv":
        columns, rows = _read_table(path, ",")
    else:
        columns, rows = _read_table(path, "\t")
    text_key = _pick_column(columns, text_column, TEXT_COLUMN_GUESSES, "text", path)
    label_key = _pick_column(columns, label_column, LABEL_COLUMN_GUESSES, "label", path)
    texts, labels, bad_rows = [], [], 0
    for row in rows:
        text, label = row.get(text_key), row.get(label_key)
        if text is None or label is None or str(text).strip() == "" or str(label).strip() == "":
            bad_rows += 1
            continue
        texts.append(str(text))
        labels.append(str(label).strip())
    if bad_rows:
        log.warning("Skipped %d row(s) of %s with an empty text or label.", bad_rows, path)
    if not texts:
        raise DataError(f"'{path}' holds no rows with both a text and a label.")
    return LabeledTexts(texts, labels)


def labeled_reader(source: str, text_column: str | None = None,
                   label_column: str | None = None):
    """The streaming reader of a labelled TSV / CSV / JSONL file: (text, label) records,
    the columns named or guessed from the header (or first object) alone."""
    from pipelines import records

    if is_tfds(source):
        return labeled_tfds_reader(source, text_column, label_column)
    path = check_file(Path(source))
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        columns = list(next((row for _, row in json_objects(path)), {}))
    else:
        columns, _ = _read_table(path, "," if suffix == ".csv" else "\t")
    keys = (_pick_column(columns, text_column, TEXT_COLUMN_GUESSES, "text", path),
            _pick_column(columns, label_column, LABEL_COLUMN_GUESSES, "label", path))
    if suffix in (".jsonl", ".json", ".ndjson"):
        return records.JsonlReader(path, keys)
    return records.TableReader(path, "," if suffix == ".csv" else "\t",
                               tuple(columns.index(k) for k in keys), header=True)


def file_bytes(source: str, *suffixes: str) -> int:
    """Size of a training source on disk (a file, or PREFIX.<suffix> files); 0 for
    `tfds:` names and files that are not there (their readers say what is wrong)."""
    if is_tfds(source):
        return 0
    paths = [Path(source)] if Path(source).is_file() else \
        [Path(f"{source}.{suffix}") for suffix in suffixes if suffix]
    return sum(p.stat().st_size for p in paths if p.is_file())


def tfds_bytes(spec: str, default_split: str = "train") -> int:
    """Size of a `tfds:` split as its dataset info records it (the prepared files); 0
    where the info does not know it (a slice such as `train[:10%]`, a set not yet
    described)."""
    import tensorflow_datasets as tfds

    parsed = TfdsSpec.parse(spec)
    try:  # the builder's info only: no split is read here (reading says what is wrong)
        info = tfds.builder(parsed.name).info
        return int(getattr(info.splits[parsed.split or default_split], "num_bytes", 0) or 0)
    except Exception:  # noqa: BLE001 - an unknown name or split: the read names it
        return 0


def should_stream(settings, *suffixes: str, tfds_streams: bool = True) -> bool:
    """--streaming: on, off, or auto (sources over STREAM_ABOVE_BYTES: files by their
    size on disk, a `tfds:` split by the size its dataset info records, where the task
    streams `tfds:` sets at all (`tfds_streams`); under on, a task that does not is
    refused)."""
    if settings.streaming == "on" and is_tfds(settings.data) and not tfds_streams:
        raise DataError(f"'{settings.data}' is read through TensorFlow Datasets, not streamed "
                        "from files: leave --streaming at auto or off.")
    if settings.streaming == "auto":
        if is_tfds(settings.data):
            size = tfds_bytes(settings.data) if tfds_streams else 0
        else:
            size = file_bytes(settings.data, *suffixes)
        if size > STREAM_ABOVE_BYTES:
            log.info("Streaming %s (%d bytes, over --streaming auto's %d MiB).",
                     settings.data, size, STREAM_ABOVE_BYTES >> 20)
        return size > STREAM_ABOVE_BYTES
    return settings.streaming == "on"


# --------------------------------------------------------------------------- TFDS


class MissingSplit(DataError):
    """A TFDS set has no split of the name a source defaulted to (it named none)."""


def tfds_load(spec: TfdsSpec, default_split: str):
    """`tfds.load` with one clear error when the data set cannot be had."""
    import tensorflow_datasets as tfds

    split = spec.split or default_split
    try:
        dataset, info = tfds.load(spec.name, split=split, with_info=True, shuffle_files=False)
    except Exception as error:  # TFDS raises many kinds: registration, download, split
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        if spec.split is None and f"Unknown split {split!r}" in first_line:
            raise MissingSplit(f"TensorFlow Datasets '{spec.name}' has no '{split}' split.") \
                from None
        raise DataError(
            f"Could not load TensorFlow Datasets '{spec.name}' split '{split}' "
            f"({type(error).__name__}: {first_line[:200]}): check the name and your "
            "internet connection, or pass a local file with --data."
        ) from None
    return dataset, info


def feature_key(features, wanted: str | None, kind: str, spec: TfdsSpec) -> str:
    """The TFDS feature named `wanted`, or the one feature of `kind`; else one sentence."""
    import tensorflow_datasets as tfds

    keys = list(features.keys())
    if wanted is not None:
        if wanted not in keys:
            raise DataError(
                f"TensorFlow Datasets '{spec.name}' has no feature '{wanted}' "
                f"(it has: {', '.join(keys)})."
            )
        return wanted
    wanted_type = tfds.features.Text if kind == "text" else tfds.features.ClassLabel
    matches = [key for key in keys if isinstance(features[key], wanted_type)]
    if not matches:
        raise DataError(
            f"TensorFlow Datasets '{spec.name}' has no {kind} feature I can use "
            f"(features: {', '.join(keys)}): pass --{kind}-column."
        )
    return matches[0]


def labeled_tfds_reader(spec: str, text_column: str | None = None,
                        label_column: str | None = None, split: str = "train"):
    """The streaming reader of a TFDS text-classification split: (text, label name)
    records from TFDS's own `tf.data` pipeline, loaded again for every pass."""
    from pipelines import records

    parsed = TfdsSpec.parse(spec)
    _, info = tfds_load(parsed, split)
    keys = (feature_key(info.features, text_column, "text", parsed),
            feature_key(info.features, label_column, "label", parsed))
    label_feature = info.features[keys[1]]
    return records.DatasetReader(
        lambda: tfds_load(parsed, split)[0], keys,
        (lambda value: value.decode("utf-8", errors="replace"),
         lambda value: label_feature.int2str(int(value))), name=spec)


def read_labeled_tfds(
    spec: str, text_column: str | None = None, label_column: str | None = None,
    default_split: str = "train",
) -> LabeledTexts:
    """Texts and label names from a TFDS text-classification data set."""
    parsed = TfdsSpec.parse(spec)
    dataset, info = tfds_load(parsed, default_split)
    text_key = feature_key(info.features, text_column, "text", parsed)
    label_key = feature_key(info.features, label_column, "label", parsed)
    label_feature = info.features[label_key]
    texts, labels = [], []
    for example in dataset.as_numpy_iterator():
        texts.append(example[text_key].decode("utf-8", errors="replace"))
        labels.append(label_feature.int2str(int(example[label_key])))
    if not texts:
        raise DataError(f"TensorFlow Datasets '{spec}' gave no examples.")
    return LabeledTexts(texts, labels)


def read_text_tfds(spec: str, text_column: str | None = None, default_split: str = "train") -> str:
    """All texts of a TFDS split as one string, each ending with a newline as a line of
    a text file does (for language modelling: the same text as that file)."""
    parsed = TfdsSpec.parse(spec)
    dataset, info = tfds_load(parsed, default_split)
    key = feature_key(info.features, text_column, "text", parsed)
    texts = (ex[key].decode("utf-8", errors="replace") for ex in dataset.as_numpy_iterator())
    return "".join(text if text.endswith("\n") else text + "\n" for text in texts)


# --------------------------------------------------------------------------- dispatch


def read_labeled(
    source: str, text_column: str | None = None, label_column: str | None = None,
    default_split: str = "train",
) -> LabeledTexts:
    """Labelled texts from a file or `tfds:` name."""
    if is_tfds(source):
        return read_labeled_tfds(source, text_column, label_column, default_split)
    return read_labeled_file(Path(source), text_column, label_column)


TABLE_SUFFIXES = (".tsv", ".csv", ".jsonl", ".json", ".ndjson")


def is_table(source: str) -> bool:
    """A TSV / CSV / JSONL file (columns), not plain text."""
    return not is_tfds(source) and Path(source).suffix.lower() in TABLE_SUFFIXES


def read_text_column(path: Path, text_column: str | None = None) -> str:
    """One column of a TSV / CSV / JSONL file (named, or guessed as for classification),
    one row a line: a labelled set's own text for language-model fine-tuning."""
    path = check_file(Path(path))
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        columns, rows = read_jsonl(path)
    else:
        columns, rows = _read_table(path, "," if suffix == ".csv" else "\t")
    key = _pick_column(columns, text_column, TEXT_COLUMN_GUESSES, "text", path)
    texts = [" ".join(str(row.get(key) or "").split()) for row in rows]
    return "".join(text + "\n" for text in texts if text)


def read_corpus(source: str, text_column: str | None = None, default_split: str = "train") -> str:
    """One continuous text from a file (plain text, or a column of a table: one row a
    line) or `tfds:` name."""
    if is_tfds(source):
        return read_text_tfds(source, text_column, default_split)
    if is_table(source):
        return read_text_column(Path(source), text_column)
    return read_text(Path(source))
