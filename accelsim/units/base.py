"""What every unit shares: the in-order instruction loop with token waits and signals.

A unit runs its queue in program order. Before an instruction starts it pops one token from
each FIFO named by its `wait` bits (blocking while a FIFO is empty: a token-wait stall); it then
runs the datapath (unless `count_only`), stays busy for `cycles(insn)` (plus, for the DMA, any
wait for the shared DRAM bus), and when it ends pushes one token into each FIFO named by its
`signal` bits. Tokens are pushed at the end, so a consumer never starts before the producer's
result is complete.

The loop is kept small on purpose: per instruction it does one SimPy timeout and, only when a
FIFO is empty, one wake-up event. Costs and static counts are computed before the run (see
`accelsim.sim`), so nothing here allocates per instruction except the timeout.
"""

from __future__ import annotations

from operator import itemgetter

from accelsim.isa import TABLE, Buf, Unit

SRAM_READ = tuple(f"sram_read_bits_{b.name.lower()}" for b in Buf)  # counter name per buffer
SRAM_WRITE = tuple(f"sram_write_bits_{b.name.lower()}" for b in Buf)
DRAM = -1  # pseudo buffer index of the DRAM image in access templates (range check only)


def _no_fields(fields) -> tuple:
    return ()


class Channel:
    """Token FIFO from unit `src` to unit `dst`: a counting semaphore with one waiter at most.

    `vcs` holds the vector clocks carried by the tokens when the race detector is on."""

    __slots__ = ("src", "dst", "count", "waiter", "pushed", "vcs")

    def __init__(self, src: int, dst: int):
        self.src, self.dst = src, dst
        self.count = 0
        self.pushed = 0
        self.waiter = None
        self.vcs = None

    @property
    def name(self) -> str:
        return f"{Unit(self.src).name.lower()}->{Unit(self.dst).name.lower()}"


class UnitBase:
    """One hardware unit: `cycles(insn)` (pure cost), `run(insn, mem)` (datapath), `process()`
    (SimPy generator), `trace()` (one-line state). Subclasses set `unit` and implement
    `cycles`, `run` and `profile`.

    `plan` (filled by the simulator before `env.run`) holds, per queued instruction,
    `(insn, cycles, wait_channels, signal_channels, accesses)`."""

    unit: Unit = None
    # How `process()` times the queue, for the fast engine (`accelsim.fast_engine`): in_order
    # (start at max(unit free, tokens), push at the end), dram_bus (the same through the shared
    # DRAM bus) or engines (the SVGE's in-order issue to E engines, in-order retirement).
    timing: str = "in_order"
    ADDR_FIELDS: tuple = ()  # fields holding addresses; all others determine the profile
    mac_arrays: int = 0  # MAC arrays the unit drives (utilisation counts every one)

    def __init__(self, env, cfg, stats):
        self.env, self.cfg, self.stats = env, cfg, stats
        self.name = self.unit.name.lower()
        self.row_bits = cfg.buffers.row_bits
        self._key_getters: dict = {}
        self.plan: list = []
        self.mem = None  # Memory, or None in count_only mode
        self.races = None  # RaceDetector or None
        self.pos = 0  # index into plan of the current instruction
        self.blocked = None  # Channel being waited on, or None
        self.busy = False
        self.done = False
        self.on_event = None  # trace hook: called with no arguments on start / end
        self.proc = env.process(self.process()) if env is not None else None

    def cycles(self, insn) -> int:  # pragma: no cover - abstract
        """Cycles the unit is busy with `insn` (its cost model; defined by each unit)."""
        raise NotImplementedError

    def run(self, insn, mem) -> None:  # pragma: no cover - abstract
        """Execute `insn` on the buffers of `mem` (its datapath; defined by each unit)."""
        raise NotImplementedError

    def peak_macs_per_cycle(self, a_bits: int, w_bits: int) -> float:
        """MACs per cycle the unit can do at a_bits x w_bits over all its `mac_arrays`
        (0.0 for a unit without MACs)."""
        return 0.0

    def profile(self, insn):
        """(cycles, template, counts) of one instruction, computed before the run.

        template: tuple of (buf, address field name, rows, is_write), one per buffer access
        (buf = DRAM for a DMA block: rows is then its element extent, for the range check);
        counts: tuple of (counter name, value) pairs added to the instruction's (tag, unit)
        row, SRAM bits included (whole rows of row_bits); MACs are counted under the key
        `accelsim.stats.MacWidths(a_bits, w_bits)` instead of a name. Depends only on the
        fields that are not in ADDR_FIELDS, so the simulator caches it by those
        (`profile_key`)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def profile_key(self, insn):
        """The instruction's non-address field values (the cache key of `profile`)."""
        return (insn.op, self.key_getter(insn.op)(insn.f))

    def key_getter(self, op):
        """Callable: an instruction's field dict of opcode `op` -> its non-address values."""
        get = self._key_getters.get(op)
        if get is None:
            names = [f.name for f in TABLE[op].fields if f.name not in self.ADDR_FIELDS]
            get = self._key_getters[op] = itemgetter(*names) if names else _no_fields
        return get

    @staticmethod
    def accesses(insn, template):
        """The template with addresses filled in: (buf, row, rows, is_write), buffers only."""
        return tuple((b, insn.f[a], r, w) for b, a, r, w in template if b != DRAM)

    def delay(self, insn, cycles: int) -> int:
        """Cycles the instruction occupies the unit once started (the DMA adds bus waits)."""
        return cycles

    def pop_tokens(self, waits, idx: int):
        """Pop one token from each FIFO in `waits`, blocking while one is empty, and record the
        token-wait stall of instruction `idx`. A generator: `yield from self.pop_tokens(...)`."""
        env, races, uid = self.env, self.races, int(self.unit)
        t0 = env.now
        for ch in waits:
            while ch.count == 0:
                self.blocked = ch
                ch.waiter = env.event()
                yield ch.waiter
            self.blocked = None
            ch.count -= 1
            if races is not None:
                races.pop(ch, uid)
        if env.now != t0:
            self.stats.stall_token[idx] = env.now - t0

    def process(self):
        """SimPy process: run `plan` in order, then finish. (The body first runs inside
        `env.run`, after the simulator has set plan, mem, races and on_event.)"""
        env, stats, races, mem, hook = self.env, self.stats, self.races, self.mem, self.on_event
        start, end = stats.start, stats.end
        delay, run, timeout = self.delay, self.run, env.timeout
        uid = int(self.unit)
        for pos, (insn, cyc, waits, sigs, accesses) in enumerate(self.plan):
            self.pos = pos
            idx = insn.index
            if waits:
                yield from self.pop_tokens(waits, idx)
            if races is not None:
                races.check(insn, uid, accesses)
            if mem is not None:
                run(insn, mem)
            start[idx] = env.now
            if hook is not None:
                self.busy = True
                hook()
            yield timeout(delay(insn, cyc))
            end[idx] = env.now
            for ch in sigs:
                if races is not None:
                    races.push(ch, uid)
                ch.count += 1
                ch.pushed += 1
                w = ch.waiter
                if w is not None:
                    ch.waiter = None
                    w.succeed()
            if hook is not None:
                self.busy = False
                hook()
        self.pos = len(self.plan)
        self.done = True

    def current(self):
        return self.plan[self.pos][0] if self.pos < len(self.plan) else None

    def trace(self) -> str:
        """One-line state: idle, busy on instruction i, or waiting on a channel."""
        insn = self.current()
        if self.done or insn is None:
            return f"{self.name}: done"
        if self.blocked is not None:
            return f"{self.name}: wait {self.blocked.name} for #{insn.index} {insn.op.name}"
        if self.busy:
            return f"{self.name}: #{insn.index} {insn.op.name}"
        return f"{self.name}: idle"
