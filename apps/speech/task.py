"""Speech to text, declared for `apps.runner`.

Two data sides: "audio" (an `AudioInputter`: audio files, or WAV bytes in the exported
graph, to log-mel frames) and
"text" (a `TextInputter`: a SentencePiece model of the training transcripts,
characters by default). The best epoch is the one with the lowest validation word
error rate of greedy decoding. `transcribe` below serves the CLI, `score` and the
per-epoch validation alike, through `serving_default`: a SavedModel's, or for a run
directory the same function built in memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import tensorflow as tf

from apps import runner, schedule, transfer
from apps.config import require
from apps.errors import ConfigError, DataError, graph_assertion
from apps.graphs import graph_function
from apps.settings import ScheduledTaskSettings, TransferSettings, setting
from apps.signature_inputs import parameter_spec
from apps.speech import decoding, fusion, joining
from apps.speech.data import recording_batches
from apps.speech.fusion import Fusion
from apps.speech.model import build
from apps.task import Examples, Task, Trained, TrainingPlan
from apps.training import pass_seed
from pipelines import batching
from pipelines.audio import (
    AudioInputter,
    AudioProblem,
    Joined,
    add_noise,
    read_audio,
    resample,
    resampled_length,
    say_conversions,
    spec_augment,
    speed_perturb,
    wav_bytes,
)
from pipelines.inputters import TextInputter
from pipelines.speech_sources import read_recordings, write_manifest_csv

log = logging.getLogger(__name__)
SPEECH_TOKENIZERS = ("char", "unigram")
NOISE_SNR_RANGE = 20.0  # dB above --noise-snr that the added noise may be as quiet as
EXAMPLES_SHOWN = 3  # best, median and worst transcriptions in a report


@dataclass
class SpeechSettings(ScheduledTaskSettings, TransferSettings):
    """Everything `apps speech train` can be told; saved as the run's config.json."""

    data: str = setting("tfds:spoken_digit", "Training recordings (WAV, FLAC, OGG/Vorbis, "
                        "NIST SPHERE): a manifest CSV (wav_filename,wav_filesize,transcript; "
                        "paths relative to it), a NeMo JSONL manifest (audio_filepath,text), "
                        "or tfds:NAME[:SPLIT].")
    valid_fraction: float = setting(
        0.1, "Share of the training recordings held out for validation when --valid is not "
        "given, drawn by --seed. The run writes that split as manifests: RUN/heldout.csv "
        "(to evaluate on) and RUN/kept.csv (the recordings trained on, e.g. for the "
        "transcripts of a fusion LM: apps lm train --data RUN/kept.csv --text-column "
        "transcript).")
    tokenizer: str = setting("char", "Output units: characters, or unigram SentencePiece "
                             "pieces trained on the transcripts.", SPEECH_TOKENIZERS,
                             section="tokenizer")
    vocab_size: int = 256
    sample_rate: int | None = setting(None, "The model's sample rate in Hz [default: the "
                                      "commonest rate of the training recordings]; recordings "
                                      "at other rates are resampled (soxr).",
                                      section="features")
    mels: int = setting(40, "Mel bands of the log-mel spectrogram.", section="features")
    time_masks: int = setting(2, "SpecAugment time masks per utterance (training only).",
                              section="features")
    time_mask_width: int = setting(10, "Widest time mask, in frames (at most a fifth of the "
                                   "utterance).", section="features")
    freq_masks: int = setting(2, "SpecAugment frequency masks per utterance (training only).",
                              section="features")
    freq_mask_width: int = setting(8, "Widest frequency mask, in mel bands.",
                                   section="features")
    speed_perturb: float = setting(0.1, "Speed perturbation (training only): each utterance "
                                   "is resampled by a random factor in [1 - this, 1 + this], "
                                   "tempo and pitch together; 0: off.", section="features")
    join_recordings: int = setting(
        0, "Connected speech for corpora of isolated words: sequences joined per training "
        "pass from the training recordings (--join-min to --join-max of them, 100-300 ms of "
        "silence between; a new seeded draw every pass); validation gets sequences joined "
        "from its own recordings in the same proportion. 0: off.", section="features")
    join_min: int = setting(2, "Fewest recordings in a joined sequence.", section="features")
    join_max: int = setting(7, "Most recordings in a joined sequence.", section="features")
    noise_snr: float | None = setting(None, "Additive white noise (training only) at a random "
                                      "signal-to-noise ratio between this and 20 dB more, per "
                                      "utterance, e.g. 10 [default: no noise].",
                                      section="features")
    conv_filters: int = setting(128, "Channels of the convolutional front end.",
                                section="model")
    conv_kernel: int = setting(5, "Front-end kernel width, in frames.", section="model")
    time_stride: int = setting(2, "How many frames the front end merges into one recurrent "
                               "step (10 ms frames).", section="model")
    cell: str = "gru"
    units: int = 128
    layers: int = 2
    dropout: float = 0.1
    embedding_dim: int = setting(128, "", flag=False)  # audio has no token embedding
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 2e-3
    clip_norm: float | None = 5.0
    init_from: str | None = setting(
        None, "Start from this speech run or exported recogniser (an FSDD run for AN4, "
        "say): its front end and recurrent encoder are loaded, and its output layer when "
        "the vocabulary this run fits from its transcripts is the source's; its sizes are "
        "taken unless given. config.json records what was loaded.", section="training")

    def validate(self) -> None:
        super().validate()
        for key in ("mels", "conv_filters", "conv_kernel", "time_stride"):
            require(getattr(self, key) >= 1, key, "a positive whole number", getattr(self, key))
        for key in ("time_masks", "time_mask_width", "freq_masks", "freq_mask_width"):
            require(getattr(self, key) >= 0, key, "zero or more", getattr(self, key))
        require(self.join_recordings >= 0, "join_recordings", "zero or more",
                self.join_recordings)
        require(self.join_min >= 1, "join_min", "a positive whole number", self.join_min)
        require(self.join_max >= self.join_min, "join_max", "at least --join-min "
                f"({self.join_min})", self.join_max)
        require(0 <= self.speed_perturb < 1, "speed_perturb", "at least 0 and below 1",
                self.speed_perturb)
        require(self.sample_rate is None or self.sample_rate >= 1000, "sample_rate",
                "at least 1000 Hz", self.sample_rate)


# --------------------------------------------------------------------- transcription


def transcriber(trained: Trained, n_best: int = 1):
    """WAV bytes [N] -> {"transcript", "score"}: exported as `serving_default`, decoding
    with the beam size of `trained.metadata`; with `n_best` > 1 also "transcripts"
    [N, K] and "scores" [N, K], best first (K: at most the beam size), for
    `transcribe_n_best`."""
    audio, text, model = trained.inputters["audio"], trained.inputters["text"], trained.model
    text.graph_tokenizer  # noqa: B018 - created eagerly for every graph
    beam_size = max(int(trained.metadata["beam_size"]), n_best)

    def transcribe(wav):
        logits, lengths = model(audio.preprocess(wav), training=False)
        found = decoding.decode(logits, lengths, beam_size, n_best)
        shape = tf.shape(found.lengths)
        flat = tf.RaggedTensor.from_tensor(tf.reshape(found.ids, [shape[0] * shape[1], -1]),
                                           lengths=tf.reshape(found.lengths, [-1]))
        texts = tf.reshape(text.detokenize(flat), shape)
        out = {"transcript": texts[:, 0], "score": found.scores[:, 0]}
        if n_best > 1:
            out.update(transcripts=texts, scores=found.scores)
        return out

    return transcribe


def sample_rate(trained: Trained) -> int:
    return int(trained.metadata.inputters["audio"]["sample_rate"])


def transcribe(trained: Trained, recordings: list, batch_size: int = 32,
               lengths: list[int] | None = None, read=None, fused: Fusion | None = None
               ) -> tuple[list[str], list[float]]:
    """Transcripts and scores in input order, from `serving_default` (a run or a
    SavedModel alike: the samples travel as float WAV bytes, exactly); recordings of
    similar length share a batch.

    `recordings` are sample arrays at the model's rate, or anything `read` turns into
    them (a path, its bytes), read one batch at a time; `lengths` (about how many
    samples each has) orders them when they are not arrays yet. With `fused`, beam
    search with a language model (apps.speech.fusion) decodes instead.
    """
    serve = fused.runner(trained, int(trained.metadata["beam_size"])) if fused else \
        trained.signatures["serving_default"]
    transcripts, scores = [""] * len(recordings), [0.0] * len(recordings)
    for positions, answer in _batches(trained, serve, recordings, batch_size, lengths, read):
        for position, words, score in zip(positions, answer["transcript"].numpy(),
                                          answer["score"].numpy()):
            transcripts[position] = words.decode("utf-8")
            scores[position] = float(score)
    return transcripts, scores


def transcribe_n_best(trained: Trained, recordings: list, n_best: int,
                      batch_size: int = 32) -> list[list[dict[str, Any]]]:
    """The `n_best` likeliest transcripts of each recording from `transcribe_n_best`
    (CTC beam search; an export's list is at most its beam size), best first:
    {"transcript", "score"} each."""
    serve = trained.signature("transcribe_n_best")
    found: list[list[dict[str, Any]]] = [[] for _ in recordings]
    for positions, answer in _batches(trained, lambda audio: serve(
            audio=audio, n_best=tf.constant(n_best)), recordings, batch_size):
        for position, texts, scores in zip(positions, answer["transcripts"].numpy(),
                                           answer["scores"].numpy()):
            found[position] = [{"transcript": t.decode("utf-8"), "score": float(s)}
                               for t, s in zip(texts, scores)]
    return found


def _batches(trained, serve, recordings, batch_size, lengths=None, read=None):
    """(positions, answer) per batch of recordings of similar length, sent as WAV bytes."""
    rate = sample_rate(trained)
    sizes = lengths if lengths is not None else [len(r) for r in recordings]
    order = np.argsort(sizes, kind="stable")
    for start in range(0, len(order), batch_size):
        positions = order[start : start + batch_size]
        rows = [recordings[i] if read is None else read(i) for i in positions]
        wavs = [wav_bytes(np.asarray(row, np.float32), rate) for row in rows]
        try:
            yield positions, serve(audio=tf.constant(wavs, tf.string))
        except tf.errors.InvalidArgumentError as error:  # a SavedModel's own check
            raise DataError(graph_assertion(error.message) or error.message) from None


def transcribe_examples(trained: Trained, examples: Examples, batch_size: int = 32,
                        fused: Fusion | None = None) -> list[str]:
    """Transcripts of a source's recordings, read from their files batch by batch; one
    that cannot be read any more is refused by name."""
    rate = sample_rate(trained)
    audio = AudioInputter(rate)

    def read(i):
        try:
            return audio.read(examples["audio"][i])
        except (AudioProblem, OSError) as error:
            reason = str(error) if isinstance(error, AudioProblem) else \
                f"it cannot be read ({error.strerror or error})"
            raise DataError(f"'{examples['path'][i]}' cannot be transcribed: {reason}.") \
                from None

    lengths = [resampled_length(n, r, rate) for n, r in zip(examples["frames"],
                                                            examples["rate"])]
    return transcribe(trained, examples["audio"], batch_size, lengths, read, fused)[0]


def examples_report(paths: list[str], references: list[str], hypotheses: list[str]
                    ) -> dict[str, Any]:
    """WER and CER (jiwer) and, as DeepSpeech reports them, the best, median and worst
    transcriptions with their own WER."""
    if not references:
        return {"wer": 0.0, "cer": 0.0, "utterances": 0, "exact": 0}
    each = [jiwer.wer(r, h) for r, h in zip(references, hypotheses)]
    order = sorted(range(len(each)), key=lambda i: (each[i], i))
    middle = max(0, len(order) // 2 - EXAMPLES_SHOWN // 2)
    picks = {"best": order[:EXAMPLES_SHOWN], "median": order[middle : middle + EXAMPLES_SHOWN],
             "worst": order[::-1][:EXAMPLES_SHOWN]}
    report = {"wer": float(jiwer.wer(references, hypotheses)),
              "cer": float(jiwer.cer(references, hypotheses)),
              "utterances": len(references), "exact": sum(w == 0 for w in each)}
    for kind, rows in picks.items():
        report[kind] = [{"path": paths[i], "reference": references[i],
                         "transcript": hypotheses[i], "wer": round(each[i], 4)} for i in rows]
    return report


# ------------------------------------------------------------------------------ task


class SpeechTask(Task):
    name = "speech"
    title = "speech recogniser"
    settings_class = SpeechSettings
    monitor, monitor_mode = "val_wer", "min"
    kept_metrics = ("wer", "cer", "utterances")
    reading_options = ("join_recordings", "join_min", "join_max", "join_seed")

    split_suffix = ".csv"

    def read(self, source, default_split):
        return read_recordings(source, default_split).as_examples()

    def write_examples(self, examples, path):
        """A manifest CSV of the recordings read from files (sequences joined for
        validation are not: they are drawn again from the recordings); False for
        recordings held in memory (tfds:)."""
        rows = [(audio, text) for audio, text in zip(examples["audio"], examples["text"])
                if not isinstance(audio, Joined)]
        if not all(isinstance(audio, str) for audio, _ in rows):
            return False
        write_manifest_csv(path, [audio for audio, _ in rows], [text for _, text in rows])
        return True

    def read_training_data(self, settings):
        """With --join-recordings, validation also reads connected speech: sequences
        joined from its own recordings (a fixed draw), as many in proportion as training
        joins from its recordings every pass."""
        train, valid = super().read_training_data(settings)
        if settings.join_recordings:
            count = max(1, round(settings.join_recordings * len(valid["audio"])
                                 / len(train["audio"])))
            valid = joining.concat(valid, joining.joined(
                valid, count, settings.join_min, settings.join_max, [settings.seed, 1]))
            log.info("Joining %d sequences of %d-%d recordings per training pass; validation: "
                     "%d of its recordings and %d sequences joined from them.",
                     settings.join_recordings, settings.join_min, settings.join_max,
                     len(valid["audio"]) - count, count)
        return train, valid

    def read_evaluation_data(self, source, columns=None, join_recordings=None, join_min=None,
                             join_max=None, join_seed=None):
        """The recordings, or with `join_recordings` that many sequences joined from them
        (`join_min`..`join_max` recordings each, a draw fixed by `join_seed`) instead."""
        examples = super().read_evaluation_data(source, columns)
        if not join_recordings:
            return examples
        fewest = join_min or SpeechSettings.join_min
        most = join_max or SpeechSettings.join_max
        if most < fewest:
            raise ConfigError(f"--join-max ({most}) must be at least --join-min ({fewest}).")
        return joining.joined(examples, join_recordings, fewest, most, [join_seed or 0, 2])

    def make_inputters(self, settings):
        return {"audio": AudioInputter(settings.sample_rate, settings.mels),
                "text": TextInputter(settings.tokenizer, settings.vocab_size)}

    def fit_inputters(self, inputters, train, valid, settings):
        inputters["audio"].fit(train["rate"])
        inputters["text"].fit(train["text"])

    def datasets(self, settings, inputters, train, valid, replicas=1):
        audio, text = inputters["audio"], inputters["text"]

        @graph_function(input_signature=[*AudioInputter.samples_spec(),
                                         tf.TensorSpec([2], tf.int64)])
        def augment(waves, lengths, seed):  # one trace serves every pass
            speed_seed, noise_seed, mask_seed = tf.unstack(
                tf.random.experimental.stateless_split(seed, 3))
            waves, lengths = speed_perturb(waves, lengths, settings.speed_perturb, speed_seed)
            if settings.noise_snr is not None:
                waves = add_noise(waves, lengths, settings.noise_snr,
                                  settings.noise_snr + NOISE_SNR_RANGE, noise_seed)
            values, frames = audio.features(waves, lengths)
            values = spec_augment(values, frames, mask_seed, settings.time_masks,
                                  settings.time_mask_width, settings.freq_masks,
                                  settings.freq_mask_width)
            return values, frames

        def prepared(examples: Examples, source: str):
            say_conversions(examples["path"], examples["rate"], examples["channels"],
                            audio.sample_rate, source)
            return examples, text.encode(examples["text"]), source

        def with_joined(data, seed: int):
            """The training recordings and this pass' sequences joined from them."""
            examples, ids, source = data
            if not settings.join_recordings:
                return data
            extra = joining.joined(train, settings.join_recordings, settings.join_min,
                                   settings.join_max, [seed, 0])
            return (joining.concat(examples, extra),
                    batching.Ragged.concat([ids, text.encode(extra["text"])]), source)

        def batches(data, seed: int, training: bool):
            examples, ids, source = data
            return recording_batches(audio, examples, ids, settings.batch_size, seed, source,
                                     training, augment if training else None)

        train_data = prepared(train, settings.data)
        valid_data = batches(prepared(valid, settings.valid or settings.data), settings.seed,
                             False)

        def training_pass(epoch: int):  # pass `epoch` of the training data: apps.training
            seed = pass_seed(settings.seed, epoch)
            return batches(with_joined(train_data, seed), seed, True)

        return training_pass, valid_data

    def init_starts(self, settings):
        """--init-from a recogniser: the run fits its own vocabulary from its transcripts
        (the source's sizes and tokenizer kind unless given); the output layer loads
        only where that vocabulary is the source's, piece for piece."""
        return transfer.whole_model(
            settings, sides={}, tasks=("speech",), tokenizer_settings=(),
            adopts=("tokenizer", "vocab_size", "mels", "conv_filters", "conv_kernel",
                    "time_stride", "bidirectional", "residual"),
            vocabulary_layers=("ctc_output",))

    def shared_layers(self, model):
        return {"front/0": [model.front[0]], "front/1": [model.front[1]],
                "front/norm": [model.norm], **transfer.encoder_layers(model.encoder),
                "ctc_output": [model.logits]}

    def build_model(self, settings, inputters):
        return build(settings, inputters["text"].vocab_size, inputters["audio"].mels)

    def compile_model(self, model, settings, plan: TrainingPlan):
        model.compile(optimizer=schedule.adam(settings, plan), jit_compile=False)

    def validation_decoding(self, trained, valid):
        return transcribe_examples(trained, valid)

    def validation_metrics(self, trained, valid, decoded=None):
        hypotheses = transcribe_examples(trained, valid) if decoded is None else decoded
        return {"val_wer": float(jiwer.wer(valid["text"], hypotheses))}

    def score(self, trained, examples, source: str = "the data", beam_size: int | None = None,
              batch_size: int = 32, lm=None, lm_weight=None, word_bonus=None,
              decoded: list[str] | None = None):
        """wer, cer, utterances, exact, and the best / median / worst transcriptions;
        `beam_size` (a run's; an export decodes as exported) None: the model's own; with
        `lm` (a language model run), decoded by beam search fused with it. `decoded`:
        these examples' transcripts, already made by the model as it is (the runner's
        last report), used as they are."""
        if decoded is not None:
            return examples_report(examples["path"], examples["text"], decoded)
        trained = runner.with_options(self, trained, beam_size=beam_size)
        fused = fusion.from_options(trained, lm, lm_weight, word_bonus,
                                    int(trained.metadata["beam_size"]))
        say_conversions(examples["path"], examples["rate"], examples["channels"],
                        sample_rate(trained), source)
        hypotheses = transcribe_examples(trained, examples, batch_size, fused)
        return examples_report(examples["path"], examples["text"], hypotheses)

    def signatures(self, trained):
        serving_default = graph_function(transcriber(trained),
                                         input_signature=[AudioInputter.input_spec()])
        every_path = transcriber(trained, max(int(trained.metadata["beam_size"]), 2))

        @graph_function(input_signature=[AudioInputter.input_spec(),
                                         parameter_spec(tf.int32, "n_best")])
        def transcribe_n_best(audio, n_best):
            """audio, n_best -> transcripts [N, K], scores [N, K], best first (K: n_best,
            at most the export's beam size)."""
            out = every_path(audio)
            k = tf.maximum(tf.reduce_max(tf.reshape(n_best, [-1])), 1)
            return {"transcripts": out["transcripts"][:, :k], "scores": out["scores"][:, :k]}

        return {"serving_default": serving_default, "transcribe_n_best": transcribe_n_best}

    def warmup_requests(self, trained):
        """Half a second of quiet noise as a WAV: what `apps serve` and TF Serving warm
        the signatures up with (made-up bytes would not be a WAV)."""
        rate = sample_rate(trained)
        quiet = np.random.default_rng(0).normal(0, 0.01, rate // 2).astype(np.float32)
        audio = np.array([wav_bytes(quiet, rate)], object)
        return {"serving_default": {"audio": audio},
                "transcribe_n_best": {"audio": audio, "n_best": np.array(2, np.int32)}}

    def metadata_entries(self, settings, inputters, beam_size: int | None = None):
        """`beam_size`: the CTC beam width serving_default decodes with (1: greedy)."""
        return {"beam_size": int(beam_size or 1)}


TASK = SpeechTask()


def transcribe_files(model: Path | Trained, paths: list[str], beam_size: int | None = None,
                     batch_size: int = 32, n_best: int = 1, lm=None, lm_weight=None,
                     word_bonus=None) -> list[dict[str, Any]]:
    """One {"path", "transcript", "score"} per audio file (WAV, FLAC, OGG/Vorbis, NIST
    SPHERE), in order; other rates are resampled and several channels mixed down (each
    said once); a file that cannot be read is refused, named, in one sentence."""
    trained = model if isinstance(model, Trained) else runner.load(TASK, Path(model))
    if n_best > 1 and not trained.is_saved_model:  # a run's beam is at least n_best wide
        beam_size = max(beam_size or int(trained.metadata["beam_size"]), n_best)
    trained = runner.with_options(TASK, trained, beam_size=beam_size)
    fused = fusion.from_options(trained, lm, lm_weight, word_bonus,
                                int(trained.metadata["beam_size"]))
    rate = sample_rate(trained)
    samples, rates, channels = [], [], []
    for path in paths:
        try:
            found, found_rate, found_channels = read_audio(path)
        except AudioProblem as problem:
            raise DataError(f"'{path}' cannot be transcribed: {problem}.") from None
        except OSError as error:
            raise DataError(f"Cannot read '{path}': {error.strerror or error}.") from None
        samples.append(resample(found, found_rate, rate))
        rates.append(found_rate)
        channels.append(found_channels)
    say_conversions(paths, rates, channels, rate, "the input")
    if n_best > 1:
        if fused:
            raise ConfigError("--n-best and --lm do not go together yet: drop one.")
        lists = transcribe_n_best(trained, samples, n_best, batch_size)
        return [{"path": path, **found[0], "n_best": found} for path, found in zip(paths, lists)]
    transcripts, scores = transcribe(trained, samples, batch_size, fused=fused)
    return [{"path": path, "transcript": words, "score": score}
            for path, words, score in zip(paths, transcripts, scores)]
