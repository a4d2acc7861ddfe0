"""Token insertion: turn buffer and DRAM read/write sets into wait/signal bits.

The emitter records, for every instruction, the regions it reads and writes: `(space, start,
end)` half-open intervals, where `space` is a buffer (`Buf`) counted in rows or the string
"dram" counted in elements. This pass walks the program in order and, for each instruction X on
unit C, finds the instructions it must follow: the last writer of every region it reads (RAW),
and the last writer and the readers since then of every region it writes (WAR, WAW).

Each unit runs its queue in order, so only the latest required instruction per producer unit
matters, and dependencies already implied through earlier tokens need none of their own. That is
tracked with vector clocks: `clock[C][P]` is the number of unit P's instructions known to have
finished before unit C's current instruction starts. A new dependency X <- Y (Y the n-th
instruction of unit P) is needed only if `clock[C][P] < n`; then Y signals C and X waits on P.
Tokens on a FIFO are therefore created in the same order by producer and consumer, so the k-th
pop always takes the token of the k-th push, and every dependency points backwards in program
order, so the stream cannot deadlock.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from accelsim.isa import Insn, Op, Unit

N_UNITS = len(Unit)


@dataclass
class Access:
    """Regions one instruction reads and writes: lists of (space, start, end) intervals."""

    reads: list = field(default_factory=list)
    writes: list = field(default_factory=list)


class _Space:
    """Written intervals of one address space, kept sorted and disjoint, each with its last
    writer and the readers since that write. Regions never written (weights, the input) are
    read-only for the whole program and need no tracking."""

    def __init__(self):
        self.starts: list[int] = []
        self.items: list[list] = []  # [start, end, writer (unit, seq), readers [(unit, seq)]]

    def overlapping(self, start: int, end: int) -> list[list]:
        i = max(bisect.bisect_right(self.starts, start) - 1, 0)
        out = []
        while i < len(self.items) and self.items[i][0] < end:
            if self.items[i][1] > start:
                out.append(self.items[i])
            i += 1
        return out

    def write(self, start: int, end: int, who) -> None:
        lo = max(bisect.bisect_right(self.starts, start) - 1, 0)
        hi = lo
        pieces = []
        while hi < len(self.items) and self.items[hi][0] < end:
            it = self.items[hi]
            if it[1] > start:  # overlaps: keep the parts outside [start, end)
                if it[0] < start:
                    pieces.append([it[0], start, it[2], list(it[3])])
                if end < it[1]:
                    pieces.append([end, it[1], it[2], list(it[3])])
            else:
                pieces.append(it)
            hi += 1
        pieces.append([start, end, who, []])
        pieces.sort(key=lambda it: it[0])
        self.items[lo:hi] = pieces
        self.starts[lo:hi] = [it[0] for it in pieces]

    def read(self, start: int, end: int, who) -> None:
        for it in self.overlapping(start, end):
            it[3].append(who)


def insert_tokens(insns: list[Insn], accesses: list[Access]) -> list[Insn]:
    """Set `wait` / `signal` on `insns` (in place, also returned) from their accesses."""
    spaces: dict = {}
    clock = [[0] * N_UNITS for _ in range(N_UNITS)]  # clock[C][P]
    seq = [0] * N_UNITS
    done: dict[tuple[int, int], tuple[Insn, list[int]]] = {}  # (unit, seq) -> (insn, clock)
    for insn, acc in zip(insns, accesses):
        if insn.op is Op.FINISH:
            continue
        c = int(insn.unit)
        needs = [0] * N_UNITS  # latest seq needed per producer unit
        for space, start, end in acc.reads:
            for it in spaces.setdefault(space, _Space()).overlapping(start, end):
                needs[it[2][0]] = max(needs[it[2][0]], it[2][1])
        for space, start, end in acc.writes:
            for it in spaces.setdefault(space, _Space()).overlapping(start, end):
                for u, s in [it[2], *it[3]]:
                    needs[u] = max(needs[u], s)
        mine = clock[c]
        needed = {p: done[(p, needs[p])] for p in range(N_UNITS) if p != c and needs[p] > mine[p]}
        for p, (producer, _) in needed.items():
            # no token if another needed producer already follows this one
            if any(q != p and qclock[p] >= needs[p] for q, (_, qclock) in needed.items()):
                continue
            producer.signal |= 1 << c
            insn.wait |= 1 << p
        for _, producer_clock in needed.values():
            for u in range(N_UNITS):
                if producer_clock[u] > mine[u]:
                    mine[u] = producer_clock[u]
        seq[c] += 1
        mine[c] = seq[c]
        done[(c, seq[c])] = (insn, list(mine))
        for space, start, end in acc.reads:
            spaces[space].read(start, end, (c, seq[c]))
        for space, start, end in acc.writes:
            spaces[space].write(start, end, (c, seq[c]))
    return insns
