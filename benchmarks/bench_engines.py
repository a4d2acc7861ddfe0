"""Timing-engine throughput: instructions per second of the event and the fast engine.

Programs (count_only timing runs, `edge` preset):
- ``gemm_512``: the tiled int4 GEMM of tests/programs.py, M = N = K = 512 in 16x16x16 tiles
  (100,354 instructions);
- ``resnet18_224``: ResNet-18 at 224x224 as lowered for `edge` (2,796 instructions).

For each, best of `--repeats` wall times of:
- ``event_s`` / ``fast_s``: `simulate(program, cfg, count_only=True, engine=...)`, race
  detector off (the design-point setting) and ``*_races_s`` with it on (the default);
- ``plan_s``: the per-instruction planning pass (`accelsim.plan.plan_objects`, the event
  engine's) and ``plan_table_s`` the one from the program's table (`plan_table`, the fast
  engine's count-only runs'); the fast runs get the program as lowered, a table;
- ``schedule_s``: the fast engine's schedule alone (`accelsim.fast_engine.schedule`), the
  part that replaces SimPy's event loop.
Rates are instructions / seconds. ``scaling`` runs the GEMM at 128, 256 and 512 and ResNet-18
with a tenth of the DRAM bandwidth (several times the cycles, the same instructions): the fast
schedule's cost follows the instruction count, not the cycle count.

Prints the results and writes benchmarks/results/engines.json (machine and load noted).
Usage: python benchmarks/bench_engines.py [--repeats 5] [--out PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from bench_kernels import machine_info

from accelsim import insn_table
from accelsim.config import load_config
from accelsim.fast_engine import schedule, unit_kinds
from accelsim.fileio import atomic_write_json
from accelsim.sim import plan_program, simulate

ROOT = Path(__file__).resolve().parent.parent
RESULTS_PATH = ROOT / "benchmarks" / "results" / "engines.json"


def _best(fn, repeats: int) -> float:
    """Best wall time in seconds over `repeats` calls (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def gemm_program(cfg, size: int):
    """The tiled int4 GEMM of tests/programs.py at M = N = K = size (zeros: timing only)."""
    sys.path.insert(0, str(ROOT))
    from tests.programs import tiled_gemm_program  # noqa: PLC0415 (a test fixture)

    w = np.zeros((size, size), np.int8)
    return tiled_gemm_program(cfg, (size, size), w, 0, 1 << 30, 31, a_bits=4, w_bits=4)


def resnet18_program(cfg):
    """ResNet-18 at 224x224 (random int8 weights) lowered for `cfg`."""
    from accelsim.cli.commands import resolve_model  # noqa: PLC0415
    from accelsim.frontend.lower import lower  # noqa: PLC0415

    return lower(resolve_model("resnet18", (8, 8), 0), cfg)


def measure(program, cfg, repeats: int, races: bool = True) -> dict:
    """One row: times and instruction rates of both engines on `program` (module docstring)."""
    n = program.n_insns
    # the program as lowered (a table) for the fast runs, one with instruction objects for
    # the event engine and the per-instruction plan
    table = program.rows()
    tabled = dataclasses.replace(program, insns=None, table=table)
    listed = dataclasses.replace(program, insns=insn_table.insns(table), table=None)
    plan, units = plan_program(tabled, cfg, table=True)
    kinds = unit_kinds(units, 7)
    row = {"instructions": n}
    runs = {
        "plan_s": lambda: plan_program(listed, cfg),
        "plan_table_s": lambda: plan_program(tabled, cfg, table=True),
        "schedule_s": lambda: schedule(plan.rows, *kinds, cfg),
    }
    for engine, prog in (("event", listed), ("fast", tabled)):
        runs[f"{engine}_s"] = lambda e=engine, p=prog: simulate(
            p, cfg, count_only=True, check_races=False, engine=e
        )
        if races:
            runs[f"{engine}_races_s"] = lambda e=engine, p=prog: simulate(
                p, cfg, count_only=True, engine=e
            )
    for key, fn in runs.items():
        seconds = _best(fn, repeats)
        row[key] = round(seconds, 6)
        row[key.replace("_s", "_insn_per_s")] = round(n / seconds)
    res = simulate(program, cfg, count_only=True, check_races=False, engine="fast")
    row["latency_cycles"] = res.stats.latency_cycles
    return row


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure (best)")
    parser.add_argument("--out", default=str(RESULTS_PATH), help="results JSON path")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    edge = load_config("edge")
    slow_dram = load_config("edge", ["dram.bw_bytes_per_cycle=2.56"])
    results = {
        "programs": {
            "gemm_512": measure(gemm_program(edge, 512), edge, args.repeats),
            "resnet18_224": measure(resnet18_program(edge), edge, args.repeats),
        },
        "scaling": {
            f"gemm_{size}": measure(gemm_program(edge, size), edge, args.repeats, races=False)
            for size in (128, 256)
        },
    }
    results["scaling"]["gemm_512"] = results["programs"]["gemm_512"]
    results["scaling"]["resnet18_224"] = results["programs"]["resnet18_224"]
    results["scaling"]["resnet18_224_tenth_dram_bw"] = measure(
        resnet18_program(slow_dram), slow_dram, args.repeats, races=False
    )
    results["machine"] = {
        **machine_info(),
        "load_avg_before": [round(v, 2) for v in load_before],
        "load_avg_after": [round(v, 2) for v in os.getloadavg()],
    }
    results["timing"] = f"wall time, best of {args.repeats} runs after a warm-up"
    results["unix_time_s"] = round(time.time(), 1)
    print(json.dumps(results, indent=2))
    atomic_write_json(args.out, results)
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
