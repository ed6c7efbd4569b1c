"""MR accuracy benchmark: train with bench/configs/sentiment_mr.yaml on several seeds.

Trains on train.tsv, selects the epoch on dev.tsv, reports test.tsv accuracy and the
whole `train` command's wall time per seed (the target: >= 80.0 % in <= 5 minutes).

    python bench/sentiment_mr.py --seeds 1 2 3 \
        [--output-md docs/bench_sections/sentiment_accuracy.md] [--average-last N]

With the config's `keep_epochs: 3`, each seed is also scored as `apps sentiment export
RUN --average-last 3` gives it (the figure the benchmark reports).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml
from common import ROOT, SHARED, apps, machine

MR = SHARED / "sentiment" / "mr"
CONFIG = ROOT / "bench" / "configs" / "sentiment_mr.yaml"


def evaluate(model: Path, split: str) -> dict:
    """`apps sentiment evaluate --json` of a run directory or a SavedModel on MR's split."""
    return json.loads(apps("sentiment", "evaluate", str(model), "--data",
                           str(MR / f"{split}.tsv"), "--json").stdout)


def one_seed(seed: int, workdir: Path, config: Path, average_last: int | None = None) -> dict:
    """One seed's run; with `average_last` N also the export of its last N epochs' mean
    (`--keep-epochs N`, `export --average-last N`), scored on dev and test."""
    run = workdir / f"seed-{seed}"
    start = time.perf_counter()
    apps("sentiment", "train", "--config", str(config), "--data", str(MR / "train.tsv"),
         "--valid", str(MR / "dev.tsv"), "--seed", str(seed), "--output", str(run), "--quiet",
         *(["--keep-epochs", str(average_last)] if average_last else []))
    wall = time.perf_counter() - start
    report = evaluate(run, "test")
    dev = json.loads((run / "metrics.json").read_text())["valid"]["accuracy"]
    row = {"seed": seed, "wall_seconds": round(wall, 1), "dev_accuracy": dev,
           "test_accuracy": report["accuracy"], "test_macro_f1": report["macro_f1"]}
    if average_last:
        base = workdir / f"export-{seed}"
        apps("sentiment", "export", str(run), "--model-base-path", str(base),
             "--average-last", str(average_last))
        (version,) = (base / "sentiment").iterdir()
        row.update(averaged_dev_accuracy=evaluate(version, "dev")["accuracy"],
                   averaged_test_accuracy=evaluate(version, "test")["accuracy"])
    return row


def averaged_line(rows: list[dict], epochs: int) -> str:
    """The seeds' dev and test accuracy of the export of their last `epochs` epochs' mean."""
    def listed(key: str) -> str:
        values = [r[key] for r in rows]
        return f"{', '.join(f'{v:.4f}' for v in values)} (mean {statistics.mean(values):.4f}"

    best = statistics.mean(r["dev_accuracy"] for r in rows)
    return (f"Mean of the last {epochs} epochs (`export --average-last {epochs}`): dev "
            f"{listed('averaged_dev_accuracy')}, best epoch {best:.4f}); test "
            f"{listed('averaged_test_accuracy')}).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--output-md", type=Path)
    parser.add_argument("--average-last", type=int, metavar="N",
                        help="Also score the export of the mean of the last N epochs' weights "
                             "(the table adds its dev and test) [default: the config's "
                             "keep_epochs; 0: none].")
    args = parser.parse_args()
    if args.average_last is None:
        args.average_last = yaml.safe_load(args.config.read_text()).get("keep_epochs", 0)
    where = machine()
    with tempfile.TemporaryDirectory() as workdir:
        rows = []
        for seed in args.seeds:
            rows.append(one_seed(seed, Path(workdir), args.config, args.average_last))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    accuracies = [r["test_accuracy"] for r in rows]
    lines = [
        f"Config `{os.path.relpath(args.config, ROOT)}`; {where} at the start.",
        "",
        "| seed | train wall (s) | dev acc | test acc | test macro-F1 |",
        "| --- | --- | --- | --- | --- |",
        *[f"| {r['seed']} | {r['wall_seconds']} | {r['dev_accuracy']:.4f} | "
          f"{r['test_accuracy']:.4f} | {r['test_macro_f1']:.4f} |" for r in rows],
        "",
        f"Test accuracy: mean {statistics.mean(accuracies):.4f}, min {min(accuracies):.4f}, "
        f"max {max(accuracies):.4f}; slowest train {max(r['wall_seconds'] for r in rows)} s.",
        "",
        *([averaged_line(rows, args.average_last), ""] if args.average_last else []),
        f"Command: `python bench/sentiment_mr.py {' '.join(sys.argv[1:])}`",
    ]
    print("\n".join(lines))
    if args.output_md:
        args.output_md.parent.mkdir(parents=True, exist_ok=True)
        args.output_md.write_text("\n".join(lines) + "\n")
    print(json.dumps({"bench": "sentiment_mr_accuracy", "runs": rows,
                      "mean_test_accuracy": statistics.mean(accuracies)}))


if __name__ == "__main__":
    main()
