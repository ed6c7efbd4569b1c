"""Language modelling: train, evaluate, generate and export as a plain Python API.

`apps.lm.cli` parses flags and calls these functions; tests and notebooks can call
them directly. A corpus is one continuous token stream (see `pipelines.streams`);
evaluation reads a whole file as one stream too, so nats per character compare
across tokenisers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from apps import plots, training
from apps.config import require, to_dict
from apps.errors import ConfigError, DataError
from apps.layout import locate_model
from apps.lm import decoding
from apps.lm.model import LanguageModel, build
from apps.lm.schedule import WarmupCosine
from apps.settings import CommonSettings
from pipelines import sources, streams
from pipelines.tokenizer import BOS_ID, PAD_ID, UNK_ID, Tokenizer

log = logging.getLogger(__name__)
TASK = "lm"
TOKENIZERS = ("char", "bpe", "unigram")
LR_SCHEDULES = ("constant", "cosine")


@dataclass
class LanguageModelSettings(CommonSettings):
    """Everything `apps lm train` can be told; saved as the run's config.json."""

    data: str = "tfds:tiny_shakespeare"
    valid: str | None = None
    text_column: str | None = None
    valid_fraction: float = 0.1
    tokenizer: str = "char"
    vocab_size: int = 2000
    units: int = 512
    bidirectional: bool = False
    embedding_dim: int = 64
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 3e-3
    clip_norm: float | None = 1.0
    sequence_length: int = 64
    stateful: bool = True
    tie_embeddings: bool = False
    lr_schedule: str = "cosine"
    warmup_steps: int = 100

    def validate(self) -> None:
        super().validate()
        require(self.tokenizer in TOKENIZERS, "tokenizer", f"one of {', '.join(TOKENIZERS)} "
                "(a language model must reproduce its text exactly)", self.tokenizer)
        require(not self.bidirectional, "bidirectional", "off for a language model (it "
                "predicts each token from the ones before it)", self.bidirectional)
        require(self.sequence_length >= 1, "sequence_length", "a positive whole number",
                self.sequence_length)
        require(0.0 < self.valid_fraction < 1.0, "valid_fraction", "in (0, 1)",
                self.valid_fraction)
        require(self.lr_schedule in LR_SCHEDULES, "lr_schedule",
                f"one of {', '.join(LR_SCHEDULES)}", self.lr_schedule)
        require(self.warmup_steps >= 0, "warmup_steps", "zero or more", self.warmup_steps)


@contextlib.contextmanager
def quiet_native_logs():
    """Hide C++ lines on stderr, such as SentencePiece's "precompiled_charsmap is empty".

    An exact-text tokenizer has no normalisation table, and SentencePiece says so
    each time TensorFlow loads it; Python errors still propagate. Off with --debug.
    """
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# ------------------------------------------------------------------------------ data


def read_text(source: str, text_column: str | None = None,
              default_split: str = "train") -> str:
    """A corpus as one string; empty, whitespace-only or mostly undecodable text is refused."""
    text = sources.read_corpus(source, text_column, default_split)
    if not text.strip():
        raise DataError(f"'{source}' holds no text to model.")
    if text.count("\ufffd") > 0.1 * len(text):
        raise DataError(f"'{source}' does not look like UTF-8 text (over 10% of it cannot be "
                        "decoded): give a plain text file.")
    return text


def read_splits(settings: LanguageModelSettings) -> tuple[str, str]:
    """Training and validation text; without --valid, the last share of the training text."""
    train = read_text(settings.data, settings.text_column)
    if settings.valid:
        return train, read_text(settings.valid, settings.text_column, "validation")
    position = int(len(train) * (1 - settings.valid_fraction))
    cut = train.rfind("\n", 0, position) + 1 or position  # at a line end where there is one
    if not train[:cut].strip() or not train[cut:].strip():
        raise DataError(f"'{settings.data}' is too short to hold the last "
                        f"{settings.valid_fraction:.0%} out for validation: pass --valid.")
    return train[:cut], train[cut:]


def train_tokenizer(text: str, settings: LanguageModelSettings) -> Tokenizer:
    """A tokenizer that reproduces the text exactly (whitespace and newlines included)."""
    lines = text.splitlines(keepends=True)
    return Tokenizer.train(lines, settings.tokenizer, settings.vocab_size, total=len(lines),
                           exact_text=True)


def unknown_characters(tokenizer: Tokenizer, text: str) -> list[str]:
    """Characters of `text` the tokenizer has no piece for (they become the unknown id)."""
    return sorted(c for c in set(text) if UNK_ID in tokenizer.encode([c])[0])


# ---------------------------------------------------------------------------- training


def learning_rate(settings: LanguageModelSettings, total_steps: int):
    """A constant, or warm-up then cosine decay to zero over the steps or the time budget."""
    if settings.lr_schedule == "constant":
        return settings.learning_rate
    return WarmupCosine(settings.learning_rate, total_steps, settings.warmup_steps,
                        settings.time_budget_seconds)


def compile_model(model: LanguageModel, settings: LanguageModelSettings, rate) -> None:
    optimizer = keras.optimizers.Adam(rate, global_clipnorm=settings.clip_norm)
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=False)


def stream_report(log_likelihood: float, tokens: int, chars: int) -> dict:
    """Per-token perplexity and, comparable across tokenisers, loss per character."""
    nats = -float(log_likelihood)
    return {"nats_per_char": nats / max(chars, 1), "bits_per_char": nats / max(chars, 1)
            / math.log(2), "perplexity": math.exp(nats / max(tokens, 1)),
            "tokens": int(tokens), "chars": int(chars), "log_likelihood": -nats}


def train(settings: LanguageModelSettings, output: Path | None = None, overwrite: bool = False,
          verbose: int = 1) -> tuple[Path, dict]:
    """Train a language model; return the run directory and its validation report."""
    output = Path(output or f"runs/{TASK}-{time.strftime('%Y%m%d-%H%M%S')}")
    config = {"task": TASK, **to_dict(settings)}
    run, resuming = training.open_run(output, config, overwrite)
    train_text, valid_text = read_splits(settings)
    training.set_seed(settings.seed)
    tokenizer = Tokenizer.load(run.tokenizer) if resuming else train_tokenizer(train_text,
                                                                               settings)
    train_stream = streams.with_bos(streams.encode_stream(tokenizer, train_text))
    valid_ids = streams.encode_stream(tokenizer, valid_text)
    unknown = int(np.sum(valid_ids == UNK_ID))
    if unknown:
        log.warning("%d token(s) of the validation text are characters the training text "
                    "lacks: they count as unknown.", unknown)
    length = settings.sequence_length
    valid_streams = streams.fitting_streams(len(valid_ids) + 1, settings.batch_size, length)
    train_data = streams.stream_dataset(
        train_stream, settings.batch_size, length, "training",
        shuffle_seed=None if settings.stateful else settings.seed)
    valid_data = streams.stream_dataset(streams.with_bos(valid_ids), valid_streams, length,
                                        "validation")
    steps = int(train_data.cardinality())
    log.info("%d training tokens (%d batches of %d x %d), %d validation tokens.",
             len(train_stream) - 1, steps, settings.batch_size, length, len(valid_ids))
    with training.created_run(run, overwrite, resuming):
        if not resuming:
            tokenizer.save(run.tokenizer)
            training.write_json(run.config, config)
        model = build(settings, tokenizer.vocab_size)
        if settings.stateful:
            model.carry_state(settings.batch_size, valid_streams)
        rate = learning_rate(settings, steps * settings.epochs)
        compile_model(model, settings, rate)
        if isinstance(rate, WarmupCosine):
            spent = json.loads(run.state.read_text())["seconds"] if resuming else 0.0
            rate.start_clock(already_spent=spent)
        fitted = training.fit(model, train_data, valid_data, run, settings.epochs,
                              monitor="val_loss", mode="min", patience=settings.patience,
                              time_budget=settings.time_budget_seconds, resume=resuming,
                              verbose=verbose)
        if fitted.budget_spent and len(fitted.rows) == 1 and steps > 1:
            log.warning("The time budget ran out within the first epoch: the model saw only "
                        "part of the data once.")
        report = evaluate_model(model, tokenizer, valid_text)
        report.update(best_epoch=fitted.best_epoch, epochs_run=len(fitted.rows),
                      train_seconds=round(sum(r["seconds"] for r in fitted.rows), 3),
                      stopped_by_time_budget=fitted.budget_spent)
        plots.plot_history(fitted.rows, run.plots / "history.png")
        training.finish(run, {"valid": report})
    return run.path, report


# -------------------------------------------------------------------------- evaluation


def evaluate_model(model: LanguageModel, tokenizer: Tokenizer, text: str) -> dict:
    """Negative log-likelihood of `text` read as one stream from the begin id."""
    ids = streams.encode_stream(tokenizer, text)
    scorer = tf.function(lambda ids, lengths: decoding.log_likelihood(model, ids, lengths))
    total = scorer(tf.constant(ids[None, :]), tf.constant([len(ids)], tf.int32))
    return stream_report(float(total[0]), len(ids), len(text))


class TrainedModel:
    """A language model from a run directory or an exported SavedModel.

    A run gives the Keras model and tokenizer (generation steps in Python, so text
    streams); a SavedModel gives its signatures, exactly what TF Serving runs.
    """

    def __init__(self, path: Path):
        kind, self.path = locate_model(path)
        self.signatures = None
        if kind == "run":
            run = training.RunDirectory(self.path)
            config = run.read_config()
            if config.get("task") != TASK:
                raise DataError(f"'{self.path}' is a '{config.get('task')}' run, not a "
                                "language model.")
            self.settings = LanguageModelSettings(**{k: v for k, v in config.items()
                                                     if k != "task"})
            self.tokenizer = Tokenizer.load(run.tokenizer)
            self.model = build(self.settings, self.tokenizer.vocab_size)
            self.model.load_weights(run.best_weights)
        else:
            import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)

            from apps.export import read_metadata

            metadata = read_metadata(self.path)
            if metadata.get("task") != TASK:
                raise DataError(f"'{self.path}' is a '{metadata.get('task')}' model, "
                                "not a language model.")
            with quiet_native_logs():
                self.signatures = tf.saved_model.load(str(self.path)).signatures

    @property
    def is_saved_model(self) -> bool:
        return self.signatures is not None


def evaluate(path: Path, data: str, text_column: str | None = None) -> dict:
    """nats_per_char, bits_per_char, perplexity, tokens and chars of a whole text."""
    trained = TrainedModel(path)
    text = read_text(data, text_column, default_split="test")
    if trained.is_saved_model:
        scores = trained.signatures["score"](text=tf.constant([text]))
        return stream_report(float(scores["log_likelihood"][0]), int(scores["tokens"][0]),
                             int(scores["chars"][0]))
    unknown = unknown_characters(trained.tokenizer, text)
    if unknown:
        log.warning("'%s' holds %d character(s) the model never saw (%s): they count as "
                    "unknown.", data, len(unknown), "".join(unknown[:20]))
    return evaluate_model(trained.model, trained.tokenizer, text)


# -------------------------------------------------------------------------- generation


@dataclass
class Sampling:
    """How to pick each new token; checked here so every caller gets the same errors."""

    max_tokens: int = 200
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 1
    num_samples: int = 1
    stop: str | None = None

    def validate(self) -> None:
        require(self.max_tokens >= 1, "max_tokens", "a positive whole number",
                self.max_tokens)
        require(self.max_tokens <= decoding.MAX_NEW_TOKENS, "max_tokens",
                f"at most {decoding.MAX_NEW_TOKENS}", self.max_tokens)
        require(self.temperature >= 0, "temperature", "zero (greedy) or more", self.temperature)
        require(self.top_k >= 0, "top_k", "zero (off) or more", self.top_k)
        require(0 < self.top_p <= 1, "top_p", "in (0, 1] (1 is off)", self.top_p)
        require(self.num_samples >= 1, "num_samples", "a positive whole number",
                self.num_samples)
        if self.stop == "":
            raise ConfigError("--stop must not be empty.")


class StopFilter:
    """Passes text on as it grows, holding back what may be the start of the stop string."""

    def __init__(self, stop: str | None, emit: Callable[[str], None]):
        self.stop, self.emit, self.text, self.shown, self.stopped = stop, emit, "", 0, False

    def add(self, piece: str) -> None:
        self.text += piece
        if not self.stop:
            self.emit(piece)
            self.shown = len(self.text)
            return
        found = self.text.find(self.stop, max(0, self.shown - len(self.stop)))
        if found >= 0:
            self.text, self.stopped = self.text[:found], True
        safe = len(self.text) if self.stopped else len(self.text) - len(self.stop) + 1
        if safe > self.shown:
            self.emit(self.text[self.shown:safe])
            self.shown = safe

    def flush(self) -> None:
        if self.shown < len(self.text):
            self.emit(self.text[self.shown:])
            self.shown = len(self.text)


def _sample_run(trained: TrainedModel, stepper: decoding.Stepper, prompt: str,
                sampling: Sampling, seed: int, emit: Callable[[str], None]) -> dict:
    """One sample from a run directory, streamed to `emit` a few tokens at a time.

    The prompt is fed first (one `step` per token, as in the exported loop); then
    each call of the compiled loop continues from the carried state for a chunk of
    new tokens (4, growing to 64), so text appears at once and overhead stays low.
    """
    tokenizer = trained.tokenizer
    ids = [BOS_ID] + tokenizer.encode([prompt])[0]
    row = lambda value, dtype: tf.constant([value], dtype)  # noqa: E731
    knobs = (row(sampling.temperature, tf.float32), row(sampling.top_k, tf.int32),
             row(sampling.top_p, tf.float32), row(seed, tf.int64))
    no_prompt, zero = tf.zeros([1, 0], tf.int32), row(0, tf.int32)
    start = time.perf_counter()
    _, states, last = stepper.run(trained.model.zero_states(1), tf.constant([ids], tf.int32),
                                  row(len(ids), tf.int32), len(ids), 0, row(PAD_ID, tf.int32),
                                  *knobs)
    pending, position, chunk = [int(last[0])], len(ids), 4
    shown, generated = StopFilter(sampling.stop, emit), 0
    while True:
        for token in pending:
            generated += 1
            shown.add(tokenizer.decode([token]))
            if shown.stopped or generated == sampling.max_tokens:
                break
        if shown.stopped or generated == sampling.max_tokens:
            break
        count = min(chunk, sampling.max_tokens - generated)
        choices, states, _ = stepper.run(states, no_prompt, zero, count, position,
                                         row(pending[-1], tf.int32), *knobs)
        pending, position, chunk = choices.numpy()[0].tolist(), position + count, min(2 * chunk,
                                                                                      64)
    shown.flush()
    seconds = time.perf_counter() - start
    return {"text": prompt + shown.text, "tokens": generated,
            "tokens_per_second": generated / seconds, "seed": seed, "stopped": shown.stopped}


def _sample_saved_model(trained: TrainedModel, prompt: str, sampling: Sampling, seed: int,
                        emit: Callable[[str], None]) -> dict:
    """One sample from the SavedModel's `generate` signature (the loop runs in the graph)."""
    start = time.perf_counter()
    out = trained.signatures["generate"](
        prompt=tf.constant([prompt]), max_tokens=tf.constant([sampling.max_tokens], tf.int32),
        temperature=tf.constant([sampling.temperature], tf.float32),
        top_k=tf.constant([sampling.top_k], tf.int32),
        top_p=tf.constant([sampling.top_p], tf.float32), seed=tf.constant([seed], tf.int64))
    seconds = time.perf_counter() - start
    if int(out["unknown"][0]):
        log.warning("%d token(s) of the prompt are characters the model never saw: they are "
                    "read as unknown.", int(out["unknown"][0]))
    generated = out["text"].numpy()[0].decode("utf-8")[len(prompt):]  # text holds the prompt
    shown = StopFilter(sampling.stop, emit)
    shown.add(generated)
    shown.flush()
    tokens = int(out["tokens"][0])
    return {"text": prompt + shown.text, "tokens": tokens, "tokens_per_second": tokens / seconds,
            "seed": seed, "stopped": shown.stopped}


def generate(path: Path, prompt: str, sampling: Sampling,
             emit: Callable[[str], None] | None = None,
             on_sample_start: Callable[[int], None] | None = None) -> list[dict]:
    """`num_samples` continuations of `prompt`; text goes to `emit` as it is produced.

    Sample i uses seed `seed + i`, so the same seed gives the same texts.
    Returns one {"text" (prompt included), "tokens", "tokens_per_second", ...} each.
    """
    sampling.validate()
    trained = TrainedModel(path)
    emit = emit or (lambda _piece: None)
    if not trained.is_saved_model:
        unknown = unknown_characters(trained.tokenizer, prompt)
        if unknown:
            log.warning("The prompt holds %d character(s) the model never saw (%s): they are "
                        "read as unknown.", len(unknown), "".join(unknown[:20]))
        stepper = decoding.Stepper(trained.model)
        stepper.warm_up()
    else:  # the first call of a loaded graph sets it up: keep that out of the timing
        _sample_saved_model(trained, "", Sampling(max_tokens=1), 0, lambda _piece: None)
    samples = []
    for i in range(sampling.num_samples):
        if on_sample_start:
            on_sample_start(i)
        seed = sampling.seed + i
        if trained.is_saved_model:
            samples.append(_sample_saved_model(trained, prompt, sampling, seed, emit))
        else:
            samples.append(_sample_run(trained, stepper, prompt, sampling, seed, emit))
    return samples


# ------------------------------------------------------------------------------ export


def export(run_dir: Path, base_path: Path = Path("saved_models"), name: str = TASK) -> Path:
    """Write the run's best model as the next version of `base_path/name`."""
    from apps import export as exporting
    from apps.lm import serving

    trained = TrainedModel(run_dir)
    if trained.is_saved_model:
        raise DataError(f"'{run_dir}' is already an exported model: export a run directory.")
    run = training.RunDirectory(trained.path)
    metrics = json.loads(run.metrics.read_text()) if run.metrics.is_file() else {}
    metadata = {
        "task": TASK, "config": run.read_config(),
        "tokenizer": {"type": trained.settings.tokenizer,
                      "vocab_size": trained.tokenizer.vocab_size},
        "metrics": {k: v for k, v in metrics.get("valid", {}).items()
                    if k in ("nats_per_char", "bits_per_char", "perplexity", "tokens",
                             "chars")},
        "run_directory": str(run.path.resolve()),
    }
    with quiet_native_logs():
        graph_tokenizer = trained.tokenizer.graph_tokenizer()
        return exporting.export_saved_model(serving.signatures(trained.model, graph_tokenizer),
                                            [trained.model, graph_tokenizer], base_path, name,
                                            metadata)
