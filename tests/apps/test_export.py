"""Temporaries of exports killed with -9 are cleaned up by the next export."""

import os
import subprocess
import sys

from apps.export import remove_abandoned_exports


def test_temporaries_of_dead_exports_go_and_live_ones_stay(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    dead_pid = int(finished.stdout)  # a process that has exited: its export was killed
    abandoned = tmp_path / f".export-{dead_pid}-k1ll3d"
    running = tmp_path / f".export-{os.getpid()}-running"  # a concurrent export, still going
    version, foreign = tmp_path / "3", tmp_path / ".export-half-written"
    for directory in (abandoned, running, version, foreign):
        (directory / "variables").mkdir(parents=True)

    remove_abandoned_exports(tmp_path)

    assert not abandoned.exists()
    assert running.is_dir() and version.is_dir() and foreign.is_dir()
