"""Speed target of the sentiment app: `apps sentiment train` against its two peers on MR.

Runs, in one invocation and as separate processes, the plain Keras recipe
(`bench/peers/keras_recipe.py`), the same model in PyTorch with packed sequences
(`bench/peers/torch_packed.py`) and the project's own

    python -m apps sentiment train --data MR/train.tsv --valid MR/dev.tsv \
        --output RUN --overwrite --quiet <the peers' model flags>

then scores the project's run with `apps sentiment evaluate RUN --data MR/test.tsv
--json` (not timed). Each command's whole wall time is measured from outside, so
imports, tokenizer training and saving all count. With `--repeats N` the three run
N times in rotating order, so a burst of load on the shared machine does not hit
one command only; the table reports medians.

    PYTHONPATH=. .venv/bin/python bench/sentiment_speed.py --repeats 3 \
        --output-md docs/bench_sections/sentiment_speed.md

Targets (issue 2): project <= 0.5x the Keras recipe and <= 1.0x PyTorch.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared/data/sentiment/mr"
MODEL_FLAGS = ["--cell", "lstm", "--units", "128", "--layers", "1", "--bidirectional",
               "--embedding-dim", "128", "--pooling", "max", "--vocab-size", "8000",
               "--batch-size", "64", "--epochs", "4"]
TARGETS = {"keras_recipe": 0.5, "torch_packed": 1.0}
# The project twice: its default subword tokens (unigram), and word tokens like the
# peers' (MR averages 21 words but 30 unigram pieces per text: 40 % more time steps).
PROJECT = {"apps": [], "apps_words": ["--tokenizer", "word"]}
NAMES = ("keras_recipe", "torch_packed", *PROJECT)


def machine() -> dict:
    """Core count, CPU model and load average: the numbers mean little without them."""
    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "loadavg_start": [round(x, 2) for x in os.getloadavg()]}


def commands(data: Path, run_dir: Path) -> dict[str, list[str]]:
    python = sys.executable
    return {
        "keras_recipe": [python, str(ROOT / "bench/peers/keras_recipe.py"), "--data", str(data)],
        "torch_packed": [python, str(ROOT / "bench/peers/torch_packed.py"), "--data", str(data)],
        **{name: [python, "-m", "apps", "sentiment", "train", "--data", str(data / "train.tsv"),
                  "--valid", str(data / "dev.tsv"), "--output", str(run_dir), "--overwrite",
                  "--quiet", *MODEL_FLAGS, *flags] for name, flags in PROJECT.items()},
    }


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


def project_details(run_dir: Path, data: Path, env: dict) -> dict:
    """Test accuracy (`apps sentiment evaluate`) and the per-epoch seconds of history.csv."""
    _, stdout = run([sys.executable, "-m", "apps", "sentiment", "evaluate", str(run_dir),
                     "--data", str(data / "test.tsv"), "--json"], env)
    with open(run_dir / "history.csv", encoding="utf-8") as handle:
        epochs = [float(row["seconds"]) for row in csv.DictReader(handle)]
    return {"test_accuracy": round(last_json(stdout)["accuracy"], 4), "epoch_seconds": epochs}


def measure(repeats: int, data: Path) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    rows = []
    with tempfile.TemporaryDirectory(prefix="sentiment_speed_") as tmp:
        run_dir = Path(tmp) / "run"
        todo = commands(data, run_dir)
        for repeat in range(repeats):
            shift = repeat % len(NAMES)
            for name in NAMES[shift:] + NAMES[:shift]:  # rotate the order
                load = os.getloadavg()[0]
                seconds, stdout = run(todo[name], env)
                row = {"repeat": repeat, "name": name, "wall_seconds": round(seconds, 2),
                       "loadavg_1m_before": round(load, 2)}
                if name in PROJECT:
                    row.update(project_details(run_dir, data, env))
                else:
                    row["test_accuracy"] = last_json(stdout)["test_accuracy"]
                print(json.dumps(row), file=sys.stderr, flush=True)
                rows.append(row)
    return rows


def summarise(rows: list[dict]) -> dict:
    """Median wall time and test accuracy per command, and the project's ratios."""
    summary = {}
    for name in NAMES:
        mine = [r for r in rows if r["name"] == name]
        summary[name] = {
            "wall_seconds": round(statistics.median(r["wall_seconds"] for r in mine), 2),
            "test_accuracy": round(statistics.median(r["test_accuracy"] for r in mine), 4),
            "runs": [r["wall_seconds"] for r in mine],
        }
    for entry in summary.values():
        for peer in TARGETS:
            entry[f"ratio_to_{peer}"] = round(entry["wall_seconds"]
                                              / summary[peer]["wall_seconds"], 3)
    return summary


def markdown(summary: dict, info: dict, rows: list[dict], command: str) -> str:
    lines = [
        "## Sentiment: training speed (MR)",
        "",
        f"Machine: {info['nproc']} cores, {info['cpu']}, Python {info['python']}; "
        f"load average at start {info['loadavg_start']} (shared with other jobs). "
        f"Medians of {info['repeats']} run(s) per command, in rotating order.",
        "",
        "| command | wall s (median) | runs | test acc | vs Keras recipe | vs PyTorch |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    labels = {"keras_recipe": "plain Keras recipe (fixed-length padding, NumPy `fit`)",
              "torch_packed": "PyTorch, packed sequences",
              "apps": "`apps sentiment train` (unigram pieces, the default)",
              "apps_words": "`apps sentiment train --tokenizer word`"}
    for name in NAMES:
        entry = summary[name]
        lines.append(f"| {labels[name]} | {entry['wall_seconds']:.1f} | "
                     f"{', '.join(f'{s:.1f}' for s in entry['runs'])} | "
                     f"{100 * entry['test_accuracy']:.1f} % | "
                     f"{entry['ratio_to_keras_recipe']:.2f}x | "
                     f"{entry['ratio_to_torch_packed']:.2f}x |")
    lines.append("")
    for name in PROJECT:
        verdict = ", ".join(f"{'met' if summary[name][f'ratio_to_{p}'] <= t else 'missed'} "
                            f"(<= {t}x {p})" for p, t in TARGETS.items())
        epochs = [r["epoch_seconds"] for r in rows if r["name"] == name]
        lines.append(f"Targets for {name}: {verdict}. Seconds per epoch (history.csv): "
                     + "; ".join(", ".join(f"{s:.1f}" for s in run) for run in epochs) + ".")
    lines += [
        "",
        f"Command: `{command}`",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="runs of each command")
    parser.add_argument("--data", type=Path, default=DATA, help="folder with {train,dev,test}.tsv")
    parser.add_argument("--output-md", type=Path, help="also write the markdown section here")
    args = parser.parse_args()
    info = {**machine(), "repeats": args.repeats}
    rows = measure(args.repeats, args.data)
    info["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    summary = summarise(rows)
    command = "PYTHONPATH=. .venv/bin/python bench/sentiment_speed.py " + " ".join(sys.argv[1:])
    text = markdown(summary, info, rows, command)
    print(text)
    print(json.dumps({"benchmark": "sentiment_speed", "machine": info, "summary": summary,
                      "runs": rows}))
    if args.output_md:
        args.output_md.parent.mkdir(parents=True, exist_ok=True)
        args.output_md.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
