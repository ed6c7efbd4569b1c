"""Settings: one dataclass per task, assembled from the groups of settings tasks share.

Every field is declared once with `setting(default, help, ...)`; that one declaration
is the dataclass default, the CLI flag (`apps.options.settings_options`), the
config-file key and the `config.json` entry, so the four always share a name. A task
composes the groups it needs (`DataSettings`, `TokenizerSettings`,
`EncoderSettings`, `TrainingSettings`), adds its own fields, and may redeclare a field to change its
default with a plain annotation (`units: int = 512`): the help is found on the base.
`validate` names the flag of any bad value.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from apps.config import require
from apps.errors import ConfigError
from pipelines.tokenizer import MODEL_TYPES as TOKENIZER_TYPES

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")
STEPS = re.compile(r"^\s*(\d+)\s*steps?\s*$")
CELLS = ("rnn", "lstm", "gru")
IMPLEMENTATIONS = ("auto", "keras", "fused")
STRATEGIES = ("auto", "one-device", "mirrored", "multi-worker", "tpu")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
LR_SCHEDULES = ("constant", "cosine")
DROPOUT_KINDS = ("standard", "locked")


def setting(default: Any, help: str, choices: tuple[str, ...] | None = None,  # noqa: A002
            section: str = "data", flag: bool = True):
    """A settings field: its default, the help its flag shows, and where --help lists it."""
    return dataclasses.field(default=default, metadata={
        "help": help, "choices": choices, "section": section, "flag": flag})


def field_metadata(settings_class, name: str) -> dict[str, Any]:
    """The metadata of `name`, from the nearest class in the hierarchy that declared it."""
    for klass in settings_class.__mro__:
        for field in dataclasses.fields(klass) if dataclasses.is_dataclass(klass) else ():
            if field.name == name and field.metadata:
                return dict(field.metadata)
    return {"help": "", "choices": None, "section": "data", "flag": True}


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


def parse_checkpoint_every(text: str | None) -> tuple[int | None, float | None]:
    """'500steps' -> (500, None); '10m' -> (None, 600.0); 'off' or '' -> (None, None)."""
    if text in (None, "", "off", "0"):
        return None, None
    match = STEPS.match(str(text))
    if match:
        steps = int(match.group(1))
        if steps < 1:
            raise ConfigError(f"--checkpoint-every must be at least 1step, got {text!r}.")
        return steps, None
    match = DURATION.match(str(text))
    if not match:
        raise ConfigError("--checkpoint-every must look like 10m, 90s, 1h or 500steps (or "
                          f"off), got {text!r}.")
    seconds = float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2) or "s"]
    return None, seconds


@dataclass
class Settings:
    """The root of every settings class: `validate` chains through the groups."""

    def validate(self) -> None:
        for field in dataclasses.fields(self):
            choices = field_metadata(type(self), field.name)["choices"]
            value = getattr(self, field.name)
            if choices and value is not None:
                require(value in choices, field.name, f"one of {', '.join(choices)}", value)

    def check_given(self, given: set[str]) -> None:
        """Refuse settings that contradict each other when both are given (in a config
        file or as flags): a default never contradicts. Chains like `validate`."""


@dataclass
class DataSettings(Settings):
    """Where training and validation data come from; each task declares its own `data`."""

    data: str = setting("", "Training data: a file or tfds:NAME[/CONFIG][:SPLIT].")
    valid: str | None = setting(None, "Validation data (same forms as --data); picks the best "
                                "epoch. A TFDS name without a split reads its validation "
                                "split. Without validation data, --valid-fraction of the "
                                "training data is held out.")
    valid_fraction: float = setting(0.1, "Share of the training data held out for "
                                    "validation when there is none, drawn by --seed (a "
                                    "language model's is the end of its text).")

    def validate(self) -> None:
        super().validate()
        require(0.0 < self.valid_fraction < 1.0, "valid_fraction", "in (0, 1)",
                self.valid_fraction)

    def check_given(self, given: set[str]) -> None:
        super().check_given(given)
        if self.valid and "valid_fraction" in given:
            raise ConfigError("--valid-fraction holds validation data out of --data, and "
                              "--valid gives it: pass one of them.")


@dataclass
class TokenizerSettings(Settings):
    tokenizer: str = setting("unigram", "SentencePiece model type trained on the training "
                             "data.", TOKENIZER_TYPES, section="tokenizer")
    vocab_size: int = setting(8000, "Upper bound on the vocabulary size (small corpora get "
                              "fewer pieces).", section="tokenizer")

    def validate(self) -> None:
        super().validate()
        require(self.vocab_size >= 8, "vocab_size", "at least 8", self.vocab_size)


@dataclass
class EncoderSettings(Settings):
    cell: str = setting("lstm", "Recurrent cell: rnn (SimpleRNN), lstm or gru.", CELLS,
                        section="model")
    units: int = setting(128, "Hidden units per direction and layer.", section="model")
    layers: int = setting(1, "Stacked recurrent layers.", section="model")
    bidirectional: bool = setting(True, "Also read right to left (encoders only).",
                                  section="model")
    embedding_dim: int = setting(128, "Token embedding size.", section="model")
    dropout: float = setting(0.0, "Dropout rate on the encoder's input, between recurrent "
                             "layers and before the output.", section="model")
    residual: bool = setting(False, "Residual connections between recurrent layers of "
                             "equal size.", section="model")
    implementation: str = setting(
        "auto", "Recurrence while training: keras (stock layers: cuDNN on a GPU), fused "
        "(the fast CPU loop), or auto (keras with a GPU, else fused). Exports hold the "
        "portable fused loop unless exported with --gpu-only.", IMPLEMENTATIONS,
        section="model")

    def validate(self) -> None:
        super().validate()
        for key in ("units", "layers", "embedding_dim"):
            value = getattr(self, key)
            require(value >= 1, key, "a positive whole number", value)
        require(0.0 <= self.dropout < 1.0, "dropout", "in [0, 1)", self.dropout)

    def encoder_arguments(self) -> dict:
        """Keyword arguments for `apps.layers.RecurrentEncoder`."""
        return dict(cell=self.cell, units=self.units, num_layers=self.layers,
                    bidirectional=self.bidirectional, dropout=self.dropout,
                    residual=self.residual, implementation=self.implementation)


@dataclass
class TrainingSettings(Settings):
    epochs: int = setting(10, "Passes over the training data.", section="training")
    batch_size: int = setting(64, "Examples per batch.", section="training")
    learning_rate: float = setting(1e-3, "Adam learning rate.", section="training")
    clip_norm: float | None = setting(None, "Clip each gradient to this global norm (off "
                                      "when unset).", section="training")
    patience: int = setting(0, "Stop after this many epochs without validation improvement "
                            "(0: never).", section="training")
    time_budget: str | None = setting(None, "Stop cleanly after this much training time, e.g. "
                                      "90s, 15m, 1h; the best epoch so far is kept.",
                                      section="training")
    steps_per_epoch: int | None = setting(
        None, "Make an epoch this many training steps (batches) of a stream that continues "
        "across passes over the data, so validation, the best-epoch choice and a backup come "
        "every that many steps: for corpora where one pass takes hours. Unset: an epoch is "
        "one pass.", section="training")
    keep_epochs: int = setting(
        0, "Also keep the weights of the last N epochs (checkpoints/epoch-K.weights.h5), "
        "for `export --average-last N` (0: the best epoch's only).", section="training")
    checkpoint_every: str = setting(
        "10m", "Also back up within an epoch this often: a time (90s, 10m, 1h) or a number "
        "of steps (500steps); off for epoch ends only. A killed run resumes from the last "
        "backup and trains on exactly as an uninterrupted run would.", section="training")
    seed: int = setting(1, "Random seed. The same seed, data, settings and machine give the "
                        "same model, bit for bit (TensorFlow's op determinism is on), a run "
                        "interrupted and resumed included, unless --time-budget stops the "
                        "run: then the wall clock decides how many steps run.",
                        section="training")

    strategy: str = setting(
        "auto", "Devices to train on: auto (every local GPU when there are several, else "
        "one device), one-device, mirrored (every local GPU, or the CPU), multi-worker "
        "(several hosts named by TF_CONFIG; run the same command on each), tpu. "
        "--batch-size is the global batch, split across the replicas; the learning rate "
        "is not changed.", STRATEGIES, section="hardware")
    tpu: str | None = setting(None, "The Cloud TPU to use with --strategy tpu (its name or "
                              "grpc:// address).", section="hardware")
    precision: str = setting(
        "auto", "Arithmetic while training: float32, mixed_bfloat16 (bfloat16 products, "
        "float32 weights; fast on CPUs with AMX and on TPUs), mixed_float16 (GPUs, with loss "
        "scaling), or auto (docs/scaling.md says what it picks where). Logits, losses and "
        "exports stay float32.", PRECISIONS, section="hardware")
    jit: bool = setting(False, "Compile each training step with XLA (one compilation per "
                        "batch shape).", section="hardware")

    def validate(self) -> None:
        super().validate()
        for key in ("epochs", "batch_size"):
            value = getattr(self, key)
            require(value >= 1, key, "a positive whole number", value)
        require(self.learning_rate > 0, "learning_rate", "positive", self.learning_rate)
        require(self.clip_norm is None or self.clip_norm > 0, "clip_norm", "positive",
                self.clip_norm)
        require(self.patience >= 0, "patience", "zero or more", self.patience)
        require(self.keep_epochs >= 0, "keep_epochs", "zero or more", self.keep_epochs)
        require(self.steps_per_epoch is None or self.steps_per_epoch >= 1, "steps_per_epoch",
                "a positive whole number", self.steps_per_epoch)
        parse_duration(self.time_budget)
        parse_checkpoint_every(self.checkpoint_every)

    @property
    def time_budget_seconds(self) -> float | None:
        return parse_duration(self.time_budget)


@dataclass
class ScheduleSettings(Settings):
    """For tasks that train long enough to gain from a learning-rate schedule
    (`apps.schedule.adam` reads these)."""

    lr_schedule: str = setting("cosine", "Learning rate: constant, or warm-up then cosine "
                               "decay to zero over all epochs (or over --time-budget, if that "
                               "ends first).", LR_SCHEDULES, section="training")
    warmup_steps: int = setting(100, "Steps of linear warm-up (cosine schedule).",
                                section="training")

    def validate(self) -> None:
        super().validate()
        require(self.warmup_steps >= 0, "warmup_steps", "zero or more", self.warmup_steps)


@dataclass
class TransferSettings(Settings):
    """Starting from another run's weights and fine-tuning them (`apps.transfer`)."""

    init_from: str | None = setting(
        None, "Start from the weights of this training run or exported model (a SavedModel "
        "version or its base directory), of this task or another (a language model's "
        "embedding and encoder into a classifier, say): the layers both models share are "
        "loaded, the rest start fresh, and the run takes over its tokenizer. config.json "
        "records what was loaded.", section="training")
    freeze_epochs: int = setting(
        0, "Gradual unfreezing of the layers --init-from loaded: they thaw one at a time "
        "from the top (encoder layers, then the embedding), one every this many epochs, "
        "while the new layers train from the start (ULMFiT: 1). 0: all train at once.",
        section="training")
    lr_layer_decay: float = setting(
        1.0, "Discriminative learning rates: each layer below the top (output, encoder "
        "layers, embedding) trains at this factor times the rate of the one above it "
        "(ULMFiT: 1/2.6 = 0.38). 1: one rate for all.", section="training")

    def validate(self) -> None:
        super().validate()
        require(self.freeze_epochs >= 0, "freeze_epochs", "zero or more", self.freeze_epochs)
        require(0.0 < self.lr_layer_decay <= 1.0, "lr_layer_decay", "in (0, 1]",
                self.lr_layer_decay)
        require(not self.freeze_epochs or self.init_sources(), "freeze_epochs",
                "0 without --init-from (only loaded layers are frozen)", self.freeze_epochs)

    def init_sources(self) -> list[str]:
        """The sources this run starts from (a task with several options adds its own)."""
        return [self.init_from] if self.init_from else []


@dataclass
class RecurrentRegularisationSettings(Settings):
    """AWD-LSTM's regularisers of a recurrent model (Merity et al., 2018), all off by
    default; a task composes this group first among its bases (its `encoder_arguments`
    adds to the encoder's). None of them is in an exported graph: they act while
    training only."""

    embedding_dropout: float = setting(
        0.0, "Share of the vocabulary whose embedding rows are dropped for a whole batch "
        "while training (every occurrence of a dropped token reads zeros; Gal and "
        "Ghahramani 2016, AWD-LSTM: 0.1). 0: off.", section="model")
    dropout_kind: str = setting(
        "standard", "How --dropout draws its masks on the inputs and outputs of the "
        "recurrent layers: standard (a new mask at every time step) or locked (variational "
        "dropout: one mask per sequence, shared by all its time steps, as AWD-LSTM).",
        DROPOUT_KINDS, section="model")
    weight_drop: float = setting(
        0.0, "DropConnect on the recurrent (hidden-to-hidden) matrices: this share of "
        "their entries is zeroed, one mask per batch, while training (AWD-LSTM: 0.5). "
        "Trains through the fused recurrence (also on a GPU, where cuDNN cannot). 0: off.",
        section="model")

    def validate(self) -> None:
        super().validate()
        for key in ("embedding_dropout", "weight_drop"):
            value = getattr(self, key)
            require(0.0 <= value < 1.0, key, "in [0, 1)", value)

    def encoder_arguments(self) -> dict:
        return {**super().encoder_arguments(), "dropout_kind": self.dropout_kind,
                "weight_drop": self.weight_drop}


STREAMING = ("auto", "on", "off")


@dataclass
class StreamingSettings(Settings):
    """How a text task reads a large training corpus (pipelines.records)."""

    streaming: str = setting(
        "auto", "Read the training data from its files on every pass instead of holding it "
        "in memory: on, off, or auto (on for training data over 64 MB: files by their size, "
        "tfds: splits by the size their dataset info records; smaller ones train faster "
        "from memory).", STREAMING)
    shuffle_buffer: int = setting(100_000, "Records shuffled together when streaming (memory "
                                  "grows with it, not with the corpus).")
    tokenizer_sample: int = setting(200_000, "Sentences (lines) the tokenizer learns from "
                                    "when streaming: a uniform sample drawn in one pass over "
                                    "the training data (SentencePiece's time grows with it: "
                                    "about a minute of CPU per million sentences).",
                                    section="tokenizer")

    def validate(self) -> None:
        super().validate()
        require(self.shuffle_buffer >= 1, "shuffle_buffer", "a positive whole number",
                self.shuffle_buffer)
        require(self.tokenizer_sample >= 1, "tokenizer_sample", "a positive whole number",
                self.tokenizer_sample)


@dataclass
class TaskSettings(DataSettings, TokenizerSettings, EncoderSettings, TrainingSettings):
    """What every task's settings are made of: data, tokenizer, encoder, training."""


@dataclass
class ScheduledTaskSettings(TaskSettings, ScheduleSettings):
    """A task's settings with a learning-rate schedule (LM, translation, speech)."""
