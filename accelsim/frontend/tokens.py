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

import numpy as np

from accelsim import insn_table
from accelsim.frontend.token_kernel import tokens
from accelsim.isa import TABLE, Buf, Insn, Op, Unit
from accelsim.jit import jit_disabled, jit_loaded

N_UNITS = len(Unit)
_UNIT_OF = {op: None if spec.unit is None else int(spec.unit) for op, spec in TABLE.items()}
UNIT_CODE = {op: -1 if u is None else u for op, u in _UNIT_OF.items()}  # FINISH: -1


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


DRAM_SPACE = len(Buf)  # space id of "dram" in flat region records (buffers: int(Buf))
_SPACE_ID = {b: int(b) for b in Buf} | {"dram": DRAM_SPACE}


class RegionLog:
    """The regions of a growing instruction stream, kept flat for the compiled token pass:
    (space id, start, end, is_write) per region, `ptr[i]:ptr[i + 1]` indexing instruction
    i's, `units` its unit code (-1: FINISH). The emitter appends to the Python list `flat` on
    its hot paths (an instruction's end is `end()`), `add` takes the (space, start, end)
    lists of `Access`, and `add_block` a compiled loop's [r, 4] array of regions as it is."""

    def __init__(self):
        self.flat: list[int] = []  # regions since the last block, four ints each
        self.ptr: list[int] = [0]
        self.units: list[int] = []
        self.blocks: list[np.ndarray] = []  # [r, 4] regions before `flat`, in order
        self.base = 0  # regions in `blocks`

    def end(self) -> int:
        """Index one past the last region recorded."""
        return self.base + (len(self.flat) >> 2)

    def add(self, op, reads, writes) -> None:
        put = self.flat.extend
        for space, start, end in reads:
            put((_SPACE_ID[space], start, end, 0))
        for space, start, end in writes:
            put((_SPACE_ID[space], start, end, 1))
        self.ptr.append(self.end())
        self.units.append(UNIT_CODE[op])

    def add_block(self, regions: np.ndarray, ends: np.ndarray, units: list[int]) -> None:
        """Append instructions whose regions are the rows of `regions` ([r, 4] int64), the
        k-th ending at row ends[k] of it."""
        if self.flat:
            self.blocks.append(np.array(self.flat, np.int64).reshape(-1, 4))
            self.base += len(self.flat) >> 2
            self.flat = []
        self.blocks.append(regions)
        self.ptr.extend((ends + self.base).tolist())
        self.base += len(regions)
        self.units.extend(units)

    def last(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(regions [r, 4], each one's end within them) of the last `n` instructions, which
        must all have been added by `add` (none in a block)."""
        lo = self.ptr[-n - 1]
        if lo < self.base:
            raise ValueError("the instructions asked for lie in a block")
        flat = self.flat[(lo - self.base) * 4 :]
        return np.array(flat, np.int64).reshape(-1, 4), np.array(self.ptr[-n:], np.int64) - lo

    def regions(self) -> np.ndarray:
        """All regions, [r, 4] int64."""
        tail = np.array(self.flat, np.int64).reshape(-1, 4)
        return np.concatenate([*self.blocks, tail]) if self.blocks else tail

    def accesses(self) -> list[Access]:
        """The same regions as one `Access` per instruction (for `insert_tokens_ref`)."""
        names = {i: space for space, i in _SPACE_ID.items()}
        rows = self.regions().tolist()
        out = []
        for a, b in zip(self.ptr, self.ptr[1:]):
            acc = Access()
            for sp, start, end, write in rows[a:b]:
                (acc.writes if write else acc.reads).append((names[sp], start, end))
            out.append(acc)
        return out


def insert_tokens(insns, accesses: list[Access] | RegionLog, compiled: bool | None = None):
    """Set `wait` / `signal` on `insns` (in place, also returned) from their accesses (one
    `Access` per instruction, or the emitter's `RegionLog`). `insns`: a list of `Insn` or an
    `accelsim.insn_table` table (its wait and signal columns are set).

    compiled=True runs the pass of `accelsim.frontend.token_kernel` (Numba) over flat arrays
    of the regions, False `insert_tokens_ref`; both give the same tokens. None chooses: the
    compiled pass for long streams, or any stream once Numba is loaded, so that a small run
    does not load Numba."""
    if compiled is None:
        compiled = _use_jit(len(insns))
    if not compiled:
        if isinstance(accesses, RegionLog):
            accesses = accesses.accesses()
        if isinstance(insns, np.ndarray):  # the definition works on objects
            objs = insn_table.insns(insns)
            insert_tokens_ref(objs, accesses)
            insns[:, insn_table.WAIT] = [i.wait for i in objs]
            insns[:, insn_table.SIGNAL] = [i.signal for i in objs]
            return insns
        return insert_tokens_ref(insns, accesses)
    log = accesses
    if not isinstance(log, RegionLog):
        log = RegionLog()
        table = isinstance(insns, np.ndarray)
        ops = [Op(c) for c in insns[:, insn_table.OP].tolist()] if table else [i.op for i in insns]
        for op, acc in zip(ops, accesses):
            log.add(op, acc.reads, acc.writes)
    unit = np.array(log.units, np.int64)
    regions = log.regions()
    ptr = np.array(log.ptr, np.int64)
    wait, signal = tokens(unit, ptr, regions, DRAM_SPACE + 1, N_UNITS)
    if isinstance(insns, np.ndarray):
        insns[:, insn_table.WAIT] |= wait
        insns[:, insn_table.SIGNAL] |= signal
        return insns
    for i in np.flatnonzero(wait | signal).tolist():
        insn = insns[i]
        insn.wait |= int(wait[i])
        insn.signal |= int(signal[i])
    return insns


JIT_MIN_INSNS = 20000  # below this a stream is tokenised in Python unless Numba is loaded


def _use_jit(n: int) -> bool:
    return not jit_disabled() and (jit_loaded() or n >= JIT_MIN_INSNS)


def insert_tokens_ref(insns: list[Insn], accesses: list[Access]) -> list[Insn]:
    """Set `wait` / `signal` on `insns` (in place, also returned) from their accesses: the
    definition, in plain Python, that `insert_tokens` computes with Numba."""
    spaces: dict = {}
    clock = [[0] * N_UNITS for _ in range(N_UNITS)]  # clock[C][P]
    seq = [0] * N_UNITS
    done: dict[tuple[int, int], tuple[Insn, list[int]]] = {}  # (unit, seq) -> (insn, clock)
    for insn, acc in zip(insns, accesses):
        c = _UNIT_OF[insn.op]
        if c is None:  # FINISH
            continue
        needs: dict[int, int] = {}  # latest seq needed per producer unit
        for space, start, end in acc.reads:
            sp = spaces.get(space)
            if sp is not None:
                for it in sp.overlapping(start, end):
                    u, n = it[2]
                    if n > needs.get(u, 0):
                        needs[u] = n
        for space, start, end in acc.writes:
            sp = spaces.get(space)
            if sp is not None:
                for it in sp.overlapping(start, end):
                    for u, n in (it[2], *it[3]):
                        if n > needs.get(u, 0):
                            needs[u] = n
        mine = clock[c]
        needed = {p: done[(p, n)] for p, n in needs.items() if p != c and n > mine[p]}
        if needed:
            for p, (producer, _) in needed.items():
                # no token if another needed producer already follows this one
                n = needs[p]
                if any(q != p and qclock[p] >= n for q, (_, qclock) in needed.items()):
                    continue
                producer.signal |= 1 << c
                insn.wait |= 1 << p
            for _, producer_clock in needed.values():
                mine = [a if a >= b else b for a, b in zip(mine, producer_clock)]
        else:
            mine = mine.copy()  # the previous instruction of this unit keeps its clock
        seq[c] += 1
        mine[c] = seq[c]
        clock[c] = mine
        who = (c, seq[c])
        done[who] = (insn, mine)
        for space, start, end in acc.reads:
            sp = spaces.get(space)
            if sp is not None:  # a region never written is read-only: nothing to track
                sp.read(start, end, who)
        for space, start, end in acc.writes:
            sp = spaces.get(space)
            if sp is None:
                sp = spaces[space] = _Space()
            sp.write(start, end, who)
    return insns
