"""Helpers shared by the tests: random voxel sets and operands, units outside a simulation,
graphs with fractional biases, and the process table (Linux /proc) for tests of workers that
must not outlive their parent.

Operand ranges are written out here rather than taken from the kernels, so that tests of the
kernels do not depend on the code they test.
"""

import itertools
import time
from pathlib import Path

import numpy as np

from accelsim.memory import Memory
from accelsim.stats import Recorder


def random_coords(rng, n: int, extent: int = 8, batches: int = 1) -> np.ndarray:
    """n distinct voxels of a batches x extent**3 box, int32 [n, 4], sorted by (b, x, y, z).

    `rng` is a numpy Generator or an integer seed."""
    rng = np.random.default_rng(rng)
    grid = np.array(list(itertools.product(range(batches), *[range(extent)] * 3)), np.int32)
    return grid[np.sort(rng.choice(len(grid), n, replace=False))]


def random_input(seed: int, n: int, channels: int = 4, **coords_kw):
    """(coords, float features) of a sparse graph input: `random_coords(seed, n, **coords_kw)`
    and features uniform in [-8, 8) from seed + 1."""
    coords = random_coords(seed, n, **coords_kw)
    feats = np.random.default_rng(seed + 1).uniform(-8, 8, (n, channels))
    return coords, feats


def random_operand(rng, shape, bits: int, mode: str = "signed") -> np.ndarray:
    """Uniform random values of a `bits`-wide operand in `mode` (signed, unsigned or bipolar),
    stored as int8 / uint8 up to 8 bits and int32 above."""
    if mode == "bipolar":
        return rng.choice(np.array([-1, 1], np.int8), size=shape)
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1)) if mode == "signed" else (0, 2**bits)
    dtype = (np.int8 if mode == "signed" else np.uint8) if bits <= 8 else np.int32
    return rng.integers(lo, hi, size=shape).astype(dtype)


def with_fractional_biases(g, seed: int):
    """`g` with every conv / linear bias moved by a random real offset of up to half an
    accumulator unit, folded as the ONNX importer folds one (so each layer gets the bias
    fractional bits its accumulator headroom allows)."""
    from accelsim.ir import QuantConv2d, QuantLinear  # noqa: PLC0415
    from accelsim.ir.fold import add_offset  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    for i, op in enumerate(g.nodes):
        if isinstance(op, (QuantConv2d, QuantLinear)):
            src = g.tensors[op.inputs[0]]
            unit = float(src.scale) * op.w_scale_per_channel()
            off = rng.uniform(-0.5, 0.5, op.cout) * unit
            g.nodes[i] = add_offset(op, off, float(src.scale), op.name, src=src)
    g.validate()
    return g


def make_mem(cfg, dram_size: int = 0) -> Memory:
    """Buffers of `cfg` and a zeroed DRAM of `dram_size` elements, for placing tiles by hand."""
    return Memory(cfg, np.zeros(dram_size, np.int32))


def standalone(cls, cfg):
    """A unit with no SimPy process, for calling cycles/profile/run directly."""
    return cls(None, cfg, Recorder(1))


def processes() -> dict[int, tuple[str, int, int]]:
    """pid -> (state, parent pid, process group) of every process (Linux /proc)."""
    out = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            state, ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
            out[int(d.name)] = (state, int(ppid), int(pgrp))
    return out


def children(pid: int) -> set[int]:
    """Live child processes of `pid`."""
    return {p for p, (state, ppid, _) in processes().items() if ppid == pid and state != "Z"}


def still_alive(pids, timeout_s: float = 10.0) -> set[int]:
    """Those of `pids` still running (not zombies) after waiting up to `timeout_s` for them."""
    deadline = time.monotonic() + timeout_s
    while True:
        procs = processes()
        alive = {p for p in pids if p in procs and procs[p][0] != "Z"}
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def handworked_config():
    """The machine the hand-worked cycle counts of tests/test_sim.py and test_fast_engine.py
    assume: edge with DRAM latency 10 and 64 B/cycle (one cycle per 64 B burst) and a 4x4
    fixed-precision array."""
    from accelsim.config import load_config  # noqa: PLC0415

    return load_config(
        "edge",
        [
            "dram.latency_cycles=10",
            "dram.bw_bytes_per_cycle=64.0",
            "matmul.rows=4",
            "matmul.cols=4",
            "matmul.mac_model=fixed",
        ],
    )
