"""Speed target of the sentiment app: `apps sentiment train` against its two peers on MR.

Runs, in one invocation and as separate processes, the plain Keras recipe
(`bench/peers/keras_recipe.py`), the same model in PyTorch with packed sequences
(`bench/peers/torch_packed.py`) and the project's own

    python -m apps sentiment train --data MR/train.tsv --valid MR/dev.tsv \
        --output RUN --overwrite --quiet <the peers' model flags>

with the settings `auto` picks on this machine, then scores the project's run with
`apps sentiment evaluate RUN --data MR/test.tsv --json` (not timed). Like with like:
the peers read the project's default tokens (SentencePiece unigram, 8,000 pieces,
`--tokens pieces`), and the word-level comparison runs beside it (peers on words, the
project with `--tokenizer word`). Each command's whole wall time is measured from
outside, so imports, tokenizer training and saving all count; beside it, the
steady-state speed: training sentences per second over the epochs after the first
(validation included in each epoch's time, for all three). With `--repeats N` the
commands run N times in rotating order, so a burst of load on the shared machine does
not hit one command only; the table reports medians.

    PYTHONPATH=. .venv/bin/python bench/sentiment_speed.py --repeats 3 \
        --output-md docs/bench_sections/sentiment_speed.md

Targets: project <= 0.5x the Keras recipe and <= 1.0x PyTorch, on the same tokens.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, SHARED, machine

DATA = SHARED / "sentiment" / "mr"
MODEL_FLAGS = ["--cell", "lstm", "--units", "128", "--layers", "1", "--bidirectional",
               "--embedding-dim", "128", "--pooling", "max", "--vocab-size", "8000",
               "--batch-size", "64", "--epochs", "4"]
TARGETS = {"keras_recipe": 0.5, "torch_packed": 1.0}
# name -> (label, tokens); the project's default reads unigram pieces (MR: 30 a text
# on average against 21 words, 40 % more time steps).
COMMANDS = {
    "keras_recipe": ("plain Keras recipe (fixed-length padding, NumPy `fit`)", "pieces"),
    "torch_packed": ("PyTorch, packed sequences", "pieces"),
    "apps": ("`apps sentiment train` (defaults: unigram pieces)", "pieces"),
    "keras_recipe_words": ("plain Keras recipe", "words"),
    "torch_packed_words": ("PyTorch, packed sequences", "words"),
    "apps_words": ("`apps sentiment train --tokenizer word`", "words"),
}
PEERS = {"keras_recipe", "torch_packed"}


def commands(data: Path, run_dir: Path) -> dict[str, list[str]]:
    python, found = sys.executable, {}
    for name, (_, tokens) in COMMANDS.items():
        base = name.removesuffix("_words")
        if base in PEERS:
            found[name] = [python, str(ROOT / f"bench/peers/{base}.py"), "--data", str(data),
                           "--tokens", tokens]
        else:
            found[name] = [python, "-m", "apps", "sentiment", "train", "--data",
                           str(data / "train.tsv"), "--valid", str(data / "dev.tsv"),
                           "--output", str(run_dir), "--overwrite", "--quiet", *MODEL_FLAGS,
                           *(["--tokenizer", "word"] if tokens == "words" else [])]
    return found


def run(command: list[str], env: dict) -> tuple[float, str]:
    """Wall seconds of the whole command, and its stdout; a failure stops the benchmark."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return seconds, done.stdout


def last_json(stdout: str) -> dict:
    return json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])


def steady_speed(examples: int, epoch_seconds: list[float]) -> float:
    """Training sentences per second over the epochs after the first (tracing, warm-up)."""
    later = epoch_seconds[1:] or epoch_seconds
    return round(examples / statistics.median(later), 1)


def project_details(run_dir: Path, data: Path, env: dict) -> dict:
    """Test accuracy (`apps sentiment evaluate`) and the per-epoch seconds of history.csv."""
    _, stdout = run([sys.executable, "-m", "apps", "sentiment", "evaluate", str(run_dir),
                     "--data", str(data / "test.tsv"), "--json"], env)
    with open(run_dir / "history.csv", encoding="utf-8") as handle:
        epochs = [float(row["seconds"]) for row in csv.DictReader(handle)]
    config = json.loads((run_dir / "config.json").read_text())
    with open(data / "train.tsv", encoding="utf-8") as handle:
        examples = sum(1 for _ in handle) - 1
    return {"test_accuracy": round(last_json(stdout)["accuracy"], 4), "epoch_seconds": epochs,
            "sentences_per_second": steady_speed(examples, epochs),
            "precision": config["precision"], "strategy": config["strategy"]}


def measure(repeats: int, data: Path, names: list[str]) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    rows = []
    with tempfile.TemporaryDirectory(prefix="sentiment_speed_") as tmp:
        run_dir = Path(tmp) / "run"
        todo = commands(data, run_dir)
        for repeat in range(repeats):
            shift = repeat % len(names)
            for name in names[shift:] + names[:shift]:  # rotate the order
                load = os.getloadavg()[0]
                seconds, stdout = run(todo[name], env)
                row = {"repeat": repeat, "name": name, "wall_seconds": round(seconds, 2),
                       "loadavg_1m_before": round(load, 2)}
                if name.removesuffix("_words") in PEERS:
                    result = last_json(stdout)
                    row.update(test_accuracy=result["test_accuracy"],
                               epoch_seconds=result["epoch_seconds"],
                               sentences_per_second=steady_speed(result["train_examples"],
                                                                 result["epoch_seconds"]))
                else:
                    row.update(project_details(run_dir, data, env))
                print(json.dumps(row), file=sys.stderr, flush=True)
                rows.append(row)
    return rows


def summarise(rows: list[dict], names: list[str]) -> dict:
    """Medians per command, and each command's ratios to the peers on the same tokens."""
    summary = {}
    for name in names:
        mine = [r for r in rows if r["name"] == name]
        summary[name] = {
            "wall_seconds": round(statistics.median(r["wall_seconds"] for r in mine), 2),
            "sentences_per_second": statistics.median(r["sentences_per_second"] for r in mine),
            "test_accuracy": round(statistics.median(r["test_accuracy"] for r in mine), 4),
            "runs": [r["wall_seconds"] for r in mine],
        }
    for name, entry in summary.items():
        suffix = "_words" if name.endswith("_words") else ""
        for peer in TARGETS:
            if peer + suffix in summary:
                entry[f"ratio_to_{peer}"] = round(
                    entry["wall_seconds"] / summary[peer + suffix]["wall_seconds"], 3)
                entry[f"speed_ratio_to_{peer}"] = round(
                    entry["sentences_per_second"]
                    / summary[peer + suffix]["sentences_per_second"], 3)
    return summary


def markdown(summary: dict, where: str, repeats: int, rows: list[dict], command: str) -> str:
    lines = [
        "## Sentiment: training speed (MR)",
        "",
        f"Machine: {where} at the start (shared with other jobs). Medians of {repeats} "
        "run(s) per command, in rotating order. Wall: the whole command; sentences/s: "
        "training sentences per second over the epochs after the first.",
        "",
        "| command | tokens | wall s (median) | runs | sentences/s | test acc | "
        "wall vs Keras | wall vs PyTorch |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for name, entry in summary.items():
        label, tokens = COMMANDS[name]
        lines.append(f"| {label} | {tokens} | {entry['wall_seconds']:.1f} | "
                     f"{', '.join(f'{s:.1f}' for s in entry['runs'])} | "
                     f"{entry['sentences_per_second']:.0f} | "
                     f"{100 * entry['test_accuracy']:.1f} % | "
                     f"{entry.get('ratio_to_keras_recipe', float('nan')):.2f}x | "
                     f"{entry.get('ratio_to_torch_packed', float('nan')):.2f}x |")
    lines.append("")
    for name in (n for n in summary if n.startswith("apps")):
        entry = summary[name]
        verdict = ", ".join(f"{'met' if entry[f'ratio_to_{p}'] <= t else 'missed'} "
                            f"(<= {t}x {p})" for p, t in TARGETS.items()
                            if f"ratio_to_{p}" in entry)
        mine = [r for r in rows if r["name"] == name]
        lines.append(f"Targets for {name} ({mine[0]['precision']}, {mine[0]['strategy']}): "
                     f"{verdict}. Steady-state speed vs Keras "
                     f"{entry.get('speed_ratio_to_keras_recipe', float('nan')):.2f}x, vs PyTorch "
                     f"{entry.get('speed_ratio_to_torch_packed', float('nan')):.2f}x. "
                     "Seconds per epoch (history.csv): "
                     + "; ".join(", ".join(f"{s:.1f}" for s in r["epoch_seconds"]) for r in mine)
                     + ".")
    lines += ["", f"Command: `{command}`", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="runs of each command")
    parser.add_argument("--data", type=Path, default=DATA, help="folder with {train,dev,test}.tsv")
    parser.add_argument("--only", nargs="+", choices=list(COMMANDS), default=list(COMMANDS),
                        help="run these commands only")
    parser.add_argument("--output-md", type=Path, help="also write the markdown section here")
    args = parser.parse_args()
    where = machine()
    rows = measure(args.repeats, args.data, args.only)
    summary = summarise(rows, args.only)
    command = "PYTHONPATH=. .venv/bin/python bench/sentiment_speed.py " + " ".join(sys.argv[1:])
    text = markdown(summary, where, args.repeats, rows, command)
    print(text)
    print(json.dumps({"benchmark": "sentiment_speed", "machine": where, "summary": summary,
                      "runs": rows}))
    if args.output_md:
        args.output_md.parent.mkdir(parents=True, exist_ok=True)
        args.output_md.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
