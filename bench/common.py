"""What every benchmark needs: the `apps` command, the shared data, and the machine.

A figure means little without the machine that made it: `machine()` names the CPU
model, the cores and the load (this machine is shared, and its CPU changes between
sessions), and every script prints it beside its numbers.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


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
