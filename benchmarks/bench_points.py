"""Design points per minute: ResNet-18 at 224x224 on variations of `edge`, and what runs cost.

A design point is one configuration: lower the network timing-only (no DRAM image; the graph
checked and folded once per bit width, as a sweep's worker does: `runner.prepare_core`), simulate
it count-only (without the race detector, as a sweep runs) and summarize it with energy. The
fixed list (`design_points`) has 60 distinct variations of `edge`: the array 8, 16, 32 or 64 on
a side, the five GEMM buffers (inp, wgt, acc, out, param) each a quarter to four times its
size, the three dataflows and five bit widths from 8/8 to 2/2. Each of the 4 x 3 x 5 = 60
(array, dataflow, bits) triples appears once; the buffer scales come from a seeded generator
(point 0 is `edge` itself).

Keys of benchmarks/results/points.json (besides `machine`):
- points_per_min: the list on the fast engine, 2 worker processes (`ProcessPoolExecutor`), warm
  (graphs built and Numba loaded before the clock starts; plan caches empty), the median of 3
  runs interleaved with the event engine's (all runs under `points_per_min_runs`); while the fast
  engine is not on this branch the event engine stands in and `machine.points_engine` says so;
- points_per_min_event: the same points on the event (SimPy) engine (runs:
  `points_per_min_event_runs`);
- lower_s_median: median seconds of lowering point 0 with an empty plan cache, in a process
  warmed up as the workers are;
- startup_s: wall seconds of `accelsim run mlp --timing-only` (median of 3, bytecode written
  first: `bench_kernels.compile_bytecode`);
- resnet18_timing_s: wall seconds of `accelsim run resnet18 --timing-only` (median of 3);
- resnet18_functional_s: median in-process seconds of a datapath run of ResNet-18 224 int8 on
  `edge` (lowering with the DRAM image, simulation with every kernel);
- scaling: per image side (112, 224, 448): the shell timing run's wall seconds and, in process,
  the seconds of lowering and simulating it, its instructions and simulated cycles.

The machine is shared: the load average before and after is recorded with the figures.
Usage: ``python benchmarks/bench_points.py [--points N] [--out PATH]``
"""

import argparse
import inspect
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from bench_kernels import compile_bytecode, machine_info

from accelsim.config import load_config
from accelsim.fileio import atomic_write_json
from accelsim.frontend.lower import lower
from accelsim.frontend.tile_cost import clear_plan_cache
from accelsim.report import summarize
from accelsim.runner import RunResult, prepare_core, run_model
from accelsim.sim import simulate
from workloads import registry

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "points.json"
ARRAYS = (16, 8, 32, 64)  # array side; edge's 16 first, so point 0 is edge
DATAFLOWS = ("os", "ws", "is")
BITS = ((8, 8), (8, 4), (4, 4), (4, 2), (2, 2))  # (activation, weight) bits
BUFFERS = ("inp", "wgt", "acc", "out", "param")
SCALES = (0.25, 0.5, 1, 2, 4)  # of each buffer's size in edge
N_POINTS = len(ARRAYS) * len(DATAFLOWS) * len(BITS)  # 60: every triple once
FAST = "engine" in inspect.signature(simulate).parameters  # the fast engine is on this branch
SIDES = (112, 224, 448)
ROUNDS = 3  # runs of the list per engine
# A sweep trusts the token pass (tests/frontend check lowered streams race-free); the race
# detector, a debugging aid that costs as much as the fast schedule itself, stays off.
CHECK_RACES = False

_GRAPHS: dict = {}  # bits -> ResNet-18 224 graph (built in the parent, inherited by fork)
_PREPARED: dict = {}  # bits -> that graph checked and folded once, as a sweep's worker keeps it


def design_points(n: int = N_POINTS) -> list[dict]:
    """The fixed list: {"set": --set overrides of edge, "bits": (a, w)} per point, distinct."""
    base = load_config("edge").buffers
    rng = random.Random(2024)
    points = []
    for i in range(n):
        side = ARRAYS[i % len(ARRAYS)]
        scales = [1] * len(BUFFERS) if i == 0 else [rng.choice(SCALES) for _ in BUFFERS]
        overrides = [f"matmul.rows={side}", f"matmul.cols={side}"]
        overrides.append(f"matmul.dataflow={DATAFLOWS[i % len(DATAFLOWS)]}")
        for buf, scale in zip(BUFFERS, scales):
            size = int(getattr(base, f"{buf}_bytes") * scale)
            overrides.append(f"buffers.{buf}_bytes={size}")
        points.append({"set": overrides, "bits": BITS[i % len(BITS)]})
    return points


def _evaluate(point: dict, engine: str) -> dict:
    """One design point: config, timing-only lowering, count-only simulation, summary."""
    clock = [(time.perf_counter(), time.process_time())]
    cfg = load_config("edge", point["set"])
    graph = _GRAPHS[point["bits"]]
    program = lower(_PREPARED[point["bits"]], cfg, timing_only=True)
    clock.append((time.perf_counter(), time.process_time()))
    kwargs = {"engine": engine} if FAST else {}
    res = simulate(program, cfg, count_only=True, check_races=CHECK_RACES, **kwargs)
    clock.append((time.perf_counter(), time.process_time()))
    s = summarize(RunResult(graph, program, res.stats), cfg)
    clock.append((time.perf_counter(), time.process_time()))
    out = {
        "latency_cycles": s["latency_cycles"],
        "energy_pj": s["energy_pj"],
        "instructions": program.n_insns,
    }
    for stage, (a, b) in zip(("lower", "simulate", "summarize"), zip(clock, clock[1:])):
        out[f"{stage}_s"] = b[0] - a[0]
        out[f"{stage}_cpu_s"] = b[1] - a[1]
    return out


def _warm(engine: str) -> None:
    """Worker start-up: load the kernels with one point, then forget its plans."""
    _evaluate(design_points(1)[0], engine)
    clear_plan_cache()


def _pid(_) -> int:
    time.sleep(0.2)
    return os.getpid()


def points_per_min(points: list, engine: str, workers: int = 2) -> tuple[float, list]:
    """Points per minute over `points` on `workers` warm processes, and each point's result."""
    ctx = multiprocessing.get_context("fork")  # the workers inherit the built graphs
    with ProcessPoolExecutor(workers, ctx, initializer=_warm, initargs=(engine,)) as pool:
        seen: set = set()
        while len(seen) < workers:  # every worker has started (and warmed up)
            seen |= set(pool.map(_pid, range(workers)))
        t0 = time.perf_counter()
        results = list(pool.map(_evaluate, points, [engine] * len(points)))
        wall = time.perf_counter() - t0
    return len(points) / wall * 60, results


def _median_run(runs: list) -> tuple[float, list]:
    """The (points per minute, rows) run with the median rate."""
    return sorted(runs, key=lambda r: r[0])[len(runs) // 2]


def _median_wall(cmd: list, repeats: int = 3) -> float:
    walls = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        walls.append(time.perf_counter() - t0)
    return statistics.median(walls)


def _accelsim() -> list:
    """The `accelsim` console script of this interpreter (no version-manager shim), or the
    same entry point through the interpreter."""
    script = Path(sys.executable).with_name("accelsim")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from accelsim.cli import main; sys.exit(main())"]


def lower_median(point: dict, repeats: int = 15) -> float:
    cfg = load_config("edge", point["set"])
    graph = _PREPARED[point["bits"]]
    walls = []
    for _ in range(repeats):
        clear_plan_cache()
        t0 = time.perf_counter()
        lower(graph, cfg, timing_only=True)
        walls.append(time.perf_counter() - t0)
    return statistics.median(walls)


def functional_seconds(repeats: int = 3) -> float:
    """A datapath run of ResNet-18 224 int8 on edge, lowering included (after one warm run)."""
    cfg = load_config("edge")
    graph = _GRAPHS[(8, 8)]
    x = np.random.default_rng(0).random(graph.tensors[graph.input].shape)
    run_model(graph, cfg, x)
    walls = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run_model(graph, cfg, x)
        walls.append(time.perf_counter() - t0)
    return statistics.median(walls)


def scaling(cmd: list) -> dict:
    out = {}
    cfg = load_config("edge")
    for side in SIDES:
        graph = registry.build("resnet18", (8, 8), 0, image_size=side)
        t0 = time.perf_counter()
        program = lower(graph, cfg, timing_only=True)
        t1 = time.perf_counter()
        res = simulate(program, cfg, count_only=True)
        t2 = time.perf_counter()
        shell = _median_wall([*cmd, "run", "resnet18", "--timing-only", "--image-size", str(side)])
        out[str(side)] = {
            "shell_timing_s": round(shell, 3),
            "lower_s": round(t1 - t0, 4),
            "simulate_s": round(t2 - t1, 4),
            "instructions": program.n_insns,
            "latency_cycles": res.stats.latency_cycles,
        }
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=N_POINTS, help="points of the list to run")
    ap.add_argument("--out", default=str(RESULTS_PATH))
    args = ap.parse_args(argv)
    load_before = os.getloadavg()
    points = design_points(args.points)
    t0 = time.perf_counter()
    for bits in BITS:
        _GRAPHS[bits] = registry.build("resnet18", bits, 0)
        _PREPARED[bits] = prepare_core(_GRAPHS[bits])
    print(f"built ResNet-18 224 at {len(BITS)} bit widths in {time.perf_counter() - t0:.1f} s")
    engine = "fast" if FAST else "event"
    if not FAST:
        print("the fast engine is not on this branch: points_per_min uses the event engine")
    # the shared machine's speed drifts by a third within minutes: each figure is the median
    # of ROUNDS runs of the list, the engines interleaved
    runs: dict = {engine: [], "event": []}
    for _ in range(ROUNDS):
        for eng in runs:
            runs[eng].append(points_per_min(points, eng))
    (ppm, fast_rows), (ppm_event, event_rows) = (_median_run(runs[e]) for e in (engine, "event"))
    for name, rows in (("points", fast_rows), ("event points", event_rows)):
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0] if k.endswith("_s")}
        insns = statistics.median(r["instructions"] for r in rows)
        print(
            f"{name}: median {insns:.0f} instructions; "
            + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in med.items())
        )
    worst = max(
        abs(f["latency_cycles"] - e["latency_cycles"]) / e["latency_cycles"]
        for f, e in zip(fast_rows, event_rows)
    )
    print(f"largest latency difference between the engines: {worst:.2%}")
    cmd = _accelsim()
    compile_bytecode()
    _warm(engine)  # this process too: Numba loaded, as in a worker
    result = {
        "points_per_min": round(ppm, 1),
        "points_per_min_event": round(ppm_event, 1),
        "points_per_min_runs": [round(r[0], 1) for r in runs[engine]],
        "points_per_min_event_runs": [round(r[0], 1) for r in runs["event"]],
        "lower_s_median": round(lower_median(points[0]), 4),
        "startup_s": round(_median_wall([*cmd, "run", "mlp", "--timing-only"]), 3),
        "resnet18_timing_s": round(_median_wall([*cmd, "run", "resnet18", "--timing-only"]), 3),
        "resnet18_functional_s": round(functional_seconds(), 3),
        "scaling": scaling(cmd),
        "machine": {
            **machine_info(),
            "points": len(points),
            "workers": 2,
            "points_engine": engine if FAST else "event (fast engine not on this branch)",
            "check_races": CHECK_RACES,
            "command": " ".join(Path(c).name for c in cmd),
            "load_avg_before": [round(v, 2) for v in load_before],
            "load_avg_after": [round(v, 2) for v in os.getloadavg()],
            "unix_time_s": round(time.time(), 1),
        },
    }
    for key, value in result.items():
        if key != "machine":
            print(f"{key}: {value}")
    print(f"event-engine point: {2 * 60 / ppm_event * 1e3:.0f} ms per worker")
    atomic_write_json(args.out, result, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
