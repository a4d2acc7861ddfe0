"""Tile choice for GEMM layers (conv as implicit GEMM, depthwise conv, linear).

A layer is described by `GemmLayer` (per image: input h x w x cin, output oh x ow x cout, kernel
geometry, operand and output bits). A `Tiling` cuts it into output tiles of `oh_t` rows x `ow_t`
columns x `n_t` output channels and input-channel slices of `cin_t`, and fixes the loop order:

- "spatial": for each output tile, for each channel tile, for each cin slice (the input patch
  stays in its buffer across channel tiles when cin is not sliced);
- "channel": for each channel tile, for each output tile, for each cin slice (the weights stay
  when cin is not sliced).

Every tile must fit in half of its buffer (the other half takes the next tile: double
buffering), with capacity counted in bits of the packed operands. Among the candidates that fit,
`accelsim.frontend.tile_cost.choose_tiling` keeps the one with the fewest DRAM bytes (then the
fewest tiles), counted in closed form with the residency rules the emitter follows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from accelsim.config import HwConfig
from accelsim.frontend.emit import ACC_BITS, PARAM_BITS, rows_for
from accelsim.isa import Op, field_max

# largest m, k, n and patch width a GEMM instruction holds
GEMM_MAX = {name: field_max(Op.GEMM, name) for name in ("m", "k", "n", "patch_w")}


@dataclass(frozen=True)
class GemmLayer:
    """One GEMM-type layer for one image. `conv=False` means a plain matrix product where the
    input is [h, cin] rows (h = batch rows), kh = kw = 1 and w = 1.

    `stride` and `dilation` are the horizontal ones (the GEMM instruction's fields, which
    apply to both axes); `row_stride` / `row_dilation` give the vertical ones when they differ.
    A different vertical stride makes every tile one output row (the vertical stride then only
    moves the patch); a different vertical dilation makes every tile one output pixel whose
    kh x kw taps the LOAD gathers with strided DRAM reads (a GEMM with stride and dilation 1).
    """

    h: int
    w: int
    cin: int
    oh: int
    ow: int
    cout: int
    kh: int = 1
    kw: int = 1
    stride: int = 1
    dilation: int = 1
    pad_top: int = 0
    pad_left: int = 0
    a_bits: int = 8
    w_bits: int = 8
    out_bits: int = 8
    conv: bool = True
    depthwise: bool = False
    row_stride: int | None = None
    row_dilation: int | None = None

    @property
    def sy(self) -> int:
        """Vertical stride."""
        return self.row_stride or self.stride

    @property
    def dy(self) -> int:
        """Vertical dilation."""
        return self.row_dilation or self.dilation

    @property
    def one_pixel(self) -> bool:
        """Tiles are one output pixel with gathered taps (vertical dilation differs)."""
        return self.dy != self.dilation

    @property
    def one_row(self) -> bool:
        """Tiles are at most one output row (vertical stride or dilation differs)."""
        return self.one_pixel or self.sy != self.stride

    def patch(self, oh_t: int, ow_t: int) -> tuple[int, int]:
        """Input patch rows x cols (padding included) that an oh_t x ow_t output tile reads."""
        if self.one_pixel:
            return self.kh, self.kw
        ph = (oh_t - 1) * self.sy + (self.kh - 1) * self.dy + 1
        pw = (ow_t - 1) * self.stride + (self.kw - 1) * self.dilation + 1
        return ph, pw


@dataclass(frozen=True)
class Tiling:
    oh_t: int
    ow_t: int
    n_t: int
    cin_t: int
    order: str  # "spatial" or "channel"

    def counts(self, L: GemmLayer) -> tuple[int, int, int, int]:
        """Number of tiles along output rows, output cols, output channels, input channels."""
        return (
            math.ceil(L.oh / self.oh_t),
            math.ceil(L.ow / self.ow_t),
            math.ceil(L.cout / self.n_t),
            math.ceil(L.cin / self.cin_t),
        )


def tile_rows(L: GemmLayer, t: Tiling, row_bits: int) -> dict[str, int]:
    """Rows each buffer needs for one tile of `t` (the largest tile of the layer)."""
    ph, pw = L.patch(t.oh_t, t.ow_t)
    m = t.oh_t * t.ow_t
    if L.depthwise:
        k_elems, inp_elems = L.kh * L.kw * t.n_t, ph * pw * t.n_t
    else:
        k_elems = L.kh * L.kw * t.cin_t * t.n_t
        inp_elems = ph * pw * t.cin_t if L.conv else m * t.cin_t
    return {
        "inp": rows_for(inp_elems, L.a_bits, row_bits),
        "wgt": rows_for(k_elems, L.w_bits, row_bits),
        "acc": rows_for(m * t.n_t, ACC_BITS, row_bits),
        "out": rows_for(m * t.n_t, L.out_bits, row_bits),
        "param": rows_for(t.n_t, PARAM_BITS, row_bits),
    }


def fits(L: GemmLayer, t: Tiling, cfg: HwConfig) -> bool:
    """True if every buffer holds two tiles of `t` and the GEMM fields can express it."""
    b = cfg.buffers
    need = tile_rows(L, t, b.row_bits)
    if any(rows > b.capacity_rows(buf) // 2 for buf, rows in need.items()):
        return False
    k = L.kh * L.kw * (1 if L.depthwise else t.cin_t)
    ph, pw = L.patch(t.oh_t, t.ow_t)
    dims = {"m": t.oh_t * t.ow_t, "k": k, "n": t.n_t, "patch_w": pw}
    return all(v <= GEMM_MAX[name] for name, v in dims.items())


def halvings(n: int) -> list[int]:
    """n, then halved (rounding up) down to 1: the tile sizes tried along an axis."""
    out, v = [], n
    while True:
        out.append(v)
        if v == 1:
            return out
        v = -(-v // 2)


def candidates(L: GemmLayer, cfg: HwConfig) -> list[Tiling]:
    """Tilings that fit: channel tiles in multiples of the array width (halvings of it when
    none fits), cin halvings, output rows as many as fit for full-width (then halved-width)
    output rows."""
    cols = cfg.matmul.cols
    n_opts = sorted({L.cout} | {min(L.cout, cols << i) for i in range(16) if cols << i < L.cout})
    b = cfg.buffers  # bits of half of each buffer (whole rows)
    half = {
        buf: b.capacity_rows(buf) // 2 * b.row_bits for buf in ("inp", "wgt", "acc", "out", "param")
    }
    out = _candidates(L, half, n_opts)
    if not out:  # channel tiles narrower than the array leave columns idle, but they fit
        out = _candidates(L, half, halvings(min(L.cout, cols))[1:])
    return out


def _candidates(L: GemmLayer, half: dict, n_opts: list[int]) -> list[Tiling]:
    cin_opts = [L.cin] if L.depthwise else halvings(L.cin)
    out = []
    for n_t in n_opts:
        fitting = 0  # input-channel slices beyond the widest that fits add passes, not reuse:
        for cin_t in cin_opts:  # try the widest fitting cin_t and two narrower ones
            if fitting == 3:
                break
            before = len(out)
            _add_spatial(L, half, n_t, cin_t, out)
            fitting += len(out) > before
    return out


def _add_spatial(L: GemmLayer, half: dict, n_t: int, cin_t: int, out: list) -> None:
    """Append the tilings with the tallest output tiles that fit for (n_t, cin_t) in `half`
    (bits of half of each buffer): the widest output tiles (full rows, then halvings) for
    which one output row fits; `fits` is the definition this follows in closed form."""
    taps = L.kh * L.kw
    k = taps * (1 if L.depthwise else cin_t)
    c_inp = n_t if L.depthwise else cin_t  # channels of the input patch
    if (
        k * n_t * L.w_bits > half["wgt"]
        or n_t * PARAM_BITS > half["param"]
        or k > GEMM_MAX["k"]
        or n_t > GEMM_MAX["n"]
    ):
        return
    span_h = (L.kh - 1) * L.dy + 1  # input rows of one output row
    for ow_t in [1] if L.one_pixel else halvings(L.ow):
        ph_1, pw = L.patch(1, ow_t)
        if pw > GEMM_MAX["patch_w"]:
            continue
        # every bound below is the largest oh_t whose tile fits (rows_for(e, bits) <= R
        # exactly when e * bits <= R * row_bits)
        tallest = min(
            1 if L.one_row else L.oh,
            GEMM_MAX["m"] // ow_t,
            half["acc"] // (ow_t * n_t * ACC_BITS),
            half["out"] // (ow_t * n_t * L.out_bits),
        )
        if L.one_pixel:  # the gathered taps: one patch whatever the tile
            tallest = tallest if ph_1 * pw * c_inp * L.a_bits <= half["inp"] else 0
        elif L.conv:
            ph = half["inp"] // (pw * c_inp * L.a_bits)
            tallest = min(tallest, (ph - span_h) // L.sy + 1 if ph >= span_h else 0)
        else:
            tallest = min(tallest, half["inp"] // (ow_t * cin_t * L.a_bits))
        if tallest >= 1:
            for order in ("spatial", "channel"):
                out.append(Tiling(tallest, ow_t, n_t, cin_t, order))
            return  # full-width rows fit: narrower ones only add tiles
