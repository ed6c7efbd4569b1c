"""`apps lm ...`: train, evaluate and export from the runner, plus `generate`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from apps import runner
from apps.commands import MODEL_HELP, TaskTexts, task_group
from apps.lm import generation, ranking, task
from apps.options import SectionedCommand, argument, examples_for
from apps.textio import answer, echo_answers, input_option, read_inputs

EXAMPLES = """
\b
Examples:
  apps lm train --data corpus.txt --valid held_out.txt --output runs/shakespeare
  apps lm train --data tfds:tiny_shakespeare --time-budget 15m
  apps lm evaluate runs/shakespeare --data held_out.txt --json
  apps lm generate runs/shakespeare --prompt "ROMEO:" --max-tokens 300 --temperature 0.8 \\
      --top-k 40 --seed 7
  apps lm generate saved_models/lm/1 --prompt "To be" --num-samples 3 --top-p 0.9
  apps lm generate runs/shakespeare --prompt "ROMEO:" --max-tokens 20 --n-best 5 --json
  apps lm score runs/shakespeare "To be or not to be" "Be not to or be to" --json
  apps lm export runs/shakespeare
"""


def summarize(report: dict) -> str:
    return (f"Best epoch {report['best_epoch']}: validation {report['nats_per_char']:.4f} "
            f"nats/char ({report['bits_per_char']:.4f} bits/char), perplexity "
            f"{report['perplexity']:.3f} per token")


def show_report(report: dict) -> str:
    return (f"chars          {report['chars']}\ntokens         {report['tokens']}\n"
            f"nats/char      {report['nats_per_char']:.4f}\n"
            f"bits/char      {report['bits_per_char']:.4f}\n"
            f"perplexity     {report['perplexity']:.4f} (per token)")


TEXTS = TaskTexts(
    group_help="Language modelling: train on any plain text, evaluate, generate, export.",
    examples=EXAMPLES,
    train_help=(
        "Train a language model on plain text, read as one continuous token stream.\n\n"
        "Writes a run directory (config.json, tokenizer.model, checkpoints, history.csv, "
        "metrics.json, TensorBoard logs, plots). Interrupted runs resume when the same "
        "command is run again."),
    summarize=summarize,
    show_report=show_report,
    exported="signatures serving_default: prompt, max_tokens, temperature -> text; generate; "
             "score: text -> log_likelihood, tokens, chars",
)
lm = task_group(task.TASK, TEXTS)


def unescape(text: str | None) -> str | None:
    """Let --stop '\\n\\n' mean two newlines, as users type it in a shell."""
    if text is None:
        return None
    return text.replace("\\\\", "\0").replace("\\n", "\n").replace("\\t", "\t") \
        .replace("\0", "\\")


@lm.command(cls=SectionedCommand, epilog=examples_for(EXAMPLES, "generate"))
@argument("model", type=click.Path(path_type=Path), help=MODEL_HELP)
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
@click.option("--num-samples", type=int, default=1, show_default=True,
              help="Texts to generate from the prompt, one after another (sample i uses "
                   "seed + i).")
@click.option("--stop", help="End a sample where this text appears (left out); \\n is a "
              "newline.")
@click.option("--n-best", type=click.IntRange(min=1),
              help="Instead of sampling, the N likeliest continuations (beam search with N "
                   "beams), best first, with their scores (nats); --max-tokens each.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per sample: text (prompt included), tokens, "
                   "tokens_per_second (with --n-best: text, score, tokens).")
def generate(model, prompt, max_tokens, temperature, top_k, top_p, seed, num_samples, stop,
             n_best, as_json):
    """Continue --prompt with MODEL (run directory or SavedModel). From a run directory
    the text is printed as it is generated (the computation of its SavedModel's
    `generate` signature, in chunks: the same text for the same seed); from a
    SavedModel, and with --json, each sample is printed when it is done."""
    if n_best:
        generation.Sampling(max_tokens).validate()
        hypotheses = ranking.n_best(runner.load(task.TASK, model), prompt, max_tokens, n_best)
        for rank, hypothesis in enumerate(hypotheses, start=1):
            click.echo(json.dumps(hypothesis, ensure_ascii=False) if as_json else
                       f"--- {rank} ({hypothesis['score']:.3f} nats) ---\n{hypothesis['text']}")
        return
    sampling = generation.Sampling(max_tokens, temperature, top_k, top_p, seed, num_samples,
                             unescape(stop))
    sampling.validate()
    if as_json:
        for sample in generation.generate(model, prompt, sampling):
            click.echo(json.dumps(sample, ensure_ascii=False))
        return

    def start(i):
        if num_samples > 1:
            click.echo(("\n\n" if i else "") + f"--- sample {i + 1} (seed {seed + i}) ---")
        click.echo(prompt, nl=False)

    def emit(piece):
        click.echo(piece, nl=False)

    samples = generation.generate(model, prompt, sampling, emit=emit, on_sample_start=start)
    click.echo()
    speed = sum(s["tokens"] for s in samples) / sum(s["tokens"] / s["tokens_per_second"]
                                                    for s in samples)
    click.echo(f"[{sum(s['tokens'] for s in samples)} tokens, {speed:.0f} tokens/s]",
               err=True)


@lm.command(cls=SectionedCommand, epilog=examples_for(EXAMPLES, "score"))
@argument("model", type=click.Path(path_type=Path), help=MODEL_HELP)
@argument("texts", nargs=-1, help="Texts to score (or --input).")
@input_option("text", "score")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON line per text: text, log_likelihood (nats), tokens, chars, "
                   "nats_per_char.")
def score(model, texts, input_file, as_json):
    """Score texts with MODEL: the natural-log likelihood of each (what a reranker needs)."""
    lines = read_inputs(texts, input_file, "texts to score")
    trained = runner.load(task.TASK, model)
    rows = answer(lines, lambda readable: ranking.score_texts(trained, readable))
    echo_answers(rows, as_json, lambda row: f"{row['log_likelihood']:.4f}")
