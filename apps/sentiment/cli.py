"""`apps sentiment ...`: parse flags, call `apps.sentiment.task`, print results."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from apps.config import resolve
from apps.options import train_options, typed_flags
from apps.sentiment import task

EXAMPLES = """
\b
Examples:
  apps sentiment train --data reviews.tsv --valid dev.tsv --output runs/mr
  apps sentiment train --data tfds:imdb_reviews --epochs 3
  apps sentiment evaluate runs/mr --data test.tsv --json
  apps sentiment predict runs/mr "what a wonderful film" "dull and far too long"
  apps sentiment export runs/mr
"""


@click.group(epilog=EXAMPLES)
def sentiment():
    """Sentiment (or any text) classification with an RNN encoder."""


@sentiment.command()
@click.option("--data", help="Training data: a TSV/CSV/JSONL file with a header, or "
              "tfds:NAME[/CONFIG][:SPLIT].  [default: tfds:imdb_reviews]")
@click.option("--valid", help="Validation data (same forms); picks the best epoch. "
              "Without it, --valid-fraction of --data is held out.")
@click.option("--text-column", help="Column (or TFDS feature) holding the text "
              "[default: guessed: text, sentence, review, ...].")
@click.option("--label-column", help="Column (or TFDS feature) holding the label "
              "[default: guessed: label, sentiment, class, ...].")
@click.option("--valid-fraction", type=float, help="Share held out without --valid. "
              " [default: 0.1]")
@click.option("--max-length", type=int, help="Tokens kept per text.  [default: 256]")
@click.option("--pooling", type=click.Choice(["last", "mean", "max", "attention"]),
              help="How the encoder's outputs become one vector.  [default: max]")
@click.option("--members", type=int, help="Train this many classifiers side by side and "
              "average their predictions (an ensemble in one model).  [default: 1]")
@train_options(task.SentimentSettings)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
def train(ctx, quiet, config_file, output, overwrite, **_):
    """Train a classifier on labelled texts; any label names, two or more classes.

    Writes a run directory (config.json, tokenizer.model, labels.json, checkpoints,
    history.csv, metrics.json, TensorBoard logs, plots). Interrupted runs resume when
    the same command is run again.
    """
    settings = resolve(task.SentimentSettings, config_file, typed_flags(ctx))
    run_dir, report = task.train(settings, output, overwrite, verbose=0 if quiet else 1)
    click.echo(f"Best epoch {report['best_epoch']}: validation accuracy "
               f"{report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f}")
    click.echo(f"Run directory: {run_dir}")


@sentiment.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--data", required=True, help="Labelled data: file or tfds:NAME[:SPLIT].")
@click.option("--text-column", help="Column holding the text.")
@click.option("--label-column", help="Column holding the label.")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def evaluate(model, data, text_column, label_column, batch_size, as_json):
    """Score MODEL (run directory or exported SavedModel) on labelled data."""
    report = task.evaluate(model, data, text_column, label_column, batch_size)
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(f"examples  {report['examples']}\naccuracy  {report['accuracy']:.4f}\n"
               f"macro-F1  {report['macro_f1']:.4f}\n")
    width = max(len(label) for label in report["labels"]) + 2
    click.echo(f"{'label':<{width}}precision  recall  f1      support")
    for label, row in report["per_class"].items():
        click.echo(f"{label:<{width}}{row['precision']:<11.4f}{row['recall']:<8.4f}"
                   f"{row['f1']:<8.4f}{row['support']}")
    click.echo("\nconfusion matrix (rows: true, columns: predicted)")
    click.echo(" " * width + "".join(f"{label[:10]:>11}" for label in report["labels"]))
    for label, counts in zip(report["labels"], report["confusion_matrix"]):
        click.echo(f"{label:<{width}}" + "".join(f"{count:>11}" for count in counts))


def read_texts(texts: tuple[str, ...], input_file: str | None) -> list[str]:
    if texts and input_file:
        raise click.UsageError("Give texts as arguments or --input, not both.")
    if input_file == "-":
        return [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if input_file:
        from pipelines.sources import read_lines

        return [line for line in read_lines(Path(input_file)) if line.strip()]
    if not texts:
        raise click.UsageError("Give texts to classify, or --input FILE (- for stdin).")
    return list(texts)


@sentiment.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("texts", nargs=-1)
@click.option("--input", "input_file", help="File with one text per line; - for stdin.")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON line per text.")
def predict(model, texts, input_file, batch_size, as_json):
    """Classify texts with MODEL (run directory or exported SavedModel)."""
    for row in task.predict(model, read_texts(texts, input_file), batch_size):
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
        else:
            click.echo(f"{row['label']}\t{row['scores'][row['label']]:.3f}\t{row['text']}")


@sentiment.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--model-base-path", type=click.Path(path_type=Path), default="saved_models",
              show_default=True, help="Root of the TF Serving layout <name>/<version>/.")
@click.option("--name", default="sentiment", show_default=True, help="Model name.")
def export(run_dir, model_base_path, name):
    """Export RUN_DIR's best model as the next SavedModel version (atomic)."""
    path = task.export(run_dir, model_base_path, name)
    click.echo(f"Exported {path} (signature serving_default: text -> label, label_id, scores)")
