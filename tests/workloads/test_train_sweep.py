"""workloads/train_sweep.py: its training workers do not outlive it (a SIGTERM to the script
used to leave them training as orphans)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import children, still_alive

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_sigterm_takes_the_training_workers_with_it():
    """Two seeds in two spawned workers (each trains an fp teacher for tens of seconds); once
    both run, SIGTERM the script: the kernel kills the workers (PR_SET_PDEATHSIG)."""
    pytest.importorskip("sklearn", reason="the digits data set needs the data extra")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "workloads" / "train_sweep.py"),
            "--seeds",
            "0",
            "1",
            "--jobs",
            "2",
            "--bits",
            "4/4",
            "--methods",
            "lsq",
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while len(workers := children(proc.pid)) < 2 and time.monotonic() < deadline:
            assert proc.poll() is None, "train_sweep ended before its workers started"
            time.sleep(0.05)
        assert len(workers) >= 2
        time.sleep(1.0)  # the workers are past start-up and training
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        assert still_alive(workers) == set()
    finally:  # whatever happened, leave no process of this test behind
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)
