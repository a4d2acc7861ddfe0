"""Start-up: Numba is compiled on first call, small runs never load it, and the kernel paths
chosen by what is loaded give the same integers."""

import subprocess
import sys

import numpy as np

from accelsim import jit
from accelsim.jit import lazy_attr, lazy_njit
from accelsim.kernels import gemm as G

HEAVY = ("numba", "scipy", "matplotlib", "tqdm")


def _loaded_after(code: str) -> set:
    """Module names loaded by a fresh interpreter running `code` (then printing sys.modules)."""
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")[-2]
    return set(out.split())


def test_small_timing_run_loads_no_numba():
    """`accelsim run mlp --timing-only` builds (calibrates), lowers and simulates with NumPy
    alone: no Numba, SciPy, Matplotlib or tqdm, and no sparse module."""
    mods = _loaded_after("from accelsim.cli import main\nmain(['run', 'mlp', '--timing-only'])")
    assert "accelsim.sim" in mods and "workloads.dense" in mods
    assert not mods & {*HEAVY, "accelsim.sparse", "workloads.sparse_nets"}


def test_help_loads_no_numpy():
    mods = _loaded_after(
        "from accelsim.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    )
    assert "accelsim.cli.train" in mods and "numpy" not in mods


@lazy_njit(cache=False)
def _square(x):
    return x * x


@lazy_njit(cache=False)
def _sum_squares(n):
    s = 0
    for i in _prange(n):
        s += _square(i)
    return s


_prange = lazy_attr("numba", "prange")


def test_lazy_njit_resolves_callees_and_numba_attributes():
    """The first call compiles the function with the lazy function and the lazy `prange` it
    names replaced by their Numba objects (in the module's globals)."""
    assert _sum_squares(4) == 0 + 1 + 4 + 9
    import numba

    scope = _sum_squares.py_func.__globals__
    assert scope["_prange"] is numba.prange
    # the dispatcher (the Python function when the JIT is off) took the stand-in's place
    assert not isinstance(scope["_square"], jit.LazyJit) and scope["_square"](3) == 9


def test_prefer_numpy_policy(monkeypatch):
    assert not jit.prefer_numpy(jit.JIT_MIN_WORK) or jit.jit_disabled()
    assert jit.prefer_numpy(1) == ("numba" not in sys.modules or jit.jit_disabled())
    monkeypatch.setenv("NUMBA_DISABLE_JIT", "1")
    assert jit.prefer_numpy(jit.JIT_MIN_WORK) and not jit.jit_loaded()


def test_gemm_small_tile_paths_agree(rng):
    """Small GEMMs take the compiled int32 kernel once Numba is loaded and the float32 BLAS
    block sum before: both equal the definition, also where int32 wraps."""
    for m, k, n in (
        (1, 1, 1),
        (7, 33, 5),
        (16, 16, 16),
        (3, 300, 2),
        (2, 5, 1),
        (1, 4, 3),
        (3, 0, 2),
        (0, 4, 3),
        (2, 4, 0),
    ):
        a = rng.integers(-128, 128, (m, k)).astype(np.int8)
        w = rng.integers(-128, 128, (k, n)).astype(np.int8)
        acc = rng.integers(-(2**31), 2**31, (m, n)).astype(np.int32)
        want = G.gemm_ref(a, w, acc, a_bits=8, w_bits=8, overflow="wrap")
        small = acc.copy()
        G._gemm_int32(a, np.ascontiguousarray(w.T), small)
        blocked = G._blocked_sum(a, w, 128 * 128, acc.copy())
        np.testing.assert_array_equal(small, want)
        np.testing.assert_array_equal(blocked, want)
