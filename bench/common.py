"""What every benchmark needs: the `apps` command, the shared data, and the machine.

A figure means little without the machine that made it: `machine()` names the CPU
model, the cores and the load (this machine is shared, and its CPU changes between
sessions), and every script prints it beside its numbers.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
TRANSLATION_PEER = ROOT / "bench" / "peers" / "keras_translation_recipe.py"


def apps(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m apps ARGS` from the repository; a failure stops the benchmark."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    done = subprocess.run([sys.executable, "-m", "apps", *map(str, args)], env=env,
                          capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        sys.exit(f"apps {' '.join(map(str, args))} failed ({done.returncode}):\n"
                 f"{done.stderr[-4000:]}")
    return done


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """'2 cores (AMD EPYC), load 1.9': what every figure is printed with."""
    return f"{os.cpu_count()} cores ({cpu_name()}), load {os.getloadavg()[0]:.1f}"


class LoadMonitor:
    """Samples the 1-minute load average every 10 s while a benchmark runs."""

    def __init__(self):
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(10)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_):
        self._stop.set()
        self._thread.join()

    def summary(self) -> str:
        if not self.samples:
            return "n/a"
        return (f"mean {statistics.mean(self.samples):.1f}, min {min(self.samples):.1f}, "
                f"max {max(self.samples):.1f}")


# -- translation benchmarks (translate_multi30k.py, translate_tatoeba.py) -----------------


def translation_scores(run: Path, test: Path, beams=(1, 5)) -> dict[int, dict]:
    """`apps translation evaluate RUN --data TEST --json` for each beam size: sacreBLEU
    BLEU and chrF with their signatures."""
    return {beam: json.loads(apps("translation", "evaluate", str(run), "--data", str(test),
                                  "--beam-size", str(beam), "--json").stdout)
            for beam in beams}


def run_translation_peer(tokenizer: Path, seconds: float, data_args: list[str],
                         batch_size: int = 64, by_length: bool = False) -> dict:
    """The plain Keras recipe (bench/peers/keras_translation_recipe.py) trained for
    `seconds` with the project's SentencePiece model, on the pairs `data_args` name
    (`--data FOLDER`, or `--train/--valid/--test PREFIX`, `--max-length N`); its last line
    of JSON."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(TRANSLATION_PEER), *map(str, data_args),
                           "--tokenizer", str(tokenizer), "--time-budget", str(round(seconds)),
                           "--decode-batch-size", str(batch_size)]
                          + ["--sort-by-length"] * by_length, env=env,
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"the peer failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def first_reaching(history: Path, bleu: float) -> float | None:
    """Training seconds until a run's validation BLEU (history.csv) first reached `bleu`."""
    elapsed = 0.0
    for row in csv.DictReader(history.open()):
        elapsed += float(row["seconds"])
        if float(row["val_bleu"]) >= bleu:
            return round(elapsed, 1)
    return None


def reach_ratio(peer: dict) -> str:
    """", x.xx of the recipe's time" when the project reached the recipe's BLEU."""
    reached = peer["project_seconds_to_peer_val_bleu"]
    return "" if reached is None else f" ({reached / peer['train_seconds']:.2f}x its time)"
