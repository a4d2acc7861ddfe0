"""Analytic cost of a GEMM layer's tiling, and the tile search that runs on it.

`emit_gemm_layer` walks every tile; this module gives, without walking them, what that walk
produces for a `Tiling` of a `GemmLayer` when the layer is emitted alone (fresh buffer slots,
`images` images, the placement `choose_tiling` plans with): the DRAM bytes of every LOAD and
STORE, the instruction count per opcode, the busy cycles of the load, store, matmul and
rescale units (from the units' own cost functions) and the peak rows of every buffer.
`tests/frontend/test_tile_cost.py` holds them equal to emission for every candidate of the
built-in dense workloads.

Tiles differ only at the edges: along each axis an output tile is full or the remainder, and
its input patch is clipped by padding at the first and last tiles. `_axis` groups the tiles of
one axis into classes of equal shape, so every sum below is a small loop over classes.

Residency. INP, WGT and PARAM are each two slots with least-recently-used replacement
(`emit.Slots`), so a tile is reloaded exactly when two other distinct tiles of the same buffer
were used since it was last used. The loop nest (image, then output tile and channel tile in
the tiling's order, then input-channel slices) repeats every key with one period, so each key
of a buffer is loaded the same number of times (`_reloads`):

- a sequence that cycles through D > 2 keys misses on every access (D <= 2: once per key);
- spatial order: weights cycle through n_n * n_ci keys once per output tile; a patch cycles
  through its n_ci slices once per channel tile; the parameters through n_n keys per tile;
- channel order: weights cycle through their n_ci slices once per output tile, and all
  n_n * n_ci keys once per image; patches through all n_sp * n_ci of the image once per
  channel tile; the parameters through n_n keys once per image;
- patches carry the image in their key, weights and parameters do not (they stay across
  images when the whole layer's set is resident); a depthwise patch is keyed by its channel
  tile too, so it is never reused.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

from accelsim.config import HwConfig
from accelsim.errors import AccelsimError
from accelsim.frontend.emit import coalesce, dma_bytes
from accelsim.frontend.padding import PAD_MAX
from accelsim.frontend.tiling import GemmLayer, Tiling, candidates, tile_rows
from accelsim.isa import Op

PLAN_CACHE_SIZE = 4096  # plans kept per process (one per distinct layer and buffer geometry)


@dataclass(frozen=True)
class TileCost:
    """What emitting one layer with one tiling produces, per image count `images`.

    load_bytes: DRAM bytes loaded into each buffer ("inp", "wgt", "param"); store_bytes: DRAM
    bytes stored; insns: instructions per opcode name (LOAD, STORE, GEMM, RESCALE);
    busy_cycles: sum of the unit cost models per unit name (load, store, matmul, rescale);
    rows: peak rows of each buffer a tile takes (inp, wgt, acc, out, param)."""

    images: int
    load_bytes: dict
    store_bytes: int
    insns: dict
    busy_cycles: dict
    rows: dict

    @property
    def dram_bytes(self) -> int:
        return sum(self.load_bytes.values()) + self.store_bytes

    @property
    def tiles(self) -> int:
        """GEMM instructions (the tiling search's second criterion)."""
        return self.insns["GEMM"]


@lru_cache(maxsize=1 << 14)
def _axis(n_out: int, tile: int, stride: int, k: int, dil: int, pad: int, size: int) -> tuple:
    """Classes of the tiles along one conv axis: (count, outputs, DRAM extent, pad before, pad
    after) each. Only the first tiles (padding before), the last ones (padding after, remainder)
    differ from the interior tiles, which all read a full patch."""
    n = -(-n_out // tile)
    span_full = (tile - 1) * stride + (k - 1) * dil + 1
    step = tile * stride
    first = min(n, -(-pad // step))  # tiles starting in the padding before
    # first tile reaching the padding after (or the remainder): i * step - pad + span > size
    last = max(first, min(n - 1, (size + pad - span_full) // step + 1))
    classes: dict = {}
    for i in (*range(first), *range(last, n)):
        o0 = i * tile
        o = min(tile, n_out - o0)
        span = (o - 1) * stride + (k - 1) * dil + 1
        i0 = o0 * stride - pad
        lo, hi = max(0, -i0), max(0, i0 + span - size)
        key = (o, span - lo - hi, lo, hi)
        classes[key] = classes.get(key, 0) + 1
    if last > first:
        key = (tile, span_full, 0, 0)
        classes[key] = classes.get(key, 0) + last - first
    return tuple((c, *key) for key, c in classes.items())


def _axes(L: GemmLayer, t: Tiling) -> tuple:
    """The tile classes of a conv's output rows (vertical stride and dilation) and columns;
    one-pixel tiles read the kh x kw taps, gathered, without padding (it is all in DRAM)."""
    if L.one_pixel:
        return ((L.oh, 1, L.kh, 0, 0),), ((L.ow, 1, L.kw, 0, 0),)
    return (
        _axis(L.oh, t.oh_t, L.sy, L.kh, L.dy, L.pad_top, L.h),
        _axis(L.ow, t.ow_t, L.stride, L.kw, L.dilation, L.pad_left, L.w),
    )


def _split(n: int, t: int) -> list:
    """[(count, size)] of the slices of n elements in slices of t: full ones and the rest."""
    full, rest = divmod(n, t)
    return [(c, size) for c, size in ((full, t), (1, rest)) if c and size]


def _reloads(L: GemmLayer, t: Tiling, images: int) -> tuple[int, int, int]:
    """How many times each INP, WGT and PARAM key is loaded (module docstring)."""
    n_oh, n_ow, n_n, n_ci = t.counts(L)
    n_sp = n_oh * n_ow
    if t.order == "spatial":
        inp = 1 if L.depthwise or n_ci <= 2 else n_n
        wgt = 1 if n_n * n_ci <= 2 else images * n_sp
        prm = 1 if n_n <= 2 else images * n_sp
    else:
        inp = 1 if L.depthwise or n_sp * n_ci <= 2 else n_n
        wgt = 1 if n_n * n_ci <= 2 else images * (1 if n_ci <= 2 else n_sp)
        prm = 1 if n_n <= 2 else images
    return inp, wgt, prm


def transfers(L: GemmLayer, t: Tiling, images: int = 1):
    """The DMA blocks the emission of layer `L` with tiling `t` moves: a list of
    (unit, buffer, count, d0, d1, d2, bits), blocks as coalesced by the emitter. None if a
    tile reads only padding or pads by more than the LOAD pad fields hold (the emitter rejects
    those tiles)."""
    r_inp, r_wgt, r_prm = _reloads(L, t, images)
    out: list = []
    taps = L.kh * L.kw
    n_cls = _split(L.cout, t.n_t)
    ci_cls = [(1, 1)] if L.depthwise else _split(L.cin, t.cin_t)
    for cn, n in n_cls:  # weights [k, n] and parameters [n, 3]
        for cc, cin in ci_cls:
            d1 = taps * (1 if L.depthwise else cin)
            d0, d1, d2, _, _ = coalesce(1, d1, n, 0, n)
            out.append(("load", "wgt", cn * cc * r_wgt, d0, d1, d2, L.w_bits))
        d0, d1, d2, _, _ = coalesce(1, n, 3, 3 * n, 3)
        out.append(("load", "param", cn * r_prm, d0, d1, d2, 32))
    # a patch holds one cin slice, or for depthwise the channels of one channel tile
    patch_c = n_cls if L.depthwise else ci_cls
    if L.conv:
        rows, cols = _axes(L, t)
        for cr, _, d0, pt, pb in rows:
            for cw, _, d1, pl, pr in cols:
                if d0 < 1 or d1 < 1 or max(pt, pb, pl, pr) > PAD_MAX:
                    return None
                for cc, cin in patch_c:
                    if L.one_pixel:  # the kh x kw taps gathered with DRAM strides
                        s0, s1 = L.dy * L.w * L.cin, L.dilation * L.cin
                    else:
                        s0, s1 = L.w * L.cin, L.cin
                    blk = coalesce(d0, d1, cin, s0, s1, (pt, pb, pl, pr))
                    count = images * cr * cw * cc * r_inp
                    out.append(("load", "inp", count, *blk[:3], L.a_bits))
        for cr, oh, *_ in rows:  # output tiles: oh x ow pixels of n channels, NHWC
            for cw, ow, *_ in cols:
                for cn, n in n_cls:
                    blk = coalesce(oh, ow, n, L.ow * L.cout, L.cout)
                    out.append(("store", "out", images * cr * cw * cn, *blk[:3], L.out_bits))
        return out
    for cr, oh in _split(L.oh, t.oh_t):  # linear: oh rows of cin features / n outputs
        for cc, cin in ci_cls:
            blk = coalesce(1, oh, cin, 0, L.cin)
            out.append(("load", "inp", images * cr * cc * r_inp, *blk[:3], L.a_bits))
        for cn, n in n_cls:
            blk = coalesce(1, oh, n, 0, L.cout)
            out.append(("store", "out", images * cr * cn, *blk[:3], L.out_bits))
    return out


@lru_cache(maxsize=1 << 16)  # pure in (L, t, images); configs that differ in buffers share it
def layer_dram_bytes(L: GemmLayer, t: Tiling, images: int = 1) -> int | None:
    """DRAM bytes (loads and stores) of layer `L` emitted with tiling `t` for `images` images;
    None if the emitter rejects one of its tiles (see `transfers`)."""
    blocks = transfers(L, t, images)
    if blocks is None:
        return None
    return sum(count * dma_bytes(d0, d1, d2, bits) for _, _, count, d0, d1, d2, bits in blocks)


def _compute_tiles(L: GemmLayer, t: Tiling):
    """[(count, m, n, cin)] of the output tiles (m pixels or rows) x channel tiles (n) x
    input-channel slices (cin; depthwise: the channel tile), for one image."""
    if L.conv:
        rows, cols = _axes(L, t)
        sp = [(cr * cw, oh * ow) for cr, oh, *_ in rows for cw, ow, *_ in cols]
    else:
        sp = _split(L.oh, t.oh_t)
    ci_cls = [(1, 0)] if L.depthwise else _split(L.cin, t.cin_t)
    return [
        (cs * cn * cc, m, n, n if L.depthwise else cin)
        for cs, m in sp
        for cn, n in _split(L.cout, t.n_t)
        for cc, cin in ci_cls
    ]


def tile_cost(L: GemmLayer, t: Tiling, cfg: HwConfig, images: int = 1) -> TileCost | None:
    """Everything emission of layer `L` with tiling `t` produces for `images` images (see
    `TileCost`); unit cycles from `dma_cycles`, `matmul_cycles` and `rescale_cycles` at `cfg`.
    None if the emitter rejects one of the tiles."""
    from accelsim.units.dma import dma_cycles  # noqa: PLC0415  (units load their kernels)
    from accelsim.units.matmul import matmul_cycles  # noqa: PLC0415
    from accelsim.units.rescale import rescale_cycles  # noqa: PLC0415

    blocks = transfers(L, t, images)
    if blocks is None:
        return None
    load_bytes = {"inp": 0, "wgt": 0, "param": 0}
    insns = {op.name: 0 for op in (Op.LOAD, Op.STORE, Op.GEMM, Op.RESCALE)}
    busy = {"load": 0, "store": 0, "matmul": 0, "rescale": 0}
    store_bytes = 0
    for unit, buf, count, d0, d1, d2, bits in blocks:
        nbytes = count * dma_bytes(d0, d1, d2, bits)
        if unit == "load":
            load_bytes[buf] += nbytes
        else:
            store_bytes += nbytes
        insns[unit.upper()] += count
        busy[unit] += count * dma_cycles(cfg, d0, d1, d2, bits)
    taps = L.kh * L.kw
    for count, m, n, cin in _compute_tiles(L, t):
        count *= images
        k = taps * (1 if L.depthwise else cin)
        insns["GEMM"] += count
        busy["matmul"] += count * matmul_cycles(cfg, m, k, n, L.a_bits, L.w_bits)
    for count, m, n in _finished_tiles(L, t):
        insns["RESCALE"] += images * count
        busy["rescale"] += images * count * rescale_cycles(cfg, m, n)
    return TileCost(
        images, load_bytes, store_bytes, insns, busy, tile_rows(L, t, cfg.buffers.row_bits)
    )


def _finished_tiles(L: GemmLayer, t: Tiling):
    """[(count, m, n)] of the accumulated output tiles RESCALE finishes, for one image."""
    seen: dict = {}
    ci = 1 if L.depthwise else -(-L.cin // t.cin_t)
    for count, m, n, _ in _compute_tiles(L, t):
        seen[(m, n)] = seen.get((m, n), 0) + count
    return [(c // ci, m, n) for (m, n), c in seen.items()]


def plan_key(L: GemmLayer, cfg: HwConfig, images: int) -> tuple:
    """Everything the search reads: the layer, the images that decide weight residency
    (at most two), the array width (channel tiles) and the buffer geometry."""
    b = cfg.buffers
    caps = tuple(b.capacity_rows(buf) for buf in ("inp", "wgt", "acc", "out", "param"))
    return (L, min(images, 2), cfg.matmul.cols, b.row_bits, caps)


_PLANS: OrderedDict = OrderedDict()  # plan_key -> Tiling, least recently used first


def clear_plan_cache() -> None:
    """Forget every cached plan and tile cost (benchmarks time the search from cold)."""
    _PLANS.clear()
    layer_dram_bytes.cache_clear()


def choose_tiling(L: GemmLayer, cfg: HwConfig, images: int = 1, name: str = "layer") -> Tiling:
    """The candidate tiling with the fewest DRAM bytes for `images` (weights count as resident
    across images as emission keeps them: two images are costed when there are several), then
    the fewest tiles; of equals, the first in `candidates` order. Costs come from
    `layer_dram_bytes` (no emission); plans are cached per process by `plan_key`."""
    key = plan_key(L, cfg, images)
    best = _PLANS.get(key)
    if best is not None:
        _PLANS.move_to_end(key)
        return best
    n_img = min(images, 2)
    cands = sorted(candidates(L, cfg), key=lambda t: math.prod(t.counts(L)))
    best_cost = None
    for t in cands:
        nbytes = layer_dram_bytes(L, t, n_img)
        if nbytes is None:
            continue
        cost = (nbytes, n_img * math.prod(t.counts(L)))
        if best_cost is None or cost < best_cost:
            best, best_cost = t, cost
    if not cands:
        raise AccelsimError(
            f"node {name!r} does not fit the buffers even with one-row tiles "
            f"(input {L.h}x{L.w}x{L.cin}, kernel {L.kh}x{L.kw}, {L.cout} "
            f"outputs); increase the buffer sizes"
        )
    if best is None:
        raise AccelsimError(
            f"node {name!r}: every tiling has a conv tile that reads only padding or pads by "
            f"more than {PAD_MAX}; not supported"
        )
    _PLANS[key] = best
    if len(_PLANS) > PLAN_CACHE_SIZE:
        _PLANS.popitem(last=False)
    return best
