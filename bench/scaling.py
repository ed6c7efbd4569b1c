"""Scaling benchmarks: two loopback workers and mixed precision against one float32 worker.

For each benchmark config it trains three variants from the same command line and
scores them the same way:

- `float32`: one device, float32 (the baseline);
- `mixed_bfloat16`: one device, `--precision mixed_bfloat16`;
- `two workers`: `--strategy multi-worker`, two processes on loopback (TF_CONFIG), float32,
  the same global batch.

MR (`bench/configs/sentiment_mr.yaml`) is scored by test accuracy on test.tsv, Tiny
Shakespeare (`bench/configs/lm_tinyshakespeare.yaml`) by nats per character on
valid.txt read as one stream. The LM runs get `--time-budget 1h` so that every variant
trains its four epochs in full (the config's 14-minute budget would cut the slower
variants short, and the comparison would measure the clock, not the arithmetic).

    python bench/scaling.py [--only mr lm] [--variants float32 mixed_bfloat16 ...]
        [--output-md docs/bench_sections/scaling.md]

Targets: two workers lose at most 1 point (MR) / 0.02 nats/char (LM) against one
worker; mixed_bfloat16 loses at most 0.5 point / 0.02 nats/char; the wall-time ratios are
reported with the CPU model (two workers on two shared cores are not expected to be
faster).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, SHARED, LoadMonitor, apps, machine

BENCHES = {
    "mr": dict(task="sentiment", config="bench/configs/sentiment_mr.yaml",
               train=SHARED / "sentiment/mr/train.tsv", valid=SHARED / "sentiment/mr/dev.tsv",
               test=SHARED / "sentiment/mr/test.tsv", metric="accuracy", scale=100,
               unit="% test accuracy", tolerance={"mixed_bfloat16": 0.5, "two workers": 1.0},
               extra=[]),
    "lm": dict(task="lm", config="bench/configs/lm_tinyshakespeare.yaml",
               train=SHARED / "lm/tinyshakespeare/train.txt",
               valid=SHARED / "lm/tinyshakespeare/valid.txt",
               test=SHARED / "lm/tinyshakespeare/valid.txt", metric="nats_per_char", scale=1,
               unit="nats/char (valid.txt)", tolerance={"mixed_bfloat16": 0.02,
                                                        "two workers": 0.02},
               extra=["--time-budget", "1h"]),
}
VARIANTS = {"float32": ["--precision", "float32"],
            "mixed_bfloat16": ["--precision", "mixed_bfloat16"],
            "two workers": ["--precision", "float32", "--strategy", "multi-worker"]}


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def train(args: list, two_workers: bool) -> float:
    """Wall seconds of the train command (both workers', when there are two)."""
    start = time.perf_counter()
    if not two_workers:
        apps(*args)
        return time.perf_counter() - start
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    workers = [subprocess.Popen(
        [sys.executable, "-m", "apps", *map(str, args)], cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**env, "TF_CONFIG": json.dumps({"cluster": cluster,
                                             "task": {"type": "worker", "index": index}})})
        for index in (1, 0)]
    outputs = [worker.communicate()[0] for worker in workers]
    if any(worker.returncode for worker in workers):
        sys.exit("\n".join(f"worker {index} exited with {worker.returncode}:\n{output[-3000:]}"
                           for index, worker, output in zip((1, 0), workers, outputs)))
    return time.perf_counter() - start


def run_bench(name: str, workdir: Path, variants: list[str]) -> list[dict]:
    bench = BENCHES[name]
    rows = []
    for variant in variants:
        flags = VARIANTS[variant]
        run = workdir / f"{name}-{variant.replace(' ', '-')}"
        args = [bench["task"], "train", "--config", ROOT / bench["config"], "--data",
                bench["train"], "--valid", bench["valid"], "--output", run, "--quiet",
                *bench["extra"], *flags]
        with LoadMonitor() as load:
            seconds = train(args, variant == "two workers")
        report = json.loads(apps(bench["task"], "evaluate", run, "--data", bench["test"],
                                 "--json").stdout)
        history = json.loads((run / "metrics.json").read_text())["valid"]
        rows.append({"bench": name, "variant": variant, "wall_seconds": round(seconds, 1),
                     "value": round(report[bench["metric"]] * bench["scale"], 4),
                     "epochs_run": history["epochs_run"], "load": load.summary()})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def markdown(rows: list[dict], where: str, command: str) -> str:
    lines = ["## Scaling: two workers and mixed precision", "",
             f"Machine: {where} at the start (shared with other jobs).", "",
             "| config | variant | result | vs float32 | target | wall s | wall vs float32 "
             "| epochs | load during |",
             "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | --- |"]
    for name in dict.fromkeys(r["bench"] for r in rows):
        bench, mine = BENCHES[name], [r for r in rows if r["bench"] == name]
        base = mine[0]
        for row in mine:
            delta = row["value"] - base["value"]
            tolerance = bench["tolerance"].get(row["variant"])
            worse = -delta if bench["metric"] == "accuracy" else delta
            target = "" if tolerance is None else (
                f"{'met' if worse <= tolerance else 'missed'} (loses <= {tolerance})")
            lines.append(f"| {name} | {row['variant']} | {row['value']:.4f} {bench['unit']} | "
                         f"{delta:+.4f} | {target} | {row['wall_seconds']:.1f} | "
                         f"{row['wall_seconds'] / base['wall_seconds']:.2f}x | "
                         f"{row['epochs_run']} | {row['load']} |")
    lines += ["", f"Command: `{command}`", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(BENCHES), default=list(BENCHES))
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                        help="the first one is the baseline the others are compared with")
    parser.add_argument("--output-md", type=Path)
    args = parser.parse_args()
    where = machine()
    with tempfile.TemporaryDirectory(prefix="scaling_") as workdir:
        rows = [row for name in args.only
                for row in run_bench(name, Path(workdir), args.variants)]
    text = markdown(rows, where, "python bench/scaling.py " + " ".join(sys.argv[1:]))
    print(text)
    print(json.dumps({"bench": "scaling", "machine": where, "runs": rows}))
    if args.output_md:
        args.output_md.parent.mkdir(parents=True, exist_ok=True)
        args.output_md.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
