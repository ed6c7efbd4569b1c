"""Translation, declared for `apps.runner`.

Two data sides, "source" and "target": one joint SentencePiece model trained on both
sides' text (the default; the target embedding then also serves as the source's and
as the output layer) or one model each (`--separate-vocab`). The best epoch is the
one whose validation translations score the highest sacreBLEU, decoded as the user
will decode them (greedy, or the configured beam). Translating and scoring go through
the same signatures for a run directory and an exported SavedModel
(`apps.translation.translate`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from apps import runner, schedule, transfer
from apps.baseline import unigram_loss
from apps.config import require
from apps.errors import ConfigError, DataError
from apps.graphs import dataset_function
from apps.settings import ScheduledTaskSettings, StreamingSettings, TransferSettings, setting
from apps.task import Examples, Task, TrainingPlan
from apps.training import pass_seed
from apps.translation import metrics, serving, translate
from apps.translation import shortlist as shortlists
from apps.translation.model import ATTENTIONS, build
from pipelines import batching, parallel, records, sources
from pipelines.inputters import TextInputter
from pipelines.tokenizer import EOS_ID

log = logging.getLogger(__name__)


@dataclass
class TranslationSettings(ScheduledTaskSettings, StreamingSettings, TransferSettings):
    """Everything `apps translation train` can be told; saved as the run's config.json."""

    data: str = setting("", "Training pairs: PREFIX (the files PREFIX.<source-lang> and "
                        "PREFIX.<target-lang>, line N translating line N), a TSV/CSV/JSONL "
                        "file of pairs, or tfds:NAME[/CONFIG][:SPLIT].")
    source_lang: str | None = setting(None, "Source language code: the suffix of a prefix's "
                                      "source file, or a column / TFDS feature name.")
    target_lang: str | None = setting(None, "Target language code (as --source-lang).")
    source_column: str | None = setting(None, "Column of a TSV/CSV/JSONL file holding the "
                                        "source [default: the source language, source or "
                                        "src; a table without a header: its first column].")
    target_column: str | None = setting(None, "Column holding the target [default: the "
                                        "target language, target or tgt; else the second "
                                        "column].")
    separate_vocab: bool = setting(False, "Train one SentencePiece model per side instead of "
                                   "one joint model (which also shares the embeddings).",
                                   section="tokenizer")
    max_length: int = setting(64, "Tokens per sentence: longer training pairs are dropped "
                              "(and counted), longer inputs are cut (with a warning).",
                              section="tokenizer")
    cell: str = "gru"
    units: int = 256
    embedding_dim: int = 256
    dropout: float = 0.2
    attention: str = setting("bahdanau", "bahdanau (additive, fed into the decoder's "
                             "recurrence) or luong (multiplicative, after it: the decoder "
                             "then trains over the whole target at once).", ATTENTIONS,
                             section="model")
    label_smoothing: float = setting(0.1, "Share of each target's probability spread over "
                                     "the vocabulary in the loss.", section="training")
    clip_norm: float | None = 1.0
    beam_size: int = setting(1, "Beam width when scoring the validation data (1: greedy); "
                             "the default of translate, evaluate and export.",
                             section="decoding")
    length_penalty: float = setting(0.6, "GNMT length penalty alpha for beam search (0: "
                                    "plain log-probability).", section="decoding")
    max_length_ratio: float = setting(2.0, "Most output tokens per source token.",
                                      section="decoding")
    init_from: str | None = setting(
        None, "Start from the whole of this translation run or exported translator "
        "(fine-tuning on new pairs): its weights, its tokenizer(s) and its sizes. For "
        "language models, see --init-encoder-from and --init-decoder-from.",
        section="training")
    init_encoder_from: str | None = setting(
        None, "Start the encoder from this source-language model (an `apps lm` run or "
        "export): its embedding becomes the source embedding, its recurrent layers the "
        "encoder's forward layers (the backward ones start fresh), and its tokenizer the "
        "source side's. Implies --separate-vocab.", section="training")
    init_decoder_from: str | None = setting(
        None, "Start the decoder from this target-language model (an `apps lm` run or "
        "export): its embedding becomes the target embedding (and output layer), its "
        "recurrent layers the decoder's (with Bahdanau attention, the first layer's "
        "input rows that read the attention context start fresh), and its tokenizer "
        "the target side's. Implies --separate-vocab.", section="training")

    def validate(self) -> None:
        super().validate()
        require(self.max_length >= 1, "max_length", "a positive whole number", self.max_length)
        require(self.beam_size >= 1, "beam_size", "a positive whole number", self.beam_size)
        require(0.0 <= self.label_smoothing < 1.0, "label_smoothing", "in [0, 1)",
                self.label_smoothing)
        require(self.length_penalty >= 0.0, "length_penalty", "zero or more",
                self.length_penalty)
        require(self.max_length_ratio > 0.0, "max_length_ratio", "positive",
                self.max_length_ratio)
        if self.init_from and (self.init_encoder_from or self.init_decoder_from):
            raise ConfigError("--init-from starts the whole translator from a translation "
                              "model, --init-encoder-from and --init-decoder-from a side each "
                              "from a language model: pass one or the other.")

    def init_sources(self) -> list[str]:
        return [path for path in (self.init_from, self.init_encoder_from,
                                  self.init_decoder_from) if path]


SEPARATE = "which gives each side its own language model's tokenizer"


def encoder_side(name: str) -> str | None:
    """A language model's layer -> the translator's, for --init-encoder-from."""
    return "source_embedding" if name == "embedding" else \
        name if name.startswith("encoder/") else None


def decoder_side(name: str) -> str | None:
    """A language model's layer -> the translator's, for --init-decoder-from (its
    forward layers only: the decoder reads left to right)."""
    if name == "embedding":
        return "target_embedding"
    if name.startswith("encoder/") and name.endswith("/forward"):
        return "decoder/" + name.removeprefix("encoder/")
    return None


def pair_ids(inputters, examples: Examples, max_length: int, source: str):
    """(source ids, target ids + end id) as `Ragged` columns, without the pairs that have
    a side longer than `max_length` tokens (a warning counts them).

    Lengths come from the same SentencePiece model as the graph op (its Python binding,
    untruncated), so a long pair is dropped whole rather than cut mid-sentence.
    """
    sides = [inputters[side].tokenizer.encode(examples[side]) for side in ("source", "target")]
    keep = [i for i, (s, t) in enumerate(zip(*sides)) if len(s) <= max_length
            and len(t) <= max_length]
    dropped = len(sides[0]) - len(keep)
    if dropped:
        log.warning("Dropped %d of %d pair(s) of %s longer than --max-length %d tokens.",
                    dropped, len(sides[0]), source, max_length)
    if not keep:
        raise DataError(f"Every pair of {source} is longer than --max-length {max_length} "
                        "tokens: raise --max-length.")
    return (batching.Ragged.from_rows([sides[0][i] for i in keep]),
            batching.Ragged.from_rows([sides[1][i] + [EOS_ID] for i in keep]))


def both_sides(values) -> bool:
    return bool(values[0].strip() and values[1].strip())


def streamed_pairs(settings, inputters, train: records.Streamed):
    """Training batches read from the files on every pass (`pipelines.records`), as a
    function of the pass (`apps.training`):
    tokenised by the graph op, pairs over --max-length dropped, bucketed by length."""
    source, target = inputters["source"], inputters["target"]
    sample = [values for values in train.scan.record_sample]
    lengths = [(len(s), len(t) + 1) for s, t in zip(
        source.tokenizer.encode([v[0] for v in sample]),
        target.tokenizer.encode([v[1] for v in sample]))]
    kept = [max(pair) for pair in lengths if max(pair) <= settings.max_length + 1]
    if not kept:
        raise DataError(f"Every sampled pair of {settings.data} is longer than --max-length "
                        f"{settings.max_length} tokens: raise --max-length.")
    keep_rate = len(kept) / len(lengths)
    if keep_rate < 1:
        log.warning("About %.1f%% of the pairs of %s are longer than --max-length %d tokens "
                    "and are left out.", 100 * (1 - keep_rate), settings.data,
                    settings.max_length)
    workers = train.workers(settings.batch_size)
    boundaries = batching.bucket_boundaries(kept, settings.batch_size)
    steps = batching.stream_steps(round(train.scan.training_records * keep_rate / workers)
                                  * workers, settings.batch_size, boundaries)
    def chunk(sources, targets):
        """A chunk of pairs tokenised, the long ones dropped, each target with its end id,
        and each pair's bucket length: whole-chunk ops, not one op per pair."""
        s, t = source.tokenize(sources, cut=False), target.tokenize(targets, cut=False)
        t = tf.concat([t, tf.fill([t.nrows(), 1], tf.constant(EOS_ID, t.dtype))], axis=1)
        keep = tf.logical_and(s.row_lengths() <= settings.max_length,
                              t.row_lengths() <= settings.max_length + 1)
        s, t = tf.ragged.boolean_mask(s, keep), tf.ragged.boolean_mask(t, keep)
        return tf.cast(tf.maximum(s.row_lengths(), t.row_lengths()), tf.int32), s, t

    def pass_data(pass_index: int) -> tf.data.Dataset:  # apps.training's contract
        order = records.DataOrder(settings.seed, pass_index)
        rows = batching.record_dataset(train.training_records(order, settings.shuffle_buffer,
                                                              both_sides), 2)
        rows = batching.tokenized_rows(rows, chunk).map(dataset_function(  # plain tensors
            lambda length, s, t: (length, tf.identity(s), tf.identity(t))))
        return batching.streamed_batches(rows, settings.batch_size, boundaries, steps, workers)

    log.info("%d batches an epoch, shuffled %d pairs at a time.", steps,
             settings.shuffle_buffer)
    return pass_data


SCORE_BATCH = 64  # sentences a batch when scoring: evaluate's default and validation's


class TranslationTask(Task):
    name = "translation"
    title = "translator"
    settings_class = TranslationSettings
    monitor, monitor_mode = "val_bleu", "max"
    # the 8,000-piece output product dominates a step: bfloat16 pays with avx512_bf16
    # too (a step 1.32x faster, +1.9 val BLEU in 10 minutes, docs/translation.md)
    bfloat16_cpus = ("amx_bf16", "avx512_bf16")
    column_options = ("source_lang", "target_lang", "source_column", "target_column")
    kept_metrics = ("bleu", "chrf", "signature", "sentences")
    split_suffix = ".tsv"

    def read(self, source, default_split, source_lang=None, target_lang=None,
             source_column=None, target_column=None):
        pairs = parallel.read_parallel(source, source_lang, target_lang, source_column,
                                       target_column, default_split)
        return {"source": pairs.sources, "target": pairs.targets}

    def write_examples(self, examples, path):
        """A TSV of the pairs with the header `source<TAB>target` (what `--data` and
        `evaluate --data` read back); False for a streamed corpus (not held in memory) and
        for a sentence with a tab or a line break, which the TSV could not hold."""
        if not isinstance(examples, dict):
            return False
        pairs = list(zip(examples["source"], examples["target"]))
        if any(len(f"{s} {t}".splitlines()) > 1 or "\t" in s + t for s, t in pairs):
            return False
        path.write_text("source\ttarget\n" + "".join(f"{s}\t{t}\n" for s, t in pairs),
                        encoding="utf-8")
        return True

    def evaluation_options(self, trained):
        return {key: trained.metadata.config.get(key) for key in self.column_options}

    def make_inputters(self, settings):
        if settings.separate_vocab:
            return {side: TextInputter(settings.tokenizer, settings.vocab_size,
                                       settings.max_length, filename=f"{side}.model")
                    for side in ("source", "target")}
        joint = TextInputter(settings.tokenizer, settings.vocab_size, settings.max_length)
        return {"source": joint, "target": joint}

    def read_training_data(self, settings):
        if not sources.should_stream(settings, settings.source_lang, settings.target_lang):
            return super().read_training_data(settings)
        reader = parallel.pair_reader(settings.data, settings.source_lang, settings.target_lang,
                                      settings.source_column, settings.target_column)
        columns = {key: getattr(settings, key) for key in self.column_options}
        return records.streamed_splits(
            reader, settings, ("source", "target"),
            lambda: self.read(settings.valid, "validation", **columns), (0, 1), keep=both_sides)

    def fit_inputters(self, inputters, train, valid, settings):
        if isinstance(train, records.Streamed):
            sample = train.scan.text_sample
            if inputters["source"] is inputters["target"]:
                inputters["source"].fit(sample, total=len(sample))
            else:
                for position, side in enumerate(("source", "target")):
                    inputters[side].fit(train.scan.text_samples[position])
            return
        if inputters["source"] is inputters["target"]:
            inputters["source"].fit(train["source"] + train["target"],
                                    total=2 * len(train["source"]))
        else:
            super().fit_inputters(inputters, train, valid, settings)

    def datasets(self, settings, inputters, train, valid, replicas=1):
        valid_data = batching.bucketed_dataset(
            pair_ids(inputters, valid, settings.max_length, settings.valid or settings.data),
            settings.batch_size, settings.seed, False)
        if isinstance(train, records.Streamed):
            return streamed_pairs(settings, inputters, train), valid_data
        train_columns = pair_ids(inputters, train, settings.max_length, settings.data)
        return (lambda epoch: batching.bucketed_dataset(  # pass `epoch`: apps.training
            train_columns, settings.batch_size, pass_seed(settings.seed, epoch)), valid_data)

    def init_starts(self, settings):
        """--init-from: a translator, whole; --init-encoder-from / --init-decoder-from:
        a language model for each side, with that side's tokenizer."""
        if settings.init_from:
            return transfer.whole_model(
                settings, sides={"source": "source", "target": "target"},
                tasks=("translation",),
                tokenizer_settings=(*transfer.TOKENIZER_SETTINGS, "separate_vocab"),
                adopts=("attention", "bidirectional", "residual"))
        sides = [("--init-encoder-from", "init_encoder_from", "encoder", "source", encoder_side),
                 ("--init-decoder-from", "init_decoder_from", "decoder", "target", decoder_side)]
        return [transfer.Start(flag, key, getattr(settings, key), role=role, sides={side: "text"},
                               rename=rename, tasks=("lm",), tokenizer_settings=(),
                               forced={"separate_vocab": True}, forced_reason=SEPARATE)
                for flag, key, role, side, rename in sides if getattr(settings, key)]

    def shared_layers(self, model):
        """The whole translator (a translator fine-tuned from a translator); a language
        model's embedding and layers map onto a side (`encoder_side`, `decoder_side`).
        With Bahdanau attention the decoder's first layer also reads the context: a
        language model fills the rows of its input kernel that read the embedding."""
        decoder = transfer.encoder_layers(model.decoder, "decoder")
        if model.feeds_attention:
            first = "decoder/0/forward"
            decoder[first] = [transfer.InputRows(decoder[first][0],
                                                 model.settings["embedding_dim"])]
        return {"source_embedding": [model.source_embedding],
                "target_embedding": [model.target_embedding],
                **transfer.encoder_layers(model.encoder), **decoder,
                "bridge": [model.bridge], "attention": [model.attention],
                "readout": [model.readout],
                "output_bias": [transfer.WeightGroup(model.output_bias)]}

    def baseline_loss(self, settings, inputters, train):
        """The best loss of one fixed target distribution (label-smoothed), from up to
        20,000 training targets with their end ids."""
        target = inputters["target"]
        texts = [values[1] for values in train.scan.record_sample] if isinstance(
            train, records.Streamed) else train["target"]
        counts = np.zeros(target.vocab_size)
        for ids in target.tokenizer.encode(texts[:20_000]):
            np.add.at(counts, [*ids, EOS_ID], 1)
        return unigram_loss(counts, target.vocab_size, settings.label_smoothing)

    def build_model(self, settings, inputters):
        return build(settings, inputters["source"].vocab_size, inputters["target"].vocab_size)

    def compile_model(self, model, settings, plan: TrainingPlan):
        model.compile(optimizer=schedule.adam(settings, plan), jit_compile=False)

    def validation_decoding(self, trained, valid):
        """Batched as `score` batches by default, so the run's report is what `evaluate`
        gives (a batch's length limit follows its longest source)."""
        return [row["translation"] for row in translate.translate(
            trained, valid["source"], batch_size=SCORE_BATCH)]

    def validation_metrics(self, trained, valid, decoded=None):
        hypotheses = self.validation_decoding(trained, valid) if decoded is None else decoded
        return {"val_bleu": metrics.bleu(hypotheses, valid["target"])}

    def score(self, trained, examples, source: str = "the data", beam_size: int | None = None,
              batch_size: int = SCORE_BATCH, output: str | None = None,
              shortlist: bool | None = None,
              decoded: list[str] | None = None) -> dict[str, Any]:
        """sacreBLEU BLEU and chrF of the detokenized translations, with the signature;
        `shortlist`: decode with or without the vocabulary shortlist (a run; an export
        decodes as it was exported); `decoded`: these examples' translations, already
        made (the runner's last report)."""
        if decoded is None:
            trained = runner.with_options(self, trained, shortlist=shortlist)
            decoded = [row["translation"] for row in translate.translate(
                trained, examples["source"], beam_size, batch_size)]
        if output:
            Path(output).write_text("".join(h + "\n" for h in decoded), encoding="utf-8")
        return {**metrics.report(decoded, examples["target"]),
                "beam_size": translate.beam_size_of(trained, beam_size)}

    def fit_extras(self, directory, settings, inputters, train):
        """The lexical table of the vocabulary shortlist, from a bounded sample of the
        training pairs (a streamed corpus's reservoir sample)."""
        sources, targets = shortlists.training_pairs(train)
        shortlists.fit_from_texts(inputters, sources, targets, settings.seed).save(directory)

    def signatures(self, trained):
        return serving.signatures(trained, int(trained.metadata["beam_size"]),
                                  self.shortlist_of(trained))

    def shortlist_of(self, trained):
        """The table's part the signatures keep, or None (none asked, or none to be had:
        the metadata then says so)."""
        sizes = trained.metadata.entries.get("shortlist_sizes")
        if not trained.metadata.entries.get("shortlist") or not sizes:
            return None
        table = shortlists.table_for_run(trained.path, trained.settings, trained.inputters,
                                         self.read_training_data)
        if table is None:
            trained.metadata.entries = {**trained.metadata.entries, "shortlist": False,
                                        "shortlist_sizes": None}
            return None
        return table.cut(sizes["per_source_piece"], sizes["frequent"])

    def metadata_entries(self, settings, inputters, beam_size: int | None = None,
                         shortlist: bool | None = None):
        """`beam_size`: serving_default's (default: the run's --beam-size); `shortlist`:
        whether the searches run over a vocabulary shortlist (default: yes)."""
        return {"beam_size": int(beam_size or settings.beam_size),
                "shortlist": shortlist is not False,
                "shortlist_sizes": None if shortlist is False else {
                    "per_source_piece": shortlists.PER_SOURCE_PIECE,
                    "frequent": shortlists.FREQUENT},
                "length_penalty": settings.length_penalty,
                "max_length_ratio": settings.max_length_ratio,
                "max_length": settings.max_length,
                "languages": [settings.source_lang, settings.target_lang]}


TASK = TranslationTask()
