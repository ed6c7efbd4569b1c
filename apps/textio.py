"""The inputs of `predict`, `translate` and `transcribe`: arguments or `--input` lines.

One reader for every command, so that line N of the output answers line N of the
input whatever the input holds: a line that is not valid UTF-8 keeps its place as
an error entry (`--json`: `{"line": N, "error": ...}`; plain: an empty line, and one
warning on stderr that counts them), from a file and from stdin alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import click

from apps.errors import DataError

STDIN = "-"


@dataclass
class InputLines:
    """The texts to answer, in order; `errors` maps a position to why it has no text."""

    texts: list[str]
    errors: dict[int, str] = field(default_factory=dict)

    @property
    def readable(self) -> list[str]:
        """The texts that decoded, in order (what the model is asked about)."""
        return [text for i, text in enumerate(self.texts) if i not in self.errors]

    def refuse_blank(self, reason: str) -> InputLines:
        """Blank lines become error entries too (for inputs that name files)."""
        for i, text in enumerate(self.texts):
            if not text.strip() and i not in self.errors:
                self.errors[i] = f"line {i + 1} is blank: {reason}"
        return self

    def __len__(self) -> int:
        return len(self.texts)


def input_option(item: str, answer: str = "answer", blank_lines: str = ", blank lines included"):
    """The `--input FILE|-` flag of every command that answers one line per input line."""
    return click.option("--input", "input_file", help=f"File with one {item} per line (one "
                        f"{answer} per line{blank_lines}); - for stdin.")


def decode_lines(stream: BinaryIO) -> InputLines:
    """Every line of a byte stream without its line end; undecodable lines keep their place."""
    lines = InputLines([])
    for number, raw in enumerate(stream, start=1):
        try:
            lines.texts.append(raw.decode("utf-8").rstrip("\r\n"))
        except UnicodeDecodeError as error:
            lines.errors[number - 1] = (f"line {number} is not valid UTF-8 (byte "
                                        f"{error.start + 1}): nothing to answer")
            lines.texts.append("")
    return lines


def read_input_file(input_file: str) -> InputLines:
    """The lines of FILE, or of stdin for `-`; a missing file is refused in one sentence."""
    if input_file == STDIN:
        return decode_lines(click.get_binary_stream("stdin"))
    path = Path(input_file)
    if path.is_dir():
        raise DataError(f"--input '{path}' is a directory: name a file with one input a line.")
    try:
        with open(path, "rb") as handle:
            return decode_lines(handle)
    except FileNotFoundError:
        raise DataError(f"--input file '{path}' does not exist: check the path.") from None
    except OSError as error:
        raise DataError(f"Cannot read --input '{path}': {error.strerror or error}.") from None


def read_inputs(values: Sequence[str], input_file: str | None, what: str) -> InputLines:
    """The arguments, or every line of --input FILE (- for stdin), blank lines included."""
    if values and input_file:
        raise click.UsageError(f"Give {what} as arguments or --input, not both.")
    if input_file:
        return read_input_file(input_file)
    if not values:
        raise click.UsageError(f"Give {what}, or --input FILE (- for stdin).")
    return InputLines(list(values))


def answer(lines: InputLines, compute: Callable[[list[str]], list[dict[str, Any]]]
           ) -> list[dict[str, Any]]:
    """`compute` over the readable texts, with an error entry in place of each other line."""
    readable = lines.readable
    answers = iter(compute(readable) if readable else [])
    return [{"line": i + 1, "error": lines.errors[i]} if i in lines.errors else next(answers)
            for i in range(len(lines))]


def echo_answers(rows: Iterable[dict[str, Any]], as_json: bool,
                 plain: Callable[[dict[str, Any]], str]) -> None:
    """One output line per row: JSON, or `plain(row)` (an empty line for an error entry);
    then one warning on stderr that counts the error entries and gives the first."""
    failed = []
    for row in rows:
        if "error" in row:
            failed.append(row)
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
        else:
            click.echo("" if "error" in row else plain(row))
    if failed:
        numbers = [str(row["line"]) for row in failed]
        shown = ", ".join(numbers[:10]) + (", ..." if len(numbers) > 10 else "")
        click.echo(f"Warning: {len(failed)} input line(s) have no answer (line {shown}; "
                   f"{failed[0]['error']}); their output line(s) are "
                   f"{'error entries' if as_json else 'empty'}.", err=True)
