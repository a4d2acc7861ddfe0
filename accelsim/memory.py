"""Functional memory of the processor: the DRAM image and the on-chip buffers.

Buffers are addressed in rows of `buffers.row_bits` bits. A tile of n elements at b bits occupies
`ceil(n*b/row_bits)` rows, packed: element e sits at bit e*b from the tile's first row. The
functional model keeps each tile as a flat numpy array keyed by its start row. A read names a
start row and an element count; it must fall inside one tile, start on an element boundary
(row offset * row_bits divisible by b) and use the tile's element width. Usually a read starts
at the tile's first row and covers it whole; reading a slice (for example the parameters of
one channel block out of a PARAM tile holding a whole layer) is allowed on element boundaries.
A write replaces every tile it overlaps, unless it falls inside one tile of the same width,
in which case it updates that tile in place.
"""

from __future__ import annotations

import numpy as np

from accelsim.errors import AccelsimError
from accelsim.isa import Buf


def tile_rows(n_elems: int, bits: int, row_bits: int) -> int:
    """Rows occupied by a tile of `n_elems` elements of `bits` bits each."""
    return -(-n_elems * bits // row_bits)


class Buffer:
    """One on-chip buffer: tiles (flat arrays) keyed by start row, with their element width."""

    __slots__ = ("name", "row_bits", "capacity_rows", "tiles")

    def __init__(self, name: str, row_bits: int, capacity_rows: int):
        self.name, self.row_bits, self.capacity_rows = name, row_bits, capacity_rows
        self.tiles: dict[int, tuple[int, int, np.ndarray]] = {}  # start -> (rows, bits, flat)

    def _find(self, addr: int):
        tile = self.tiles.get(addr)
        if tile is not None:
            return addr, tile
        for start, t in self.tiles.items():
            if start <= addr < start + t[0]:
                return start, t
        return None, None

    def read(self, addr: int, n: int, bits: int, who: str) -> np.ndarray:
        """Flat view of `n` elements of `bits` bits starting at row `addr`."""
        start, tile = self._find(addr)
        if tile is None:
            raise AccelsimError(
                f"{who}: {self.name} row {addr} holds no data (tiles start at "
                f"rows {sorted(self.tiles)[:8]})"
            )
        _, tbits, flat = tile
        if tbits != bits:
            raise AccelsimError(
                f"{who}: {self.name} tile at row {start} holds {tbits}-bit "
                f"elements, read as {bits}-bit"
            )
        off_bits = (addr - start) * self.row_bits
        if off_bits % bits:
            raise AccelsimError(
                f"{who}: {self.name} row {addr} is not on an element boundary "
                f"of the {bits}-bit tile at row {start}"
            )
        off = off_bits // bits
        if off + n > flat.size:
            raise AccelsimError(
                f"{who}: reads {n} elements of {self.name} at row {addr}, but "
                f"the tile at row {start} has only {flat.size - off} from there"
            )
        return flat[off : off + n]

    def write(self, addr: int, data: np.ndarray, bits: int) -> None:
        """Store `data` (any shape, kept flat) as `bits`-bit elements starting at row `addr`."""
        flat = np.ascontiguousarray(data).reshape(-1)
        rows = tile_rows(flat.size, bits, self.row_bits)
        start, tile = self._find(addr)
        if (
            tile is not None
            and start != addr
            and tile[1] == bits
            and addr + rows <= start + tile[0]
        ):  # a write into part of a tile updates it
            off_bits = (addr - start) * self.row_bits
            if off_bits % bits == 0 and off_bits // bits + flat.size <= tile[2].size:
                off = off_bits // bits
                arr = tile[2]
                if not np.can_cast(flat.dtype, arr.dtype):  # e.g. int8 into a uint8 tile
                    arr = arr.astype(np.promote_types(arr.dtype, flat.dtype))
                    self.tiles[start] = (tile[0], tile[1], arr)
                arr[off : off + flat.size] = flat
                return
        end = addr + rows
        for s in [s for s, t in self.tiles.items() if s < end and addr < s + t[0]]:
            del self.tiles[s]
        self.tiles[addr] = (rows, bits, flat.copy())


class Memory:
    """DRAM image (flat int32, element addressed) and one `Buffer` per `Buf`."""

    def __init__(self, cfg, dram: np.ndarray):
        self.dram = dram
        b = cfg.buffers
        self.bufs = [Buffer(buf.name, b.row_bits, b.capacity_rows(buf.name)) for buf in Buf]

    def read(self, buf: int, addr: int, n: int, bits: int, who: str) -> np.ndarray:
        return self.bufs[buf].read(addr, n, bits, who)

    def write(self, buf: int, addr: int, data: np.ndarray, bits: int) -> None:
        self.bufs[buf].write(addr, data, bits)
