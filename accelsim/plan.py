"""The planning pass of the simulator: every instruction costed once, its buffer accesses
checked against the capacities, its static counts summed, the unit queues filled.

Two passes give the same `Plan`: `plan_objects` walks `Insn` objects and fills each unit's
queue with entries the event engine and the datapaths use; `plan_table` reads the program's
`accelsim.insn_table` columns, costs each distinct profile once and checks every capacity
with array operations, for the fast engine's count-only runs, which need no entries. Where
`plan_table` finds anything wrong it returns None, and `plan_objects` raises the error that
names the first offending instruction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.errors import AccelsimError, IsaError
from accelsim.insn_table import COLUMN, NAMES, OP, SIGNAL, TAG, WAIT, insn_at
from accelsim.isa import TABLE, Buf, Op, Unit
from accelsim.units.base import DRAM

_OP_UNIT = {op: spec.unit for op, spec in TABLE.items()}
_N_CODES = 1 + max(int(op) for op in TABLE)
_UNIT_OF_CODE = np.full(_N_CODES, -1, np.int64)  # opcode -> unit id (-1: FINISH)
_IS_OPCODE = np.isin(np.arange(_N_CODES), [int(op) for op in TABLE])
for _op, _u in _OP_UNIT.items():
    if _u is not None:
        _UNIT_OF_CODE[int(_op)] = int(_u)


def capacities(cfg, program) -> list[int]:
    """Rows of each buffer (indexed by `Buf`) and, last (index DRAM), the DRAM image's
    elements."""
    return [cfg.buffers.capacity_rows(b.name) for b in Buf] + [program.dram_size]


def mask_units(mask: int) -> list[int]:
    """The unit ids whose bits are set in a wait or signal mask."""
    return [j for j in range(len(Unit)) if mask >> j & 1]


def _check_header(insn, u: int) -> None:
    if (insn.wait | insn.signal) >> u & 1:
        raise IsaError(
            f"insn {insn.index} {insn.op.name}: waits on or signals its own unit "
            f"({Unit(u).name.lower()}); a unit is already ordered with itself"
        )


@dataclass
class Plan:
    """What the planning pass gives both engines: `counters` per (tag, unit), `rows` [n, 5]
    int64 per instruction (unit, cycles, wait mask, signal mask, SVGE engine; unit -1 for
    FINISH), `tags` [n], `queue_len` [units] (instructions queued per unit id) and `entries`,
    each instruction's unit-queue entry (None for FINISH), or None from `plan_table`."""

    counters: dict
    rows: np.ndarray
    tags: np.ndarray
    queue_len: np.ndarray
    entries: list | None


def plan_objects(program, cfg, units, chans) -> Plan:
    """Cost every instruction, check capacities, fill the unit queues.

    Profiles are cached by the instructions' non-address fields (tiled programs repeat a few
    tile shapes), so the per-instruction work here is two key lookups and the range checks;
    the static counts are summed per (profile, tag) at the end."""
    cap = capacities(cfg, program)
    headers: dict = {}  # (op, wait, signal) -> (unit id, unit, wait FIFOs, signal FIFOs, key)
    profiles: dict = {}  # op -> profile key -> (id, cycles, template, range checks)
    by_id: list = []  # (unit id, cycles, counts) per profile id
    flat: list = []  # unit, cycles, wait, signal, engine, profile id, tag of each instruction
    entries: list = []
    finished = False
    for idx, insn in enumerate(program.insns):
        insn.index = idx
        if finished:
            raise IsaError(f"insn {idx} {insn.op.name} follows FINISH")
        op = insn.op
        hdr = headers.get((op, insn.wait, insn.signal))
        if hdr is None:
            hdr = headers[(op, insn.wait, insn.signal)] = _header(insn, units, chans)
        u, unit, waits, sigs, key_of = hdr
        if unit is None:  # FINISH
            finished = True
            flat.extend((-1, 0, 0, 0, 0, -1, 0))
            entries.append(None)
            continue
        f = insn.f
        of_op = profiles.get(op)
        if of_op is None:
            of_op = profiles[op] = {}
        pk = key_of(f)
        prof = of_op.get(pk)
        if prof is None:
            cyc, template, counts = unit.profile(insn)
            checks = tuple((field, cap[buf] - rows, buf, rows) for buf, field, rows, _ in template)
            prof = of_op[pk] = (len(by_id), cyc, template, checks)
            by_id.append((u, cyc, counts))
        for field, limit, buf, rows in prof[3]:
            if f[field] > limit:
                _capacity_error(insn, cfg, buf, f[field], rows, cap[buf])
        entry = (insn, prof[1], waits, sigs, prof[2])
        unit.plan.append(entry)
        entries.append(entry)
        flat.extend((u, prof[1], insn.wait, insn.signal, f.get("engine", 0), prof[0], insn.tag))
    table = np.array(flat, np.int64).reshape(-1, 7)
    queue_len = np.zeros(len(Unit), np.int64)
    for u, unit in units.items():
        queue_len[int(u)] = len(unit.plan)
    counters = _counters(table[:, 5], table[:, 6], by_id)
    return Plan(counters, table[:, :5], table[:, 6], queue_len, entries)


def _header(insn, units, chans):
    """(unit id, unit, wait FIFOs, signal FIFOs, profile key getter) of an instruction header;
    unit None for FINISH. Raises IsaError for a bad header."""
    if insn.op == Op.FINISH:
        if insn.wait or insn.signal:
            raise IsaError(f"insn {insn.index} FINISH must not wait or signal (every unit runs it)")
        return None, None, (), (), None
    u = _OP_UNIT[insn.op]
    if u not in units:
        raise IsaError(
            f"insn {insn.index} {insn.op.name}: no {u.name.lower()} unit is "
            f"registered in accelsim.sim.UNITS"
        )
    _check_header(insn, u)
    return (
        u,
        units[u],
        tuple(chans[j][u] for j in mask_units(insn.wait)),
        tuple(chans[u][j] for j in mask_units(insn.signal)),
        units[u].key_getter(insn.op),
    )


def _counters(pid, tags, by_id) -> dict:
    """(tag, unit) -> counters: each profile's counts times its instructions per tag (rows in
    order of the profiles' first use, tags in order of first use within a profile)."""
    real = pid >= 0
    pid, tags = pid[real], tags[real]
    span = int(tags.max()) + 1 if tags.size else 1
    uniq, first, times = np.unique(pid * span + tags, return_index=True, return_counts=True)
    counters: dict = {}
    for q in np.lexsort((first, uniq // span)).tolist():
        p, tag = divmod(int(uniq[q]), span)
        u, cyc, counts = by_id[p]
        n = int(times[q])
        row = counters.setdefault((tag, u), {"instructions": 0, "busy_cycles": 0})
        row["instructions"] += n
        row["busy_cycles"] += cyc * n
        for k, v in counts:
            if v:
                row[k] = row.get(k, 0) + v * n
    return counters


def _capacity_error(insn, cfg, buf, addr, rows, cap):
    if buf == DRAM:
        raise IsaError(
            f"insn {insn.index} {insn.op.name}: DRAM block [{addr}, {addr + rows}) "
            f"lies beyond the {cap}-element DRAM image"
        )
    name = Buf(buf).name
    raise IsaError(
        f"insn {insn.index} {insn.op.name}: {name} rows [{addr}, {addr + rows}) "
        f"exceed the buffer's {cap} rows ({name.lower()}_bytes = "
        f"{getattr(cfg.buffers, name.lower() + '_bytes')}, row_bits = "
        f"{cfg.buffers.row_bits})"
    )


def plan_table(program, cfg, units, chans) -> Plan | None:
    """`plan_objects` from the program's table, without entries (`Plan.entries` None) and
    without filling the units' queues; None if the stream is not one it plans as is (a value
    that is not a table integer, an instruction after FINISH, a bad header, an unregistered
    unit, a profile that cannot be computed or an access beyond a capacity): `plan_objects`
    then raises the error naming the first such instruction."""
    try:
        table = program.rows()
    except IsaError:
        return None
    n = len(table)
    codes = table[:, OP]
    if n == 0 or codes.min() < 0 or codes.max() >= _N_CODES or not _IS_OPCODE[codes].all():
        return None
    unit_of = _UNIT_OF_CODE[codes]
    finish = np.flatnonzero(codes == int(Op.FINISH))
    masks = table[:, WAIT] | table[:, SIGNAL]
    if finish.size and (finish[0] != n - 1 or masks[finish[0]]):
        return None  # something follows FINISH, or FINISH carries tokens
    real = unit_of >= 0
    if ((masks[real] >> unit_of[real]) & 1).any():
        return None  # an instruction waits on or signals its own unit
    cap = capacities(cfg, program)
    cycles = np.zeros(n, np.int64)
    engine = np.zeros(n, np.int64)  # SVGE engine of SVG_* instructions
    pid = np.full(n, -1, np.int64)
    first_use: list = []  # first instruction of each profile
    by_id: list = []  # (unit id, cycles, counts) per profile
    for code in np.unique(codes[real]).tolist():
        op, u = Op(code), _OP_UNIT[Op(code)]
        if u not in units:
            return None
        profiles = _profiles(table, np.flatnonzero(codes == code), op, units[u], cap)
        if profiles is None:
            return None
        idx, inverse, found = profiles
        cycles[idx] = np.array([c for _, c, _ in found], np.int64)[inverse]
        if "engine" in COLUMN[op]:
            engine[idx] = table[idx, COLUMN[op]["engine"]]
        pid[idx] = len(by_id) + inverse
        first_use.extend(first for first, _, _ in found)
        by_id.extend((u, c, counts) for _, c, counts in found)
    # profiles numbered by first use, as `plan_objects` numbers them
    rank = np.empty(len(by_id), np.int64)
    rank[np.argsort(first_use, kind="stable")] = np.arange(len(by_id))
    pid[real] = rank[pid[real]]
    by_id = [by_id[i] for i in np.argsort(rank).tolist()]
    rows = np.stack([unit_of, cycles, table[:, WAIT], table[:, SIGNAL], engine], axis=1)
    tags = np.where(real, table[:, TAG], 0)  # FINISH: tag 0, as `plan_objects` records it
    queue_len = np.bincount(unit_of[real], minlength=len(Unit)).astype(np.int64)
    return Plan(_counters(pid, tags, by_id), rows, tags, queue_len, None)


def _profiles(table, idx, op, unit, cap):
    """(idx, profile of each of them as an index into `found`, `found`: (first instruction,
    cycles, counts) per distinct profile) of the instructions `idx` of opcode `op`, their
    capacities checked; None if a profile raises or an access exceeds its capacity."""
    cols = [COLUMN[op][name] for name in NAMES[op] if name not in unit.ADDR_FIELDS]
    first, inverse = _distinct_rows(table[idx[:, None], cols])
    found, limits = [], {}  # limits: address field -> profile -> highest legal address
    for j, i in enumerate(idx[first].tolist()):
        try:
            cyc, template, counts = unit.profile(insn_at(table, i))
        except (AccelsimError, ArithmeticError, LookupError, TypeError, ValueError):
            return None  # a field a unit cannot cost: plan_objects names the first such insn
        found.append((i, cyc, counts))
        for buf, field, rows, _ in template:
            of_field = limits.setdefault(field, {})
            limit = min(max(cap[buf] - rows, _LOWEST), _NO_LIMIT)  # within int64
            of_field[j] = min(of_field.get(j, _NO_LIMIT), limit)
    for field, of_field in limits.items():
        lim = np.full(len(first), _NO_LIMIT, np.int64)
        lim[list(of_field)] = list(of_field.values())
        if (table[idx, COLUMN[op][field]] > lim[inverse]).any():
            return None
    return idx, inverse, found


_NO_LIMIT = np.iinfo(np.int64).max
_LOWEST = np.iinfo(np.int64).min  # the limit of a block larger than any capacity


def _distinct_rows(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position of the first occurrence of each distinct row of `keys` [m, k], in order of
    the rows' values; the distinct row of each row as an index into the first)."""
    m = len(keys)
    if keys.shape[1] == 0:
        return np.zeros(1, np.int64), np.zeros(m, np.int64)
    order = np.lexsort(keys.T[::-1])  # stable: equal rows keep their program order
    ordered = keys[order]
    new = np.ones(m, bool)
    new[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    inverse = np.empty(m, np.int64)
    inverse[order] = np.cumsum(new) - 1
    return order[new], inverse
