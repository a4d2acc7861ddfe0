"""Simulated latency and energy per image of the trained digit classifiers on a hardware preset
(default `edge`), for each W/A bit width of the recipes in `workloads/trained.py`.

Each row converts the recipe's architecture, quantized at the width (`accelsim.quant.to_ir`),
and runs one image count-only (timing and energy without the datapath). Cycles and energy
depend only on layer shapes and bit widths, not on weight values, so the nets are quantized
and calibrated from their initial weights rather than trained (the trained models of
`accelsim train` give the same figures). Also times the functional simulation of a test batch
(images per second of host time). Prints a table and writes
benchmarks/results/trained_machine.json atomically, with the host machine noted.

    python benchmarks/bench_trained_machine.py [--config edge] [--batch 64] [--out PATH]
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from accelsim.config import load_config
from accelsim.fileio import atomic_write_text
from accelsim.frontend.lower import lower
from accelsim.quant.data import load_dataset
from accelsim.quant.models import calibrate, cnn, mlp, quantize
from accelsim.quant.to_ir import model_to_graph
from accelsim.report import summarize
from accelsim.runner import run_model
from workloads.trained import BITS, CONFIGS

OUT = Path(__file__).parent / "results" / "trained_machine.json"


def _machine() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def row(dataset: str, arch: str, w_bits: int, a_bits: int, data, cfg, batch: int) -> dict:
    """One benchmark row: per-image latency / energy and the functional simulation rate."""
    tc = CONFIGS[(dataset, arch)]
    build = cnn if arch == "cnn" else mlp
    fp = build(in_shape=data.image_shape, classes=data.classes, seed=0, **tc.model_kwargs)
    model = quantize(fp, w_bits, a_bits, tc.first_a_bits, tc.per_channel)
    calibrate(model, data.x_train[:256])
    graph = model_to_graph(model, batch=1, calib_x=data.x_train[:256])
    s = summarize(run_model(graph, cfg, data.x_test[:1], count_only=True), cfg)
    xb = data.x_test[:batch]
    prog = lower(graph, cfg, batch=len(xb))
    t0 = time.perf_counter()
    run_model(graph, cfg, xb, program=prog)
    sim_s = time.perf_counter() - t0
    return {
        "dataset": dataset,
        "model": arch,
        "w_bits": w_bits,
        "a_bits": a_bits,
        "config": cfg.chip.name,
        "latency_cycles": int(s["latency_cycles"]),
        "latency_ms": float(s["latency_ms"]),
        "energy_pj": float(s["energy_pj"]),
        "macs": int(s["macs"]),
        "dram_bytes": int(s["dram_bytes"]),
        "utilisation": float(s["utilisation"]),
        "tops_per_w": float(s["tops_per_w"]),
        "instructions": int(s["instructions"]),
        "sim_batch": len(xb),
        "sim_images_per_s": round(len(xb) / sim_s, 1),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="edge", help="hardware preset (default edge)")
    ap.add_argument("--batch", type=int, default=64, help="images of the timed functional run")
    ap.add_argument("--out", type=Path, default=OUT, help="JSON output path")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    rows = []
    print(
        f"{'model':<12} {'W/A':<5} {'cycles':>8} {'ms':>8} {'uJ':>8} {'MACs':>9} {'sim img/s':>9}"
    )
    for dataset in ("digits", "mnist"):
        data = load_dataset(dataset)
        for arch in ("mlp", "cnn"):
            for w, a in BITS:
                r = row(dataset, arch, w, a, data, cfg, args.batch)
                rows.append(r)
                print(
                    f"{dataset + '-' + arch:<12} {f'{w}/{a}':<5} {r['latency_cycles']:>8} "
                    f"{r['latency_ms']:>8.4f} {r['energy_pj'] / 1e6:>8.3f} {r['macs']:>9} "
                    f"{r['sim_images_per_s']:>9.1f}",
                    flush=True,
                )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"benchmark": "trained_machine", "machine": _machine(), "rows": rows}
    atomic_write_text(args.out, json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
