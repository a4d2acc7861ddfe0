"""Standard CNNs on `edge`, timing only: MACs, simulated latency, and what a run costs here.

For each network (ResNet-18 for reference, then MobileNetV2, ResNet-50 and VGG-16 at 224x224,
8/8 bits, seed 0) it measures in process the wall seconds of building the graph (random
weights, calibration), lowering it and simulating it with count_only, and from the shell the
wall seconds of `accelsim run NAME --timing-only` (start-up included). The load average before
and after is recorded: the machine is shared, so wall times vary from run to run.

Prints the results and writes them to benchmarks/results/standard_workloads.json.
Usage: ``python benchmarks/bench_standard_workloads.py [--config edge] [--out PATH]``
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from bench_kernels import machine_info

from accelsim.config import load_config
from accelsim.fileio import atomic_write_json
from accelsim.frontend.lower import lower
from accelsim.runner import run_model
from workloads import registry

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "standard_workloads.json"
NETWORKS = ("resnet18", "mobilenet_v2", "resnet50", "vgg16")


def _wall(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def bench_network(name: str, preset: str) -> dict:
    """Build, lower and timing-only simulation of one network, then the shell command."""
    cfg = load_config(preset)
    build_s, graph = _wall(lambda: registry.build(name, (8, 8), 0, image_size=224))
    lower_s, program = _wall(lambda: lower(graph, cfg))
    x = np.random.default_rng(0).random(graph.tensors[graph.input].shape)
    sim_s, result = _wall(lambda: run_model(graph, cfg, x, count_only=True, program=program))
    cli = "import sys; from accelsim.cli import main; sys.exit(main())"  # = the accelsim script
    cmd = [sys.executable, "-c", cli, "run", name, "--timing-only", "--config", preset]
    shell_s, _ = _wall(lambda: subprocess.run(cmd, check=True, capture_output=True))
    totals = result.stats.totals()
    return {
        "macs": totals["macs"],
        "latency_cycles": totals["latency_cycles"],
        "latency_ms": totals["latency_s"] * 1e3,
        "instructions": program.n_insns,
        "build_s": round(build_s, 2),
        "lower_s": round(lower_s, 2),
        "simulate_s": round(sim_s, 3),
        "shell_timing_only_s": round(shell_s, 2),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="edge", help="preset (default edge)")
    parser.add_argument("--out", default=str(RESULTS_PATH), help="results JSON path")
    args = parser.parse_args(argv)
    results = {"machine": machine_info(), "config": args.config, "load_avg_before": os.getloadavg()}
    for name in NETWORKS:
        results[name] = bench_network(name, args.config)
        print(name, results[name], flush=True)
    results["load_avg_after"] = os.getloadavg()
    results["unix_time_s"] = round(time.time(), 1)
    print(json.dumps(results, indent=2, sort_keys=True))
    atomic_write_json(args.out, results, sort_keys=True)
    return results


if __name__ == "__main__":
    main()
