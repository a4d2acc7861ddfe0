"""Materialised padding: conv input padding that a LOAD cannot add on chip is laid out in DRAM.

A LOAD pads the block it brings by at most `PAD_MAX` (15, the 4-bit pad fields) rows or columns
on each side, and it must read at least one element from DRAM. A conv breaks that when its
padding on a side is wider than 15, or when the outputs nearest a side read only padding (a
tile there would load nothing), and when its taps are gathered one output pixel at a time
(vertical and horizontal dilation differ: the LOAD strides over the taps and cannot pad
between them). Such a conv reads a padded copy of its input: the border, filled with the input
zero point, is constant data of the program's DRAM image (like the weights), and before the
conv the DMA copies the input into the copy's interior (LOAD into INP, STORE out). The conv then
pads on chip only on the sides that were not materialised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.errors import HardwareLimitError
from accelsim.frontend.emit import Emitter
from accelsim.isa import Buf, Op, field_max

# most padding rows / columns one LOAD adds on each side
PAD_MAX = min(field_max(Op.LOAD, f"pad_{side}") for side in ("top", "bottom", "left", "right"))
DIM_MAX = min(field_max(op, f) for op in (Op.LOAD, Op.STORE) for f in ("d0", "d1", "d2"))


@dataclass(frozen=True)
class PadPlan:
    """Padding rows / columns laid out in DRAM on each side of a conv input (0: padded on chip
    by the LOADs, if at all)."""

    top: int = 0
    bottom: int = 0
    left: int = 0
    right: int = 0

    @property
    def any(self) -> bool:
        return any((self.top, self.bottom, self.left, self.right))


def _side(pad_lo: int, pad_hi: int, size: int, out: int, k: int, s: int, d: int, gather: bool):
    """Materialised (before, after) padding along one axis. Only padding some window reaches
    counts: past the last window nothing is read."""
    span = (k - 1) * d + 1
    used_hi = max(0, (out - 1) * s - pad_lo + span - size)
    if gather:
        return pad_lo, used_hi
    lo = pad_lo if pad_lo > PAD_MAX or pad_lo >= span else 0  # first window all padding
    hi = used_hi if used_hi > PAD_MAX or (out - 1) * s - pad_lo >= size else 0
    return lo, hi


def pad_plan(in_hw, out_hw, kernel, strides, dilations, pads, gather: bool) -> PadPlan:
    """The padding of a conv (input and output (h, w), kernel (kh, kw), strides and dilations
    (vertical, horizontal), pads (top, bottom, left, right)) that is laid out in DRAM (module
    docstring). gather: taps are gathered one output pixel at a time (all padding goes to
    DRAM)."""
    top, bottom = _side(
        pads[0], pads[1], in_hw[0], out_hw[0], kernel[0], strides[0], dilations[0], gather
    )
    left, right = _side(
        pads[2], pads[3], in_hw[1], out_hw[1], kernel[1], strides[1], dilations[1], gather
    )
    return PadPlan(top, bottom, left, right)


def emit_padded_copy(
    em: Emitter,
    src_addr: int,
    shape: tuple[int, int, int, int],
    plan: PadPlan,
    bits: int,
    mode: str,
    pad_value: int,
    node: str,
) -> int:
    """Lay out the padded copy of the NHWC tensor of `shape` at `src_addr` (border = pad_value)
    and emit the DMA copy of the tensor into it; returns the copy's DRAM address."""
    n, h, w, c = shape
    hp, wp = h + plan.top + plan.bottom, w + plan.left + plan.right
    if c > DIM_MAX:
        raise HardwareLimitError(
            f"node {node!r}: {c} channels exceed the DMA's {DIM_MAX}-element rows",
            "DMA row length",
        )
    dst_addr = em.alloc(n * hp * wp * c, np.full(n * hp * wp * c, pad_value, np.int64))
    cap_bits = em.slots[Buf.INP].rows * em.row_bits
    c_t = c
    while c_t > 1 and c_t * bits > cap_bits:
        c_t = -(-c_t // 2)
    w_t = max(1, min(w, DIM_MAX, cap_bits // (c_t * bits)))
    r_t = max(1, min(h, DIM_MAX, cap_bits // (w_t * c_t * bits)))
    if c_t * bits > cap_bits:
        raise HardwareLimitError(
            f"node {node!r}: one {bits}-bit element does not fit half of INP", "INP size"
        )
    for img in range(n):
        src, dst = src_addr + img * h * w * c, dst_addr + img * hp * wp * c
        for y in range(0, h, r_t):
            r = min(r_t, h - y)
            for x in range(0, w, w_t):
                cols = min(w_t, w - x)
                for c0 in range(0, c, c_t):
                    cc = min(c_t, c - c0)
                    slot = em.slots[Buf.INP].take()
                    at = src + (y * w + x) * c + c0
                    em.load(Buf.INP, slot, at, r, cols, cc, w * c, c, bits, mode)
                    to = dst + ((y + plan.top) * wp + x + plan.left) * c + c0
                    em.store(Buf.INP, slot, to, r, cols, cc, wp * c, c, bits, mode)
    return dst_addr
