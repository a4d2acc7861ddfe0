"""Numba compilation on first call: `lazy_njit` keeps `import numba` out of start-up.

Importing Numba and loading a cached kernel costs about a second on a small machine, which a
timing-only run of a small model never needs. `@lazy_njit(cache=True)` returns a stand-in that
imports Numba and builds the real `numba.njit` dispatcher the first time the function is
called (loading it from Numba's on-disk cache when present). Jitted code calls other jitted
functions by their global names; so before compiling, the stand-in resolves every lazy
function named in the body's globals and puts the dispatcher in its place, which is what
Numba's typing needs. With `NUMBA_DISABLE_JIT=1` the dispatcher is the Python function.
"""

from __future__ import annotations

import functools
import os


def jit_disabled() -> bool:
    """True when NUMBA_DISABLE_JIT is set: kernels then run as plain Python, so callers
    with a NumPy alternative use it instead (read without importing Numba)."""
    try:
        return int(os.environ.get("NUMBA_DISABLE_JIT", "0") or "0") != 0
    except ValueError:
        return False


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
            self._dispatcher = njit(**self._options)(self.py_func)
        return self._dispatcher

    def __call__(self, *args, **kwargs):
        return self.dispatcher()(*args, **kwargs)


def lazy_njit(**options):
    """Decorator: like `numba.njit(**options)`, compiled (or loaded from cache) on first call."""

    def wrap(func):
        return LazyJit(func, options)

    return wrap
