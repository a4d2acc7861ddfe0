"""DMA: the load engine (DRAM -> buffer, with padding) and the store engine (buffer -> DRAM).

Cost of one transfer of a block d0 x d1 x d2 at `bits` per element (rows = d0*d1, cols = d2;
padding is generated on chip and never read from DRAM)::

    cycles = latency_cycles + data_cycles
    data_cycles = rows * ceil(ceil(cols*bits/8) / burst_bytes)
                  * ceil(burst_bytes / bw_bytes_per_cycle)

DRAM contention. The two engines share one DRAM data bus. A transfer first spends
`latency_cycles` (request to first data; these overlap freely with the other engine's
transfer), then holds the bus for its `data_cycles`. The bus serves transfers first come first
served in the order their data phase is requested, one at a time, so concurrent transfers share
the bandwidth and the total bytes never exceed the peak. Because the latency is the same for
every transfer, request order equals issue order, and the bus is modelled analytically: a
transfer issued at cycle t gets the bus at `max(t + latency, bus_free)`; the difference is
counted as a DRAM-contention stall. `dram.max_outstanding` limits transfers in flight
(issued, not finished); each engine has one in flight, so only `max_outstanding = 1` binds: the
engines then also serialise their latency phases.

Example (hand-checkable): latency 10, data 20 cycles each; a LOAD and a STORE both issued at
cycle 0: the load holds the bus over [10, 30) and ends at 30; the store's data phase waits
until 30, ends at 50 and records a 20-cycle contention stall.
"""

from __future__ import annotations

import numpy as np

from accelsim.errors import AccelsimError
from accelsim.isa import MODE_NAMES, Buf, Unit
from accelsim.numeric import storage_dtype, value_range
from accelsim.units.base import DRAM, SRAM_READ, SRAM_WRITE, UnitBase


def dma_data_cycles(cfg, rows: int, cols: int, bits: int) -> int:
    """Cycles the DRAM bus is busy moving `rows` rows of `cols` elements of `bits` bits."""
    d = cfg.dram
    row_bytes = -(-cols * bits // 8)
    bursts = -(-row_bytes // d.burst_bytes)
    return rows * bursts * _ceil_ratio(d.burst_bytes, d.bw_bytes_per_cycle)


def _ceil_ratio(a: float, b: float) -> int:
    """ceil(a / b) for a float bandwidth, ignoring rounding noise below 1e-9."""
    q = a / b
    r = int(q)
    return r if q - r <= 1e-9 else r + 1


def dma_cycles(cfg, d0: int, d1: int, d2: int, bits: int) -> int:
    """Unloaded cycles of a LOAD/STORE of a d0 x d1 x d2 block (latency + data phase):

    cycles = latency_cycles + d0*d1 * ceil(ceil(d2*bits/8) / burst_bytes)
             * ceil(burst_bytes / bw_bytes_per_cycle)
    """
    return cfg.dram.latency_cycles + dma_data_cycles(cfg, d0 * d1, d2, bits)


class DramBus:
    """The DRAM data bus shared by the load and store engines (see the module docstring)."""

    __slots__ = ("latency", "free_at", "last_end", "serial")

    def __init__(self, cfg):
        self.latency = cfg.dram.latency_cycles
        self.serial = cfg.dram.max_outstanding < 2
        self.free_at = 0  # cycle the bus is next free
        self.last_end = 0  # end cycle of the latest transfer (for max_outstanding = 1)

    def transfer(self, now: int, data_cycles: int) -> tuple[int, int]:
        """Reserve the bus for a transfer issued at `now`: returns (delay, contention stall)."""
        issue = max(now, self.last_end) if self.serial else now
        ready = issue + self.latency
        begin = max(ready, self.free_at)
        end = begin + data_cycles
        self.free_at = end
        self.last_end = max(self.last_end, end)
        return end - now, (begin - ready) + (issue - now)


def block_indices(insn) -> np.ndarray:
    """DRAM element indices [d0, d1, d2] of a LOAD/STORE block."""
    i = np.arange(insn.d0, dtype=np.int64)[:, None, None] * insn.s0
    j = np.arange(insn.d1, dtype=np.int64)[None, :, None] * insn.s1
    return insn.dram_addr + i + j + np.arange(insn.d2, dtype=np.int64)


def _block_view(dram: np.ndarray, insn, distinct: bool) -> np.ndarray | None:
    """The [d0, d1, d2] block as a strided view of `dram` (no index arrays, no copy), or None
    when it leaves the image, or, with `distinct`, when two of its positions are one element
    (a write through such a view would not keep the last value as indexing does)."""
    f = insn.f
    d0, d1, d2, s0, s1, addr = f["d0"], f["d1"], f["d2"], f["s0"], f["s1"], f["dram_addr"]
    if addr < 0 or addr + (d0 - 1) * s0 + (d1 - 1) * s1 + d2 > dram.size:
        return None
    if distinct and ((d1 > 1 and s1 < d2) or (d0 > 1 and s0 < (d1 - 1) * s1 + d2)):
        return None
    step = dram.itemsize
    strides = (s0 * step, s1 * step, step)
    return np.ndarray((d0, d1, d2), dram.dtype, dram, addr * step, strides)


def check_block(values: np.ndarray, insn, what: str) -> None:
    """Raise AccelsimError unless every value fits the instruction's (bits, mode)."""
    mode = MODE_NAMES[insn.mode]
    try:
        lo, hi = value_range(insn.bits, mode)
    except AccelsimError as exc:
        raise AccelsimError(f"insn {insn.index} {insn.op.name}: {exc}") from None
    if values.size and (values.min() < lo or values.max() > hi):
        bad = values[(values < lo) | (values > hi)].flat[0]
        raise AccelsimError(
            f"insn {insn.index} {insn.op.name}: {what} value {bad} is outside "
            f"the {insn.bits}-bit {mode} range [{lo}, {hi}]"
        )


def load_block(dram: np.ndarray, insn) -> np.ndarray:
    """LOAD datapath: the d0 x d1 x d2 block of `dram` at dram_addr (strides s0, s1), values
    checked against (bits, mode), padded with pad_value (pad_top / pad_bottom rows on d0,
    pad_left / pad_right columns on d1), in the storage dtype of (bits, mode)."""
    block = _block_view(dram, insn, distinct=False)
    if block is None:
        block = dram[block_indices(insn)]
    check_block(block, insn, "DRAM")
    pads = ((insn.pad_top, insn.pad_bottom), (insn.pad_left, insn.pad_right), (0, 0))
    if any(p for pair in pads for p in pair):
        block = np.pad(block, pads, constant_values=insn.pad_value)
    return block.astype(storage_dtype(insn.bits, MODE_NAMES[insn.mode]))


def store_block(dram: np.ndarray, insn, tile: np.ndarray) -> None:
    """STORE datapath: write the d0*d1*d2 elements of `tile` (checked against (bits, mode))
    to the block of `dram` at dram_addr (strides s0, s1)."""
    check_block(tile, insn, Buf(insn.buf).name)
    view = _block_view(dram, insn, distinct=True)
    if view is None:
        dram[block_indices(insn)] = tile.reshape(insn.d0, insn.d1, insn.d2)
    else:
        view[...] = tile.reshape(insn.d0, insn.d1, insn.d2)


class _DmaEngine(UnitBase):
    bus: DramBus = None  # set by the simulator (shared by both engines)
    timing = "dram_bus"
    ADDR_FIELDS = ("sram_addr", "dram_addr")

    def __init__(self, env, cfg, stats):
        super().__init__(env, cfg, stats)
        d = cfg.dram
        self._latency, self._burst = d.latency_cycles, d.burst_bytes
        self._per_burst = _ceil_ratio(d.burst_bytes, d.bw_bytes_per_cycle)

    def cycles(self, insn) -> int:
        return dma_cycles(self.cfg, insn.d0, insn.d1, insn.d2, insn.bits)

    def _profile(self, f, n_buf):
        """(cycles, DRAM bytes, buffer rows, DRAM element extent) of a block."""
        d0, d1, d2, bits = f["d0"], f["d1"], f["d2"], f["bits"]
        row_bytes = -(-d2 * bits // 8)
        cyc = self._latency + d0 * d1 * -(-row_bytes // self._burst) * self._per_burst
        extent = (d0 - 1) * f["s0"] + (d1 - 1) * f["s1"] + d2
        return cyc, d0 * d1 * row_bytes, -(-n_buf * bits // self.row_bits), extent

    def delay(self, insn, cycles: int) -> int:
        total, stall = self.bus.transfer(self.env.now, cycles - self._latency)
        if stall:
            self.stats.stall_dram[insn.index] = stall
        return total


class LoadEngine(_DmaEngine):
    """DMA load engine: buffer[sram_addr] <- DRAM block, padded with pad_value."""

    unit = Unit.LOAD

    def profile(self, insn):
        f = insn.f
        n = (
            (f["d0"] + f["pad_top"] + f["pad_bottom"])
            * (f["d1"] + f["pad_left"] + f["pad_right"])
            * f["d2"]
        )
        cyc, nbytes, rows, extent = self._profile(f, n)
        buf = f["buf"]
        return (
            cyc,
            ((buf, "sram_addr", rows, True), (DRAM, "dram_addr", extent, False)),
            (("dram_read_bytes", nbytes), (SRAM_WRITE[buf], rows * self.row_bits)),
        )

    def run(self, insn, mem):
        mem.write(insn.buf, insn.sram_addr, load_block(mem.dram, insn), insn.bits)


class StoreEngine(_DmaEngine):
    """DMA store engine: DRAM block <- buffer[sram_addr] (values range-checked)."""

    unit = Unit.STORE

    def profile(self, insn):
        f = insn.f
        cyc, nbytes, rows, extent = self._profile(f, f["d0"] * f["d1"] * f["d2"])
        buf = f["buf"]
        return (
            cyc,
            ((buf, "sram_addr", rows, False), (DRAM, "dram_addr", extent, True)),
            (("dram_write_bytes", nbytes), (SRAM_READ[buf], rows * self.row_bits)),
        )

    def run(self, insn, mem):
        n = insn.d0 * insn.d1 * insn.d2
        tile = mem.read(insn.buf, insn.sram_addr, n, insn.bits, f"insn {insn.index} STORE")
        store_block(mem.dram, insn, tile)
