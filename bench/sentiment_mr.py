"""MR accuracy benchmark: train with bench/configs/sentiment_mr.yaml on several seeds.

Trains on train.tsv, selects the epoch on dev.tsv, reports test.tsv accuracy and the
whole `train` command's wall time per seed (the target: >= 80.0 % in <= 5 minutes).

    python bench/sentiment_mr.py --seeds 1 2 3 \
        [--output-md docs/bench_sections/sentiment_accuracy.md]
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

from common import ROOT, SHARED, apps, machine

MR = SHARED / "sentiment" / "mr"
CONFIG = ROOT / "bench" / "configs" / "sentiment_mr.yaml"


def one_seed(seed: int, workdir: Path, config: Path) -> dict:
    run = workdir / f"seed-{seed}"
    start = time.perf_counter()
    apps("sentiment", "train", "--config", str(config), "--data", str(MR / "train.tsv"),
         "--valid", str(MR / "dev.tsv"), "--seed", str(seed), "--output", str(run), "--quiet")
    wall = time.perf_counter() - start
    report = json.loads(apps("sentiment", "evaluate", str(run), "--data", str(MR / "test.tsv"),
                             "--json").stdout)
    dev = json.loads((run / "metrics.json").read_text())["valid"]["accuracy"]
    return {"seed": seed, "wall_seconds": round(wall, 1), "dev_accuracy": dev,
            "test_accuracy": report["accuracy"], "test_macro_f1": report["macro_f1"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--output-md", type=Path)
    args = parser.parse_args()
    where = machine()
    with tempfile.TemporaryDirectory() as workdir:
        rows = []
        for seed in args.seeds:
            rows.append(one_seed(seed, Path(workdir), args.config))
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
