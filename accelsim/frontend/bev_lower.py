"""Lowering of `SparseToBEV`, SECOND's bird's-eye-view collapse, to DMA transfers.

The collapse turns the last sparse tensor (rows [n, C] in DRAM, hardware row order, see
`accelsim.frontend.sparse_lower`) over the grid (B, X, Y, Z) into the dense NHWC map
[B, X, Y, C*Z] whose channel c*Z + z holds channel c of height z (the order of SECOND's
HeightCompression, `accelsim.sparse.to_bev`). No arithmetic is involved: the load engine brings
feature rows on chip and the store engine writes each value to its place. The program is
compiled for one scene, so every voxel's destination is known here: channel c of voxel
(b, x, y, z) goes to element

    map + ((b*X + x)*Y + y)*C*Z + z + c*Z

Empty cells. The program clears the map itself instead of relying on a DRAM image that starts
zeroed: a program that writes its whole output stays correct when it runs again on the same
memory (the next frame), and a host memset would move the same bytes without being counted.
The zeros are made on chip by the load engine's padding generator (pad_value 0 is never read
from DRAM): one LOAD of W zero elements padded by `pad` rows and columns on every side gives
(1 + 2*pad)**2 * W zeros in OUT slot 0 for ceil(W*bits/8) bytes read. STOREs of that block
then cover every (b, x, y) column the voxels do not fill (runs of consecutive such columns
merged, cut at the block's length); full columns are skipped, since the scatter writes all of
their elements.

Scatter. Feature rows are loaded in chunks of consecutive hardware rows (one LOAD each, into
OUT slots 1 and 2 in turn). Voxels that follow one another in a chunk and whose destinations
step by one constant stride form a run, written by one STORE d0 = run length (s0 = the step),
d1 = C (s1 = Z), d2 = 1. With Z > 1 a voxel's C channels lie Z elements apart, so every value
is its own DMA row and costs a burst: the height interleaving is a transpose of the row layout,
which the DMA pays element by element. With Z = 1 `coalesce` merges a voxel's channels, and a
run of neighbouring columns, into one contiguous row. A run starts on a buffer row boundary
(STOREs address whole rows): where C*bits is not a multiple of `row_bits`, a run starting
mid-row begins a new chunk.

Worked example (edge: latency 100 cycles, 64-byte bursts at 25.6 B/cycle, so 3 cycles per
burst; `svge.groups` 4 with coefficients (1, 2, 3)). C = 16 channels at 8 bits (one 128-bit
buffer row per voxel) on the grid (1, 1, 2, 2): a 64-element map. Voxels (0, 0, 0, 0),
(0, 0, 1, 0), (0, 0, 1, 1) fall in groups 0, 2 and 1, so the hardware order is (0,0,0,0),
(0,0,1,1), (0,0,1,0), with channel 0 going to elements 0, 33 and 32. Column y = 0 is not full:
its 32 elements are cleared.

    LOAD zeros   W = 1, pad = 3: 49 zeros            100 + 1*3 = 103   [0, 103)      1 B
    STORE clear  d2 = 32                             100 + 1*3 = 103   issued at 103  32 B
    LOAD rows    3 voxels x 16 channels, d2 = 48     100 + 1*3 = 103   issued at 103  48 B
    STORE run 1  d0 = 2 (s0 = 33), d1 = 16 (s1 = 2): 32 rows   100 + 32*3 = 196      32 B
    STORE run 2  d0 = 1, d1 = 16: 16 rows                      100 + 16*3 = 148      16 B

The clear and the row LOAD both reach the bus at 203 and hold it for 3 cycles each, so both
have ended by 209 whichever goes first; run 1 ends at 209 + 196 = 405 and run 2 at
405 + 148 = 553 cycles. DRAM bytes: 1 + 32 + 48 + 32 + 16 = 129.
"""

from __future__ import annotations

import numpy as np

from accelsim import sparse as sp
from accelsim.errors import AccelsimError
from accelsim.frontend.emit import MAX_D2, Emitter, rows_for
from accelsim.isa import Buf, Op, field_max

PAD_MAX = min(field_max(Op.LOAD, f) for f in ("pad_top", "pad_bottom", "pad_left", "pad_right"))
RUN_MAX = min(field_max(Op.LOAD, "d1"), field_max(Op.STORE, "d0"))  # voxels per LOAD / STORE
ZERO_SLOT, ROW_SLOTS = 0, (1, 2)  # OUT slots: the zero block; feature chunks in turn


def bev_shape(op, channels: int) -> tuple[int, int, int, int]:
    """The dense map's NHWC shape (B, X, Y, C*Z) for `op` (a `SparseToBEV`) over C channels."""
    b, nx, ny, nz = (int(v) for v in op.shape)
    return b, nx, ny, channels * nz


def destinations(coords, shape, channels: int) -> np.ndarray:
    """Element offset in the map of channel 0 of every voxel (int64 [n]); channel c is c*Z
    further. coords: int32 [n, 4] (b, x, y, z); shape: the grid (B, X, Y, Z)."""
    c = np.asarray(coords, np.int64)
    _, nx, ny, nz = shape
    return ((c[:, 0] * nx + c[:, 1]) * ny + c[:, 2]) * channels * nz + c[:, 3]


def clear_ranges(coords, shape, channels: int) -> list[tuple[int, int]]:
    """[start, end) element ranges of the map that need zeros: runs of consecutive (b, x, y)
    columns holding fewer than Z voxels."""
    b, nx, ny, nz = shape
    c = np.asarray(coords, np.int64)
    col = (c[:, 0] * nx + c[:, 1]) * ny + c[:, 2]
    partial = np.bincount(col, minlength=b * nx * ny) < nz
    edges = np.flatnonzero(np.diff(np.concatenate(([0], partial.view(np.int8), [0]))))
    span = channels * nz
    return [(int(lo) * span, int(hi) * span) for lo, hi in zip(edges[::2], edges[1::2])]


def zero_fill(want: int, cap: int) -> tuple[int, int, int]:
    """(W, pad, n) of the padded LOAD that makes the zero block: W zero elements read, `pad`
    rows and columns of zeros on every side, n = (1 + 2*pad)**2 * W zeros. n is at least
    min(want, cap) where the pad fields allow, and never above `cap` (elements of a slot)."""
    target = max(1, min(want, cap))
    pad = 0
    while pad < PAD_MAX and (1 + 2 * pad) ** 2 < target and (3 + 2 * pad) ** 2 <= cap:
        pad += 1
    side = (1 + 2 * pad) ** 2
    w = max(1, min(-(-target // side), cap // side))
    return w, pad, side * w


def scatter_plan(dest: np.ndarray, voxel_bits: int, row_bits: int, chunk_max: int) -> list:
    """Chunks of consecutive rows [(first row, voxels, runs)], runs [(first voxel in the chunk,
    voxels, destination step)]: a run continues while the next voxel's destination is one
    constant positive step further; a chunk takes at most `chunk_max` voxels and each run
    starts on a buffer row boundary."""
    chunks = []
    first, runs = 0, []
    i, n = 0, dest.size
    while i < n:
        if i - first >= chunk_max or (i - first) * voxel_bits % row_bits:
            chunks.append((first, i - first, runs))
            first, runs = i, []
        k, step = 1, 0
        while i + k < n and i + k - first < chunk_max and k < RUN_MAX:
            d = int(dest[i + k] - dest[i + k - 1])
            if d <= 0 or (k > 1 and d != step):
                break
            step, k = d, k + 1
        runs.append((i - first, k, step))
        i += k
    chunks.append((first, n - first, runs))
    return chunks


def emit_to_bev(em: Emitter, op, graph, hw: dict, places: dict) -> None:
    """Emit the LOADs and STOREs of `op` (a `SparseToBEV`; see the module docstring). hw: coord
    set -> coordinates in hardware row order; places: tensor -> `TensorPlace` in DRAM."""
    src = graph.tensors[op.inputs[0]]
    coords, grid = hw[src.coord_set], tuple(int(v) for v in op.shape)
    sp.check_bev_grid(coords, grid)
    pin, pout = places[op.inputs[0]], places[op.output]
    C, nz, bits, mode = src.channels, grid[3], src.bits, src.mode
    rb = em.row_bits
    em.use_slots(Buf.OUT, 1 + len(ROW_SLOTS))
    slot_rows = em.slots[Buf.OUT].rows
    clears = clear_ranges(coords, grid, C)
    if clears:
        want = min(MAX_D2, max(hi - lo for lo, hi in clears))
        w, pad, n_zero = zero_fill(want, slot_rows * rb // bits)
        em.load(
            Buf.OUT, ZERO_SLOT, em.alloc(w), 1, 1, w, w, w, bits, mode, pads=(pad,) * 4
        )  # the DRAM image holds W zeros; the padding generator makes the rest
        piece = min(n_zero, MAX_D2)
        for lo, hi in clears:
            for a in range(lo, hi, piece):
                n = min(piece, hi - a)
                em.store(Buf.OUT, ZERO_SLOT, pout.dram_addr + a, 1, 1, n, n, n, bits, mode)
    voxel_bits = C * bits
    chunk_max = min(slot_rows * rb // voxel_bits, RUN_MAX)
    if chunk_max < 1:
        raise AccelsimError(
            f"node {op.name!r}: one voxel's {C} channels ({voxel_bits} bits) do not fit an OUT "
            f"slot ({slot_rows * rb} bits); increase buffers.out_bytes"
        )
    dest = destinations(coords, grid, C)
    for j, (first, n, runs) in enumerate(scatter_plan(dest, voxel_bits, rb, chunk_max)):
        slot = ROW_SLOTS[j % len(ROW_SLOTS)]
        em.load(Buf.OUT, slot, pin.dram_addr + first * C, 1, n, C, 0, C, bits, mode)
        for v, k, step in runs:
            addr = pout.dram_addr + int(dest[first + v])
            off = rows_for(v * C, bits, rb)
            em.store(Buf.OUT, slot, addr, k, C, 1, step, nz, bits, mode, offset_rows=off)
