"""Where points run: a local process pool, or a Dask cluster (`dask.distributed`).

Results come back to the calling process, in the order they finish, through `on_result`; it
alone writes the results file. With one job, points run in the calling process itself.
Workers never outlive the sweep: each pool worker asks the kernel to kill it when its parent
dies (Linux `PR_SET_PDEATHSIG`) and exits at once if its parent is already gone; a
`LocalCluster`'s workers do the same. Workers ignore Ctrl-C: the parent takes it,
cancels the points not yet started, lets the running ones finish and be written (a second
Ctrl-C stops at once), and returns.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from accelsim.errors import AccelsimError

_PR_SET_PDEATHSIG = 1  # prctl option: signal this process when its parent thread exits
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def die_with_parent(parent_pid: int | None = None) -> None:
    """Make the kernel SIGKILL this process when its parent dies (Linux; elsewhere a no-op),
    and exit now if the parent died before the request took effect."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


def _init_worker(parent_pid: int) -> None:
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C


def _saved_env() -> dict:
    """The current values of the thread-count variables set to 1 for the workers (the pool
    already uses every core, so each worker gets one BLAS / Numba thread)."""
    return {k: os.environ.get(k) for k in THREAD_VARS}


def _set_env(values: dict) -> None:
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


class _Interrupted:
    """Ctrl-C bookkeeping: the first press stops new points, the second stops at once."""

    def __init__(self):
        self.count = 0

    def __call__(self, signum, frame):
        self.count += 1
        if self.count > 1:
            raise KeyboardInterrupt
        print(
            "\ninterrupted: finishing the running points (Ctrl-C again to stop now)",
            file=sys.stderr,
        )


def _name(item) -> str:
    """A design point as error messages name it (seq and workload), else its repr."""
    if hasattr(item, "seq") and hasattr(item, "workload"):
        return f"point {item.seq} ({item.workload})"
    return repr(item)[:100]


def run_inline(fn: Callable, items: list, args: tuple, on_result: Callable) -> bool:
    """`run_pool` with one worker: every item in this process, one after the other (no
    process start-up; Ctrl-C lets the running item finish, a second press stops at once)."""
    stop = _Interrupted()
    old_handler = signal.signal(signal.SIGINT, stop)
    try:
        for item in items:
            if stop.count:
                break
            on_result(fn(item, *args))
    finally:
        signal.signal(signal.SIGINT, old_handler)
    return not stop.count


def _stop_now(pool) -> None:
    """Second Ctrl-C: kill the running workers (their points are lost; --resume runs them)."""
    for child in multiprocessing.active_children():
        child.kill()
    pool.shutdown(wait=False, cancel_futures=True)


def run_pool(fn: Callable, items: list, args: tuple, jobs: int, on_result: Callable) -> bool:
    """Run `fn(item, *args)` for every item in `jobs` spawned processes; `on_result(result)`
    in this process as each finishes. Returns False if Ctrl-C stopped it early."""
    saved = _saved_env()
    _set_env(dict.fromkeys(THREAD_VARS, "1"))
    stop = _Interrupted()
    old_handler = signal.signal(signal.SIGINT, stop)
    pool = ProcessPoolExecutor(
        jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(os.getpid(),),
    )
    todo = iter(items)
    running: dict = {}
    try:
        while True:
            while not stop.count and len(running) < 2 * jobs:  # a short queue: Ctrl-C is quick
                item = next(todo, None)
                if item is None:
                    break
                running[pool.submit(fn, item, *args)] = item
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                item = running.pop(fut)
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    raise AccelsimError(
                        f"a worker process died while running {_name(item)} (out of memory?); "
                        "the points written so far are kept: rerun with --resume"
                    ) from None
                on_result(result)
    except KeyboardInterrupt:
        _stop_now(pool)
        raise
    finally:
        signal.signal(signal.SIGINT, old_handler)
        pool.shutdown(wait=True, cancel_futures=True)
        _set_env(saved)
    return not stop.count


def _dask():
    try:
        import dask.distributed as dd  # noqa: PLC0415
    except ImportError:
        raise AccelsimError(
            "--scheduler needs dask.distributed: pip install 'accelsim[dask]'"
        ) from None
    return dd


def run_dask(
    fn: Callable,
    items: list,
    args: tuple,
    scheduler: str,
    jobs: int,
    on_result: Callable,
    on_lost: Callable,
) -> bool:
    """Like `run_pool`, on the Dask cluster at `scheduler` (tcp://host:port), or on a
    `LocalCluster` of `jobs` one-thread worker processes if `scheduler` is "local". A task
    the cluster loses (its worker died) gives `on_lost(item, exception)` as its result."""
    dd = _dask()
    cluster = None
    saved = _saved_env()
    stop = _Interrupted()
    old_handler = signal.signal(signal.SIGINT, stop)
    try:
        if scheduler == "local":
            _set_env(dict.fromkeys(THREAD_VARS, "1"))
            cluster = dd.LocalCluster(
                n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None
            )
            client = dd.Client(cluster)
            # a LocalCluster's nannies live in this process; the worker processes they start
            # are killed by the kernel if it dies
            client.run(die_with_parent)
        else:
            try:
                client = dd.Client(scheduler, timeout="20s")
            except OSError as exc:
                raise AccelsimError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
        with client:
            todo = iter(items)
            running = dd.as_completed()
            items_of: dict = {}

            def submit() -> None:
                item = None if stop.count else next(todo, None)
                if item is not None:
                    fut = client.submit(fn, item, *args, pure=False)
                    items_of[fut.key] = item
                    running.add(fut)

            for _ in range(4 * max(jobs, 1)):
                submit()
            for fut in running:
                try:
                    result = fut.result()
                except Exception as exc:  # e.g. the worker running it died (KilledWorker)
                    result = on_lost(items_of[fut.key], exc)
                del items_of[fut.key]
                on_result(result)
                submit()
    finally:
        signal.signal(signal.SIGINT, old_handler)
        if cluster is not None:
            cluster.close()
        _set_env(saved)
    return not stop.count
