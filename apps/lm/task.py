"""Language modelling, declared for `apps.runner`.

One data side, "text": a whole corpus read as one continuous token stream (see
`pipelines.streams`); evaluation reads a whole file as one stream too, so nats per
character compare across tokenisers. Generation lives in `apps.lm.generation`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from apps import schedule, transfer
from apps.baseline import unigram_loss
from apps.config import require
from apps.errors import ConfigError, DataError
from apps.lm import serving
from apps.lm.model import build
from apps.settings import (
    RecurrentRegularisationSettings,
    ScheduledTaskSettings,
    StreamingSettings,
    TransferSettings,
    setting,
)
from apps.task import Task, TrainingPlan
from apps.training import pass_seed
from pipelines import sources, streams
from pipelines.inputters import TextInputter
from pipelines.tokenizer import UNK_ID

log = logging.getLogger(__name__)
TOKENIZERS = ("char", "bpe", "unigram")
TOKENS_PER_BYTE_LINES = 50_000  # sampled lines that estimate a streamed epoch's length
REPORTED = ("nats_per_char", "bits_per_char", "perplexity", "tokens", "chars")


@dataclass
class LanguageModelSettings(RecurrentRegularisationSettings, ScheduledTaskSettings,
                            StreamingSettings, TransferSettings):
    """Everything `apps lm train` can be told; saved as the run's config.json.

    Without validation text, the last --valid-fraction of the training text is held out
    (text is ordered: a random share would leak its neighbours into training).
    """

    data: str = setting("tfds:tiny_shakespeare", "Training text: a UTF-8 file, or "
                        "tfds:NAME[/CONFIG][:SPLIT].")
    text_column: str | None = setting(None, "TFDS feature, or column of a TSV / CSV / JSONL "
                                      "file, holding the text (a table's rows are read one "
                                      "a line) [default: the first text feature; a table's "
                                      "text, sentence, review, ... column].")
    tokenizer: str = setting("char", "SentencePiece model type trained on the training text; "
                             "each reproduces the text exactly.", TOKENIZERS,
                             section="tokenizer")
    vocab_size: int = 2000
    units: int = 512
    bidirectional: bool = setting(False, "", flag=False)  # it predicts from the past only
    embedding_dim: int = 64
    sequence_length: int = setting(64, "Tokens per segment: gradients flow back this far "
                                   "(truncated backpropagation through time).",
                                   section="model")
    stateful: bool = setting(True, "Carry the recurrent state from one segment to the next "
                             "(the batch rows are consecutive parts of the text).",
                             section="model")
    tie_embeddings: bool = setting(False, "Share the embedding matrix with the output layer "
                                   "(with a projection when --units differs from "
                                   "--embedding-dim).", section="model")
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 3e-3
    clip_norm: float | None = 1.0

    def validate(self) -> None:
        super().validate()
        require(not self.bidirectional, "bidirectional", "off for a language model (it "
                "predicts each token from the ones before it)", self.bidirectional)
        require(self.sequence_length >= 1, "sequence_length", "a positive whole number",
                self.sequence_length)


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


def split_off_the_end(train: dict, fraction: float, source: str):
    """The last `fraction` of the text (cut at a line end) as validation: text is ordered."""
    text = train["text"]
    position = int(len(text) * (1 - fraction))
    cut = text.rfind("\n", 0, position) + 1 or position
    if not text[:cut].strip() or not text[cut:].strip():
        raise DataError(f"'{source}' is too short to hold the last {fraction:.0%} out for "
                        "validation: pass --valid.")
    return {"text": text[:cut]}, {"text": text[cut:]}


def validation_length(tokens: int, settings) -> int:
    """Segment length for the validation text: the training batch's rows (a stateful
    model carries one state per row, the same count in training and validation), with
    shorter segments when the text is short; too short even for that is said before
    training, with what to change."""
    length = streams.fitting_length(tokens, settings.batch_size, settings.sequence_length)
    if length < 1:
        raise DataError(f"The validation text has {tokens - 1} tokens, fewer than the "
                        f"{settings.batch_size} parallel streams of --batch-size: give more "
                        "validation text (--valid, or a larger --valid-fraction) or lower "
                        "--batch-size.")
    if length < settings.sequence_length:
        log.info("The validation text is short: it is read in segments of %d tokens "
                 "(--sequence-length %d) across the %d streams of --batch-size.", length,
                 settings.sequence_length, settings.batch_size)
    return length


def unknown_characters(inputter: TextInputter, text: str) -> list[str]:
    """Characters of `text` the tokenizer has no piece for (they become the unknown id)."""
    return sorted(c for c in set(text) if UNK_ID in inputter.tokenizer.encode([c])[0])


def stream_report(log_likelihood: float, tokens: int, chars: int) -> dict:
    """Per-token perplexity and, comparable across tokenisers, loss per character."""
    nats = -float(log_likelihood)
    return {"nats_per_char": nats / max(chars, 1), "bits_per_char": nats / max(chars, 1)
            / math.log(2), "perplexity": math.exp(nats / max(tokens, 1)),
            "tokens": int(tokens), "chars": int(chars), "log_likelihood": -nats}


def streamed_text(settings, inputter: TextInputter, corpus: streams.CorpusFile):
    """Training batches read from the file side by side (one byte range per row of the
    global batch), tokenised by the graph op as they are read; nothing of the text held.
    An epoch's length is estimated from the sample's tokens per byte (the tail a short
    estimate leaves out is under 3% of each row)."""
    length, rows = settings.sequence_length, settings.batch_size
    lines = corpus.sample[:TOKENS_PER_BYTE_LINES]
    sample_bytes = sum(len(line.encode("utf-8")) for line in lines) or 1
    sample_tokens = sum(len(ids) for ids in inputter.tokenizer.encode(lines))
    per_row = corpus.end * sample_tokens / sample_bytes / rows
    steps = int(per_row * 0.97) // length
    if steps < 1:
        raise DataError(f"'{settings.data}' is too short for {rows} streams of "
                        f"--sequence-length {length}: lower --batch-size or turn "
                        "--streaming off.")
    workers, worker = 1, 0
    if settings.strategy == "multi-worker":
        from pipelines.records import Shard

        shard = Shard.of_this_worker()
        workers, worker = shard.count, shard.index
    ranges = streams.byte_ranges(corpus.path, 0, corpus.end, rows)

    def pass_data(pass_index: int):  # apps.training's contract
        return streams.streamed_dataset(
            corpus.path, ranges, inputter.tokenize, length, steps, workers, worker,
            shuffle_seed=None if settings.stateful else pass_seed(settings.seed, pass_index))

    log.info("Streaming %d rows of about %d tokens each (%d batches of %d x %d an epoch); "
             "this worker reads rows %s.", rows, per_row, steps, rows, length,
             ", ".join(str(r + 1) for r in range(worker, rows, workers)[:8]) +
             (", ..." if rows // workers > 8 else ""))
    return pass_data


class LanguageModelTask(Task):
    name = "lm"
    title = "language model"
    settings_class = LanguageModelSettings
    column_options = ("text_column",)
    kept_metrics = REPORTED

    def read(self, source, default_split, text_column=None):
        return {"text": read_text(source, text_column, default_split)}

    def split_off(self, train, fraction, seed, source):
        return split_off_the_end(train, fraction, source)

    def make_inputters(self, settings):
        return {"text": TextInputter(settings.tokenizer, settings.vocab_size, exact_text=True)}

    def read_training_data(self, settings):
        if sources.is_table(settings.data) or \
                not sources.should_stream(settings, tfds_streams=False):
            return super().read_training_data(settings)
        sources.check_file(settings.data)
        valid = self.read(settings.valid, "validation", settings.text_column) \
            if settings.valid else None
        corpus, held = streams.CorpusFile.open(
            settings.data, None if valid else settings.valid_fraction,
            settings.tokenizer_sample, settings.seed)
        if valid is None:
            log.info("Holding out the last %d characters of %s for validation.", len(held),
                     settings.data)
            valid = {"text": held}
        log.info("Streaming %s (%d bytes of training text).", settings.data, corpus.end)
        return corpus, valid

    def fit_inputters(self, inputters, train, valid, settings):
        if isinstance(train, streams.CorpusFile):
            inputters["text"].fit(train.sample, total=len(train.sample))
            return
        lines = train["text"].splitlines(keepends=True)
        inputters["text"].fit(lines, total=len(lines))

    def datasets(self, settings, inputters, train, valid, replicas=1):
        if settings.batch_size % replicas:
            raise ConfigError(f"--batch-size {settings.batch_size} must be a multiple of the "
                              f"{replicas} replicas: each carries its own streams.")
        if isinstance(train, streams.CorpusFile):
            return streamed_text(settings, inputters["text"], train), \
                self.validation_data(settings, inputters["text"], valid)
        train_stream = streams.with_bos(inputters["text"].encode_stream(train["text"]))

        def train_data(epoch):  # pass `epoch` of the training data: apps.training
            return streams.stream_dataset(
                train_stream, settings.batch_size, settings.sequence_length, "training",
                shuffle_seed=None if settings.stateful else pass_seed(settings.seed, epoch))

        log.info("%d training tokens (%d batches of %d x %d).", len(train_stream) - 1,
                 int(train_data(0).cardinality()), settings.batch_size,
                 settings.sequence_length)
        return train_data, self.validation_data(settings, inputters["text"], valid)

    @staticmethod
    def validation_data(settings, inputter: TextInputter, valid) -> tf.data.Dataset:
        """The validation text (held in memory: --valid, or a bounded hold-out) as
        streams of the training batch's rows, shorter segments if it is short."""
        valid_ids = inputter.encode_stream(valid["text"])
        unknown = int(np.sum(valid_ids == UNK_ID))
        if unknown:
            log.warning("%d token(s) of the validation text are characters the training text "
                        "lacks: they count as unknown.", unknown)
        valid_length = validation_length(len(valid_ids) + 1, settings)
        log.info("%d validation tokens.", len(valid_ids))
        return streams.stream_dataset(streams.with_bos(valid_ids), settings.batch_size,
                                      valid_length, "validation")

    def shared_layers(self, model):
        """Embedding and encoder, and the output layer (an LM fine-tuned from an LM)."""
        output = {"lm_output": [model.logits_layer]} if model.logits_layer is not None else {
            "lm_output": [transfer.WeightGroup(
                *(model.projection.weights if model.projection is not None else []),
                model.output_bias)]}
        return {"embedding": [model.embedding], **transfer.encoder_layers(model.encoder),
                **output}

    def baseline_loss(self, settings, inputters, train):
        """Each token's frequency in (up to a million characters of) the training text
        (of the line sample when the text stays on disk)."""
        text = "\n".join(train.sample) if isinstance(train, streams.CorpusFile) \
            else train["text"]
        ids = inputters["text"].encode_stream(text[:1_000_000])
        return unigram_loss(np.bincount(ids, minlength=inputters["text"].vocab_size))

    def build_model(self, settings, inputters):
        return build(settings, inputters["text"].vocab_size)

    def compile_model(self, model, settings, plan: TrainingPlan):
        if settings.stateful:
            (ids, _first), _targets = plan.valid_data.element_spec
            model.carry_state(settings.batch_size // plan.replicas, ids.shape[0] // plan.replicas)
        model.compile(optimizer=schedule.adam(settings, plan),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      jit_compile=False)

    def score(self, trained, examples, source: str = "the text"):
        """nats_per_char, bits_per_char, perplexity, tokens and chars of a whole text,
        from the `score` signature (a run or a SavedModel alike)."""
        text = examples["text"]
        if "text" in trained.inputters:  # a run can name what its tokenizer lacks
            unknown = unknown_characters(trained.inputters["text"], text)
            if unknown:
                log.warning("'%s' holds %d character(s) the model never saw (%s): they count "
                            "as unknown.", source, len(unknown), "".join(unknown[:20]))
        scores = trained.signatures["score"](text=tf.constant([text]))
        return stream_report(float(scores["log_likelihood"][0]),
                             int(scores["tokens"][0]), int(scores["chars"][0]))

    def signatures(self, trained):
        return serving.signatures(trained.model, trained.inputters["text"])


TASK = LanguageModelTask()
