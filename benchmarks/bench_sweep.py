"""Sweep throughput: design points per minute of `accelsim sweep` on ResNet-18 at 224x224.

Every point is a distinct configuration (array rows x cols x dataflow x weight buffer), 8/8
bits, timing only, on the sweep's default timing engine (`fast`, recorded in the JSON). A
worker lowers once per `lowering_key` (weight buffer x array columns: 12 programs for the 144
configurations; the dataflow and the array's rows change the timing, not the program) and
simulates each point; `bench_points.py` measures points that each need their own lowering. The
rate is the whole sweep's wall time, worker start-up and graph builds included, as a user sees
it: first with 2 jobs (`points_per_min`), then with 1 (the points in the calling process),
whose ratio is `speedup_2_jobs`. The machine is shared: the load average before and after is
recorded, and each run's median seconds per point in a worker (equal medians mean the workers
each had a core).

Prints the figures and writes benchmarks/results/sweep.json.
Usage: ``python benchmarks/bench_sweep.py [--points 144] [--out PATH]``
"""

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path

from bench_kernels import machine_info

from accelsim.cli.sources import CliWorkloads
from accelsim.fileio import atomic_write_json
from accelsim.sweep.run import run_sweep
from accelsim.sweep.spec import parse_spec

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "sweep.json"
SPEC = """
name = "bench_sweep"
workloads = ["resnet18"]
base = "edge"
[axes]
"buffers.wgt_bytes" = [65536, 131072, 262144]
"matmul.dataflow" = ["os", "ws", "is"]
"matmul.rows" = [8, 16, 32, 64]
"matmul.cols" = [8, 16, 32, 64]
"""


def _spec(points: int):
    """The first `points` configurations of SPEC (144 at most) as a spec of their own."""
    spec = parse_spec(SPEC, "bench_sweep.toml")
    combos = []
    for w in (65536, 131072, 262144):
        for d in ("os", "ws", "is"):
            for r in (8, 16, 32, 64):
                for c in (8, 16, 32, 64):
                    combos.append((w, d, r, c))
    keys = ("buffers.wgt_bytes", "matmul.dataflow", "matmul.rows", "matmul.cols")
    rows = tuple(combos[:points])
    return spec.__class__(**{**spec.__dict__, "axes": (), "zips": ((keys, rows),)})


def run(points: int, jobs: int, folder: Path) -> dict:
    spec = _spec(points)
    out = folder / f"sweep_{jobs}.sqlite"
    source = CliWorkloads(str(folder / "cache"))
    outcome = run_sweep(spec, source, out, jobs=jobs, progress=sys.stderr.isatty())
    assert outcome.errors == 0, f"{outcome.errors} points failed"
    con = sqlite3.connect(out)
    point_s = sorted(r[0] for r in con.execute("SELECT seconds FROM points"))
    con.close()
    return {
        "jobs": jobs,
        "points": outcome.ran,
        "seconds": round(outcome.seconds, 2),
        "points_per_min": round(60 * outcome.points_per_s, 1),
        # a worker's own time per point (its first includes building the graph): twice the
        # 1-job figure means the two workers got one core's worth of CPU between them
        "point_seconds_median": round(statistics.median(point_s), 2),
        "point_seconds_sum": round(sum(point_s), 1),
        "engine": outcome.engine,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=144, help="configurations per run (<= 144)")
    ap.add_argument("--out", type=Path, default=RESULTS_PATH)
    args = ap.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        two = run(args.points, 2, Path(tmp))
        print(
            f"2 jobs: {two['points']} points in {two['seconds']} s = "
            f"{two['points_per_min']} points/min ({two['engine']} engine)"
        )
        one = run(args.points, 1, Path(tmp))
        print(
            f"1 job:  {one['points']} points in {one['seconds']} s = "
            f"{one['points_per_min']} points/min"
        )
    speedup = two["points_per_min"] / one["points_per_min"]
    print(f"speedup with 2 jobs: {speedup:.2f}x")
    result = {
        "benchmark": "sweep",
        "workload": "resnet18 at 224x224, 8/8 bits, timing only, edge base",
        "points_per_min": two["points_per_min"],
        "speedup_2_jobs": round(speedup, 2),
        "runs": [two, one],
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "machine": machine_info(),
    }
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
