"""Emission of one GEMM layer (conv, depthwise conv, linear) for one image.

Per output tile and channel tile the emitted sequence is
  [LOAD INP patch] [LOAD WGT] GEMM   (once per input-channel slice, accumulating in ACC)
  [LOAD PARAM] RESCALE STORE        (once the accumulation is complete)
where bracketed loads are skipped when the tile is still resident (see `Slots.lookup`), and the
last line is `Emitter.rescale_store`. `accelsim.frontend.tile_cost` gives in closed form what
this emission produces for a tiling, and chooses the tiling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.errors import AccelsimError
from accelsim.frontend import gemm_compiled
from accelsim.frontend.emit import ACC_BITS, MODE_CODE, Emitter, rows_for
from accelsim.frontend.padding import PAD_MAX
from accelsim.frontend.tiling import GemmLayer, Tiling
from accelsim.isa import Buf, Insn, Op

INP, WGT, ACC = Buf.INP, Buf.WGT, Buf.ACC  # (enum attribute lookups cost in the tile loop)
GEMM = Op.GEMM


@dataclass(frozen=True)
class GemmPlace:
    """Where one GEMM layer's operands live in DRAM and how its output is quantized.

    in_addr / out_addr: first element of this image's NHWC input / output; in_c / out_c: the
    channel counts of those tensors (row pitch) and in_c_off / out_c_off the first channel this
    layer reads / writes (grouped conv). w_blocks: (n0, c0) -> DRAM address of each packed
    weight tile (`pack_weights`; None: address 0), or -> a (dram_addr, d0, d1, d2, s0, s1)
    block that the LOAD reads in place from an activation tensor (the second operand of a
    MatMul, `accelsim.frontend.matmul_layer`); p_addr: [cout, 3] (bias, multiplier, shift)
    rows. pad_value: input zero point."""

    in_addr: int
    in_c: int
    out_addr: int
    out_c: int
    p_addr: int
    w_blocks: dict | None = None
    in_c_off: int = 0
    out_c_off: int = 0
    a_mode: str = "unsigned"
    w_mode: str = "signed"
    out_mode: str = "signed"
    pad_value: int = 0
    zp: int = 0
    relu: bool = False
    clip: tuple | None = None
    frac: int = 0  # RESCALE bias fractional bits
    key: object = None  # identifies this layer's weights for residency


def emit_gemm_layer(em: Emitter, L: GemmLayer, t: Tiling, P: GemmPlace, image: int = 0) -> None:
    """Emit the tiles of layer `L` for one image with tiling `t` and placement `P`: by the
    compiled tile loop (`accelsim.frontend.gemm_kernel`) once Numba is loaded or for a very
    long layer, else (and to raise a rejected tile's error) by `emit_gemm_layer_ref`."""
    if not gemm_compiled.emit(em, L, t, P, image):
        emit_gemm_layer_ref(em, L, t, P, image)


def emit_gemm_layer_ref(em: Emitter, L: GemmLayer, t: Tiling, P: GemmPlace, image: int = 0) -> None:
    """The definition of the emission, in Python: what the compiled tile loop produces."""
    n_oh, n_ow, n_n, n_ci = t.counts(L)
    spatial = [(i, j) for i in range(n_oh) for j in range(n_ow)]
    if t.order == "spatial":
        steps = [(sp, nt) for sp in spatial for nt in range(n_n)]
    else:
        steps = [(sp, nt) for nt in range(n_n) for sp in spatial]
    rb = em.row_bits
    acc_slots = em.slots[ACC]  # the slot objects stay for the layer (`use_slots` runs between)
    acc_rows_per_slot = acc_slots.rows
    inp_rows_per_slot, wgt_rows_per_slot = em.slots[INP].rows, em.slots[WGT].rows
    layer_fields = {  # the GEMM fields every tile of the layer shares
        "a_bits": L.a_bits,
        "w_bits": L.w_bits,
        "a_mode": MODE_CODE[P.a_mode],
        "w_mode": MODE_CODE[P.w_mode],
        "conv": int(L.conv),
        "depthwise": int(L.depthwise),
        "kh": L.kh,
        "kw": L.kw,
        "stride": 1 if L.one_pixel else L.stride,  # gathered taps are adjacent
        "dilation": 1 if L.one_pixel else L.dilation,
    }
    for (i, j), nt in steps:
        oy0, ox0, n0 = i * t.oh_t, j * t.ow_t, nt * t.n_t
        oh, ow, n = min(t.oh_t, L.oh - oy0), min(t.ow_t, L.ow - ox0), min(t.n_t, L.cout - n0)
        m = oh * ow
        acc_slot = acc_slots.take()
        acc_rows = rows_for(m * n, ACC_BITS, rb)
        for ct in range(n_ci):
            c0 = n0 if L.depthwise else ct * t.cin_t
            cin = n if L.depthwise else min(t.cin_t, L.cin - c0)
            # weights first: they do not depend on the previous layer, so the load engine
            # fetches them while that layer is still running
            wgt_slot, wgt_rows = _load_weights(em, L, P, n0, n, c0, cin)
            inp_slot, inp_rows, pw = _load_input(em, L, P, image, oy0, ox0, oh, ow, c0, cin)
            k = L.kh * L.kw * (1 if L.depthwise else cin)
            reads = [(INP, inp_slot, inp_rows), (WGT, wgt_slot, wgt_rows)]
            if ct:
                reads.append((ACC, acc_slot, acc_rows))
            fields = {
                **layer_fields,
                "inp_addr": inp_slot * inp_rows_per_slot,
                "wgt_addr": wgt_slot * wgt_rows_per_slot,
                "acc_addr": acc_slot * acc_rows_per_slot,
                "m": m,
                "k": k,
                "n": n,
                "reset": int(ct == 0),
                "ow": ow if L.conv else 1,
                "patch_w": pw,
            }
            em.compute(Insn.of(GEMM, fields), reads, [(ACC, acc_slot, acc_rows)])
        c = P.out_c
        if L.conv:  # the tile's oh x ow pixels, n channels, in the NHWC output
            block = (P.out_addr + (oy0 * L.ow + ox0) * c + P.out_c_off + n0, oh, ow, n, L.ow * c, c)
        else:  # oh rows of n features
            block = (P.out_addr + oy0 * c + P.out_c_off + n0, 1, oh, n, 0, c)
        em.rescale_store(
            acc_slot,
            (P.key, "param", n0),
            P.p_addr + 3 * (P.out_c_off + n0),
            *block,
            L.out_bits,
            P.out_mode,
            zp=P.zp,
            relu=P.relu,
            clip=P.clip,
            frac=P.frac,
        )


def _load_input(em, L, P, image, oy0, ox0, oh, ow, c0, cin):
    """Input tile (patch with padding for conv, [m, cin] rows for linear) -> (slot, rows, pw)."""
    inp = em.slots[INP]
    if not L.conv:
        # the key names the whole [oh, cin] block: another layer reading the same tensor
        # with other tiles must not take it for its own
        key = (P.in_addr, image, "rows", oy0, oh, P.in_c_off + c0, cin)
        rows = rows_for(oh * cin, L.a_bits, em.row_bits)
        slot = inp.lookup(key)
        if slot is None:
            slot = inp.take(key)
            em.load(
                INP,
                slot,
                P.in_addr + oy0 * P.in_c + P.in_c_off + c0,
                1,
                oh,
                cin,
                0,
                P.in_c,
                L.a_bits,
                P.a_mode,
            )
        return slot, rows, 1
    ph, pw = L.patch(oh, ow)
    iy0, ix0 = oy0 * L.sy - L.pad_top, ox0 * L.stride - L.pad_left
    if L.one_pixel:  # the taps, gathered by DRAM strides (all padding is in DRAM)
        d0, d1, pads = ph, pw, (0, 0, 0, 0)
        s0, s1 = L.dy * L.w * P.in_c, L.dilation * P.in_c
    else:
        pt, pl = max(0, -iy0), max(0, -ix0)
        pads = (pt, max(0, iy0 + ph - L.h), pl, max(0, ix0 + pw - L.w))
        d0, d1 = ph - pads[0] - pads[1], pw - pads[2] - pads[3]
        s0, s1 = L.w * P.in_c, P.in_c
    if d0 < 1 or d1 < 1 or max(pads) > PAD_MAX:  # `padding.pad_plan` prevents it
        raise AccelsimError(
            f"conv tile at output ({oy0}, {ox0}) reads only padding or pads by "
            f"more than {PAD_MAX} (pads {pads})"
        )
    # the key names the tensor's absolute first channel: the groups of a grouped conv read
    # the same rows and columns of different channels
    key = (P.in_addr, image, "patch", iy0, ix0, ph, pw, P.in_c_off + c0, cin, P.pad_value)
    rows = rows_for(ph * pw * cin, L.a_bits, em.row_bits)
    slot = inp.lookup(key)
    if slot is None:
        slot = inp.take(key)
        addr = P.in_addr + ((iy0 + pads[0]) * L.w + ix0 + pads[2]) * P.in_c + P.in_c_off + c0
        em.load(INP, slot, addr, d0, d1, cin, s0, s1, L.a_bits, P.a_mode, pads, P.pad_value)
    return slot, rows, pw


def _load_weights(em, L, P, n0, n, c0, cin):
    """Weight tile [k, n] -> (slot, rows); for depthwise the [kh*kw, n] slice. Weights are
    stored in DRAM pre-packed tile by tile (`pack_weights`), so each tile is one contiguous
    block."""
    wgt = em.slots[WGT]
    key = (P.key, "w", n0, c0)
    elems = L.kh * L.kw * (1 if L.depthwise else cin) * n
    rows = rows_for(elems, L.w_bits, em.row_bits)
    slot = wgt.lookup(key)
    if slot is None:
        slot = wgt.take(key)
        block = P.w_blocks[(n0, c0)] if P.w_blocks is not None else 0
        if isinstance(block, tuple):  # an activation operand, [cin, n] gathered by strides
            em.load(WGT, slot, *block, L.w_bits, P.w_mode)
        else:
            d1 = L.kh * L.kw * (1 if L.depthwise else cin)
            em.load(WGT, slot, block, 1, d1, n, 0, n, L.w_bits, P.w_mode)
    return slot, rows


def pack_weights(em: Emitter, L: GemmLayer, t: Tiling, w: np.ndarray) -> dict:
    """Lay the weights of one GEMM group out in DRAM tile by tile, in the order the tiles are
    used; returns (n0, c0) -> DRAM address. `w` is [KH, KW, Cin_g, Cout_g] ([KH, KW, 1, C] for
    depthwise)."""
    blocks = {}
    taps = L.kh * L.kw
    w = w.reshape(taps, -1, w.shape[-1])
    n_oh, n_ow, n_n, n_ci = t.counts(L)
    for nt in range(n_n):
        n0 = nt * t.n_t
        n = min(t.n_t, L.cout - n0)
        if L.depthwise:
            blocks[(n0, n0)] = em.alloc(taps * n, w[:, 0, n0 : n0 + n] if em.image else None)
            continue
        for ct in range(n_ci):
            c0 = ct * t.cin_t
            cin = min(t.cin_t, L.cin - c0)
            tile = w[:, c0 : c0 + cin, n0 : n0 + n] if em.image else None  # timing-only: none
            blocks[(n0, c0)] = em.alloc(taps * cin * n, tile)
    return blocks
