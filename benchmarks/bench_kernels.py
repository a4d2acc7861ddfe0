"""Kernel throughput benchmark: exact integer GEMM against float32 BLAS on this machine.

Measures in one run, best of several repeats (the repeats of the different kernels are
interleaved so that a noisy neighbour slows them all alike):

- ``sgemm_gflops``: numpy float32 matmul, 1024^3 (GFLOP = 2*M*N*K / 1e9 per second)
- ``int8_gemm_gops`` / ``int4_gemm_gops`` / ``int2_gemm_gops``: `accelsim.kernels.gemm.gemm`,
  exact int32 result, 1024^3 signed operands at full range (GOP = 2*M*N*K / 1e9 per second)
- ``int8_gemm_numba_1thread_gops``: the one-thread Numba int32 kernel gemm uses for small
  tiles, at 1024^3 (why large GEMMs go through BLAS)
- ``machine``: platform, CPU count, numpy / numba versions, BLAS library and threads

`bench_sim(results)` is the hook for the simulator's instruction rate. Prints the results and
writes them atomically (temp file + os.replace) to benchmarks/results/kernels.json.
Usage: ``python benchmarks/bench_kernels.py [--repeats 7] [--size 1024] [--out PATH]``
"""

import argparse
import compileall
import json
import os
import platform
import sys
import time
from pathlib import Path

import numba
import numpy as np

from accelsim.fileio import atomic_write_json
from accelsim.kernels import gemm as gemm_mod
from accelsim.numeric import storage_dtype, value_range

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "kernels.json"


def _seconds(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _interleaved_best(fns, repeats):
    """Best wall time in seconds of each callable, after one warm-up call each."""
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            best[name] = min(best[name], _seconds(fn))
    return best


def _operand(rng, shape, bits):
    lo, hi = value_range(bits, "signed")
    x = rng.integers(lo, hi + 1, shape).astype(storage_dtype(bits, "signed"))
    x.flat[0] = lo  # full range, so the K-block size is the worst case for these bits
    return x


def bench_gemm(results, size=1024, repeats=7):
    """Fill sgemm_gflops and the exact integer GEMM GOP/s at size^3 (see module docstring)."""
    rng = np.random.default_rng(0)
    ops = 2.0 * size**3
    a32 = rng.standard_normal((size, size)).astype(np.float32)
    w32 = rng.standard_normal((size, size)).astype(np.float32)
    ints = {b: (_operand(rng, (size, size), b), _operand(rng, (size, size), b)) for b in (8, 4, 2)}
    for bits, (a, w) in ints.items():  # exactness: float64 BLAS is exact below 2**53
        exact = (a.astype(np.float64) @ w.astype(np.float64)).astype(np.int64)
        np.testing.assert_array_equal(gemm_mod.gemm(a, w, a_bits=bits, w_bits=bits), exact)
    fns = {"sgemm_gflops": lambda: a32 @ w32}
    for bits, (a, w) in ints.items():
        fns[f"int{bits}_gemm_gops"] = lambda a=a, w=w, b=bits: gemm_mod.gemm(
            a, w, a_bits=b, w_bits=b
        )
    best = _interleaved_best(fns, repeats)
    a8, w8 = ints[8]
    out = np.zeros((size, size), np.int32)
    w8t = np.ascontiguousarray(w8.T)
    numba_s = _interleaved_best({"numba": lambda: gemm_mod._gemm_int32(a8, w8t, out)}, 2)["numba"]
    for name, seconds in best.items():
        results[name] = round(ops / seconds / 1e9, 2)
    results["int8_gemm_numba_1thread_gops"] = round(ops / numba_s / 1e9, 2)
    results["gemm_size"] = size
    results["repeats"] = repeats
    return results


def _bare_simpy_rate(n):
    """Instructions/s of a bare SimPy pipeline (five units, Store queues, Container tokens, a
    dispatcher): the ceiling an event simulation can reach here (~70k/s on an idle machine)."""
    import simpy

    env = simpy.Environment()
    queues = [simpy.Store(env) for _ in range(5)]
    tokens = [simpy.Container(env) for _ in range(5)]

    def dispatch():
        for i in range(n):
            yield queues[i % 5].put(i)
        for q in queues:
            yield q.put(None)

    def unit(u):
        while (item := (yield queues[u].get())) is not None:
            if u and item >= 5:
                yield tokens[u].get(1)
            yield env.timeout(3)
            yield tokens[(u + 1) % 5].put(1)

    env.process(dispatch())
    for u in range(5):
        env.process(unit(u))
    return n / _seconds(env.run)


def bench_sim(results, size=512, tile=16, repeats=3):
    """Simulator instruction rate in count_only mode on a synthetic tiled GEMM program.

    The program (tests/programs.py `tiled_gemm_program`, edge config, int4 x int4, M = K = N =
    `size`, 16x16x16 tiles) has (size/tile)**3 * 3 + 2 * (size/tile)**2 + 2 instructions
    (~100k for size 512). Timed: `simulate(..., count_only=True)` including its planning pass
    (costing every instruction), best of `repeats`; program construction is not timed. The
    headline `sim_instructions_per_s` keeps the race detector on (the default);
    `sim_instructions_per_s_no_races` turns it off. `simpy_bare_pipeline_insn_per_s` is a bare
    SimPy pipeline measured in the same run, to judge the numbers on a loaded machine.
    """
    import sys  # the hand-written program is a test fixture, in tests/programs.py

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from accelsim.config import load_config
    from accelsim.sim import simulate
    from tests.programs import tiled_gemm_program

    cfg = load_config("edge")
    w = np.zeros((size, size), np.int8)
    prog = tiled_gemm_program(
        cfg, (size, size), w, 0, 1 << 30, 31, a_bits=4, w_bits=4, tm=tile, tk=tile, tn=tile
    )
    n = prog.n_insns
    for key, races in (
        ("sim_instructions_per_s", True),
        ("sim_instructions_per_s_no_races", False),
    ):
        best = min(
            _seconds(lambda r=races: simulate(prog, cfg, count_only=True, check_races=r))
            for _ in range(repeats)
        )
        results[key] = round(n / best)
    results["simpy_bare_pipeline_insn_per_s"] = round(
        max(_bare_simpy_rate(n) for _ in range(repeats))
    )
    results["sim_program_instructions"] = n
    return results


def compile_bytecode() -> None:
    """Write the bytecode of `accelsim` and `workloads` before timing new processes (shell
    runs, spawned sweep workers), as `pip install` does and as Python does on a first import.
    This machine sets PYTHONDONTWRITEBYTECODE, so without this every new process of an
    editable install compiles each module it imports from source again (some 0.17 s of
    `accelsim run mlp`)."""
    root = Path(gemm_mod.__file__).resolve().parents[2]  # the checkout: accelsim/kernels/..
    for pkg in (root / "accelsim", root / "workloads"):
        compileall.compile_dir(pkg, quiet=1)


def machine_info():
    """Platform, CPU count, library versions and the BLAS numpy uses (threadpoolctl if any)."""
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
    }
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [
            {k: d.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
            for d in threadpool_info()
            if d.get("user_api") == "blas"
        ]
    except ImportError:
        blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
        info["blas"] = [{"name": blas.get("name"), "version": blas.get("version")}]
    return info


def main(argv=None):
    """Run the benchmarks, print the results and write them to --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per kernel (best)")
    parser.add_argument("--size", type=int, default=1024, help="GEMM M = N = K")
    parser.add_argument("--out", default=str(RESULTS_PATH), help="results JSON path")
    args = parser.parse_args(argv)
    results = {"machine": machine_info()}
    bench_gemm(results, args.size, args.repeats)
    bench_sim(results)
    results["unix_time_s"] = round(time.time(), 1)
    print(json.dumps(results, indent=2, sort_keys=True))
    atomic_write_json(args.out, results, sort_keys=True)
    return results


if __name__ == "__main__":
    main()
