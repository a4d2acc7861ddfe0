"""Race detector: vector clocks carried by tokens, checked on every buffer access.

Each unit keeps a vector clock (one entry per unit). Starting an instruction ticks the unit's
own entry; a token carries the producer's clock when it was pushed and merging it on pop orders
the consumer after everything the producer had seen. Units run in order, so an instruction is
also ordered after every earlier instruction of its own unit.

Per buffer the detector keeps records of row intervals: the last writer (unit, clock,
instruction index) and, per unit, the latest reader since that write. An access of rows
[lo, hi) by instruction X checks every overlapping record: its writer must be ordered before X
(clock of X's unit view >= writer's clock); for a write, every recorded reader must be ordered
before X too. Otherwise `RaceError` names both instructions, the buffer and the rows. Reads of
rows nobody wrote are recorded too, so a later unordered write to them is caught.
"""

from __future__ import annotations

from collections import deque

from accelsim.errors import RaceError
from accelsim.isa import Buf, Unit


class RaceDetector:
    """Vector clocks per unit and access records per buffer (see the module docstring)."""

    def __init__(self, insns, n_units: int = len(Unit)):
        self.insns = insns
        self.n = n_units
        self.vc = [[0] * n_units for _ in range(n_units)]
        # per buffer: start row -> [lo, hi, writer unit, writer clock, writer insn,
        # {reader unit: (clock, insn)}]; records never overlap
        self.records = [{} for _ in Buf]

    def push(self, ch, unit: int) -> None:
        if ch.vcs is None:
            ch.vcs = deque()
        ch.vcs.append(tuple(self.vc[unit]))

    def pop(self, ch, unit: int) -> None:
        theirs, mine = ch.vcs.popleft(), self.vc[unit]
        for j in range(self.n):
            if theirs[j] > mine[j]:
                mine[j] = theirs[j]

    def _race(self, buf, lo, hi, idx, other, what):
        a, b = self.insns[other], self.insns[idx]
        raise RaceError(
            f"race on {Buf(buf).name} rows [{lo}, {hi}): insn {idx} {b.op.name} "
            f"({b.unit.name.lower()}) {what} insn {other} {a.op.name} "
            f"({a.unit.name.lower()}) with no token chain ordering them"
        )

    def check(self, insn, unit: int, template) -> None:
        """Tick `unit`'s clock and check/record the buffer accesses of `insn` (at its start);
        `template` holds (buf, address field, rows, is_write) as made by the unit's profile.

        Records of a buffer never overlap, so an access matching a record's rows exactly
        touches only that record (the common case of reused tile slots): no scan needed."""
        vc = self.vc[unit]
        vc[unit] += 1
        clk, idx, f = vc[unit], insn.index, insn.f
        for buf, field, rows, write in template:
            if buf < 0:  # the DRAM block of a DMA transfer: not tracked
                continue
            lo = f[field]
            hi = lo + rows
            recs = self.records[buf]
            r = recs.get(lo)
            if r is not None and r[1] == hi:  # fast path: exactly one record, same rows
                if r[2] >= 0 and vc[r[2]] < r[3]:
                    self._race(
                        buf,
                        lo,
                        hi,
                        idx,
                        r[4],
                        "writes rows last written by" if write else "reads rows written by",
                    )
                if write:
                    for ru, (rclk, ridx) in r[5].items():
                        if vc[ru] < rclk:
                            self._race(buf, lo, hi, idx, ridx, "overwrites rows being read by")
                    r[2], r[3], r[4] = unit, clk, idx
                    r[5].clear()
                else:
                    r[5][unit] = (clk, idx)
                continue
            hits = [q for q in recs.values() if q[0] < hi and lo < q[1]]
            for r in hits:
                if r[2] >= 0 and vc[r[2]] < r[3]:
                    self._race(
                        buf,
                        max(lo, r[0]),
                        min(hi, r[1]),
                        idx,
                        r[4],
                        "writes rows last written by" if write else "reads rows written by",
                    )
                if write:
                    for ru, (rclk, ridx) in r[5].items():
                        if vc[ru] < rclk:
                            self._race(
                                buf,
                                max(lo, r[0]),
                                min(hi, r[1]),
                                idx,
                                ridx,
                                "overwrites rows being read by",
                            )
                else:
                    r[5][unit] = (clk, idx)
            if write:
                for r in hits:  # trim what is left of partly overwritten records
                    del recs[r[0]]
                    if r[0] < lo:
                        recs[r[0]] = [r[0], lo, r[2], r[3], r[4], dict(r[5])]
                    if hi < r[1]:
                        recs[hi] = [hi, r[1], r[2], r[3], r[4], dict(r[5])]
                recs[lo] = [lo, hi, unit, clk, idx, {}]
            elif not hits:
                recs[lo] = [lo, hi, -1, 0, -1, {unit: (clk, idx)}]
