"""Benchmark: kernel map + exact integer sparse conv on a generated LiDAR scene.

One procedural 64-beam frame voxelised at 5 cm (about 82k voxels), 3x3x3 submanifold conv,
64 -> 64 channels, int8 activations and weights, at 1 and 2 Numba threads. Each timing is the
median (and minimum) of several runs after a warm-up; the kernel map is rebuilt every run
(cache off). The conv result at each thread count is compared with the NumPy twin.
Also reports the pairs, MACs and group balance for G = 1, 2, 4, 8 on the same scene.

Writes benchmarks/results/sparse.json atomically and prints a table.
Usage: python benchmarks/bench_sparse.py [--reps N] [--seed S] [--out PATH]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import numba
import numpy as np

from accelsim.fileio import atomic_write_json
from accelsim.sparse import conv, conv_ref, group_offsets, kernel_map, voxel_group_stats
from workloads.lidar import generate_scene

CHANNELS = 64  # c_in = c_out of the benchmarked layer
SPCONV_REF = {  # spconv 2.3.8 on this machine's CPU, float32 with integer values (issue 7)
    "library": "spconv 2.3.8 (CPU)",
    "kmap_s": 0.043,
    "conv_s": 0.117,
    "total_s": 0.160,
    "note": "figures quoted in issue 7, not re-measured here",
}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _load_avg():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _timed(fn, reps):
    """(median wall s, min wall s, median process CPU s, last result) over `reps` runs."""
    times, cpu, result = [], [], None
    for _ in range(reps):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(times), min(times), statistics.median(cpu), result


def bench_threads(coords, x, w, threads, reps, reference):
    """One result row: kernel map and conv timings at `threads` Numba threads."""
    numba.set_num_threads(threads)
    kmap_s, kmap_min_s, kmap_cpu_s, km = _timed(lambda: kernel_map(coords, 3, cache=False), reps)
    conv_s, conv_min_s, conv_cpu_s, y = _timed(lambda: conv(x, w, km, a_bits=8, w_bits=8), reps)
    macs = km.macs(CHANNELS, CHANNELS)
    return {
        "threads": threads,
        "voxels": int(coords.shape[0]),
        "pairs": km.n_pairs,
        "c_in": CHANNELS,
        "c_out": CHANNELS,
        "gmac": round(macs / 1e9, 4),
        "kmap_s": round(kmap_s, 5),
        "conv_s": round(conv_s, 5),
        "total_s": round(kmap_s + conv_s, 5),
        "kmap_min_s": round(kmap_min_s, 5),
        "conv_min_s": round(conv_min_s, 5),
        "kmap_cpu_s": round(kmap_cpu_s, 5),
        "conv_cpu_s": round(conv_cpu_s, 5),
        "gmac_per_s": round(macs / conv_s / 1e9, 2),
        "exact": bool(np.array_equal(y, reference)),
    }


def group_rows(coords):
    """Pairs, MACs and balance of the 3x3x3 submanifold map for G = 1, 2, 4, 8."""
    rows = []
    for g in (1, 2, 4, 8):
        km = kernel_map(coords, 3, groups=g, cache=False)
        st = voxel_group_stats(km, coords)
        rows.append(
            {
                "groups": g,
                "offsets_kept": len(group_offsets(3, 1, g)),
                "pairs": km.n_pairs,
                "gmac_64x64": round(km.macs(CHANNELS, CHANNELS) / 1e9, 4),
                "imbalance_max_over_mean": round(st.imbalance, 4),
            }
        )
    for r in rows:
        r["mac_reduction_vs_g1"] = round(rows[0]["pairs"] / r["pairs"], 3)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7, help="timed runs per measurement")
    ap.add_argument("--seed", type=int, default=0, help="scene and operand seed")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sparse.json")
    args = ap.parse_args(argv)

    load_before = _load_avg()
    t0 = time.perf_counter()
    coords, _ = generate_scene(args.seed)
    scene_s = time.perf_counter() - t0
    rng = np.random.default_rng(args.seed)
    x = rng.integers(-128, 128, (coords.shape[0], CHANNELS)).astype(np.int8)
    w = rng.integers(-128, 128, (27, CHANNELS, CHANNELS)).astype(np.int8)
    km = kernel_map(coords, 3, cache=False)  # warm-up: compile or load every kernel
    reference = conv_ref(x, w, km, overflow="wrap")  # nothing can overflow: wrap == exact
    conv(x, w, km)

    max_threads = numba.config.NUMBA_NUM_THREADS
    rows = [
        bench_threads(coords, x, w, t, args.reps, reference) for t in (1, 2) if t <= max_threads
    ]
    numba.set_num_threads(max_threads)
    data = {
        "benchmark": "3x3x3 submanifold sparse conv, 64->64, int8 x int8 -> int32",
        "scene": {
            "generator": "workloads.lidar.generate_scene",
            "seed": args.seed,
            "voxel_size_m": 0.05,
            "voxels": int(coords.shape[0]),
            "generate_s": round(scene_s, 3),
        },
        "rows": rows,
        "groups": group_rows(coords),
        "reference": SPCONV_REF,
        "timing": (
            f"wall time, median of {args.reps} runs (min also given); kernel map cache "
            "off; *_cpu_s = process CPU time (all threads), which at 1 thread shows the "
            "run time without other processes competing for the cores"
        ),
        "machine": {
            "cpu": _cpu_model(),
            "cpus": os.cpu_count(),
            "load_avg_before": load_before,
            "load_avg_after": _load_avg(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "numba": numba.__version__,
            "platform": platform.platform(),
        },
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    atomic_write_json(args.out, data)

    print(f"scene: {coords.shape[0]} voxels (seed {args.seed}, {scene_s:.2f} s)")
    print(
        f"{'threads':>7} {'pairs':>8} {'kmap_s':>8} {'conv_s':>8} {'total_s':>8} "
        f"{'GMAC/s':>7} {'min_s':>7} {'cpu_s':>7} exact"
    )
    for r in rows:
        print(
            f"{r['threads']:>7} {r['pairs']:>8} {r['kmap_s']:>8.4f} {r['conv_s']:>8.4f} "
            f"{r['total_s']:>8.4f} {r['gmac_per_s']:>7.1f} "
            f"{r['kmap_min_s'] + r['conv_min_s']:>7.4f} "
            f"{r['kmap_cpu_s'] + r['conv_cpu_s']:>7.4f} {r['exact']}"
        )
    print(f"{'G':>3} {'offsets':>7} {'pairs':>8} {'GMAC':>7} {'MAC cut':>7} {'imbalance':>9}")
    for g in data["groups"]:
        print(
            f"{g['groups']:>3} {g['offsets_kept']:>7} {g['pairs']:>8} {g['gmac_64x64']:>7.3f} "
            f"{g['mac_reduction_vs_g1']:>7.2f} {g['imbalance_max_over_mean']:>9.3f}"
        )
    print(f"load average before/after: {load_before} / {data['machine']['load_avg_after']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
