"""`apps lm ...`: parse flags, call `apps.lm.task`, print results."""

from __future__ import annotations

import json
from pathlib import Path

import click

from apps.config import resolve
from apps.lm import task
from apps.options import train_options, typed_flags

EXAMPLES = """
\b
Examples:
  apps lm train --data corpus.txt --valid held_out.txt --output runs/shakespeare
  apps lm train --data tfds:tiny_shakespeare --time-budget 15m
  apps lm evaluate runs/shakespeare --data held_out.txt --json
  apps lm generate runs/shakespeare --prompt "ROMEO:" --max-tokens 300 --temperature 0.8 \\
      --top-k 40 --seed 7
  apps lm generate saved_models/lm/1 --prompt "To be" --num-samples 3 --top-p 0.9
  apps lm export runs/shakespeare
"""


@click.group(epilog=EXAMPLES)
def lm():
    """Language modelling: train on any plain text, evaluate, generate, export."""


@lm.command()
@click.option("--data", help="Training text: a UTF-8 file, or tfds:NAME[/CONFIG][:SPLIT]. "
              " [default: tfds:tiny_shakespeare]")
@click.option("--valid", help="Validation text (same forms); picks the best epoch. Without "
              "it, the last --valid-fraction of --data is held out.")
@click.option("--text-column", help="TFDS feature holding the text [default: the first "
              "text feature].")
@click.option("--valid-fraction", type=float, help="Share of --data held out without "
              "--valid.  [default: 0.1]")
@click.option("--tokenizer", type=click.Choice(task.TOKENIZERS), help="SentencePiece model "
              "type trained on the training data; each reproduces the text exactly.  "
              "[default: char]")
@click.option("--sequence-length", type=int, help="Tokens per segment: gradients flow back "
              "this far (truncated backpropagation through time).  [default: 64]")
@click.option("--stateful/--no-stateful", default=None, help="Carry the recurrent state "
              "from one segment to the next (the batch rows are consecutive parts of the "
              "text).  [default: on]")
@click.option("--tie-embeddings/--no-tie-embeddings", default=None, help="Share the "
              "embedding matrix with the output layer (with a projection when --units "
              "differs from --embedding-dim).  [default: off]")
@click.option("--lr-schedule", type=click.Choice(task.LR_SCHEDULES), help="Learning rate: "
              "constant, or warm-up then cosine decay to zero over all epochs (or over "
              "--time-budget, if that ends first).  [default: cosine]")
@click.option("--warmup-steps", type=int, help="Steps of linear warm-up (cosine schedule). "
              " [default: 100]")
@train_options(task.LanguageModelSettings, skip=("bidirectional", "tokenizer"))
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
def train(ctx, quiet, config_file, output, overwrite, **_):
    """Train a language model on plain text, read as one continuous token stream.

    Writes a run directory (config.json, tokenizer.model, checkpoints, history.csv,
    metrics.json, TensorBoard logs, plots). Interrupted runs resume when the same
    command is run again.
    """
    settings = resolve(task.LanguageModelSettings, config_file, typed_flags(ctx))
    run_dir, report = task.train(settings, output, overwrite, verbose=0 if quiet else 1)
    click.echo(f"Best epoch {report['best_epoch']}: validation {report['nats_per_char']:.4f} "
               f"nats/char ({report['bits_per_char']:.4f} bits/char), perplexity "
               f"{report['perplexity']:.3f} per token")
    if report.get("stopped_by_time_budget"):
        click.echo(f"Stopped by the time budget after {report['epochs_run']} epoch(s).")
    click.echo(f"Run directory: {run_dir}")


@lm.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--data", required=True, help="Text to score: a file or tfds:NAME[:SPLIT].")
@click.option("--text-column", help="TFDS feature holding the text.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def evaluate(model, data, text_column, as_json):
    """Score MODEL (run directory or SavedModel) on a whole text read as one stream."""
    report = task.evaluate(model, data, text_column)
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(f"chars          {report['chars']}\ntokens         {report['tokens']}\n"
               f"nats/char      {report['nats_per_char']:.4f}\n"
               f"bits/char      {report['bits_per_char']:.4f}\n"
               f"perplexity     {report['perplexity']:.4f} (per token)")


def unescape(text: str | None) -> str | None:
    """Let --stop '\\n\\n' mean two newlines, as users type it in a shell."""
    if text is None:
        return None
    return text.replace("\\\\", "\0").replace("\\n", "\n").replace("\\t", "\t") \
        .replace("\0", "\\")


@lm.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--prompt", default="", help="Text to continue (may be empty).")
@click.option("--max-tokens", type=int, default=200, show_default=True,
              help="New tokens per sample.")
@click.option("--temperature", type=float, default=1.0, show_default=True,
              help="Sampling temperature; 0 is greedy (always the likeliest token).")
@click.option("--top-k", type=int, default=0, show_default=True,
              help="Sample from the k likeliest tokens only (0: off).")
@click.option("--top-p", type=float, default=1.0, show_default=True,
              help="Sample from the smallest set of tokens with this total probability "
                   "(1: off).")
@click.option("--seed", type=int, default=1, show_default=True,
              help="Sample i uses seed + i: the same seed gives the same text.")
@click.option("--num-samples", type=int, default=1, show_default=True)
@click.option("--stop", help="End a sample where this text appears (left out); \\n is a "
              "newline.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per sample: text (prompt included), tokens, "
                   "tokens_per_second.")
def generate(model, prompt, max_tokens, temperature, top_k, top_p, seed, num_samples, stop,
             as_json):
    """Continue --prompt with MODEL (run directory or SavedModel), streaming the text."""
    sampling = task.Sampling(max_tokens, temperature, top_k, top_p, seed, num_samples,
                             unescape(stop))
    sampling.validate()
    if as_json:
        for sample in task.generate(model, prompt, sampling):
            click.echo(json.dumps(sample, ensure_ascii=False))
        return

    def start(i):
        if num_samples > 1:
            click.echo(("\n\n" if i else "") + f"--- sample {i + 1} (seed {seed + i}) ---")
        click.echo(prompt, nl=False)

    def emit(piece):
        click.echo(piece, nl=False)

    samples = task.generate(model, prompt, sampling, emit=emit, on_sample_start=start)
    click.echo()
    speed = sum(s["tokens"] for s in samples) / sum(s["tokens"] / s["tokens_per_second"]
                                                    for s in samples)
    click.echo(f"[{sum(s['tokens'] for s in samples)} tokens, {speed:.0f} tokens/s]",
               err=True)


@lm.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--model-base-path", type=click.Path(path_type=Path), default="saved_models",
              show_default=True, help="Root of the TF Serving layout <name>/<version>/.")
@click.option("--name", default="lm", show_default=True, help="Model name.")
def export(run_dir, model_base_path, name):
    """Export RUN_DIR's best model as the next SavedModel version (atomic)."""
    path = task.export(run_dir, model_base_path, name)
    click.echo(f"Exported {path} (signatures serving_default: prompt, max_tokens, temperature "
               "-> text; generate; score: text -> log_likelihood, tokens, chars)")
