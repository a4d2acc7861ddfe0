"""One design point in a worker process: build (or reuse) the workload, lower (or reuse) its
program, simulate, and return the rows the parent writes.

A worker keeps what points share: workloads built per (workload, bits, bits rules, seed),
programs lowered per (workload, `lowering_key` of the configuration: the fields lowering reads;
timing-only points without the DRAM image), and trained models'
test-set accuracy per numeric setting.
A point that fails comes back with status `error` and the message; the sweep goes on.
"""

from __future__ import annotations

import json
import time
import traceback
import zlib
from collections import OrderedDict

from accelsim.errors import AccelsimError
from accelsim.frontend.lower import lowering_key
from accelsim.ir.builder import layer_bits
from accelsim.runner import lower_for_input, prepare_core, run_model
from accelsim.sweep.bits import check_overrides, layer_overrides
from accelsim.sweep.points import Loaded, Point, WorkloadSource
from accelsim.sweep.rows import run_rows

PROGRAM_CACHE_SIZE = 4  # lowered programs kept per worker (a ResNet's DRAM image is ~10 MB)
_models: dict = {}
_programs: OrderedDict = OrderedDict()
_prepared: dict = {}  # id(loaded workload) -> its checked, folded machine core
_accuracy: dict = {}


def _loaded(point: Point, source: WorkloadSource, rules=None) -> Loaded:
    """The point's workload (built once per worker) with `rules` (default: the point's).
    Rules need the graph built without them first: it names the layers they select."""
    rules = point.rules if rules is None else rules
    key = (
        point.workload,
        point.folder,
        point.bits,
        point.seed,
        tuple((r.layers, r.bits) for r in rules),
    )
    if key not in _models:
        if not rules:
            _models[key] = source.load(point.workload, point.bits, point.seed, point.folder)
        else:
            plain = _loaded(point, source, rules=())
            over = layer_overrides(plain.graph, rules, point.workload)
            with layer_bits(over):
                built = source.load(point.workload, point.bits, point.seed, point.folder)
            check_overrides(built.graph, over, point.workload)
            _models[key] = built
    return _models[key]


def _program(point: Point, loaded: Loaded):
    key = (id(loaded), point.timing_only, lowering_key(point.config, loaded.graph.kind))
    if key in _programs:
        _programs.move_to_end(key)
    else:
        graph = loaded.graph
        if graph.kind == "dense":  # checked and folded once per workload
            if id(loaded) not in _prepared:
                _prepared[id(loaded)] = prepare_core(graph)
            graph = _prepared[id(loaded)]
        _programs[key] = lower_for_input(
            graph, point.config, loaded.x, timing_only=point.timing_only
        )
        while len(_programs) > PROGRAM_CACHE_SIZE:
            _programs.popitem(last=False)
    return _programs[key]


def _test_accuracy(point: Point, loaded: Loaded) -> float:
    """The machine's test-set accuracy; it depends only on the integer results, so on the
    rescale rounding, the multiplier width and the overflow rule."""
    cfg = point.config
    key = (id(loaded), cfg.rescale.round_mode, cfg.rescale.mult_bits, cfg.matmul.overflow)
    if key not in _accuracy:
        _accuracy[key] = float(loaded.accuracy(cfg))
    return _accuracy[key]


def _message(exc: BaseException) -> str:
    if isinstance(exc, AccelsimError):
        return str(exc)
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" (at {where.filename}:{where.lineno})" if where else ""
    return f"{type(exc).__name__}: {exc}{at}"


def run_point(point: Point, source: WorkloadSource, engine: str) -> dict:
    """Simulate one point; returns {point_id, status, error, row, layers, stats (zlib-packed
    JSON of `Stats.to_dict()`, the counts energy is re-costed from), seconds}."""
    t0 = time.perf_counter()
    out = {"point_id": point.point_id, "status": "ok", "error": None}
    try:
        loaded = _loaded(point, source)
        if loaded.graph is not None:
            result = run_model(
                loaded.graph,
                point.config,
                loaded.x,
                count_only=point.timing_only,
                program=_program(point, loaded),
                engine=engine,
                # lowered streams are checked race-free by the tests; the detector, a
                # debugging aid, costs a sweep point about as much as its fast schedule
                check_races=False,
            )
        else:
            result = loaded.run(point.config, point.timing_only, engine)
        row, layers = run_rows(result, point.config)
        if loaded.accuracy is not None:
            row["accuracy"] = _test_accuracy(point, loaded)
        packed = zlib.compress(json.dumps(result.stats.to_dict()).encode(), 6)
        out.update(row=row, layers=layers, stats=packed)
    except Exception as exc:  # a failing point is recorded, the sweep goes on
        out.update(status="error", error=_message(exc), row={}, layers=[], stats=None)
    out["seconds"] = time.perf_counter() - t0
    return out
