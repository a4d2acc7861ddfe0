"""Run a sweep: expand the spec into design points, skip those already written (`resume`),
run the rest in a process pool or on a Dask cluster, and write each point's rows as it
finishes, with a progress bar of points done, points per second and the time left.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tqdm import tqdm

from accelsim.sweep.executor import run_dask, run_inline, run_pool
from accelsim.sweep.points import Point, WorkloadSource, code_version, expand
from accelsim.sweep.spec import SweepSpec
from accelsim.sweep.store import ResultsStore
from accelsim.sweep.worker import run_point


@dataclass
class SweepOutcome:
    """What a sweep did: points in the spec, skipped as already written, run, failed."""

    path: str
    points: int
    skipped: int = 0
    ran: int = 0
    errors: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    engine: str = "event"
    notes: list = field(default_factory=list)

    @property
    def points_per_s(self) -> float:
        return self.ran / self.seconds if self.seconds else 0.0


def _point_row(point: Point, res: dict, engine: str) -> dict:
    return {
        "point_id": point.point_id,
        "seq": point.seq,
        "workload": point.workload,
        "bits": point.bits_label,
        **dict(point.swept),
        "status": res["status"],
        "error": res["error"],
        "engine": engine,
        "seconds": res["seconds"],
        "config_json": json.dumps(point.config.to_dict(), sort_keys=True),
        "key_json": json.dumps(point.key, sort_keys=True),
        **res["row"],
    }


def _lost(point: Point, exc: BaseException) -> dict:
    msg = f"the worker running this point was lost: {type(exc).__name__}: {exc}"
    return {
        "point_id": point.point_id,
        "status": "error",
        "error": msg,
        "row": {},
        "layers": [],
        "stats": None,
        "seconds": 0.0,
    }


def run_sweep(
    spec: SweepSpec,
    source: WorkloadSource,
    out,
    *,
    jobs: int | None = None,
    scheduler: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> SweepOutcome:
    """Run `spec`'s points with workloads from `source` and write them to the results file
    `out` (see `accelsim.sweep.store`). jobs: worker processes (default: every core; 1 runs
    the points in this process); with
    `scheduler` (tcp://host:port or "local"), points run on Dask instead. Every point is
    checked before the first runs; `log` gets notes (e.g. stale points removed on resume).
    Returns a `SweepOutcome`."""
    engine = spec.engine
    code = code_version()
    points = expand(spec, source, engine, code)
    meta = {
        "name": spec.name,
        "spec": spec.text,
        "spec_path": spec.path,
        "code_version": code,
        "engine": engine,
        "base": spec.base,
        "workloads": list(spec.workloads),
        "timing_only": spec.timing_only,
        "zips": [list(keys) for keys, _ in spec.zips],
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    store = ResultsStore(out, meta, spec.config_keys, resume, overwrite)
    outcome = SweepOutcome(str(out), len(points), engine=engine)
    try:
        if resume:
            stale = store.prune({p.point_id for p in points})
            if stale:
                outcome.notes.append(
                    f"removed {stale} points of another code version or spec from {out}"
                )
                if log is not None:
                    log(f"note: {outcome.notes[-1]}")
        done = store.finished() if resume else set()
        todo = [p for p in points if p.point_id not in done]
        outcome.skipped = len(points) - len(todo)
        by_id = {p.point_id: p for p in todo}
        bar = tqdm(
            total=len(points),
            initial=outcome.skipped,
            unit="point",
            disable=not progress,
            file=sys.stderr,
            dynamic_ncols=True,
        )

        def on_result(res: dict) -> None:
            store.write(
                _point_row(by_id[res["point_id"]], res, engine), res["layers"], res["stats"]
            )
            outcome.ran += 1
            outcome.errors += res["status"] != "ok"
            bar.update(1)
            if outcome.errors:
                bar.set_postfix(errors=outcome.errors, refresh=False)

        jobs = jobs or os.cpu_count() or 1
        t0 = time.perf_counter()
        with bar:
            if scheduler:
                finished = run_dask(
                    run_point, todo, (source, engine), scheduler, jobs, on_result, _lost
                )
            elif jobs == 1:
                finished = run_inline(run_point, todo, (source, engine), on_result)
            else:
                finished = run_pool(run_point, todo, (source, engine), jobs, on_result)
        outcome.seconds = time.perf_counter() - t0
        outcome.interrupted = not finished
    finally:
        store.close()
    return outcome
