"""`apps sentiment ...`: train, evaluate and export from the runner, plus `predict`."""

from __future__ import annotations

from pathlib import Path

import click

from apps.commands import MODEL_HELP, TaskTexts, task_group
from apps.options import SectionedCommand, argument, examples_for, option
from apps.sentiment import task
from apps.textio import answer, echo_answers, input_option, read_inputs

EXAMPLES = """
\b
Examples:
  apps sentiment train --data reviews.tsv --valid dev.tsv --output runs/mr
  apps sentiment train --data tfds:imdb_reviews --epochs 3
  apps sentiment evaluate runs/mr --data test.tsv --json
  apps sentiment predict runs/mr "what a wonderful film" "dull and far too long"
  apps sentiment export runs/mr
"""


def summarize(report: dict) -> str:
    return (f"Best epoch {report['best_epoch']}: validation accuracy {report['accuracy']:.4f}, "
            f"macro-F1 {report['macro_f1']:.4f}")


def show_report(report: dict) -> str:
    width = max(len(label) for label in report["labels"]) + 2
    lines = [f"examples  {report['examples']}", f"accuracy  {report['accuracy']:.4f}",
             f"macro-F1  {report['macro_f1']:.4f}", "",
             f"{'label':<{width}}precision  recall  f1      support"]
    for label, row in report["per_class"].items():
        lines.append(f"{label:<{width}}{row['precision']:<11.4f}{row['recall']:<8.4f}"
                     f"{row['f1']:<8.4f}{row['support']}")
    lines += ["", "confusion matrix (rows: true, columns: predicted)",
              " " * width + "".join(f"{label[:10]:>11}" for label in report["labels"])]
    for label, counts in zip(report["labels"], report["confusion_matrix"]):
        lines.append(f"{label:<{width}}" + "".join(f"{count:>11}" for count in counts))
    return "\n".join(lines)


TEXTS = TaskTexts(
    group_help="Sentiment (or any text) classification with an RNN encoder.",
    examples=EXAMPLES,
    train_help=(
        "Train a classifier on labelled texts; any label names, two or more classes.\n\n"
        "Writes a run directory (config.json, tokenizer.model, labels.json, checkpoints, "
        "history.csv, metrics.json, TensorBoard logs, plots). Interrupted runs resume when "
        "the same command is run again."),
    summarize=summarize,
    show_report=show_report,
    exported="signature serving_default: text -> label, label_id, scores",
)
BATCH_SIZE = option("--batch-size", type=int, default=64, show_default=True,
                    help="Texts per batch.")
sentiment = task_group(task.TASK, TEXTS, evaluate_options=[BATCH_SIZE])


@sentiment.command(cls=SectionedCommand, epilog=(
    "An empty text carries no evidence: it gets the training data's label frequencies as "
    "scores, so its label is the commonest class.\n\n" + examples_for(EXAMPLES, "predict")))
@argument("model", type=click.Path(path_type=Path), help=MODEL_HELP)
@argument("texts", nargs=-1, help="Texts to classify (or --input).")
@input_option("text")
@BATCH_SIZE
@click.option("--json", "as_json", is_flag=True, help="One JSON line per text.")
def predict(model, texts, input_file, batch_size, as_json):
    """Classify texts with MODEL (run directory or exported SavedModel)."""
    lines = read_inputs(texts, input_file, "texts to classify")
    rows = answer(lines, lambda readable: task.predict(model, readable, batch_size))
    echo_answers(rows, as_json, lambda row: f"{row['label']}\t{row['scores'][row['label']]:.3f}"
                                            f"\t{row['text']}")
