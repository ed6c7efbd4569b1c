"""`apps speech ...`: train, evaluate and export from the runner, plus `transcribe`."""

from __future__ import annotations

from pathlib import Path

import click

from apps.commands import MODEL_HELP, TaskTexts, task_group
from apps.options import SectionedCommand, argument, examples_for, option
from apps.speech import task
from apps.textio import answer, echo_answers, input_option, read_inputs

EXAMPLES = """
\b
Examples:
  apps speech train --data fsdd/train.csv --output runs/digits
  apps speech train --data tfds:spoken_digit --time-budget 10m
  apps speech evaluate runs/digits --data fsdd/test.csv --json
  apps speech evaluate runs/digits --data fsdd/test.csv --join-recordings 1000
  apps speech transcribe runs/digits recording.wav other.wav
  apps speech transcribe saved_models/speech/1 --input files.txt --json
  apps speech export runs/digits --beam-size 8
  apps speech evaluate runs/an4 --data an4/test.csv --beam-size 16 --lm runs/an4-lm
"""


def summarize(report: dict) -> str:
    return (f"Best epoch {report['best_epoch']}: validation WER {report['wer']:.4f}, "
            f"CER {report['cer']:.4f} ({report['utterances']} utterances)")


def show_report(report: dict) -> str:
    lines = [f"utterances  {report['utterances']}", f"WER         {report['wer']:.4f}",
             f"CER         {report['cer']:.4f}", f"exact       {report['exact']}"]
    for kind in ("best", "median", "worst"):
        lines += ["", f"{kind}:"]
        for row in report.get(kind, []):
            lines.append(f"  WER {row['wer']:.3f}  {row['path']}\n"
                         f"    reference:  {row['reference']}\n"
                         f"    transcript: {row['transcript']}")
    return "\n".join(lines)


TEXTS = TaskTexts(
    group_help="Speech to text: log-mel features, a convolutional front end, a recurrent "
               "encoder and CTC.",
    examples=EXAMPLES,
    train_help=(
        "Train a recogniser on recordings (WAV, FLAC, OGG/Vorbis, NIST SPHERE; other rates "
        "resampled, stereo mixed down) with transcripts.\n\n"
        "Writes a run directory (config.json, audio.json, tokenizer.model, checkpoints, "
        "history.csv, metrics.json, TensorBoard logs, plots); the best epoch has the lowest "
        "validation WER. Interrupted runs resume when the same command is run again."),
    summarize=summarize,
    show_report=show_report,
    exported="signature serving_default: audio (the bytes of WAV files at the model's "
             "rate) -> transcript, score",
)
BEAM_SIZE = option("--beam-size", type=click.IntRange(min=1),
                   help="CTC beam width; 1 decodes greedily [default: 1 for a run directory]. "
                        "A SavedModel decodes as it was exported.")
BATCH_SIZE = option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
                    help="Recordings per batch.")
LM_OPTIONS = [
    option("--lm", type=click.Path(path_type=Path), section="decoding",
           help="Fuse a language model into the beam search: an `apps lm` run directory "
                "(a character LM of transcripts, one per line). Needs --beam-size 2 or more "
                "and a run directory as MODEL."),
    option("--lm-weight", type=float, section="decoding",
           help="Weight of the language model's log probability.  [default: 0.5]"),
    option("--word-bonus", type=float, section="decoding",
           help="Added per word of the transcript (offsets the LM's cost of every word).  "
                "[default: 2, with 0.5 the best of a grid on AN4 validation]"),
]
JOIN_OPTIONS = [
    option("--join-recordings", type=click.IntRange(min=1), section="data",
           help="Score connected speech instead: this many sequences joined from the data's "
                "recordings (--join-min to --join-max each, 100-300 ms of silence between; "
                "a fixed draw by --join-seed)."),
    option("--join-min", type=click.IntRange(min=1), section="data",
           help="Fewest recordings in a joined sequence.  [default: 2]"),
    option("--join-max", type=click.IntRange(min=1), section="data",
           help="Most recordings in a joined sequence.  [default: 7]"),
    option("--join-seed", type=int, section="data",
           help="Seed of the joined sequences' draw.  [default: 0]"),
]
speech = task_group(task.TASK, TEXTS, evaluate_options=[BEAM_SIZE, BATCH_SIZE, *LM_OPTIONS,
                                                     *JOIN_OPTIONS],
                    export_options=[option("--beam-size", type=click.IntRange(min=1), default=1,
                                           show_default=True,
                                           help="CTC beam width inside the exported graph; 1 "
                                                "decodes greedily.")])


@speech.command(cls=SectionedCommand, epilog=(
    "The score is the log probability of the transcript (of its best alignment when "
    "decoding greedily): closer to 0 is surer.\n\n" + examples_for(EXAMPLES, "transcribe")))
@argument("model", type=click.Path(path_type=Path), help=MODEL_HELP)
@argument("wavs", nargs=-1, help="Audio files: WAV, FLAC, OGG/Vorbis or NIST SPHERE (or "
          "--input).")
@input_option("audio path", blank_lines="")
@BEAM_SIZE
@BATCH_SIZE
@LM_OPTIONS[0]
@LM_OPTIONS[1]
@LM_OPTIONS[2]
@click.option("--n-best", type=click.IntRange(min=1), default=1, show_default=True,
              help="The N likeliest transcripts of each file, best first (CTC beam search at "
                   "least N wide; a SavedModel gives at most its export's --beam-size); "
                   "plain output joins them with ' ||| '.")
@click.option("--json", "as_json", is_flag=True,
              help='One JSON line per file: {"path", "transcript", "score"} (with --n-best, '
                   'also "n_best": [{"transcript", "score"}, ...]).')
def transcribe(model, wavs, input_file, beam_size, batch_size, lm, lm_weight, word_bonus,
               n_best, as_json):
    """Transcribe audio files (WAV, FLAC, OGG/Vorbis, NIST SPHERE) with MODEL (run directory
    or exported SavedModel); other rates are resampled, stereo is mixed down."""
    lines = read_inputs(wavs, input_file, "audio files").refuse_blank("no file to transcribe")
    rows = answer(lines, lambda paths: task.transcribe_files(
        model, paths, beam_size, batch_size, n_best, lm, lm_weight, word_bonus))
    echo_answers(rows, as_json, lambda row: f"{row['path']}\t" + " ||| ".join(
        h["transcript"] for h in row.get("n_best", [row])))
