"""Data at scale: peak memory and time outside training as the corpus grows.

Builds corpora in a temporary folder (never committed): Multi30k's training pairs
repeated to 300k and 3M pairs, Tiny Shakespeare's training text repeated to 96 MB
(and, with --lm-gb, to 1 GB). Trains each with a short --time-budget and reports the
peak resident memory of the `apps` process (its own rusage), its CPU seconds, the
time outside training (wall minus the budget: reading, tokenizer, first batches,
validation, save), the seconds until the first training step was done, and the load
while it ran. Both translation sizes stream (`--streaming on`, the default here), so
their ratio compares one path at two sizes.
`--only throughput` trains one model on Multi30k from memory and streamed in one
process, alternating blocks of steps (A B A B ...) so that load drifts hit both, and
reports pairs/s of each and their ratio.
Targets (issue 18): translation 3M <= 1.25x 300k and <= 3 GiB, outside training for
3M <= 60 s; LM 96 MB <= 2 GiB; 1 GB <= 3 GiB with its first step within 90 s;
streamed Multi30k throughput within 5 % of the in-memory path.

    python bench/data_scale.py [--budget 20] [--lm-gb] [--only translation|lm|throughput]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, SHARED, LoadMonitor, machine

MULTI30K = SHARED / "translate" / "multi30k"
SHAKESPEARE = SHARED / "lm" / "tinyshakespeare"
FIRST_STEP = re.compile(rb"\b1/\d+|\b1/Unknown")


def repeat_lines(source: Path, target: Path, lines: int) -> None:
    """`lines` lines of `source`, repeated from its start as often as needed."""
    rows = source.read_bytes().splitlines(keepends=True)
    with target.open("wb") as handle:
        for start in range(0, lines, len(rows)):
            handle.writelines(rows[: min(len(rows), lines - start)])


def repeat_bytes(source: Path, target: Path, size: int) -> None:
    text = source.read_bytes()
    with target.open("wb") as handle:
        for _ in range(-(-size // len(text))):
            handle.write(text)


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system, every thread) a running process has used so far: a
    figure the load of a shared machine inflates far less than wall time."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 1)


def measured(args: list[str]) -> dict:
    """Run `python -m apps ARGS`: wall seconds, peak RSS (GiB, from wait4's rusage) and
    the seconds (wall and CPU) until the progress bar first showed a finished step."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "apps", *args], env=env, cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    first_step, first_step_cpu, seen = None, None, b""
    while chunk := process.stdout.read1(65536):
        seen = (seen + chunk)[-100_000:]
        if first_step is None and b"Epoch 1/" in seen and FIRST_STEP.search(
                seen[seen.rfind(b"Epoch 1/"):].split(b"\n", 1)[-1]):
            first_step = time.monotonic() - start
            first_step_cpu = cpu_seconds(process.pid)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - start
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"apps {' '.join(args)} failed:\n{seen[-3000:].decode(errors='replace')}")
    return {"wall_s": round(wall, 1), "peak_rss_gib": round(usage.ru_maxrss / 2**20, 2),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "first_step_s": None if first_step is None else round(first_step, 1),
            "first_step_cpu_s": first_step_cpu,
            "load": round(os.getloadavg()[0], 1)}


def throughput(blocks: int, steps: int) -> dict:
    """Multi30k training pairs/s from memory and streamed: one model, one process,
    `blocks` alternating blocks of `steps` steps of each (after a warm-up of each)."""
    import tensorflow as tf

    from apps.task import TrainingPlan
    from apps.training import TrainingLoop, batch_rows
    from apps.translation.task import TASK, TranslationSettings

    paths = {mode: TranslationSettings(
        data=str(MULTI30K / "train"), source_lang="de", target_lang="en",
        valid=str(MULTI30K / "val"), streaming=mode) for mode in ("off", "on")}
    data = {mode: TASK.read_training_data(settings) for mode, settings in paths.items()}
    inputters = TASK.make_inputters(paths["off"])
    TASK.fit_inputters(inputters, *data["off"], paths["off"])
    datasets = {mode: TASK.datasets(settings, inputters, *data[mode])[0](0).repeat()
                for mode, settings in paths.items()}
    batches = {mode: iter(dataset) for mode, dataset in datasets.items()}
    model = TASK.build_model(paths["off"], inputters)
    first = next(batches["off"])
    TASK.compile_model(model, paths["off"], TrainingPlan(None, None, 1000))
    loop = TrainingLoop(model, tf.distribute.get_strategy(), first)
    seconds, pairs = {"off": 0.0, "on": 0.0}, {"off": 0, "on": 0}
    for block in range(blocks + 1):  # block 0: the warm-up (tracing), not counted
        for mode in ("off", "on"):
            start, rows = time.monotonic(), 0
            for _ in range(steps):
                batch = next(batches[mode])
                logs = loop.step("train", datasets[mode].element_spec)(batch)
                rows += batch_rows(batch)
            float(logs["loss"])  # wait for the block's last step
            if block:
                seconds[mode] += time.monotonic() - start
                pairs[mode] += rows
    rates = {mode: pairs[mode] / seconds[mode] for mode in seconds}
    return {"in_memory_pairs_s": round(rates["off"], 1), "streamed_pairs_s": round(rates["on"], 1),
            "ratio": round(rates["on"] / rates["off"], 3), "steps_each": blocks * steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=20, help="--time-budget in seconds")
    parser.add_argument("--lm-gb", action="store_true", help="also train on 1 GB of text")
    parser.add_argument("--only", choices=("translation", "lm", "throughput"))
    parser.add_argument("--streaming", default="on", help="passed to apps (auto, on, off)")
    parser.add_argument("--blocks", type=int, default=4, help="throughput: blocks of each path")
    parser.add_argument("--steps", type=int, default=40, help="throughput: steps a block")
    options = parser.parse_args()
    print(f"machine: {machine()}")
    if options.only == "throughput":
        with LoadMonitor() as load:
            print(throughput(options.blocks, options.steps))
        print(f"{machine()}; {load.summary()}")
        return
    budget = ["--time-budget", f"{options.budget}s", "--epochs", "1",
              "--streaming", options.streaming]
    with tempfile.TemporaryDirectory(prefix="data_scale-") as folder, LoadMonitor() as load:
        folder = Path(folder)
        rows = []
        if options.only in (None, "translation"):
            for pairs in (300_000, 3_000_000):
                prefix = folder / f"mt{pairs}"
                for lang in ("de", "en"):
                    repeat_lines(MULTI30K / f"train.{lang}", Path(f"{prefix}.{lang}"), pairs)
                result = measured(["translation", "train", "--data", str(prefix),
                                   "--source-lang", "de", "--target-lang", "en", "--valid",
                                   str(MULTI30K / "val"), "--output",
                                   str(folder / f"run-mt{pairs}"), *budget])
                rows.append((f"translation {pairs:,} pairs", result))
                print(rows[-1], flush=True)
                for lang in ("de", "en"):
                    Path(f"{prefix}.{lang}").unlink()
        if options.only in (None, "lm"):
            sizes = [96 << 20] + ([1 << 30] if options.lm_gb else [])
            for size in sizes:
                text = folder / f"lm{size}.txt"
                repeat_bytes(SHAKESPEARE / "train.txt", text, size)
                result = measured(["lm", "train", "--data", str(text), "--valid",
                                   str(SHAKESPEARE / "valid.txt"), "--output",
                                   str(folder / f"run-lm{size}"), *budget])
                rows.append((f"lm {text.stat().st_size / 2**20:,.0f} MB", result))
                print(rows[-1], flush=True)
                text.unlink()
    print("\n| run | peak RSS (GiB) | wall (s) | outside training (s) | first step (s) "
          "| CPU (s) | CPU to first step (s) | load at end |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, result in rows:
        print(f"| {name} | {result['peak_rss_gib']} | {result['wall_s']} | "
              f"{result['wall_s'] - options.budget:.1f} | {result['first_step_s']} | "
              f"{result['cpu_s']} | {result['first_step_cpu_s']} | {result['load']} |")
    print(f"\n{machine()}; {load.summary()}")


if __name__ == "__main__":
    main()
