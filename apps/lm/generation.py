"""Generation from a language model: sampling settings, streaming, a stop string.

A run directory and a SavedModel generate alike, through the `generate` signature
(`apps.lm.serving`: the loop inside the graph, exactly as TF Serving runs it; a run's
is built in memory), so the same seed gives the same text from either. Text shown as
it comes (`emit`, the CLI's terminal output) streams from a run: the same prompt
reading, step function (`decoding.run_steps`, in chunks with the state carried) and
detokenizer as `generate`, so the streamed text is the signature's. A SavedModel has
no such entry point: its text is shown when the sample is done.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from apps import layers, runner
from apps.config import require
from apps.errors import ConfigError
from apps.lm import decoding, serving
from apps.lm.task import TASK
from apps.task import Trained
from pipelines.tokenizer import PAD_ID

log = logging.getLogger(__name__)


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


def _sample(trained: Trained, prompt: str, sampling: Sampling, seed: int,
            emit: Callable[[str], None]) -> dict:
    """One sample from the `generate` signature (the loop runs in the graph)."""
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


def _stream(trained: Trained, stepper: decoding.Stepper, prompt: str, sampling: Sampling,
            seed: int, emit: Callable[[str], None]) -> dict:
    """One sample from a run, shown as it grows: `generate`'s computation in chunks of
    steps (4, growing to 64), the text so far detokenized after each (ending a sample
    at its stop string saves the rest)."""
    inputter = trained.inputters["text"]
    row = lambda value, dtype: tf.constant([value], dtype)  # noqa: E731
    knobs = (row(sampling.temperature, tf.float32), row(sampling.top_k, tf.int32),
             row(sampling.top_p, tf.float32), row(seed, tf.int64))
    start = time.perf_counter()
    forced, lengths, unknown = serving.prompted(inputter, tf.constant([prompt]))
    if int(unknown[0]):
        log.warning("%d token(s) of the prompt are characters the model never saw: they are "
                    "read as unknown.", int(unknown[0]))
    reading = int(lengths[0]) - 1  # the choices made while the prompt is read are not kept
    states, previous = trained.model.zero_states(1), row(PAD_ID, tf.int32)
    position, chunk, new = 0, 4, []
    shown, passed = StopFilter(sampling.stop, emit), ""
    while len(new) < sampling.max_tokens and not shown.stopped:
        steps = reading + min(chunk, sampling.max_tokens - len(new))
        choices, states, previous = stepper.run(states, forced, lengths, steps, position,
                                                previous, *knobs)
        new += choices.numpy()[0, reading:].tolist()
        forced, lengths, position = tf.zeros([1, 0], tf.int32), row(0, tf.int32), position + steps
        reading, chunk = 0, min(2 * chunk, 64)
        text = _detokenized(inputter, new)
        done = len(new) == sampling.max_tokens
        if not done:
            text = text.rstrip("\ufffd")  # the bytes of a character may be cut
        if text.startswith(passed):  # else wait: the final text is `generate`'s
            shown.add(text[len(passed):])
            passed = text
    shown.flush()
    seconds = time.perf_counter() - start
    return {"text": prompt + shown.text, "tokens": len(new),
            "tokens_per_second": len(new) / seconds, "seed": seed, "stopped": shown.stopped}


def _detokenized(inputter, ids: list[int]) -> str:
    return inputter.detokenize(tf.ragged.constant([ids], tf.int32)).numpy()[0].decode(
        "utf-8", errors="replace")


def generate(model: Path | Trained, prompt: str, sampling: Sampling,
             emit: Callable[[str], None] | None = None,
             on_sample_start: Callable[[int], None] | None = None) -> list[dict]:
    """`num_samples` continuations of `prompt`; text goes to `emit` as it grows (a run)
    or when the sample is done (a SavedModel).

    Sample i uses seed `seed + i`, so the same seed gives the same texts.
    Returns one {"text" (prompt included), "tokens", "tokens_per_second", ...} each.
    """
    sampling.validate()
    trained = model if isinstance(model, Trained) else runner.load(TASK, Path(model))
    stepper = None if emit is None or trained.is_saved_model else \
        decoding.Stepper(trained.model)
    emit = emit or (lambda _piece: None)
    # the first call sets the graph up (a run's traces it): keep that out of the timing
    if stepper is not None:
        with layers.traced_recurrence("fused"):  # traced as the run's signatures are
            stepper.warm_up()
        serving.prompted(trained.inputters["text"], tf.constant([""]))  # the in-graph
        _detokenized(trained.inputters["text"], [])                     # tokenizer, built
    else:
        trained.signatures["generate"](
            prompt=tf.constant([""]), max_tokens=tf.constant([1], tf.int32),
            temperature=tf.constant([0.0]), top_k=tf.constant([0], tf.int32),
            top_p=tf.constant([1.0]), seed=tf.constant([0], tf.int64))
    samples = []
    for i in range(sampling.num_samples):
        if on_sample_start:
            on_sample_start(i)
        seed = sampling.seed + i
        samples.append(_sample(trained, prompt, sampling, seed, emit) if stepper is None
                       else _stream(trained, stepper, prompt, sampling, seed, emit))
    return samples
