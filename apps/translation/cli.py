"""`apps translation ...`: train, evaluate and export from the runner, plus `translate`."""

from __future__ import annotations

from pathlib import Path

import click

from apps import runner
from apps.commands import MODEL_HELP, TaskTexts, task_group
from apps.options import SectionedCommand, argument, examples_for, option
from apps.plots import plot_attention
from apps.textio import answer, echo_answers, input_option, read_inputs
from apps.translation import task, translate
from apps.translation.attention import attention_weights

EXAMPLES = """
\b
Examples:
  apps translation train --data multi30k/train --valid multi30k/val \\
      --source-lang de --target-lang en --output runs/de-en
  apps translation train --data pairs.tsv --valid dev.tsv      # source<TAB>target
  apps translation train --data tfds:ted_hrlr_translate/pt_to_en --time-budget 30m
  apps translation evaluate runs/de-en --data multi30k/test_2016_flickr --json
  apps translation translate runs/de-en "Ein Hund rennt über die Wiese." --beam-size 5
  apps translation translate saved_models/translation/1 --input sentences.de --json
  apps translation translate runs/de-en "Zwei Männer spielen Fußball." \\
      --plot-attention attn.png
  apps translation translate runs/de-en "Ein Hund rennt." --n-best 5 --json
  apps translation score runs/de-en --source "Ein Hund rennt." --target "A dog runs." --json
  apps translation score saved_models/translation/1 --input pairs.tsv   # source<TAB>target
  apps translation export runs/de-en --beam-size 5
  apps translation evaluate runs/de-en --data multi30k/val --no-shortlist   # full vocabulary
"""


def summarize(report: dict) -> str:
    return (f"Best epoch {report['best_epoch']}: validation BLEU {report['bleu']:.2f}, chrF "
            f"{report['chrf']:.2f} (beam {report['beam_size']}, {report['sentences']} "
            "sentences)")


def show_report(report: dict) -> str:
    return (f"sentences  {report['sentences']}\nbeam size  {report['beam_size']}\n"
            f"BLEU       {report['bleu']:.2f}  ({report['signature']})\n"
            f"chrF       {report['chrf']:.2f}  ({report['chrf_signature']})")


TEXTS = TaskTexts(
    group_help="Translation with an attentional RNN encoder-decoder: train on parallel "
               "text, score with sacreBLEU, translate, export for TF Serving.",
    examples=EXAMPLES,
    train_help=(
        "Train a translator on sentence pairs; the best epoch is the one with the best "
        "validation BLEU.\n\n"
        "Writes a run directory (config.json, tokenizer.model (or source.model and "
        "target.model), checkpoints, history.csv, metrics.json, TensorBoard logs, plots). "
        "Interrupted runs resume when the same command is run again."),
    summarize=summarize,
    show_report=show_report,
    exported="signatures serving_default: text -> translation, score; translate: text, "
             "beam_size, max_length -> translation, score, aligned_source; translate_n_best: "
             "text, beam_size, max_length, n_best -> translations, scores, aligned_source; "
             "score: source, target -> score, token_scores, pieces, tokens, aligned_source",
)


def beam_size_option(help: str):  # noqa: A002
    """--beam-size, declared once: a positive whole number; `help` says what it sets."""
    return option("--beam-size", type=click.IntRange(min=1), help=help, section="decoding")


BEAM_SIZE = beam_size_option("Beam width (1: greedy) [default: the model's own].")
BATCH_SIZE = option("--batch-size", type=int, default=64, show_default=True,
                    help="Sentences per batch.")
SHORTLIST = option("--shortlist/--no-shortlist", default=None, section="decoding",
                   help="Search over a vocabulary shortlist per batch (the target pieces its "
                        "source pieces co-occur with in the training data, plus the most "
                        "frequent ones: faster), or over the full vocabulary. An export "
                        "decodes as it was exported (kept in assets/metadata.json). "
                        "[default: on]")
translation = task_group(task.TASK, TEXTS, evaluate_options=[
    BEAM_SIZE, BATCH_SIZE, SHORTLIST,
    option("--output", type=click.Path(dir_okay=False),
           help="Also write the translations to this file, one a line."),
], export_options=[
    beam_size_option("Beam width of serving_default (kept in assets/metadata.json) "
                     "[default: the run's --beam-size]."),
    SHORTLIST,
])


@translation.command("translate", cls=SectionedCommand, epilog=(
    "An empty line translates to an empty line. A sentence longer than the model's "
    "--max-length tokens is cut, with a warning.\n\n" + examples_for(EXAMPLES, "translate")))
@argument("model", type=click.Path(path_type=Path), help=MODEL_HELP)
@argument("sentences", nargs=-1, help="Sentences in the source language (or --input).")
@input_option("sentence", "translation")
@BEAM_SIZE
@BATCH_SIZE
@SHORTLIST
@click.option("--n-best", type=click.IntRange(min=1),
              help="The N best translations of each sentence, best first (the beam is at "
                   "least N wide); plain output joins them with ' ||| '.")
@click.option("--json", "as_json", is_flag=True,
              help='One JSON line per sentence: {"source", "translation", "score", '
                   '"alignment"} (alignment: per target piece, the source piece it '
                   'attended to most; with --n-best, also "n_best": [{"translation", '
                   '"score", "alignment"}, ...]).')
@click.option("--plot-attention", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a PNG heatmap of the first sentence's attention (source pieces "
                   "against target pieces); run directories only.")
def translate_command(model, sentences, input_file, beam_size, batch_size, shortlist, n_best,
                      as_json, plot_attention):
    """Translate sentences with MODEL (run directory or exported SavedModel)."""
    lines = read_inputs(sentences, input_file, "sentences to translate")
    trained = runner.load(task.TASK, model, shortlist=shortlist)
    rows = answer(lines, lambda texts: translate.translate(trained, texts, beam_size,
                                                           batch_size, n_best, as_json))
    if plot_attention:
        first = next((row for row in rows if "error" not in row), None)
        if first is not None:
            plot_attention_for(trained, first, plot_attention)
    echo_answers(rows, as_json, lambda row: " ||| ".join(
        h["translation"] for h in row.get("n_best", [row])))


def plot_attention_for(trained, row, path: Path) -> None:
    pieces = attention_weights(trained, row["source"], row["translation"])
    plot_attention(*pieces, path)
    click.echo(f"Attention of the first sentence: {path}", err=True)



@translation.command("score", cls=SectionedCommand, epilog=(
    "Forced decoding: the model reads the given target token by token, as a search "
    "would, and gives the natural-log probability of each piece and of the end.\n\n"
    + examples_for(EXAMPLES, "score")))
@argument("model", type=click.Path(path_type=Path), help=MODEL_HELP)
@click.option("--source", "sources", multiple=True, help="A source sentence (repeatable; "
              "the i-th goes with the i-th --target).")
@click.option("--target", "targets", multiple=True, help="Its translation to score.")
@input_option("source<TAB>target pair", "score")
@BATCH_SIZE
@click.option("--json", "as_json", is_flag=True,
              help='One JSON line per pair: {"source", "target", "score", "tokens", '
                   '"pieces", "token_scores", "alignment"}.')
def score_command(model, sources, targets, input_file, batch_size, as_json):
    """Score given translations with MODEL: the log-probability of each target, in total
    and per token (forced decoding)."""
    if len(sources) != len(targets):
        raise click.UsageError(f"Give one --target per --source ({len(sources)} --source, "
                               f"{len(targets)} --target).")
    lines = read_inputs(["\t".join(pair) for pair in zip(sources, targets)], input_file,
                        "pairs to score (--source and --target)")
    for i, text in enumerate(lines.texts):
        if i not in lines.errors and text.count("\t") != 1:
            lines.errors[i] = f"line {i + 1} is not one source<TAB>target pair"
    trained = runner.load(task.TASK, model)

    def scored(pairs):
        split = [pair.split("\t") for pair in pairs]
        return translate.score_pairs(trained, [s for s, _ in split], [t for _, t in split],
                                     batch_size)

    rows = answer(lines, scored)
    echo_answers(rows, as_json, lambda row: f"{row['score']:.4f}")
