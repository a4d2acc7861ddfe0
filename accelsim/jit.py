"""Numba compilation on first call: `lazy_njit` keeps `import numba` out of start-up.

Importing Numba and loading a cached kernel costs about a second on a small machine, which a
timing-only run of a small model never needs. `@lazy_njit(cache=True)` returns a stand-in that
imports Numba and builds the real `numba.njit` dispatcher the first time the function is
called (loading it from Numba's on-disk cache when present). Jitted code calls other jitted
functions by their global names; so before compiling, the stand-in resolves every lazy
function named in the body's globals and puts the dispatcher in its place, which is what
Numba's typing needs. Other globals a body needs from Numba (`prange`, an intrinsic) are
`lazy_attr` stand-ins, resolved the same way. With `NUMBA_DISABLE_JIT=1` the dispatcher is the
Python function.

`prefer_numpy` tells callers with a NumPy twin (the `_ref` definition, the same integers) when
to use it instead: while Numba is not loaded, below about 60 million element operations the
twin is fast and loading Numba is not. `jit_loaded` says whether compiled kernels are at hand.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys

JIT_MIN_WORK = 1 << 26  # element operations below which the NumPy twins beat loading Numba


def jit_disabled() -> bool:
    """True when NUMBA_DISABLE_JIT is set: kernels then run as plain Python, so callers
    with a NumPy alternative use it instead (read without importing Numba)."""
    try:
        return int(os.environ.get("NUMBA_DISABLE_JIT", "0") or "0") != 0
    except ValueError:
        return False


def jit_loaded() -> bool:
    """True when Numba is imported and its JIT enabled (compiled kernels cost no start-up)."""
    return "numba" in sys.modules and not jit_disabled()


def prefer_numpy(work: int) -> bool:
    """True if a kernel call doing about `work` element operations should run the NumPy
    twin: the JIT is disabled, or Numba is not loaded yet and the work is below
    JIT_MIN_WORK."""
    return jit_disabled() or ("numba" not in sys.modules and work < JIT_MIN_WORK)


class LazyAttr:
    """`module.name`, imported on first use: a global of a jitted body that start-up must
    not import (resolved before compiling; callable from plain Python too)."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def resolve(self):
        return getattr(importlib.import_module(self.module), self.name)

    def __call__(self, *args, **kwargs):
        return self.resolve()(*args, **kwargs)


def lazy_attr(module: str, name: str) -> LazyAttr:
    """A stand-in for `module.name` (see `LazyAttr`)."""
    return LazyAttr(module, name)


prange = lazy_attr("numba", "prange")  # numba.prange for parallel loops of lazy kernels


class LazyJit:
    """A function compiled with `numba.njit(**options)` on its first call (see module)."""

    def __init__(self, func, options: dict):
        functools.update_wrapper(self, func)
        self.py_func = func
        self._options = options
        self._dispatcher = None

    def dispatcher(self):
        """The Numba dispatcher (built on first use, with the lazy functions it calls)."""
        if self._dispatcher is None:
            from numba import njit  # noqa: PLC0415 (the point of this module)

            scope = self.py_func.__globals__
            for name in self.py_func.__code__.co_names:
                value = scope.get(name)
                if isinstance(value, LazyJit):
                    scope[name] = value.dispatcher()
                elif isinstance(value, LazyAttr):
                    scope[name] = value.resolve()
            self._dispatcher = njit(**self._options)(self.py_func)
        return self._dispatcher

    def __call__(self, *args, **kwargs):
        return self.dispatcher()(*args, **kwargs)


def lazy_njit(**options):
    """Decorator: like `numba.njit(**options)`, compiled (or loaded from cache) on first call."""

    def wrap(func):
        return LazyJit(func, options)

    return wrap
