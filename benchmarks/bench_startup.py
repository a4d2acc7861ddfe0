"""Start-up: wall time of small `accelsim` commands from the shell.

Each command runs in a fresh interpreter, as the `accelsim` script does (`from accelsim.cli
import main`): `--help`, `workloads`, `run mlp --timing-only` (the issue's `startup_s`) and
`run resnet18 --timing-only` with both engines. One untimed run first writes the bytecode and
Numba caches; then `--repeats` timed runs per command, interleaved across commands (and across
source trees with `--baseline`, so both see the same machine load). Reported per command: best
and median wall seconds and the median CPU seconds (user + sys of the child), which shows the
work when other processes share the cores.

`--baseline PATH` also times another checkout (e.g. the main branch before a change) with
PYTHONPATH=PATH. Writes benchmarks/results/startup.json (machine and load average noted).
Usage: python benchmarks/bench_startup.py [--repeats 7] [--baseline DIR] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_kernels import machine_info

from accelsim.fileio import atomic_write_json

ROOT = Path(__file__).resolve().parent.parent
RESULTS_PATH = ROOT / "benchmarks" / "results" / "startup.json"
COMMANDS = {
    "help": ["--help"],
    "workloads": ["workloads"],
    "mlp_timing_only": ["run", "mlp", "--timing-only"],
    "resnet18_timing_only": ["run", "resnet18", "--timing-only"],
    "resnet18_timing_only_fast": ["run", "resnet18", "--timing-only", "--engine", "fast"],
}
ENTRY = "import sys; from accelsim.cli import main; sys.exit(main(sys.argv[1:]))"


def _run(tree: Path, args: list, write_bytecode: bool = False) -> tuple[float, float] | None:
    """(wall s, child CPU s) of one `accelsim ARGS` in a fresh interpreter on source `tree`,
    or None if the command fails there (an option the tree does not have)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    if write_bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", ENTRY, *args], env=env, cwd=tree, capture_output=True
    )
    wall = time.perf_counter() - t0
    if done.returncode:
        return None
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def measure(trees: dict, repeats: int) -> dict:
    """name -> command -> {wall_s_best, wall_s_median, cpu_s_median} for each source tree."""
    works = {
        (name, cmd): _run(tree, args, write_bytecode=True) is not None  # caches, untimed
        for name, tree in trees.items()
        for cmd, args in COMMANDS.items()
    }
    samples = {name: {cmd: [] for cmd in COMMANDS if works[name, cmd]} for name in trees}
    for _ in range(repeats):
        for cmd, args in COMMANDS.items():
            for name, tree in trees.items():
                if works[name, cmd]:
                    samples[name][cmd].append(_run(tree, args))
    return {
        name: {
            cmd: {
                "wall_s_best": round(min(w for w, _ in runs), 3),
                "wall_s_median": round(statistics.median(w for w, _ in runs), 3),
                "cpu_s_median": round(statistics.median(c for _, c in runs), 3),
            }
            for cmd, runs in per_cmd.items()
        }
        for name, per_cmd in samples.items()
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per command")
    parser.add_argument("--baseline", help="another source tree to time alongside (PYTHONPATH)")
    parser.add_argument("--out", default=str(RESULTS_PATH), help="results JSON path")
    args = parser.parse_args(argv)
    trees = {"this": ROOT}
    if args.baseline:
        trees["baseline"] = Path(args.baseline).resolve()
    load_before = os.getloadavg()
    timings = measure(trees, args.repeats)
    results = {
        "startup_s": timings["this"]["mlp_timing_only"]["wall_s_median"],
        "commands": timings["this"],
        "command_lines": {cmd: "accelsim " + " ".join(a) for cmd, a in COMMANDS.items()},
        "machine": {
            **machine_info(),
            "load_avg_before": [round(v, 2) for v in load_before],
            "load_avg_after": [round(v, 2) for v in os.getloadavg()],
        },
        "timing": f"{args.repeats} runs per command after one that writes the caches; "
        "wall and child CPU seconds",
        "unix_time_s": round(time.time(), 1),
    }
    if args.baseline:
        results["baseline"] = {"tree": str(trees["baseline"]), "commands": timings["baseline"]}
    print(json.dumps(results, indent=2))
    atomic_write_json(args.out, results)
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
