"""Instruction emission: the DRAM image, buffer slots and the instructions of each tile.

`Emitter` owns the growing program: the list of instructions, the regions each one reads and
writes (for `insert_tokens`), and the DRAM image being laid out. Buffers are split into slots
(two for double buffering, more where a step needs several operands at once); `need()` returns
the slot holding a tile, loading it only when it is not already resident, which is how the
emitter -- and the tiling search, which runs it with `dry=True` -- avoids reloading reused tiles.
"""

from __future__ import annotations

import numpy as np

from accelsim.config import HwConfig
from accelsim.frontend.tokens import Access
from accelsim.isa import MODE_BY_NAME, Buf, Insn, Op


def rows_for(elements: int, bits: int, row_bits: int) -> int:
    """Buffer rows taken by `elements` values of `bits` bits, packed."""
    return -(-elements * bits // row_bits)


def dma_bytes(d0: int, d1: int, d2: int, bits: int) -> int:
    """DRAM bytes moved for a d0 x d1 x d2 block: each d2 run is rounded up to whole bytes."""
    return d0 * d1 * -(-d2 * bits // 8)


MAX_DIM = 65535  # widest d0 / d1 / d2 field of a LOAD or STORE


def coalesce(d0: int, d1: int, d2: int, s0: int, s1: int, pads=(0, 0, 0, 0)):
    """The same block with contiguous dimensions merged into longer rows (the DMA moves whole
    bursts per row, so short rows waste bandwidth). The element order is unchanged."""
    pt, pb, pl, pr = pads
    if d1 > 1 and s1 == d2 and not (pl or pr) and d1 * d2 <= MAX_DIM:
        d1, d2, s1 = 1, d1 * d2, d1 * d2
    if d0 > 1 and d1 == 1 and s0 == d2 and not (pt or pb) and d0 * d2 <= MAX_DIM:
        d0, d2, s0 = 1, d0 * d2, d0 * d2
    return d0, d1, d2, s0, s1


class OverBudget(Exception):
    """A dry run exceeded `Emitter.budget_bytes` (the tiling search abandons that candidate)."""


class Slots:
    """A buffer cut into `n` equal slots, each holding one tile identified by a key."""

    def __init__(self, buf: Buf, cfg: HwConfig, n: int = 2):
        self.buf = buf
        self.rows = cfg.buffers.capacity_rows(buf.name.lower()) // n
        self.keys = [None] * n
        self.lru = list(range(n))  # least recently used first

    def base(self, slot: int) -> int:
        return slot * self.rows

    def _touch(self, slot: int) -> None:
        self.lru.remove(slot)
        self.lru.append(slot)

    def lookup(self, key):
        if key is not None and key in self.keys:
            slot = self.keys.index(key)
            self._touch(slot)
            return slot
        return None

    def take(self, key=None) -> int:
        """The least recently used slot, now holding `key`."""
        slot = self.lru[0]
        self.keys[slot] = key
        self._touch(slot)
        return slot


class Emitter:
    """Builds instructions, their access sets and the DRAM image for one program."""

    def __init__(self, cfg: HwConfig, dry: bool = False):
        self.cfg = cfg
        self.row_bits = cfg.buffers.row_bits
        self.dry = dry
        self.insns: list[Insn] = []
        self.accesses: list[Access] = []
        self.dram_bytes = 0
        self.budget_bytes = None  # dry runs: stop once DRAM bytes exceed this
        self.tiles = 0
        self.tag = 0
        self.chunks: list[np.ndarray] = []
        self.dram_size = 0
        self.slots = {
            Buf.INP: Slots(Buf.INP, cfg, 2),
            Buf.WGT: Slots(Buf.WGT, cfg, 2),
            Buf.ACC: Slots(Buf.ACC, cfg, 2),
            Buf.OUT: Slots(Buf.OUT, cfg, 2),
            Buf.PARAM: Slots(Buf.PARAM, cfg, 2),
        }

    def alloc(self, size: int, data: np.ndarray | None = None) -> int:
        """Reserve `size` elements of DRAM (filled with `data` if given); returns the address."""
        addr = self.dram_size
        if not self.dry:
            chunk = np.zeros(size, np.int32)
            if data is not None:
                flat = np.asarray(data).reshape(-1)
                if flat.size != size:
                    raise ValueError(f"alloc({size}) given {flat.size} elements of data")
                chunk[:] = flat
            self.chunks.append(chunk)
        self.dram_size += size
        return addr

    def dram_image(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int32)

    def use_slots(self, buf: Buf, n: int) -> None:
        """Re-cut `buf` into `n` slots (at a layer boundary; tokens order the reuse)."""
        self.slots[buf] = Slots(buf, self.cfg, n)

    def _add(self, insn: Insn, reads, writes) -> Insn:
        if not self.dry:
            insn.tag = self.tag
            self.insns.append(insn)
            self.accesses.append(Access(reads, writes))
        return insn

    def load(
        self,
        buf: Buf,
        slot: int,
        dram_addr: int,
        d0: int,
        d1: int,
        d2: int,
        s0: int,
        s1: int,
        bits: int,
        mode: str,
        pads=(0, 0, 0, 0),
        pad_value: int = 0,
    ) -> int:
        """LOAD a padded block into `slot` of `buf`; returns the rows it occupies."""
        pt, pb, pl, pr = pads
        n = (d0 + pt + pb) * (d1 + pl + pr) * d2
        rows = rows_for(n, bits, self.row_bits)
        d0, d1, d2, s0, s1 = coalesce(d0, d1, d2, s0, s1, pads)
        self.dram_bytes += dma_bytes(d0, d1, d2, bits)
        if self.budget_bytes is not None and self.dram_bytes > self.budget_bytes:
            raise OverBudget
        base = self.slots[buf].base(slot)
        end = dram_addr + (d0 - 1) * s0 + (d1 - 1) * s1 + d2
        if not self.dry:
            self._add(
                Insn(
                    Op.LOAD,
                    buf=buf,
                    sram_addr=base,
                    dram_addr=dram_addr,
                    d0=d0,
                    d1=d1,
                    d2=d2,
                    s0=s0,
                    s1=s1,
                    bits=bits,
                    mode=MODE_BY_NAME[mode],
                    pad_top=pt,
                    pad_bottom=pb,
                    pad_left=pl,
                    pad_right=pr,
                    pad_value=pad_value,
                ),
                reads=[("dram", dram_addr, end)],
                writes=[(buf, base, base + rows)],
            )
        return rows

    def store(
        self,
        buf: Buf,
        slot: int,
        dram_addr: int,
        d0: int,
        d1: int,
        d2: int,
        s0: int,
        s1: int,
        bits: int,
        mode: str,
    ) -> None:
        rows = rows_for(d0 * d1 * d2, bits, self.row_bits)
        d0, d1, d2, s0, s1 = coalesce(d0, d1, d2, s0, s1)
        self.dram_bytes += dma_bytes(d0, d1, d2, bits)
        base = self.slots[buf].base(slot)
        end = dram_addr + (d0 - 1) * s0 + (d1 - 1) * s1 + d2
        if not self.dry:
            self._add(
                Insn(
                    Op.STORE,
                    buf=buf,
                    sram_addr=base,
                    dram_addr=dram_addr,
                    d0=d0,
                    d1=d1,
                    d2=d2,
                    s0=s0,
                    s1=s1,
                    bits=bits,
                    mode=MODE_BY_NAME[mode],
                ),
                reads=[(buf, base, base + rows)],
                writes=[("dram", dram_addr, end)],
            )

    def compute(self, insn: Insn, reads, writes) -> None:
        """Add a compute instruction with its buffer regions [(buf, slot, rows)]."""
        self.tiles += 1
        if self.dry:
            return
        to_regions = [
            [(b, self.slots[b].base(s), self.slots[b].base(s) + r) for b, s, r in lst]
            for lst in (reads, writes)
        ]
        self._add(insn, *to_regions)

    def finish(self) -> list[Insn]:
        self._add(Insn(Op.FINISH), [], [])
        return self.insns
