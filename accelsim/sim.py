"""Run a `Program` on the simulated processor: units linked by token FIFOs.

`simulate(program, cfg)` builds one unit per `Unit` (`UNITS` maps each to its class; the sparse
engine registers itself there), one token FIFO per ordered pair of units, the shared DRAM bus
and, unless `count_only`, the functional memory. It then splits the instruction stream in
program order into the units' in-order queues (FINISH ends every queue). Instruction fetch and
dispatch are modelled as free with unbounded queues, so a unit only ever waits on tokens (or
the DRAM bus). Two engines time the queues: `event` runs each unit as a SimPy process
(`accelsim.event_engine`, the reference and the default); `fast` evaluates the same schedule as
a max-plus recurrence in one Numba pass (`accelsim.fast_engine`, for sweeps). Everything else
(planning, statistics, errors) is shared, so both give the same Stats.

Before the run every instruction is costed once with its unit's pure cost model and its buffer
accesses are checked against the buffer capacities (rows = ceil(elements * bits / row_bits)).
Static counts (MACs, bytes, bits, element operations) are summed then, so the event loop does
only timing: `count_only=True` skips the datapath and gives identical cycles. The planning
pass is `accelsim.plan`: per instruction (`plan_objects`, filling the queues), or, for a
count-only fast run without the race detector, which runs nothing per instruction, from the
program's table with one profile per distinct instruction shape (`plan_table`; the same plan).

At the end: a unit left waiting with no events pending is a deadlock (`DeadlockError` naming
each blocked unit, its instruction and the channels it waits on with their token counts);
tokens left in a FIFO are reported in `Stats.tokens_left` (or raise with strict_tokens=True).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from accelsim.errors import AccelsimError, DeadlockError, IsaError
from accelsim.fileio import atomic_write_json
from accelsim.insn_table import insn_at
from accelsim.isa import Buf, Unit
from accelsim.memory import Memory
from accelsim.plan import Plan, mask_units, plan_objects, plan_table
from accelsim.races import RaceDetector
from accelsim.stats import MacWidths, Recorder, Stats
from accelsim.units.base import Channel
from accelsim.units.dma import DramBus, LoadEngine, StoreEngine
from accelsim.units.matmul import Matmul
from accelsim.units.quantizer import Quantizer
from accelsim.units.rescale import Rescale
from accelsim.units.svge import Svge
from accelsim.units.vector import Vector

# Unit -> class. The sparse voxel group engine adds itself: UNITS[Unit.SVGE] = Svge.
UNITS: dict = {
    Unit.LOAD: LoadEngine,
    Unit.STORE: StoreEngine,
    Unit.QUANTIZER: Quantizer,
    Unit.MATMUL: Matmul,
    Unit.RESCALE: Rescale,
    Unit.VECTOR: Vector,
    Unit.SVGE: Svge,
}


ENGINES = ("event", "fast")  # timing engines of `simulate` (event: SimPy, the reference)


@dataclass
class SimResult:
    """What a run returns: `stats`, named `outputs` (empty with count_only), the final `dram`
    image (None with count_only), and per-instruction `start_cycles` / `end_cycles` arrays
    (indexed like `program.insns`; FINISH entries are 0) for traces."""

    stats: Stats
    outputs: dict
    dram: np.ndarray | None
    start_cycles: np.ndarray
    end_cycles: np.ndarray


def plan_program(program, cfg, table: bool = False) -> tuple[Plan, dict]:
    """The planning pass alone (costs, capacity checks, counts) on a machine built without an
    event loop: (plan, units). For benchmarks. table=False: per instruction, filling the
    queues (`plan_objects`; it reads `program.insns`, so a lowered program keeps its
    instructions as a list from then on); True: from the table (`plan_table`), as a fast
    count-only run plans."""
    units, chans = _build(None, cfg, UNITS, Recorder(program.n_insns))
    plan = plan_table(program, cfg, units, chans) if table else None
    return plan or plan_objects(program, cfg, units, chans), units


def _build(env, cfg, classes: dict, rec) -> tuple[dict, list]:
    """The units (started in `env` unless None) and the token FIFOs [src][dst]."""
    units = {u: cls(env, cfg, rec) for u, cls in classes.items()}
    return units, [[Channel(s, d) for d in range(len(Unit))] for s in range(len(Unit))]


def _deadlock_message(program, plan: Plan, units, chans) -> str:
    lines = []
    for unit in units.values():
        if unit.done:
            continue
        if plan.entries is not None:
            insn = unit.current()
        else:  # a columnar plan: the unit's queue is its rows of the table
            queue = np.flatnonzero(plan.rows[:, 0] == int(unit.unit))
            insn = insn_at(program.rows(), int(queue[unit.pos]))
        waits = ", ".join(
            f"{chans[j][int(unit.unit)].name} ({chans[j][int(unit.unit)].count} tokens)"
            for j in mask_units(insn.wait)
        )
        lines.append(
            f"  {unit.name} blocked at insn {insn.index} {insn.op.name} (tag "
            f"{insn.tag}) waiting on {waits or 'nothing'}"
        )
    return "deadlock: no unit can proceed\n" + "\n".join(lines)


def _machine(cfg, units) -> dict:
    b = cfg.buffers
    return {
        "mac_arrays": {u.name: u.mac_arrays for u in units.values() if u.mac_arrays},
        "clock_mhz": cfg.chip.clock_mhz,
        "peak_dram_bytes_per_cycle": cfg.dram.bw_bytes_per_cycle,
        "array_rows": cfg.matmul.rows,
        "array_cols": cfg.matmul.cols,
        "mac_model": cfg.matmul.mac_model,
        "row_bits": b.row_bits,
        "svge_groups": cfg.svge.groups,
        "svge_engines": cfg.svge.engines,
        "rescale_mult_bits": cfg.rescale.mult_bits,
        "buffer_bytes": {buf.name.lower(): getattr(b, buf.name.lower() + "_bytes") for buf in Buf},
    }


def _stats(program, cfg, plan: Plan, rec, chans, units) -> Stats:
    counters, unit_of = plan.counters, plan.rows[:, 0]
    for name, arr in (
        ("stall_token_cycles", rec.stall_token),
        ("stall_dram_cycles", rec.stall_dram),
    ):
        arr = np.asarray(arr, np.int64)
        hit = np.flatnonzero(arr)
        keys, where = np.unique(plan.tags[hit] * len(Unit) + unit_of[hit], return_inverse=True)
        sums = np.zeros(keys.size, np.int64)
        np.add.at(sums, where, arr[hit])
        for key, total in zip(keys.tolist(), sums.tolist()):
            row = counters[divmod(key, len(Unit))]
            row[name] = row.get(name, 0) + total
    for i, name, value in rec.extra:
        row = counters[(int(plan.tags[i]), int(unit_of[i]))]
        row[name] = row.get(name, 0) + value
    end = np.asarray(rec.end, np.int64)
    start = np.asarray(rec.start, np.int64)
    real = unit_of >= 0
    tags = plan.tags[real]
    spans = {}
    if tags.size:
        order = np.argsort(tags, kind="stable")
        uniq, first = np.unique(tags[order], return_index=True)
        lo = np.minimum.reduceat(start[real][order], first)
        hi = np.maximum.reduceat(end[real][order], first)
        spans = {int(t): (int(a), int(b)) for t, a, b in zip(uniq, lo, hi)}
    named, macs, peaks = {}, {}, {}
    for (t, u), row in counters.items():
        unit = units[u]
        named[(t, unit.name)] = {k: v for k, v in row.items() if not isinstance(k, MacWidths)}
        widths = {k: v for k, v in row.items() if isinstance(k, MacWidths)}
        if widths:
            macs[(t, unit.name)] = widths
            for w in widths:  # each unit reports its own peak at the widths it ran
                peaks[(unit.name, *w)] = unit.peak_macs_per_cycle(*w)
    tokens_left = {c.name: c.count for row in chans for c in row if c.count}
    return Stats(
        named,
        int(end.max()) if end.size else 0,
        spans,
        dict(program.tags),
        _machine(cfg, units),
        peaks,
        tokens_left,
        macs,
    )


def simulate(
    program,
    cfg,
    *,
    engine: str = "event",
    count_only: bool = False,
    check_races: bool = True,
    trace=None,
    progress: bool = False,
    inputs: dict | None = None,
    strict_tokens: bool = False,
    units: dict | None = None,
) -> SimResult:
    """Run `program` on the processor described by `cfg` (an `HwConfig`).

    engine: "event" (SimPy, the reference) or "fast" (`accelsim.fast_engine`: the same
    schedule from a max-plus pass over the unit queues; no trace lines or progress bar).
    count_only: skip the datapath (no data, identical timing). check_races: run the race
    detector (RaceError on an unordered buffer access). trace: None; a callable (or list)
    receiving one line of unit states (`cycle  unit: state | ...`) whenever an instruction
    starts or ends (event engine only); or a file path (str / Path) that gets a Chrome /
    Perfetto trace JSON of the run (`chrome_trace`). progress: show a tqdm bar (event engine).
    inputs: name -> array placed into a copy of the DRAM image before the run. strict_tokens:
    raise IsaError if tokens are left in a FIFO. units: Unit -> class mapping to build the
    machine from (default `UNITS`).
    Raises DeadlockError, RaceError, IsaError (bad stream or capacity) or AccelsimError.
    """
    if engine not in ENGINES:
        raise AccelsimError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    trace_path = trace if isinstance(trace, (str, os.PathLike)) else None
    if engine == "fast" and trace is not None and trace_path is None:
        raise AccelsimError("trace lines need engine='event' (the fast engine has no events)")
    env = None
    if engine == "event":
        from accelsim import event_engine  # noqa: PLC0415 (the fast engine does without SimPy)

        env = event_engine.environment()
    n = program.n_insns
    rec = Recorder(n)
    units, chans = _build(env, cfg, UNITS if units is None else units, rec)
    plan = None
    if engine == "fast" and count_only and not check_races:  # nothing runs per instruction
        plan = plan_table(program, cfg, units, chans)
    if plan is None:
        plan = plan_objects(program, cfg, units, chans)
    bus = DramBus(cfg)
    dram = mem = None
    if not count_only:
        if program.dram is None:
            raise AccelsimError(
                "the program was lowered timing-only (no DRAM image): simulate it with "
                "count_only=True, or lower it again with its data"
            )
        dram = program.dram.copy()
        if inputs:
            program.place_inputs(dram, inputs)
        mem = Memory(cfg, dram)
    races = RaceDetector(program.insns) if check_races else None
    for unit in units.values():
        unit.bus = bus
        unit.mem = mem
        unit.races = races
    if engine == "fast":
        from accelsim.fast_engine import run_fast  # noqa: PLC0415 (loads Numba)

        run_fast(cfg, units, chans, plan, rec, races, mem)
    else:
        event_engine.run_event(env, units, n, trace if trace_path is None else None, progress)
    if not all(u.done for u in units.values()):
        raise DeadlockError(_deadlock_message(program, plan, units, chans))
    stats = _stats(program, cfg, plan, rec, chans, units)
    if strict_tokens and stats.tokens_left:
        raise IsaError(
            "unbalanced tokens left at the end: "
            + ", ".join(f"{k} ({v})" for k, v in stats.tokens_left.items())
        )
    outputs = program.read_outputs(dram) if dram is not None else {}
    result = SimResult(
        stats, outputs, dram, np.asarray(rec.start, np.int64), np.asarray(rec.end, np.int64)
    )
    if trace_path is not None:
        from accelsim.trace import chrome_trace  # noqa: PLC0415

        atomic_write_json(trace_path, chrome_trace(program, result, cfg), indent=None)
    return result
