"""Parallel text: sentence pairs read together, from files or a TFDS translation set.

Three forms, named on the command line as one source:

- a prefix (`multi30k/train` with `--source-lang de --target-lang en`): the files
  `PREFIX.de` and `PREFIX.en`, line N of one translating line N of the other (the
  layout of Multi30k, fairseq and OpenNMT corpora);
- a TSV, CSV or JSONL file of pairs, its columns named (`--source-column`, the
  language codes, or source/target, src/tgt) or, for a TSV or CSV without such a
  header, the first two columns. A header (or JSONL keys) of exactly two language
  codes (`de<TAB>en`) needs no flag: the first is the source, the second the target;
- `tfds:NAME[/CONFIG][:SPLIT]`, a TFDS translation set whose language features are
  named by the language codes (the set's supervised keys when none is given).

The two sides of a pair are never read apart: files of different line counts are an
error that names both files and their counts. Pairs with an empty side are dropped
and counted.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from apps.errors import DataError
from pipelines import records
from pipelines.sources import (
    TfdsSpec,
    check_file,
    feature_key,
    is_tfds,
    json_objects,
    read_jsonl,
    read_lines,
    tfds_load,
)

log = logging.getLogger(__name__)

SOURCE_GUESSES = ("source", "src", "input", "from")
TARGET_GUESSES = ("target", "tgt", "output", "to", "translation")
TABLE_SUFFIXES = {".tsv": "\t", ".txt": "\t", ".csv": ",", ".jsonl": None, ".json": None,
                  ".ndjson": None}


@dataclass
class Pairs:
    """Aligned source and target sentences."""

    sources: list[str]
    targets: list[str]

    def __len__(self) -> int:
        return len(self.sources)


def read_parallel(source: str, source_lang: str | None = None, target_lang: str | None = None,
                  source_column: str | None = None, target_column: str | None = None,
                  default_split: str = "train") -> Pairs:
    """Sentence pairs from a prefix, a table of pairs or a `tfds:` name (see the module)."""
    if is_tfds(source):
        pairs = read_tfds_pairs(source, source_lang, target_lang, default_split)
    elif Path(source).is_file():
        pairs = read_table_pairs(Path(source), source_lang, target_lang, source_column,
                                 target_column)
    else:
        pairs = read_prefix_pairs(source, source_lang, target_lang)
    return drop_empty(pairs, source)


def drop_empty(pairs: Pairs, source: str) -> Pairs:
    """Pairs with both sides non-blank; the others are counted in a warning."""
    kept = [(s, t) for s, t in zip(pairs.sources, pairs.targets) if s.strip() and t.strip()]
    if len(kept) < len(pairs):
        log.warning("Skipped %d pair(s) of %s with an empty source or target.",
                    len(pairs) - len(kept), source)
    if not kept:
        raise DataError(f"'{source}' holds no pair with both a source and a target sentence.")
    return Pairs([s for s, _ in kept], [t for _, t in kept])


def pair_reader(source: str, source_lang: str | None = None, target_lang: str | None = None,
                source_column: str | None = None, target_column: str | None = None
                ) -> records.RecordReader:
    """The streaming reader of a prefix or a table of pairs (the same columns and checks
    as `read_parallel`, decided from the header or first line alone)."""
    if is_tfds(source):
        parsed = TfdsSpec.parse(source)
        _, info = tfds_load(parsed, "train")
        keys = tfds_pair_keys(parsed, info, source_lang, target_lang)
        return records.DatasetReader(lambda: tfds_load(parsed, "train")[0], keys,
                                     (_text, _text), name=source)
    path = Path(source)
    if not path.is_file():
        if not source_lang or not target_lang:
            read_prefix_pairs(source, source_lang, target_lang)  # the one-sentence error
        paths = tuple(Path(f"{source}.{lang}") for lang in (source_lang, target_lang))
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise DataError(f"Missing language file(s) {', '.join(map(repr, missing))} for "
                            f"the pair {source}.{{{source_lang},{target_lang}}}.")
        for side in paths:
            check_file(side)
        return records.LinePairsReader(paths, name=describe(source, source_lang, target_lang))
    path = check_file(path)
    delimiter = TABLE_SUFFIXES.get(path.suffix.lower(), "\t")
    if delimiter is None:
        first = next((row for _, row in json_objects(path)), {})
        keys = pick_pair_columns(list(first), source_lang, target_lang, source_column,
                                 target_column, path)
        if keys is None:
            raise DataError(f"Cannot tell which keys of '{path}' hold the source and the "
                            f"target (keys: {', '.join(first) or 'none'}): pass "
                            "--source-column and --target-column.")
        return records.JsonlReader(path, tuple(keys))
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    rows = csv.reader(read_lines(path), delimiter=delimiter, quoting=quoting)
    header = next((row for row in rows if any(cell.strip() for cell in row)), [])
    keys = pick_pair_columns(header, source_lang, target_lang, source_column, target_column,
                             path)
    if keys is None:
        return records.TableReader(path, delimiter, (0, 1), header=False)
    return records.TableReader(path, delimiter, tuple(header.index(k) for k in keys),
                               header=True)


# ---------------------------------------------------------------------------- prefix


def read_prefix_pairs(prefix: str, source_lang: str | None,
                      target_lang: str | None) -> Pairs:
    """`PREFIX.<source_lang>` and `PREFIX.<target_lang>`, line by line."""
    if not source_lang or not target_lang:
        raise DataError(f"'{prefix}' is not a file: to read the pair of files "
                        f"{prefix}.<source-lang> and {prefix}.<target-lang>, pass "
                        "--source-lang and --target-lang.")
    paths = [Path(f"{prefix}.{lang}") for lang in (source_lang, target_lang)]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise DataError(f"Missing language file(s) {', '.join(map(repr, missing))} for the "
                        f"pair {prefix}.{{{source_lang},{target_lang}}}.")
    sides = [read_all_lines(path) for path in paths]
    if len(sides[0]) != len(sides[1]):
        raise DataError(f"'{paths[0]}' has {len(sides[0])} lines but '{paths[1]}' has "
                        f"{len(sides[1])}: line N of one must translate line N of the other.")
    return Pairs(*sides)


def read_all_lines(path: Path) -> list[str]:
    """Every line of a UTF-8 text file; a file with undecodable lines is refused (a line
    left out would shift every later pair)."""
    path = check_file(path)
    lines = []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                lines.append(raw.decode("utf-8").rstrip("\r\n"))
            except UnicodeDecodeError:
                raise DataError(f"'{path}' line {number} is not UTF-8 text: give plain "
                                "UTF-8 sentences, one a line.") from None
    return lines


# ----------------------------------------------------------------------------- tables


def read_table_pairs(path: Path, source_lang: str | None, target_lang: str | None,
                     source_column: str | None, target_column: str | None) -> Pairs:
    """Pairs from a TSV / CSV (header optional) or JSONL file."""
    path = check_file(path)
    delimiter = TABLE_SUFFIXES.get(path.suffix.lower(), "\t")
    if delimiter is None:
        columns, rows = read_jsonl(path)
        rows = list(rows)
        keys = pick_pair_columns(columns, source_lang, target_lang, source_column,
                                 target_column, path)
        if keys is None:
            raise DataError(f"Cannot tell which keys of '{path}' hold the source and the "
                            f"target (keys: {', '.join(columns) or 'none'}): pass "
                            "--source-column and --target-column.")
        return Pairs(*([str(row.get(key) or "") for row in rows] for key in keys))
    records = list(csv.reader(read_lines(path), delimiter=delimiter,
                              quoting=csv.QUOTE_NONE if delimiter == "\t" else
                              csv.QUOTE_MINIMAL))
    records = [r for r in records if any(cell.strip() for cell in r)]
    if not records:
        raise DataError(f"'{path}' holds no rows.")
    header = records[0]
    keys = pick_pair_columns(header, source_lang, target_lang, source_column, target_column,
                             path)
    if keys is not None:
        positions, records = [header.index(key) for key in keys], records[1:]
    else:
        positions = [0, 1]
    short = sum(len(r) <= max(positions) for r in records)
    if short:
        raise DataError(f"{short} row(s) of '{path}' have fewer than {max(positions) + 1} "
                        f"columns: each row needs a source and a target "
                        f"({'tab' if delimiter == chr(9) else 'comma'} separated).")
    return Pairs([r[positions[0]] for r in records], [r[positions[1]] for r in records])


def pick_pair_columns(columns: list[str], source_lang, target_lang, source_column,
                      target_column, path) -> tuple[str, str] | None:
    """(source key, target key) named or guessed from `columns`; None when the columns
    name neither (a headerless table). Named columns that are missing are an error."""
    for wanted in (source_column, target_column):
        if wanted is not None and wanted not in columns:
            raise DataError(f"'{path}' has no column '{wanted}' (it has: "
                            f"{', '.join(columns)}).")
    lowered = {c.lower(): c for c in columns}

    def guess(named, lang, guesses):
        if named is not None:
            return named
        for candidate in ((lang,) if lang else ()) + guesses:
            if candidate and candidate.lower() in lowered:
                return lowered[candidate.lower()]
        return None

    found = (guess(source_column, source_lang, SOURCE_GUESSES),
             guess(target_column, target_lang, TARGET_GUESSES))
    if found[0] is None and found[1] is None:
        languages = language_columns(columns)
        if languages and (source_lang or target_lang):
            raise DataError(f"'{path}' has the columns {', '.join(languages)}, not "
                            f"{source_lang or target_lang}: pass --source-lang and "
                            "--target-lang from those.")
        if languages:
            log.info("Reading '%s' as %s -> %s (its header names the languages; pass "
                     "--source-lang and --target-lang to choose).", path, *languages)
        return languages
    if None in found:
        side = "source" if found[0] is None else "target"
        raise DataError(f"Cannot tell which column of '{path}' holds the {side} (columns: "
                        f"{', '.join(columns)}): pass --{side}-column.")
    return found


LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")


def language_columns(columns: list[str]) -> tuple[str, str] | None:
    """(source, target) when a table has exactly two columns and both are named by a
    language code (`de`, `en`, `pt_br`, `zh-Hant`): one rule for a TSV / CSV header and
    for JSONL keys, so `de<TAB>en` is a header, never a sentence pair."""
    names = [c.strip() for c in columns]
    if len(names) == 2 and names[0] != names[1] and all(LANGUAGE_CODE.match(n) for n in names):
        return columns[0], columns[1]
    return None


# ------------------------------------------------------------------------------- TFDS


def read_tfds_pairs(spec: str, source_lang: str | None, target_lang: str | None,
                    default_split: str) -> Pairs:
    """Pairs from a TFDS translation set, its languages named by feature (e.g. pt, en)."""
    parsed = TfdsSpec.parse(spec)
    dataset, info = tfds_load(parsed, default_split)
    keys = tfds_pair_keys(parsed, info, source_lang, target_lang)
    sources, targets = [], []
    for example in dataset.as_numpy_iterator():
        sources.append(_text(example[keys[0]]))
        targets.append(_text(example[keys[1]]))
    if not sources:
        raise DataError(f"TensorFlow Datasets '{spec}' gave no examples.")
    return Pairs(sources, targets)


def tfds_pair_keys(parsed: TfdsSpec, info, source_lang: str | None,
                   target_lang: str | None) -> tuple[str, str]:
    """The source and target features of a TFDS translation set: named, or its
    supervised keys."""
    supervised = tuple(info.supervised_keys or ())
    languages = (source_lang or (supervised[0] if len(supervised) == 2 else None),
                 target_lang or (supervised[1] if len(supervised) == 2 else None))
    if None in languages:
        raise DataError(f"TensorFlow Datasets '{parsed.name}' does not say which feature is "
                        f"the source (features: {', '.join(info.features.keys())}): pass "
                        "--source-lang and --target-lang.")
    return tuple(feature_key(info.features, lang, "text", parsed) for lang in languages)


def _text(value) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def describe(source: str, source_lang: str | None, target_lang: str | None) -> str:
    """How a source is named in messages."""
    if is_tfds(source) or Path(source).is_file() or not (source_lang and target_lang):
        return source
    return f"{source}.{{{source_lang},{target_lang}}}"

