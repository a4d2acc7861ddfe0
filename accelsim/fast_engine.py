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
events, so ties between them resolve as in the event engine, and the per-instruction cycles,
stalls and tokens equal the event engine's everywhere (the test suite checks this on every
built-in workload, preset and dataflow).

`issue_order` ranks the issue events globally; the simulator runs the race detector and, when
not count_only, the datapaths in that order after the schedule, which is the order the event
engine runs them in, so results, race verdicts and messages are the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.jit import lazy_njit

IN_ORDER, DRAM_BUS, ENGINES = 0, 1, 2  # timing disciplines (`UnitBase.timing`)
TIMING_KINDS = {"in_order": IN_ORDER, "dram_bus": DRAM_BUS, "engines": ENGINES}
ABSENT = -1  # no unit of this kind is built
_CUR, _T0, _POS, _NEXT_BIT, _READY, _RETIRE = 0, 1, 2, 3, 4, 5  # per-unit state columns


@lazy_njit(cache=True, inline="always")
def _before(a, b, ev_t, ev_gen, ev_by, ev_seq):
    """True if SimPy processes event a before event b (a != b): by cycle, generation, then
    the creators' order, then the creation sequence."""
    while True:
        if ev_t[a] != ev_t[b]:
            return ev_t[a] < ev_t[b]
        if ev_gen[a] != ev_gen[b]:
            return ev_gen[a] < ev_gen[b]
        ca = ev_by[a]
        cb = ev_by[b]
        if ca == cb:
            return ev_seq[a] < ev_seq[b]
        if ca < 0 or cb < 0:
            return ca < cb
        a = ca
        b = cb


@lazy_njit(cache=True, inline="always")
def _pop(u, i, nu, wait, st, popped, pushed, push_off, push_ev, ev_t, ev_gen, ev_by, ev_seq):
    """Pop the tokens of instruction i (unit u) as far as they have been pushed; True when all
    are. A token pushed by an event SimPy processes after the unit's current one makes the unit
    wait: it resumes on a wake-up event created by the push."""
    if st[u, _READY]:
        return True
    j = st[u, _NEXT_BIT]
    w = wait[i] >> j
    while w:
        if w & 1:
            c = j * nu + u
            k = popped[c]
            if k >= pushed[c]:
                st[u, _NEXT_BIT] = j
                return False
            p = push_ev[push_off[c] + k]
            if not _before(p, st[u, _CUR], ev_t, ev_gen, ev_by, ev_seq):
                wk = nu + 2 * i + 1
                ev_t[wk] = ev_t[p]
                ev_gen[wk] = ev_gen[p] + 1
                ev_by[wk] = p
                ev_seq[wk] = u  # wake-ups are created in the order of the pusher's FIFOs
                st[u, _CUR] = wk
            popped[c] = k + 1
        w >>= 1
        j += 1
    st[u, _READY] = 1
    return True


@lazy_njit(cache=True)
def _schedule(unit_of, cycles, wait, signal, engine, kind, init_seq, n_engines, latency, serial):
    n = unit_of.size
    nu = kind.size
    qlen = np.zeros(nu, np.int64)
    for i in range(n):
        if unit_of[i] >= 0:
            qlen[unit_of[i]] += 1
    qoff = np.zeros(nu + 1, np.int64)
    qoff[1:] = np.cumsum(qlen)
    queue = np.empty(qoff[nu], np.int64)
    fill = qoff[:nu].copy()
    n_push = np.zeros(nu * nu, np.int64)
    for i in range(n):
        u = unit_of[i]
        if u >= 0:
            queue[fill[u]] = i
            fill[u] += 1
            for j in range(nu):
                if signal[i] >> j & 1:
                    n_push[u * nu + j] += 1
    push_off = np.zeros(nu * nu + 1, np.int64)
    push_off[1:] = np.cumsum(n_push)
    push_ev = np.empty(push_off[nu * nu], np.int64)
    pushed = np.zeros(nu * nu, np.int64)
    popped = np.zeros(nu * nu, np.int64)
    n_ev = nu + 2 * n  # per unit its start; per instruction its end (or retirement) and wake-up
    ev_t = np.full(n_ev, -1, np.int64)
    ev_gen = np.zeros(n_ev, np.int64)
    ev_by = np.full(n_ev, -1, np.int64)
    ev_seq = np.zeros(n_ev, np.int64)
    st = np.zeros((nu, 6), np.int64)
    for u in range(nu):
        st[u, _CUR] = u
        if kind[u] != ABSENT:
            ev_t[u] = 0
            ev_seq[u] = init_seq[u]
    free = np.zeros((nu, max(n_engines, 1)), np.int64)
    start = np.zeros(n, np.int64)
    end = np.zeros(n, np.int64)
    stall_token = np.zeros(n, np.int64)
    stall_dram = np.zeros(n, np.int64)
    issue_ev = np.full(n, -1, np.int64)
    bus_free = 0
    bus_last_end = 0
    progress = True
    while progress:
        progress = False
        for u in range(nu):
            if kind[u] == IN_ORDER or kind[u] == ENGINES:
                while st[u, _POS] < qlen[u]:
                    i = queue[qoff[u] + st[u, _POS]]
                    if not _pop(
                        u, i, nu, wait, st, popped, pushed, push_off, push_ev, ev_t, ev_gen,
                        ev_by, ev_seq,
                    ):  # fmt: skip
                        break
                    x = st[u, _CUR]
                    t = ev_t[x]
                    stall_token[i] = t - st[u, _T0]
                    issue_ev[i] = x
                    if kind[u] == IN_ORDER:
                        start[i] = t
                        end[i] = t + cycles[i]
                        pusher = nu + 2 * i
                        at = end[i]
                        st[u, _CUR] = pusher
                        st[u, _T0] = at
                    else:
                        e = engine[i]
                        start[i] = max(t, free[u, e])
                        end[i] = start[i] + cycles[i]
                        free[u, e] = end[i]
                        st[u, _RETIRE] = max(st[u, _RETIRE], end[i])
                        pusher = nu + 2 * i
                        at = st[u, _RETIRE]
                        st[u, _T0] = t
                    if signal[i] or kind[u] == IN_ORDER:
                        ev_t[pusher] = at
                        ev_by[pusher] = x
                        ev_seq[pusher] = nu + i  # after the wake-ups its creator made
                        ev_gen[pusher] = ev_gen[x] + 1 if at == t else 0
                    _push(u, i, nu, signal, pusher, pushed, push_off, push_ev)
                    st[u, _POS] += 1
                    st[u, _NEXT_BIT] = 0
                    st[u, _READY] = 0
                    progress = True
        best = -1  # the DMA engine whose transfer reaches the bus first
        for u in range(nu):
            if kind[u] == DRAM_BUS and st[u, _POS] < qlen[u]:
                i = queue[qoff[u] + st[u, _POS]]
                if _pop(
                    u, i, nu, wait, st, popped, pushed, push_off, push_ev, ev_t, ev_gen, ev_by,
                    ev_seq,
                ):  # fmt: skip
                    if best < 0 or _before(
                        st[u, _CUR], st[best, _CUR], ev_t, ev_gen, ev_by, ev_seq
                    ):
                        best = u
        if best >= 0:
            u = best
            i = queue[qoff[u] + st[u, _POS]]
            x = st[u, _CUR]
            t = ev_t[x]
            stall_token[i] = t - st[u, _T0]
            issue_ev[i] = x
            issue = max(t, bus_last_end) if serial else t
            ready = issue + latency
            begin = max(ready, bus_free)
            bus_free = begin + cycles[i] - latency
            bus_last_end = max(bus_last_end, bus_free)
            stall_dram[i] = begin - ready + issue - t
            start[i] = t
            end[i] = bus_free
            pusher = nu + 2 * i
            ev_t[pusher] = end[i]
            ev_by[pusher] = x
            ev_seq[pusher] = nu + i
            ev_gen[pusher] = ev_gen[x] + 1 if end[i] == t else 0
            _push(u, i, nu, signal, pusher, pushed, push_off, push_ev)
            st[u, _CUR] = pusher
            st[u, _T0] = end[i]
            st[u, _POS] += 1
            st[u, _NEXT_BIT] = 0
            st[u, _READY] = 0
            progress = True
    return (
        start, end, stall_token, stall_dram, issue_ev, pushed, popped, st[:, _POS].copy(),
        ev_t, ev_gen, ev_by, ev_seq,
    )  # fmt: skip


@lazy_njit(cache=True, inline="always")
def _push(u, i, nu, signal, pusher, pushed, push_off, push_ev):
    s = signal[i]
    j = 0
    while s:
        if s & 1:
            c = u * nu + j
            push_ev[push_off[c] + pushed[c]] = pusher
            pushed[c] += 1
        s >>= 1
        j += 1


@lazy_njit(cache=True)
def _issue_order(issue_ev, ev_t, ev_gen, ev_by, ev_seq):
    """Indices of the issued instructions in the order SimPy issues them: events ranked by
    (cycle, generation, creator's rank, sequence), instructions of one event in program order."""
    used = np.flatnonzero(ev_t >= 0)
    used = used[np.argsort(ev_gen[used], kind="mergesort")]
    used = used[np.argsort(ev_t[used], kind="mergesort")]
    rank = np.full(ev_t.size, -1, np.int64)
    span = ev_seq.max() + 2
    r = 0
    a = 0
    while a < used.size:
        b = a
        while (
            b < used.size and ev_t[used[b]] == ev_t[used[a]] and ev_gen[used[b]] == ev_gen[used[a]]
        ):
            b += 1
        key = np.empty(b - a, np.int64)
        for q in range(a, b):
            by = ev_by[used[q]]
            key[q - a] = (rank[by] + 1 if by >= 0 else 0) * span + ev_seq[used[q]]
        for q in np.argsort(key, kind="mergesort"):
            rank[used[a + q]] = r
            r += 1
        a = b
    issued = np.flatnonzero(issue_ev >= 0)
    n = issue_ev.size
    key = np.empty(issued.size, np.int64)
    for q in range(issued.size):
        key[q] = rank[issue_ev[issued[q]]] * (n + 1) + issued[q]
    return issued[np.argsort(key, kind="mergesort")]


@dataclass
class Schedule:
    """Per-instruction `start` / `end` cycles, `stall_token` / `stall_dram` cycles (indexed
    like the program; FINISH entries 0), tokens `pushed` / `popped` per FIFO (src * n + dst),
    each unit's queue position `pos` (short of its queue length after a deadlock), and the
    issue events for `order()`."""

    start: np.ndarray
    end: np.ndarray
    stall_token: np.ndarray
    stall_dram: np.ndarray
    pushed: np.ndarray
    popped: np.ndarray
    pos: np.ndarray
    _events: tuple

    def order(self) -> np.ndarray:
        """Issued instructions in the event engine's issue order."""
        return _issue_order(*self._events)


def schedule(rows: np.ndarray, kind, init_seq, cfg) -> Schedule:
    """Schedule the instructions `rows` ([n, 5] int64: unit (-1 for FINISH), cycles, wait
    mask, signal mask, SVGE engine) on units of timing `kind` (per Unit: IN_ORDER, DRAM_BUS,
    ENGINES or ABSENT) started in `init_seq` order, with `cfg`'s DRAM latency, outstanding
    limit and SVGE engines."""
    rows = np.ascontiguousarray(rows, np.int64).reshape(-1, 5)
    out = _schedule(
        np.ascontiguousarray(rows[:, 0]),
        np.ascontiguousarray(rows[:, 1]),
        np.ascontiguousarray(rows[:, 2]),
        np.ascontiguousarray(rows[:, 3]),
        np.ascontiguousarray(rows[:, 4]),
        np.asarray(kind, np.int64),
        np.asarray(init_seq, np.int64),
        int(cfg.svge.engines),
        int(cfg.dram.latency_cycles),
        cfg.dram.max_outstanding < 2,
    )
    start, end, stall_token, stall_dram, issue_ev, pushed, popped, pos = out[:8]
    return Schedule(start, end, stall_token, stall_dram, pushed, popped, pos, (issue_ev, *out[8:]))


def run_fast(cfg, units, chans, rows, entries, rec, races, mem) -> None:
    """The fast engine in place of the event loop: schedule `rows` on `units` (each says its
    discipline in `timing`), fill the recorder `rec`, then run the race detector and the
    datapaths (when `races` / `mem` are given) in the event engine's issue order, and leave
    the FIFO counts and unit positions as the event engine would (tokens left, deadlock)."""
    from accelsim.isa import Unit  # noqa: PLC0415

    n_units = len(Unit)
    kind = [ABSENT] * n_units
    init_seq = [0] * n_units
    for seq, (u, unit) in enumerate(units.items()):
        kind[int(u)] = TIMING_KINDS[unit.timing]
        init_seq[int(u)] = seq
    sch = schedule(rows, kind, init_seq, cfg)
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
        unit.done = unit.pos == len(unit.plan)
