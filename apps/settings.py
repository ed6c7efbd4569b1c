"""Settings every task shares: tokenizer, recurrent encoder and training loop.

A task's settings dataclass inherits `CommonSettings`, adds its own fields and may
redeclare a field to change its default (the language model is unidirectional, for
example). `apps.options.train_options` turns the same fields into CLI flags, so a
flag, a config-file key and a `config.json` entry always have the same name.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from apps.config import require
from apps.errors import ConfigError
from apps.layers import CELLS
from pipelines.tokenizer import MODEL_TYPES

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")


def parse_duration(text: str | None) -> float | None:
    """'90', '90s', '15m' or '1.5h' -> seconds; None stays None."""
    if text in (None, ""):
        return None
    match = DURATION.match(str(text))
    if not match:
        raise ConfigError(f"--time-budget must look like 90s, 15m or 1.5h, got {text!r}.")
    seconds = float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2) or "s"]
    if seconds <= 0:
        raise ConfigError(f"--time-budget must be longer than zero, got {text!r}.")
    return seconds


@dataclass
class CommonSettings:
    """Defaults < config file < flags; `validate` names the flag of any bad value."""

    # tokenizer
    tokenizer: str = "unigram"
    vocab_size: int = 8000
    # model
    cell: str = "lstm"
    units: int = 128
    layers: int = 1
    bidirectional: bool = True
    embedding_dim: int = 128
    dropout: float = 0.0
    residual: bool = False
    implementation: str = "auto"
    # training
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    clip_norm: float | None = None
    patience: int = 0
    time_budget: str | None = None
    seed: int = 1

    def validate(self) -> None:
        require(self.tokenizer in MODEL_TYPES, "tokenizer", f"one of {', '.join(MODEL_TYPES)}",
                self.tokenizer)
        require(self.vocab_size >= 8, "vocab_size", "at least 8", self.vocab_size)
        require(self.cell in CELLS, "cell", f"one of {', '.join(CELLS)}", self.cell)
        for key in ("units", "layers", "embedding_dim", "epochs", "batch_size"):
            value = getattr(self, key)
            require(value >= 1, key, "a positive whole number", value)
        require(0.0 <= self.dropout < 1.0, "dropout", "in [0, 1)", self.dropout)
        require(self.implementation in ("auto", "keras", "fused"), "implementation",
                "auto, keras or fused", self.implementation)
        require(self.learning_rate > 0, "learning_rate", "positive", self.learning_rate)
        require(self.clip_norm is None or self.clip_norm > 0, "clip_norm", "positive",
                self.clip_norm)
        require(self.patience >= 0, "patience", "zero or more", self.patience)
        parse_duration(self.time_budget)

    @property
    def time_budget_seconds(self) -> float | None:
        return parse_duration(self.time_budget)

    def encoder_arguments(self) -> dict:
        """Keyword arguments for `apps.layers.RecurrentEncoder`."""
        return dict(cell=self.cell, units=self.units, num_layers=self.layers,
                    bidirectional=self.bidirectional, dropout=self.dropout,
                    residual=self.residual, implementation=self.implementation)


def field_defaults(settings_class) -> dict:
    return {f.name: f.default for f in dataclasses.fields(settings_class)}
