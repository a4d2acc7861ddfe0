"""Design points of a sweep: the full product of its axes and zip groups, per workload, each
with its whole configuration and a `point_id` that names it across runs.

`point_id` hashes the workload (its name, or a model file's contents), the full configuration,
the bits, the bits rules that apply, the seed, `timing_only`, the engine that runs it and the
code version (`code_version`), so a finished point is never run twice and a changed simulator
runs every point again. Workloads come from a `WorkloadSource` the caller passes in (the
command line's knows the built-in models); the library imports no workload builder.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import accelsim
from accelsim.config import HwConfig, from_dict
from accelsim.errors import AccelsimError
from accelsim.sweep.spec import BITS_KEY, DEFAULT_BITS, BitsRule, SweepSpec

_ROOT = Path(accelsim.__file__).resolve().parent
# sources that cannot change a point's numbers: the plots, reports and docs read the tables;
# the spec parser, executors, store, exports and recost move and keep the numbers the workers
# compute (a changed spec is a different point anyway)
_NOT_RESULTS = (
    "plots/",
    "docs.py",
    "cli/__init__.py",
    "cli/explore.py",
    "cli/train.py",
    "sweep/report.py",
    "sweep/reading.py",
    "sweep/executor.py",
    "sweep/store.py",
    "sweep/export.py",
    "sweep/recost.py",
    "sweep/run.py",
    "sweep/spec.py",
)


@dataclass(frozen=True)
class WorkloadInfo:
    """What a sweep needs to know of a workload before running it. `identity`: what point
    ids hash (the name, or a hash of a model file's contents). `bits`: the A/W widths it can
    be built at (None: any; empty: fixed by its model file). `layer_rules`: whether per-layer
    bits rules apply. `trained`: it has a test set, so points get an accuracy."""

    identity: str
    bits: tuple | None = None
    layer_rules: bool = False
    trained: bool = False


@dataclass
class Loaded:
    """A workload built in a worker. `graph` and `x`: one model and its input, which the
    sweep lowers and simulates; otherwise `run(cfg, count_only, engine)` simulates it and
    returns a result with `stats` and `name` (e.g. a topology's separate layers).
    `accuracy(cfg)`: the test-set accuracy of the machine's classes (trained models only)."""

    name: str
    graph: object = None
    x: object = None
    run: Callable | None = None
    accuracy: Callable | None = None


class WorkloadSource(Protocol):
    """Where workloads come from (`accelsim.cli.sources.CliWorkloads`). Must pickle: it is
    sent to every worker."""

    def describe(self, name: str, folder: str) -> WorkloadInfo:
        """Facts about workload `name`; AccelsimError if it is unknown."""
        ...

    def load(self, name: str, bits, seed: int, folder: str) -> Loaded:
        """Build workload `name` at A/W `bits` (None: a model file's own) with `seed`."""
        ...


@dataclass(frozen=True)
class Point:
    """One design point: a workload at some bits on one configuration. `swept`: (key, value)
    of every swept config key in the results' column order (bits have their own column)."""

    point_id: str
    seq: int
    workload: str
    bits: tuple[int, int] | None
    rules: tuple[BitsRule, ...]
    swept: tuple
    config: HwConfig
    seed: int
    timing_only: bool
    key: dict
    folder: str = "."

    @property
    def bits_label(self) -> str | None:
        return None if self.bits is None else f"{self.bits[0]}/{self.bits[1]}"


def code_version() -> str:
    """Version and a hash of the sources that produce results: accelsim's modules and preset
    files (but `_NOT_RESULTS`) and the `workloads` builders next to the package."""
    h = hashlib.sha256()
    files = [*_ROOT.rglob("*.py"), *_ROOT.glob("configs/*.toml")]
    files += sorted((_ROOT.parent / "workloads").glob("*.py"))
    for path in sorted(files):
        rel = path.relative_to(_ROOT.parent).as_posix()
        if any(rel.removeprefix("accelsim/").startswith(p) for p in _NOT_RESULTS):
            continue
        h.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        release = version("accelsim")
    except PackageNotFoundError:
        release = "0"
    return f"{release}+{h.hexdigest()[:12]}"


def point_key(identity: str, bits, rules, seed, timing_only, engine, code) -> dict:
    """Everything but the configuration that determines a point's results (stored with each
    point as `key_json`, so `accelsim recost` can name a re-costed point)."""
    return {
        "workload": identity,
        "bits": None if bits is None else list(bits),
        "rules": [[list(r.layers), list(r.bits)] for r in rules],
        "seed": seed,
        "timing_only": timing_only,
        "engine": engine,
        "code": code,
    }


def point_id(key: dict, config: dict) -> str:
    """16 hex digits of SHA-256 over a point's key (`point_key`) and its whole configuration
    (`HwConfig.to_dict()`)."""
    doc = json.dumps({**key, "config": config}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


def _config(base: HwConfig, values: dict, where: str) -> HwConfig:
    data = base.to_dict()
    for key, value in values.items():
        section, name = key.split(".")
        data[section][name] = list(value) if isinstance(value, tuple) else value
    return from_dict(data, where)


def expand(spec: SweepSpec, source: WorkloadSource, engine: str, code: str) -> list[Point]:
    """Every design point of `spec`, in order: workloads, then the product of the axes and
    zip groups in file order. Checks every workload, bits value, bits rule and configuration
    first; AccelsimError names the file, workload or key. A workload whose widths are fixed
    by its file gets one point per configuration (bits None)."""
    infos = {w: source.describe(w, spec.folder) for w in spec.workloads}
    for rule in spec.bits_rules:
        for w in spec.workloads:
            if rule.applies_to(w) and not infos[w].layer_rules:
                raise AccelsimError(
                    f"{spec.path}: [[bits_rules]] {rule.label()}: workload {w!r} does not take "
                    "per-layer widths (only built-in dense models do); limit the rule with "
                    "workloads = [...]"
                )
    dims = [((k,), tuple((v,) for v in vals)) for k, vals in spec.axes] + list(spec.zips)
    keys = [k for ks, _ in dims for k in ks]
    points, seen = [], set()
    for w in spec.workloads:
        info = infos[w]
        rules = tuple(r for r in spec.bits_rules if r.applies_to(w))
        for combo in itertools.product(*(rows for _, rows in dims)):
            values = dict(zip(keys, (v for row in combo for v in row)))
            bits = values.get(BITS_KEY, DEFAULT_BITS)
            if info.bits is not None and len(info.bits) == 0:
                bits = None
            elif info.bits is not None and bits not in info.bits:
                known = ", ".join(f"{a}/{b}" for a, b in info.bits)
                raise AccelsimError(
                    f"{spec.path}: workload {w!r} has no model at bits {bits[0]}/{bits[1]} "
                    f"(A/W; it has {known})"
                )
            cfg_values = {k: v for k, v in values.items() if k != BITS_KEY}
            where = f"{spec.path}: point {w} " + ", ".join(f"{k}={v}" for k, v in values.items())
            cfg = _config(spec.base_config, cfg_values, where)
            key = point_key(
                info.identity,
                bits,
                rules if bits else (),
                spec.seed,
                spec.timing_only,
                engine,
                code,
            )
            pid = point_id(key, cfg.to_dict())
            if pid in seen:
                continue  # a model file's own widths: the bits axis does not multiply it
            seen.add(pid)
            swept = tuple((k, values[k]) for k in keys if k != BITS_KEY)
            points.append(
                Point(
                    pid,
                    len(points),
                    w,
                    bits,
                    rules if bits else (),
                    swept,
                    cfg,
                    spec.seed,
                    spec.timing_only,
                    key,
                    spec.folder,
                )
            )
    return points
