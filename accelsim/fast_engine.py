"""The fast timing engine: the units' in-order queues evaluated as a max-plus recurrence.

`simulate(..., engine="fast")` plans a program exactly as the event engine does (costs,
capacity checks, static counts: `accelsim.sim`), then replaces the SimPy run by `schedule`,
which computes every instruction's start and end cycle, token-wait stall and DRAM stall from
flat arrays in one Numba pass (no SimPy, no Python object per instruction).

The recurrence, per unit queue in program order (DESIGN.md "Cost model"):

    issue_i = max(issue point of the unit, push time of the k-th token of each waited FIFO)
    in-order unit:   start_i = issue_i, end_i = start_i + cycles_i, the unit's next issue point
                     is end_i, tokens are pushed at end_i
    DMA engine:      start_i = issue_i, end_i from the shared DRAM bus (`DramBus.transfer`)
    SVGE (E engines): start_i = max(issue_i, engine free), end_i = start_i + cycles_i; the next
                     issue point is issue_i; tokens are pushed at retire_i = max(end_i, retire_i-1)

where the k-th pop of a FIFO takes the k-th push (one producer, one consumer). Units advance
through a worklist in any order their tokens allow, so hand-written programs whose dependencies
run against program order work; when no unit can advance and some queue is not empty, the
program deadlocks (the caller names the blocked units and channels, as the event engine does).

The DRAM bus serves transfers in the order the DMA engines issue them. To be exact this engine
also orders events the way SimPy does: every event (a unit resuming after its own instruction,
a token waking a blocked unit, an SVGE retirement) gets a key (cycle, generation, creator,
sequence). SimPy processes events by (cycle, id), and ids grow in creation order, so two events
of one cycle are ordered by their creators' order (then by creation sequence within the
creator); events created at an earlier cycle come before those created during this cycle
(generation). A unit that finds a FIFO empty waits for the push and resumes on a wake-up event
created right after it. The two DMA engines' transfers are served in the order of their issue
events, each chosen only once every other unit has advanced as far as its tokens allow (a
transfer SimPy issues earlier may wait on one of them), so ties between them resolve as in
the event engine, and the per-instruction cycles,
stalls and tokens equal the event engine's everywhere (the test suite checks this on every
built-in workload, preset and dataflow).

`issue_order` ranks the issue events globally; the simulator runs the race detector and, when
not count_only, the datapaths in that order after the schedule, which is the order the event
engine runs them in, so results, race verdicts and messages are the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.errors import AccelsimError
from accelsim.jit import lazy_njit

IN_ORDER, DRAM_BUS, ENGINES = 0, 1, 2  # timing disciplines (`UnitBase.timing`)
TIMING_KINDS = {"in_order": IN_ORDER, "dram_bus": DRAM_BUS, "engines": ENGINES}
ABSENT = -1  # no unit of this kind is built
# rows of the event table: cycle, generation, creating event (-1: set-up), creation sequence
T, GEN, BY, SEQ = 0, 1, 2, 3
# per-unit state: current event, cycle its token pops began, queue position, next wait bit,
# all tokens popped, SVGE retirement cycle
CUR, T0, POS, NEXT_BIT, READY, RETIRE = 0, 1, 2, 3, 4, 5
# rows of the per-instruction result and token tables
START, END, STALL_TOKEN, STALL_DRAM, ISSUE = 0, 1, 2, 3, 4
PUSHED, POPPED, OFFSET = 0, 1, 2
# DRAM bus state: cycle the bus is free, end of the latest transfer
BUS_FREE, BUS_LAST_END = 0, 1


@lazy_njit(cache=True, inline="always")
def _before(a, b, ev):
    """True if SimPy processes event a before event b (a != b): by cycle, generation, then
    the creators' order, then the creation sequence."""
    while True:
        if ev[T, a] != ev[T, b]:
            return ev[T, a] < ev[T, b]
        if ev[GEN, a] != ev[GEN, b]:
            return ev[GEN, a] < ev[GEN, b]
        ca = ev[BY, a]
        cb = ev[BY, b]
        if ca == cb:
            return ev[SEQ, a] < ev[SEQ, b]
        if ca < 0 or cb < 0:
            return ca < cb
        a = ca
        b = cb


@lazy_njit(cache=True, inline="always")
def _new_event(ev, k, t, by, seq):
    """Event k at cycle t, created while event `by` is processed, `seq`-th in that step."""
    ev[T, k] = t
    ev[BY, k] = by
    ev[SEQ, k] = seq
    ev[GEN, k] = ev[GEN, by] + 1 if t == ev[T, by] else 0


@lazy_njit(cache=True, inline="always")
def _pop(u, i, wait, st, tok, push_ev, ev):
    """Pop the tokens of instruction i (unit u) as far as they have been pushed; True when all
    are. A token pushed by an event SimPy processes after the unit's current one makes the unit
    wait: it resumes on a wake-up event created by the push."""
    if st[u, READY]:
        return True
    nu = st.shape[0]
    j = st[u, NEXT_BIT]
    w = wait[i] >> j
    while w:
        if w & 1:
            c = j * nu + u
            k = tok[POPPED, c]
            if k >= tok[PUSHED, c]:
                st[u, NEXT_BIT] = j
                return False
            p = push_ev[tok[OFFSET, c] + k]
            if not _before(p, st[u, CUR], ev):
                # wake-ups are created in the order of the pusher's FIFOs (by consumer)
                _new_event(ev, nu + 2 * i + 1, ev[T, p], p, u)
                st[u, CUR] = nu + 2 * i + 1
            tok[POPPED, c] = k + 1
        w >>= 1
        j += 1
    st[u, READY] = 1
    return True


@lazy_njit(cache=True, inline="always")
def _issue(
    u, i, kind, cycles, engine, signal, st, free, bus, latency, serial, out, tok, push_ev, ev
):
    """Start instruction i of unit u at its current event; record start, end and stalls; push
    its tokens (at its end, or at retirement on the SVGE)."""
    nu = st.shape[0]
    x = st[u, CUR]
    t = ev[T, x]
    out[STALL_TOKEN, i] = t - st[u, T0]
    out[ISSUE, i] = x
    if kind == ENGINES:
        e = engine[i]
        out[START, i] = max(t, free[u, e])
        out[END, i] = free[u, e] = out[START, i] + cycles[i]
        st[u, RETIRE] = max(st[u, RETIRE], out[END, i])
        at = st[u, RETIRE]
    elif kind == DRAM_BUS:  # DramBus.transfer, in the order the engines issue
        issue = max(t, bus[BUS_LAST_END]) if serial else t
        ready = issue + latency
        begin = max(ready, bus[BUS_FREE])
        bus[BUS_FREE] = begin + cycles[i] - latency
        bus[BUS_LAST_END] = max(bus[BUS_LAST_END], bus[BUS_FREE])
        out[STALL_DRAM, i] = begin - ready + issue - t
        out[START, i] = t
        at = out[END, i] = bus[BUS_FREE]
    else:
        out[START, i] = t
        at = out[END, i] = t + cycles[i]
    if kind != ENGINES or signal[i]:
        _new_event(ev, nu + 2 * i, at, x, nu + i)  # after the wake-ups made in the same step
    if kind != ENGINES:  # the unit resumes when the instruction ends
        st[u, CUR] = nu + 2 * i
        st[u, T0] = at
    else:  # the SVGE issues the next instruction at once
        st[u, T0] = t
    s = signal[i]
    j = 0
    while s:
        if s & 1:
            c = u * nu + j
            push_ev[tok[OFFSET, c] + tok[PUSHED, c]] = nu + 2 * i
            tok[PUSHED, c] += 1
        s >>= 1
        j += 1
    st[u, POS] += 1
    st[u, NEXT_BIT] = 0
    st[u, READY] = 0


@lazy_njit(cache=True, inline="always")
def _qlen(qoff, u):
    return qoff[u + 1] - qoff[u]


@lazy_njit(cache=True)
def _queues(unit_of, signal, nu):
    """Each unit's queue (instruction indices in program order, from offset qoff[u]) and the
    token table with each FIFO's offset into the push list."""
    qoff = np.zeros(nu + 1, np.int64)
    for i in range(unit_of.size):
        if unit_of[i] >= 0:
            qoff[unit_of[i] + 1] += 1
    qoff = np.cumsum(qoff)
    queue = np.empty(qoff[nu], np.int64)
    fill = qoff[:nu].copy()
    n_push = np.zeros(nu * nu, np.int64)
    for i in range(unit_of.size):
        u = unit_of[i]
        if u >= 0:
            queue[fill[u]] = i
            fill[u] += 1
            for j in range(nu):
                n_push[u * nu + j] += signal[i] >> j & 1
    tok = np.zeros((3, nu * nu), np.int64)
    tok[OFFSET, 1:] = np.cumsum(n_push)[:-1]
    return queue, qoff, tok, np.empty(n_push.sum(), np.int64)


@lazy_njit(cache=True)
def _schedule(unit_of, cycles, wait, signal, engine, kind, init_seq, n_engines, latency, serial):
    n, nu = unit_of.size, kind.size
    queue, qoff, tok, push_ev = _queues(unit_of, signal, nu)
    ev = np.full((4, nu + 2 * n), -1, np.int64)  # per unit its start; per insn end, wake-up
    for u in range(nu):
        if kind[u] != ABSENT:  # processes start at cycle 0 in the order they were built
            ev[T, u], ev[GEN, u], ev[SEQ, u] = 0, 0, init_seq[u]
    st = np.zeros((nu, 6), np.int64)
    st[:, CUR] = np.arange(nu)
    free = np.zeros((nu, max(n_engines, 1)), np.int64)
    bus = np.zeros(2, np.int64)
    out = np.zeros((5, n), np.int64)
    out[ISSUE] = -1
    progress = True
    while progress:
        progress = False
        moved = True
        while moved:  # every other unit as far as it goes, so no DMA transfer that SimPy
            moved = False  # issues earlier than the one chosen below is still undiscovered
            for u in range(nu):
                if kind[u] == IN_ORDER or kind[u] == ENGINES:
                    while st[u, POS] < _qlen(qoff, u):
                        i = queue[qoff[u] + st[u, POS]]
                        if not _pop(u, i, wait, st, tok, push_ev, ev):
                            break
                        _issue(
                            u, i, kind[u], cycles, engine, signal, st, free, bus, latency,
                            serial, out, tok, push_ev, ev,
                        )  # fmt: skip
                        moved = progress = True
        best = -1  # the DMA transfer SimPy issues first: the bus serves them in that order
        for u in range(nu):
            if kind[u] == DRAM_BUS and st[u, POS] < _qlen(qoff, u):
                if _pop(u, queue[qoff[u] + st[u, POS]], wait, st, tok, push_ev, ev):
                    if best < 0 or _before(st[u, CUR], st[best, CUR], ev):
                        best = u
        if best >= 0:
            _issue(
                best, queue[qoff[best] + st[best, POS]], DRAM_BUS, cycles, engine, signal, st,
                free, bus, latency, serial, out, tok, push_ev, ev,
            )  # fmt: skip
            progress = True
    return out, tok, st[:, POS].copy(), ev


@lazy_njit(cache=True)
def _issue_order(issue_ev, ev):
    """Indices of the issued instructions in the order SimPy issues them: events ranked by
    (cycle, generation, creator's rank, sequence), instructions of one event in program order."""
    used = np.flatnonzero(ev[T] >= 0)
    used = used[np.argsort(ev[GEN][used], kind="mergesort")]
    used = used[np.argsort(ev[T][used], kind="mergesort")]
    rank = np.full(ev.shape[1], -1, np.int64)
    span = ev[SEQ].max() + 2
    r = 0
    a = 0
    while a < used.size:  # one group per (cycle, generation); creators are in earlier groups
        b = a
        while b < used.size and ev[T, used[b]] == ev[T, used[a]]:
            if ev[GEN, used[b]] != ev[GEN, used[a]]:
                break
            b += 1
        key = np.empty(b - a, np.int64)
        for q in range(a, b):
            by = ev[BY, used[q]]
            key[q - a] = (rank[by] + 1 if by >= 0 else 0) * span + ev[SEQ, used[q]]
        for q in np.argsort(key, kind="mergesort"):
            rank[used[a + q]] = r
            r += 1
        a = b
    issued = np.flatnonzero(issue_ev >= 0)
    key = np.empty(issued.size, np.int64)
    for q in range(issued.size):
        key[q] = rank[issue_ev[issued[q]]] * (issue_ev.size + 1) + issued[q]
    return issued[np.argsort(key, kind="mergesort")]


@dataclass
class Schedule:
    """Per-instruction `start` / `end` cycles, `stall_token` / `stall_dram` cycles (indexed
    like the program; FINISH entries 0), tokens `pushed` / `popped` per FIFO (src * n + dst),
    each unit's queue position `pos` (short of its queue length after a deadlock), and the
    events for `order()`."""

    start: np.ndarray
    end: np.ndarray
    stall_token: np.ndarray
    stall_dram: np.ndarray
    pushed: np.ndarray
    popped: np.ndarray
    pos: np.ndarray
    issue_events: np.ndarray
    events: np.ndarray

    def order(self) -> np.ndarray:
        """Issued instructions in the event engine's issue order."""
        return _issue_order(self.issue_events, self.events)


def schedule(rows: np.ndarray, kind, init_seq, cfg) -> Schedule:
    """Schedule the instructions `rows` ([n, 5] int64: unit (-1 for FINISH), cycles, wait
    mask, signal mask, SVGE engine) on units of timing `kind` (per Unit: IN_ORDER, DRAM_BUS,
    ENGINES or ABSENT) started in `init_seq` order, with `cfg`'s DRAM latency, outstanding
    limit and SVGE engines."""
    cols = np.array(rows, np.int64).reshape(-1, 5).T.copy()
    engines = max(int(cfg.svge.engines), 1)
    on_engines = np.isin(cols[0], [u for u, k in enumerate(kind) if k == ENGINES])
    bad = np.flatnonzero(on_engines & ((cols[4] < 0) | (cols[4] >= engines)))
    if bad.size:  # the unit's profile checks this; a unit class that does not must not crash
        raise AccelsimError(
            f"insn {bad[0]}: engine {cols[4, bad[0]]} but svge.engines = {cfg.svge.engines}"
        )
    out, tok, pos, ev = _schedule(
        cols[0],
        cols[1],
        cols[2],
        cols[3],
        cols[4],
        np.asarray(kind, np.int64),
        np.asarray(init_seq, np.int64),
        int(cfg.svge.engines),
        int(cfg.dram.latency_cycles),
        cfg.dram.max_outstanding < 2,
    )
    return Schedule(*out[:4], tok[PUSHED], tok[POPPED], pos, out[ISSUE], ev)


def unit_kinds(units: dict, n_units: int) -> tuple[list, list]:
    """(timing kind, start order) per unit id of a built machine (`units`: Unit -> unit, in
    the order their processes would start); ABSENT for ids with no unit."""
    kind = [ABSENT] * n_units
    init_seq = [0] * n_units
    for seq, (u, unit) in enumerate(units.items()):
        kind[int(u)] = TIMING_KINDS[unit.timing]
        init_seq[int(u)] = seq
    return kind, init_seq


def run_fast(cfg, units, chans, plan, rec, races, mem) -> None:
    """The fast engine in place of the event loop: schedule `plan.rows` (an
    `accelsim.plan.Plan`) on `units` (each says its discipline in `timing`), fill the recorder
    `rec`, then run the race detector and the datapaths (when `races` / `mem` are given; they
    need the plan's entries) in the event engine's issue order, and leave the FIFO counts and
    unit positions as the event engine would (tokens left, deadlock)."""
    n_units = len(chans)
    rows, entries = plan.rows, plan.entries
    sch = schedule(rows, *unit_kinds(units, n_units), cfg)
    rec.start, rec.end = sch.start, sch.end
    rec.stall_token, rec.stall_dram = sch.stall_token, sch.stall_dram
    if races is not None or mem is not None:
        by_unit = {int(u): unit for u, unit in units.items()}
        for i in sch.order().tolist():
            insn, _, waits, sigs, accesses = entries[i]
            uid = int(rows[i, 0])
            if races is not None:
                for ch in waits:
                    races.pop(ch, uid)
                races.check(insn, uid, accesses)
                for ch in sigs:
                    races.push(ch, uid)
            if mem is not None:
                by_unit[uid].run(insn, mem)
    for s in range(n_units):
        for d in range(n_units):
            ch = chans[s][d]
            ch.pushed = int(sch.pushed[s * n_units + d])
            ch.count = ch.pushed - int(sch.popped[s * n_units + d])
    for u, unit in units.items():
        unit.pos = int(sch.pos[int(u)])
        unit.done = unit.pos == int(plan.queue_len[int(u)])
