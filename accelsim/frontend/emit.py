"""Instruction emission: the DRAM image, buffer slots and the instructions of each tile.

`Emitter` owns the growing program: the instructions (`Insn` objects and compiled rows,
`stream()` gives them as one `accelsim.insn_table` table), the regions each one reads and
writes (for `insert_tokens`), and the DRAM image being laid out. Buffers are split into slots
(two for double buffering, more where a step needs several operands at once); a slot remembers
the key of the tile it holds (`Slots.lookup`), so the emitter skips reloading a tile that is
still resident (`accelsim.frontend.tile_cost` counts those reloads in closed form).

Callers add instructions only through the public methods: `load` / `store` (DMA blocks),
`compute` (an instruction whose regions are whole slots), `emit` (an instruction with explicit
buffer row ranges), and `rescale_store` (the RESCALE and STORE that finish every accumulated
output tile, with its PARAM load).
"""

from __future__ import annotations

import functools

import numpy as np

from accelsim.config import HwConfig
from accelsim.errors import AccelsimError, HardwareLimitError, IsaError
from accelsim.frontend.tokens import DRAM_SPACE, UNIT_CODE, Access, RegionLog
from accelsim.frontend.validate import first_fault_by_hand
from accelsim.insn_table import COLUMN, OP, rows_of
from accelsim.isa import MODE_BY_NAME, Buf, Insn, Op, field_max
from accelsim.numeric import INT32_MAX


def rows_for(elements: int, bits: int, row_bits: int) -> int:
    """Buffer rows taken by `elements` values of `bits` bits, packed."""
    return -(-elements * bits // row_bits)


def dma_bytes(d0: int, d1: int, d2: int, bits: int) -> int:
    """DRAM bytes moved for a d0 x d1 x d2 block: each d2 run is rounded up to whole bytes."""
    return d0 * d1 * -(-d2 * bits // 8)


_FIELD = COLUMN[Op.LOAD]  # LOAD and STORE share the columns of their common fields
_DRAM_ADDR = _FIELD["dram_addr"]
assert all(COLUMN[Op.STORE][k] == v for k, v in _FIELD.items() if k in COLUMN[Op.STORE])
MAX_D2 = min(field_max(Op.LOAD, "d2"), field_max(Op.STORE, "d2"))  # longest merged DMA row
DRAM_ELEMENTS = field_max(Op.LOAD, "dram_addr") + 1  # elements the DMA addresses reach
_LOAD_UNIT, _STORE_UNIT = UNIT_CODE[Op.LOAD], UNIT_CODE[Op.STORE]
_RESCALE_UNIT = UNIT_CODE[Op.RESCALE]
_ACC, _PARAM, _OUT = int(Buf.ACC), int(Buf.PARAM), int(Buf.OUT)
MODE_CODE = {name: int(m) for name, m in MODE_BY_NAME.items()}  # "signed" -> 0, ...
ACC_BITS = 32  # accumulator width
PARAM_BITS = 3 * 32  # per output channel in PARAM: bias, multiplier, shift (int32 each)


@functools.lru_cache(maxsize=4096)
def _merged_rows(count: int, row: int) -> int:
    """How many of `count` contiguous rows of `row` elements one DMA row takes: the largest
    divisor q of `count` with q * row <= MAX_D2 (1: none merge)."""
    for q in range(min(count, MAX_D2 // row), 1, -1):
        if count % q == 0:
            return q
    return 1


def coalesce(d0: int, d1: int, d2: int, s0: int, s1: int, pads=(0, 0, 0, 0)):
    """The same block with contiguous dimensions merged into longer rows (the DMA moves whole
    bursts per row, so short rows waste bandwidth). The element order is unchanged. A run
    longer than the d2 field holds is cut into equal rows of as many whole original rows as
    fit (a 3x3x512 weight tile of 16 channels: 2 rows of 36,864 elements, not 4,608 of 16)."""
    pt, pb, pl, pr = pads
    if d1 > 1 and s1 == d2 and not (pl or pr):
        q = _merged_rows(d1, d2)
        if q > 1:
            d1, d2, s1 = d1 // q, q * d2, q * d2
    # rows merge only without padding: a padded block is (pt + d0 + pb) x (pl + d1 + pr) x d2
    if d0 > 1 and d1 == 1 and s0 == d2 and not any(pads):
        q = _merged_rows(d0, d2)
        if q > 1:
            d0, d2, s0 = d0 // q, q * d2, q * d2
    return d0, d1, d2, s0, s1


def clip_bounds(rp, qrange: tuple[int, int]) -> tuple[int, int] | None:
    """(lo, hi) of the clamp RESCALE applies for a node's fused clip (`rp`: its
    `RescaleParams`); a missing bound is the output range `qrange`'s. None: no clip."""
    if rp.clip_lo is None and rp.clip_hi is None:
        return None
    lo, hi = qrange
    return (lo if rp.clip_lo is None else rp.clip_lo, hi if rp.clip_hi is None else rp.clip_hi)


def check_operands(node: str, a_bits: int, w_bits: int, cfg: HwConfig) -> None:
    """Raise HardwareLimitError if node's activations or weights are wider than the MACs
    accept (`matmul.max_bits`)."""
    if max(a_bits, w_bits) > cfg.matmul.max_bits:
        raise HardwareLimitError(
            f"node {node!r}: {a_bits}-bit x {w_bits}-bit MAC operands exceed "
            f"matmul.max_bits = {cfg.matmul.max_bits}",
            "operands wider than matmul.max_bits",
        )


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
        lru = self.lru
        if lru[-1] != slot:
            lru.remove(slot)
            lru.append(slot)

    def lookup(self, key):
        if key is not None and key in self.keys:
            slot = self.keys.index(key)
            self._touch(slot)
            return slot
        return None

    def advance(self, takes: int) -> None:
        """The state after `takes` more `take()`s with no lookup between (they go round)."""
        n = len(self.lru)
        for slot in self.lru[: min(takes, n)]:
            self.keys[slot] = None
        k = takes % n
        self.lru[:] = self.lru[k:] + self.lru[:k]

    def take(self, key=None) -> int:
        """The least recently used slot, now holding `key`."""
        slot = self.lru[0]
        self.keys[slot] = key
        self._touch(slot)
        return slot


class Emitter:
    """Builds instructions, their access sets and the DRAM image for one program.

    image=False lays DRAM out (addresses and size) without keeping its contents: a timing-only
    program needs no weights or parameters, and building the image is a large part of
    lowering a big network."""

    def __init__(self, cfg: HwConfig, image: bool = True):
        self.cfg = cfg
        self.row_bits = cfg.buffers.row_bits
        self.insns: list[Insn] = []  # instructions emitted since the last compiled block
        # the stream so far, in order: lists of `Insn` (the last one is `insns`) and the
        # `accelsim.insn_table` rows of compiled blocks (`add_rows`)
        self.parts: list = [self.insns]
        self.log = RegionLog()  # the regions each instruction reads and writes
        self.dram_bytes = 0
        self.tag = 0
        self.image = image
        self.chunks: list[tuple[int, np.ndarray]] = []  # (address, values) of initialised data
        self.dram_size = 0
        self.slots = {
            Buf.INP: Slots(Buf.INP, cfg, 2),
            Buf.WGT: Slots(Buf.WGT, cfg, 2),
            Buf.ACC: Slots(Buf.ACC, cfg, 2),
            Buf.OUT: Slots(Buf.OUT, cfg, 2),
            Buf.PARAM: Slots(Buf.PARAM, cfg, 2),
        }

    def alloc(self, size: int, data: np.ndarray | None = None) -> int:
        """Reserve `size` elements of DRAM (filled with `data` if given, else zeros); returns
        the address."""
        addr = self.dram_size
        if addr + size > DRAM_ELEMENTS:
            raise HardwareLimitError(
                f"the program needs more than the {DRAM_ELEMENTS} DRAM elements that the DMA's "
                f"32-bit addresses reach",
                "DRAM address space",
            )
        if data is not None:
            if np.size(data) != size:
                raise ValueError(f"alloc({size}) given {np.size(data)} elements of data")
            if self.image:
                self.chunks.append((addr, data))
        self.dram_size += size
        return addr

    def alloc_rescale_params(self, rp, node: str) -> int:
        """Lay out the [channels, 3] int32 rows (bias, multiplier, shift) RESCALE reads for
        `node` (`rp`: its `RescaleParams`); returns their DRAM address."""
        params = rp.dram_words
        if np.any(np.abs(params) > INT32_MAX):
            raise AccelsimError(f"node {node!r}: rescale parameters do not fit int32")
        return self.alloc(params.size, params.astype(np.int32) if self.image else None)

    def dram_image(self) -> np.ndarray | None:
        """The int32 DRAM image laid out so far (None when built with image=False)."""
        if not self.image:
            return None
        dram = np.zeros(self.dram_size, np.int32)
        for addr, data in self.chunks:
            dram[addr : addr + np.size(data)] = np.ravel(data)
        return dram

    def use_slots(self, buf: Buf, n: int) -> None:
        """Re-cut `buf` into `n` slots (at a layer boundary; tokens order the reuse)."""
        self.slots[buf] = Slots(buf, self.cfg, n)

    def emit(self, insn: Insn, reads, writes) -> None:
        """Append `insn` (tagged with the current layer) with the regions it reads and writes:
        (buf, first row, end row) for buffers, ("dram", first element, end element) for DRAM.
        `insert_tokens` orders instructions by these regions."""
        insn.tag = self.tag
        self.insns.append(insn)
        self.log.add(insn.op, reads, writes)

    @property
    def accesses(self) -> list[Access]:
        """The regions of every instruction so far, one `Access` each."""
        return self.log.accesses()

    def _dma(self, insn: Insn, buf: Buf, base: int, rows: int, dram_lo: int, dram_hi: int):
        """Append a LOAD or STORE with its DRAM and buffer regions (the hot path of
        `emit`: the records `RegionLog.add` would make)."""
        insn.tag = self.tag
        self.insns.append(insn)
        log = self.log
        if insn.op is Op.LOAD:
            log.flat.extend((DRAM_SPACE, dram_lo, dram_hi, 0, buf, base, base + rows, 1))
            log.units.append(_LOAD_UNIT)
        else:
            log.flat.extend((buf, base, base + rows, 0, DRAM_SPACE, dram_lo, dram_hi, 1))
            log.units.append(_STORE_UNIT)
        log.ptr.append(log.end())

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
        offset_rows: int = 0,
    ) -> int:
        """LOAD a padded block into `slot` of `buf`, `offset_rows` rows past the slot's first
        row (a slot filled by several LOADs); returns the rows it occupies."""
        pt, pb, pl, pr = pads
        rows = -(-(d0 + pt + pb) * (d1 + pl + pr) * d2 * bits // self.row_bits)
        pad_fields = {
            "pad_top": pt,
            "pad_bottom": pb,
            "pad_left": pl,
            "pad_right": pr,
            "pad_value": pad_value,
        }
        block = coalesce(d0, d1, d2, s0, s1, pads)
        self._transfer(
            Op.LOAD, buf, slot, offset_rows, rows, dram_addr, block, bits, mode, pad_fields
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
        offset_rows: int = 0,
    ) -> None:
        """STORE the d0 x d1 x d2 block held in `slot` of `buf`, from `offset_rows` rows past
        the slot's first row, to DRAM (strides s0, s1)."""
        rows = -(-d0 * d1 * d2 * bits // self.row_bits)
        block = coalesce(d0, d1, d2, s0, s1)
        self._transfer(Op.STORE, buf, slot, offset_rows, rows, dram_addr, block, bits, mode, {})

    def _transfer(self, op, buf, slot, offset_rows, rows, dram_addr, block, bits, mode, extra):
        """Append the LOAD or STORE of the coalesced `block` (d0, d1, d2, s0, s1) at
        `dram_addr`, `rows` buffer rows from `offset_rows` past `slot`'s first row; `extra`:
        the opcode's other fields."""
        d0, d1, d2, s0, s1 = block
        self.dram_bytes += d0 * d1 * -(-d2 * bits // 8)  # dma_bytes
        size = self.slots[buf].rows
        end_row = offset_rows + rows
        if end_row > size:
            self.check_slot(buf, end_row, op.name)
        base = slot * size + offset_rows
        end = dram_addr + (d0 - 1) * s0 + (d1 - 1) * s1 + d2
        fields = {
            "buf": int(buf),
            "sram_addr": base,
            "dram_addr": dram_addr,
            "d0": d0,
            "d1": d1,
            "d2": d2,
            "s0": s0,
            "s1": s1,
            "bits": bits,
            "mode": MODE_CODE[mode],
            **extra,
        }
        self._dma(Insn.of(op, fields), int(buf), base, rows, dram_addr, end)

    def check_slot(self, buf: Buf, end_row: int, what: str) -> None:
        """Raise AccelsimError if an access reaching `end_row` rows past a slot's first row
        spills into the next slot (the lowering's own consistency check: a spill would
        overwrite another tile, which timing alone never notices)."""
        if end_row > self.slots[buf].rows:
            raise AccelsimError(
                f"lowering error: a {what} of {end_row} rows overflows a {buf.name} slot of "
                f"{self.slots[buf].rows} rows"
            )

    def compute(self, insn: Insn, reads, writes) -> None:
        """Add a compute instruction with its buffer regions [(buf, slot, rows)] (each from the
        slot's first row)."""
        slots, log = self.slots, self.log
        for b, _, r in (*reads, *writes):  # every region checked before any is recorded
            if r > slots[b].rows:
                self.check_slot(b, r, insn.op.name)
        put = log.flat.extend
        for regions, write in ((reads, 0), (writes, 1)):
            for b, s, r in regions:
                size = slots[b].rows
                put((b, s * size, s * size + r, write))
        insn.tag = self.tag
        self.insns.append(insn)
        log.ptr.append(log.end())
        log.units.append(UNIT_CODE[insn.op])

    def param_slot(self, key, dram_addr: int, n: int) -> int:
        """The PARAM slot holding the (bias, multiplier, shift) rows of `n` output channels
        stored at `dram_addr` under `key`, loading them unless they are still resident."""
        prm = self.slots[Buf.PARAM]
        slot = prm.lookup(key)
        if slot is None:
            slot = prm.take(key)
            self.load(Buf.PARAM, slot, dram_addr, 1, n, 3, 3 * n, 3, 32, "signed")
        return slot

    def rescale_store(
        self,
        acc_slot: int,
        param_key,
        param_addr: int,
        dram_addr: int,
        d0: int,
        d1: int,
        d2: int,
        s0: int,
        s1: int,
        bits: int,
        mode: str,
        *,
        zp: int = 0,
        relu: bool = False,
        clip: tuple[int, int] | None = None,
        frac: int = 0,
    ) -> None:
        """Finish an accumulated output tile: RESCALE the int32 [d0 * d1, d2] tile in ACC slot
        `acc_slot` to `bits` / `mode` into the next OUT slot (per-channel parameters from
        `param_slot(param_key, param_addr, d2)`), then STORE it to DRAM as the d0 x d1 x d2
        block at `dram_addr` (strides s0, s1). `clip`: optional (lo, hi) clamp; `frac`: the bias
        fractional bits."""
        rb = self.row_bits
        m, n = d0 * d1, d2
        p_slot = self.param_slot(param_key, param_addr, n)
        slots = self.slots
        out_slot = slots[Buf.OUT].take()
        self.check_slot(Buf.ACC, rows_for(m * n, ACC_BITS, rb), "RESCALE")
        lo, hi = clip if clip is not None else (0, 0)
        acc_base = acc_slot * slots[Buf.ACC].rows
        p_base = p_slot * slots[Buf.PARAM].rows
        out_base = out_slot * slots[Buf.OUT].rows
        fields = {
            "acc_addr": acc_base,
            "param_addr": p_base,
            "out_addr": out_base,
            "m": m,
            "n": n,
            "bits": bits,
            "mode": MODE_CODE[mode],
            "zp": zp,
            "relu": int(relu),
            "clip": int(clip is not None),
            "clip_lo": lo,
            "clip_hi": hi,
            "frac": frac,
        }
        insn = Insn.of(Op.RESCALE, fields)
        insn.tag = self.tag
        self.insns.append(insn)
        log = self.log  # the regions `emit` would record: ACC and PARAM read, OUT written
        log.flat.extend(
            (
                *(_ACC, acc_base, acc_base + rows_for(m * n, ACC_BITS, rb), 0),
                *(_PARAM, p_base, p_base + rows_for(n, PARAM_BITS, rb), 0),
                *(_OUT, out_base, out_base + rows_for(m * n, bits, rb), 1),
            )
        )
        log.ptr.append(log.end())
        log.units.append(_RESCALE_UNIT)
        self.store(Buf.OUT, out_slot, dram_addr, d0, d1, d2, s0, s1, bits, mode)

    def add_rows(self, rows: np.ndarray, regions: np.ndarray, ends: np.ndarray, units) -> None:
        """Append instructions built elsewhere (a compiled tile loop) as `accelsim.insn_table`
        rows, their regions ([r, 4] records, see `RegionLog.add_block`; the k-th instruction's
        end at row ends[k]) and unit codes."""
        self.parts.append(rows)
        self.insns = []
        self.parts.append(self.insns)
        self.log.add_block(regions, ends, units)

    def repeat(self, per_tile: int, period: int, shifts: np.ndarray) -> None:
        """Append copies of the last `period` tiles (each `per_tile` instructions added since
        the last `add_rows`), copy i a copy of tile i % period with its DRAM addresses (LOAD
        and STORE blocks, and their regions) moved by shifts[i] elements: the middle tiles of
        a layer whose tiles differ only there. The caller takes the slots the copies use."""
        n = per_tile * period
        rows = rows_of(self.insns[-n:]).reshape(period, per_tile, -1)
        regions, ends = self.log.last(n)
        per_regions = len(regions) // period
        rel = ends.reshape(period, per_tile) - np.arange(period)[:, None] * per_regions
        if per_regions * period != len(regions) or (rel != rel[0]).any():
            raise AccelsimError("lowering error: repeated tiles differ in their regions")
        if (rows[:, :, OP] != rows[0, :, OP]).any():
            raise AccelsimError("lowering error: repeated tiles differ in their opcodes")
        regions = regions.reshape(period, per_regions, 4)
        which = np.arange(len(shifts)) % period
        shifts = np.asarray(shifts, np.int64)
        on_dram = np.isin(rows[0, :, OP], (int(Op.LOAD), int(Op.STORE)))  # same ops every tile
        new_rows = rows[which]
        new_rows[:, on_dram, _DRAM_ADDR] += shifts[:, None]
        in_dram = regions[0, :, 0] == DRAM_SPACE
        new_regions = regions[which]
        new_regions[:, in_dram, 1:3] += shifts[:, None, None]
        new_ends = (np.arange(len(shifts))[:, None] * per_regions + rel[0]).reshape(-1)
        units = self.log.units[-per_tile:] * len(shifts)
        self.dram_bytes += self._tile_dram_bytes(rows[0]) * len(shifts)
        self.add_rows(
            new_rows.reshape(-1, rows.shape[2]), new_regions.reshape(-1, 4), new_ends, units
        )

    @staticmethod
    def _tile_dram_bytes(rows: np.ndarray) -> int:
        """DRAM bytes the LOAD and STORE rows of one tile move (as `_transfer` counts them)."""
        total = 0
        for row in rows.tolist():
            if row[OP] in (int(Op.LOAD), int(Op.STORE)):
                d0, d1, d2, bits = (row[_FIELD[name]] for name in ("d0", "d1", "d2", "bits"))
                total += dma_bytes(d0, d1, d2, bits)
        return total

    def stream(self) -> np.ndarray:
        """Every instruction so far as one `accelsim.insn_table` table. Raises `IsaError`
        naming the first instruction with a value that is not a table integer."""
        tables, done = [], 0
        for part in self.parts:
            if isinstance(part, list):
                try:
                    part = rows_of(part)
                except IsaError:
                    first_fault_by_hand(part, done)  # names the instruction and field
                    raise
            tables.append(part)
            done += len(part)
        return np.concatenate(tables) if len(tables) > 1 else tables[0]

    def finish(self) -> np.ndarray:
        """End the program with FINISH; returns the stream (`stream`)."""
        self.emit(Insn(Op.FINISH), [], [])
        return self.stream()
