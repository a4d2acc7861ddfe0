"""A sweep killed at any moment loses nothing already written and resumes with no duplicate
rows; its workers never outlive it (SIGKILL of the whole process group, and of the parent
alone, which the workers' parent-death signal answers)."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from accelsim.cli.sources import CliWorkloads
from accelsim.sweep.run import run_sweep
from accelsim.sweep.spec import parse_spec
from tests.helpers import children, processes, still_alive
from tests.sweep.helpers import dump

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

SPEC = """
name = "many"
workloads = ["small_cnn"]
engine = "event"
[axes]
bits = ["8/8", "2/2"]
"matmul.dataflow" = ["os", "ws", "is"]
"matmul.rows" = [4, 8, 16, 32]
"matmul.cols" = [4, 8, 16, 32]
"""
POINTS = 96
ROOT = Path(__file__).resolve().parents[2]


def _ok_rows(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        n = con.execute("SELECT count(*) FROM points WHERE status = 'ok'").fetchone()[0]
        con.close()
        return n
    except sqlite3.Error:
        return 0  # tables not created yet


@pytest.fixture
def start(tmp_path):
    """start(out) launches `accelsim sweep` on SPEC in its own process group (as a shell job
    is); at teardown the whole group is SIGKILLed, so a failing test leaves nothing behind."""
    started = []

    def launch(out: Path) -> subprocess.Popen:
        (tmp_path / "many.toml").write_text(SPEC)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "ACCELSIM_CACHE": str(tmp_path / "cache")}
        code = "import sys; from accelsim.cli import main; sys.exit(main())"
        argv = [sys.executable, "-c", code, "sweep", str(tmp_path / "many.toml"), "-o", str(out)]
        proc = subprocess.Popen(
            [*argv, "--jobs", "2", "--no-progress"],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(proc)
        return proc

    yield launch
    for proc in started:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)


def _kill_midway(proc: subprocess.Popen, out: Path, group: bool) -> tuple[int, set[int]]:
    """Wait until a few points are written and both workers run, then SIGKILL the group (or
    the parent alone). Returns (ok rows seen before the kill, worker pids)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        workers = children(proc.pid)
        seen = _ok_rows(out)
        if seen >= 5 and len(workers) >= 2:
            break
        assert proc.poll() is None, "the sweep ended before it could be killed"
        time.sleep(0.05)
    else:
        pytest.fail("the sweep wrote no points within 120 s")
    if group:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return seen, workers


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("whole")
    out = tmp / "whole.sqlite"
    run_sweep(
        parse_spec(SPEC, "many.toml"), CliWorkloads(str(tmp / "cache")), out, jobs=2, progress=False
    )
    return dump(out)


def test_group_sigkill_keeps_written_points_and_resumes_exactly(tmp_path, start, uninterrupted):
    out = tmp_path / "killed.sqlite"
    proc = start(out)
    seen, workers = _kill_midway(proc, out, group=True)
    assert still_alive(workers) == set()
    assert not [p for p, (s, _, g) in processes().items() if g == proc.pid and s != "Z"]
    written = _ok_rows(out)
    assert seen <= written < POINTS  # nothing already written was lost; the sweep was cut
    before = dump(out)
    assert len({r["point_id"] for r in before["points"]}) == len(before["points"])
    outcome = run_sweep(
        parse_spec(SPEC, "many.toml"),
        CliWorkloads(str(tmp_path / "cache")),
        out,
        jobs=2,
        resume=True,
        progress=False,
    )
    assert outcome.skipped == written and outcome.ran == POINTS - written
    after = dump(out)
    assert after == uninterrupted
    assert len(after["points"]) == POINTS
    assert len(after["layers"]) == POINTS * 9  # small_cnn has 9 layers, once each


def test_workers_die_with_their_parent(tmp_path, start):
    """SIGKILL to the sweep process alone: its workers get SIGKILL from the kernel
    (PR_SET_PDEATHSIG) instead of running on as orphans."""
    out = tmp_path / "orphans.sqlite"
    proc = start(out)
    _, workers = _kill_midway(proc, out, group=False)
    assert len(workers) >= 2
    assert still_alive(workers) == set()
    group = {p for p, (_, _, g) in processes().items() if g == proc.pid}
    assert still_alive(group) == set()  # multiprocessing's resource tracker follows them
