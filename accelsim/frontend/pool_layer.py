"""Emission of pooling layers (MaxPool, AvgPool, GlobalAvgPool) on the vector ALU.

An ALU pooling instruction reads one patch of h x w x c (already padded) and slides a kh x kw
window with one stride over both axes; kh, kw and stride are 4-bit fields (at most 15), h, w
and c 16-bit. Pooling is emitted per image in tiles of output rows x columns x channels:

- Padded tiles (max pooling with windows up to 15, average pooling without padding): each tile
  LOADs its patch padded on chip (max pooling pads with the lowest input value, which never
  wins) and runs one MAXPOOL / AVGPOOL. A tile is one output row when the strides differ (the
  vertical stride then only moves the patch) and one output pixel along an axis whose stride
  exceeds the field.
- Clipped windows (average pooling with padding, or windows wider than 15): padding is never
  loaded; each output's window is clipped to the input (average pooling divides by the
  elements inside, and padding never wins a max, so the result is the same). Outputs whose
  clipped windows have one shape form a rectangle (the interior, or one border row / column)
  that one instruction pools over an unpadded patch, the average with the multiplier of its
  element count. A window wider than 15 is pooled per output pixel: an average by a GAP over
  exactly the window, a max by MAXPOOLs over sub-windows of at most 15 x 15 combined with MAX.
- GlobalAvgPool: a GAP per image and channel slice over the whole plane.
ALU parameters are int32 words in PARAM (layouts: `accelsim.units.vector`).
"""

from __future__ import annotations

import numpy as np

from accelsim.errors import AccelsimError, HardwareLimitError
from accelsim.frontend.emit import MODE_BY_NAME, Emitter, rows_for
from accelsim.frontend.tiling import halvings
from accelsim.ir.ops import AvgPool, GlobalAvgPool
from accelsim.ir.params import pool_params
from accelsim.isa import AluOp, Buf, Insn, Op, field_max
from accelsim.numeric import INT32_MAX

WINDOW_MAX = min(field_max(Op.ALU, "kh"), field_max(Op.ALU, "kw"))  # widest ALU window
STRIDE_MAX = field_max(Op.ALU, "stride")


def alu_params(em: Emitter, words) -> int:
    """Put int32 ALU parameter words in DRAM; returns their address."""
    arr = np.asarray(words, np.int64)
    if np.any(np.abs(arr) > INT32_MAX):
        raise AccelsimError(f"ALU parameters {arr.tolist()} do not fit int32")
    return em.alloc(arr.size, arr.astype(np.int32))


def param_words(em: Emitter, addr: int, n: int) -> int:
    """The PARAM slot holding the n int32 words at DRAM `addr` (loaded unless resident)."""
    prm = em.slots[Buf.PARAM]
    key = ("alu", addr)
    slot = prm.lookup(key)
    if slot is None:
        slot = prm.take(key)
        em.load(Buf.PARAM, slot, addr, 1, 1, n, n, n, 32, "signed")
    return slot


class _Pool:
    """One pooling node's emission (module docstring)."""

    def __init__(self, em: Emitter, op, g, places, cfg):
        self.em, self.op = em, op
        self.src, self.dst = g.tensors[op.inputs[0]], g.tensors[op.output]
        self.pin, self.pout = places[op.inputs[0]], places[op.output]
        self.is_max = not isinstance(op, (AvgPool, GlobalAvgPool))
        self.p = None if self.is_max else pool_params(op, g, cfg.rescale.mult_bits)
        self.param_addr: dict[int, int] = {}  # element count -> DRAM address of [mult, shift]

    def fits(self, ph: int, pw: int, cc: int, outs: int) -> bool:
        """A ph x pw x cc patch fits an INP slot and `outs` x cc results an OUT slot."""
        em, rb = self.em, self.em.row_bits
        return (
            rows_for(ph * pw * cc, self.src.bits, rb) <= em.slots[Buf.INP].rows
            and rows_for(outs * cc, self.dst.bits, rb) <= em.slots[Buf.OUT].rows
        )

    def params(self, count: int) -> int:
        """PARAM slot with [mult, shift] of an average over `count` elements."""
        p = self.p
        if count not in self.param_addr:
            pair = [p.mult, p.shift] if np.ndim(p.mult) == 0 else [p.mult[count], p.shift[count]]
            self.param_addr[count] = alu_params(self.em, pair)
        return param_words(self.em, self.param_addr[count], 2)

    def load(self, img, y0, x0, rows, cols, c0, cc, pads=(0, 0, 0, 0)) -> int:
        """LOAD input rows [y0, +rows) x cols [x0, +cols), channels [c0, +cc) padded by
        `pads` (with the lowest value: max pooling only) into an INP slot."""
        em, pin = self.em, self.pin
        _, h, w, c = pin.shape
        slot = em.slots[Buf.INP].take()
        addr = pin.dram_addr + ((img * h + y0) * w + x0) * c + c0
        pad_value = self.src.qrange[0]
        em.load(Buf.INP, slot, addr, rows, cols, cc, w * c, c, self.src.bits, self.src.mode,
                pads, pad_value)  # fmt: skip
        return slot

    def alu(self, alu_op, a_buf, a_slot, b_slot, dst_slot, ph, pw, cc, kh, kw, stride, p_slot):
        """One ALU pooling (or MAX) instruction over a ph x pw x cc tile."""
        em, src, dst = self.em, self.src, self.dst
        kh, kw, stride = (1, 1, 1) if alu_op in (AluOp.GAP, AluOp.MAX) else (kh, kw, stride)
        oh, ow = (ph - kh) // stride + 1, (pw - kw) // stride + 1
        n_out = cc if alu_op == AluOp.GAP else (oh * ow * cc)
        binary = alu_op == AluOp.MAX
        in_bits = dst.bits if binary else src.bits  # MAX combines partial results (out format)
        reads = [(a_buf, a_slot, rows_for(ph * pw * cc, in_bits, em.row_bits))]
        if binary:
            reads.append((Buf.OUT, b_slot, reads[0][2]))
        if p_slot is not None:
            reads.append((Buf.PARAM, p_slot, 1))
        base = em.slots
        em.compute(
            Insn(
                Op.ALU,
                alu_op=alu_op,
                a_buf=a_buf,
                a_addr=base[a_buf].base(a_slot),
                b_buf=Buf.OUT if binary else a_buf,
                b_addr=base[Buf.OUT].base(b_slot) if binary else base[a_buf].base(a_slot),
                dst_buf=Buf.OUT,
                dst_addr=base[Buf.OUT].base(dst_slot),
                param_addr=base[Buf.PARAM].base(p_slot) if p_slot is not None else 0,
                h=ph,
                w=pw,
                c=cc,
                kh=kh,
                kw=kw,
                stride=stride,
                in_bits=in_bits,
                in_mode=MODE_BY_NAME[dst.mode if binary else src.mode],
                bits=dst.bits,
                mode=MODE_BY_NAME[dst.mode],
                zp=dst.zero_point,
                imm=0 if self.is_max else self.p.zp_in,
            ),
            reads,
            [(Buf.OUT, dst_slot, rows_for(n_out, dst.bits, em.row_bits))],
        )

    def store(self, out_slot, img, oy, ox, rows, cols, c0, cc) -> None:
        em, pout = self.em, self.pout
        _, oh, ow, c = pout.shape
        addr = pout.dram_addr + ((img * oh + oy) * ow + ox) * c + c0
        em.store(Buf.OUT, out_slot, addr, rows, cols, cc, ow * c, c, self.dst.bits, self.dst.mode)


def emit_pool(em: Emitter, op, g, places, cfg) -> None:
    """Emit the instructions of one MaxPool, AvgPool or GlobalAvgPool node."""
    pool = _Pool(em, op, g, places, cfg)
    if isinstance(op, GlobalAvgPool):
        _global(pool)
    elif max(op.kernel) <= WINDOW_MAX and (pool.is_max or not any(op.padding)):
        _padded_tiles(pool)
    else:
        _clipped_windows(pool)


def _channel_tile(pool: _Pool, rows: int, cols: int, what: str, limit: str) -> int:
    """The widest channel slice (a halving of the channels) of a rows x cols plane that fits
    one averaging step; HardwareLimitError (`what`, `limit`) if one channel does not."""
    c = pool.pin.shape[3]
    c_t = next((t for t in halvings(c) if pool.fits(rows, cols, t, 1)), None)
    if c_t is None:
        raise HardwareLimitError(f"node {pool.op.name!r}: {what}", limit)
    return c_t


def _global(pool: _Pool) -> None:
    """GAP over each image's whole plane, in channel slices that fit."""
    n, h, w, c = pool.pin.shape
    c_t = _channel_tile(
        pool,
        h,
        w,
        f"one channel of the {h}x{w} plane does not fit half of INP (GlobalAvgPool reads the "
        "whole plane)",
        "GlobalAvgPool plane larger than half of INP",
    )
    p_slot = pool.params(h * w)
    for img in range(n):
        for c0 in range(0, c, c_t):
            cc = min(c_t, c - c0)
            slot = pool.load(img, 0, 0, h, w, c0, cc)
            out = pool.em.slots[Buf.OUT].take()
            pool.alu(AluOp.GAP, Buf.INP, slot, None, out, h, w, cc, 1, 1, 1, p_slot)
            pool.store(out, img, 0, 0, 1, 1, c0, cc)


def _padded_tiles(pool: _Pool) -> None:
    """Padded tiles of output rows x columns x channels (module docstring)."""
    op, em = pool.op, pool.em
    n, h, w, c = pool.pin.shape
    _, oh, ow, _ = pool.pout.shape
    (kh, kw), (sy, sx), (pt, _, pl, pr) = op.kernel, op.stride, op.padding
    one_row = sy != sx or sy > STRIDE_MAX
    cols_opts = [1] if sx > STRIDE_MAX else halvings(ow)
    best = None
    for ow_t in cols_opts:  # widest rows first, then the most channels, then the most rows
        pw = w + pl + pr if ow_t == ow else (ow_t - 1) * sx + kw
        for c_t in halvings(c):
            fit = [t for t in range(1, 2 if one_row else oh + 1)
                   if pool.fits((t - 1) * sy + kh, pw, c_t, t * ow_t)]  # fmt: skip
            if fit:
                best = (max(fit), ow_t, c_t)
                break
        if best:
            break
    if best is None:
        raise HardwareLimitError(
            f"node {op.name!r}: one {kh}x{kw} window of one channel does not fit half of INP",
            "pooling window larger than half of INP",
        )
    oh_t, ow_t, c_t = best
    alu_op = AluOp.MAXPOOL if pool.is_max else AluOp.AVGPOOL
    p_slot = None if pool.is_max else pool.params(kh * kw)
    for img in range(n):
        for oy0 in range(0, oh, oh_t):
            t_oh = min(oh_t, oh - oy0)
            ph, iy0 = (t_oh - 1) * sy + kh, oy0 * sy - pt
            top, bottom = max(0, -iy0), max(0, iy0 + ph - h)
            for ox0 in range(0, ow, ow_t):
                t_ow = min(ow_t, ow - ox0)
                pw, ix0 = (t_ow - 1) * sx + kw, ox0 * sx - pl
                if t_ow == ow:  # whole rows: the padded row (columns past the last window too)
                    pw = w + pl + pr
                left, right = max(0, -ix0), max(0, ix0 + pw - w)
                stride = sy if t_oh > 1 else sx
                stride = stride if stride <= STRIDE_MAX else 1  # one pixel: unused
                for c0 in range(0, c, c_t):
                    cc = min(c_t, c - c0)
                    pads = (top, bottom, left, right)
                    rows, cols = ph - top - bottom, pw - left - right
                    slot = pool.load(img, iy0 + top, ix0 + left, rows, cols, c0, cc, pads)
                    out = em.slots[Buf.OUT].take()
                    pool.alu(alu_op, Buf.INP, slot, None, out, ph, pw, cc, kh, kw, stride, p_slot)
                    pool.store(out, img, oy0, ox0, t_oh, t_ow, c0, cc)


def _runs(n_out: int, size: int, k: int, s: int, pad: int) -> list[tuple[int, int, int, int]]:
    """Outputs along one axis grouped by clipped window: (first output, end output, first
    input of the first window, window length); interior outputs (whole windows) form one run,
    every border output is its own run."""
    runs: list[list[int]] = []
    for o in range(n_out):
        lo = o * s - pad
        a, b = max(lo, 0), min(lo + k, size)
        whole = a == lo and b == lo + k
        if whole and runs and runs[-1][4] and runs[-1][1] == o:
            runs[-1][1] = o + 1
        else:
            runs.append([o, o + 1, a, b - a, whole])
    return [(o0, o1, a, length) for o0, o1, a, length, _ in runs]


def _clipped_windows(pool: _Pool) -> None:
    """Rectangles of outputs with equal clipped windows (module docstring)."""
    op = pool.op
    n, h, w, c = pool.pin.shape
    _, oh, ow, _ = pool.pout.shape
    (kh, kw), (sy, sx), (pt, _, pl, _) = op.kernel, op.stride, op.padding
    rows, cols = _runs(oh, h, kh, sy, pt), _runs(ow, w, kw, sx, pl)
    for img in range(n):
        for oy0, oy1, y0, lr in rows:
            for ox0, ox1, x0, lc in cols:
                if max(lr, lc) > WINDOW_MAX:  # per output pixel
                    for oy in range(oy0, oy1):
                        for ox in range(ox0, ox1):
                            y, x = y0 + (oy - oy0) * sy, x0 + (ox - ox0) * sx
                            _big_window(pool, img, oy, ox, y, x, lr, lc)
                    continue
                split_rows = oy1 - oy0 > 1 and (sy != sx or sy > STRIDE_MAX)
                for r0 in range(oy0, oy1) if split_rows else [oy0]:
                    r1 = r0 + 1 if split_rows else oy1
                    y = y0 + (r0 - oy0) * sy
                    _rectangle(pool, img, r0, r1, ox0, ox1, y, x0, lr, lc)


def _rectangle(pool: _Pool, img, oy0, oy1, ox0, ox1, y0, x0, lr, lc) -> None:
    """Outputs [oy0, oy1) x [ox0, ox1) whose lr x lc windows start at input (y0, x0) and step by
    the strides: tiles of them pooled over unpadded patches."""
    op, em = pool.op, pool.em
    c = pool.pin.shape[3]
    sy, sx = op.stride
    n_r, n_c = oy1 - oy0, ox1 - ox0
    best = None
    for c_t in halvings(c):  # the most channels, then the most columns and rows
        for t_c in [1] if sx > STRIDE_MAX else halvings(n_c):
            t_r = next((t for t in halvings(n_r) if pool.fits(
                (t - 1) * sy + lr, (t_c - 1) * sx + lc, c_t, t * t_c)), None)  # fmt: skip
            if t_r is not None:
                best = (t_r, t_c, c_t)
                break
        if best:
            break
    if best is None:
        raise HardwareLimitError(
            f"node {op.name!r}: one {lr}x{lc} window of one channel does not fit half of INP",
            "pooling window larger than half of INP",
        )
    t_r, t_c, c_t = best
    alu_op = AluOp.MAXPOOL if pool.is_max else AluOp.AVGPOOL
    p_slot = None if pool.is_max else pool.params(lr * lc)
    for r in range(oy0, oy1, t_r):
        rr = min(t_r, oy1 - r)
        y = y0 + (r - oy0) * sy
        for q in range(ox0, ox1, t_c):
            qq = min(t_c, ox1 - q)
            x = x0 + (q - ox0) * sx
            ph, pw = (rr - 1) * sy + lr, (qq - 1) * sx + lc
            stride = sy if rr > 1 else sx
            stride = stride if stride <= STRIDE_MAX else 1
            for c0 in range(0, c, c_t):
                cc = min(c_t, c - c0)
                slot = pool.load(img, y, x, ph, pw, c0, cc)
                out = em.slots[Buf.OUT].take()
                pool.alu(alu_op, Buf.INP, slot, None, out, ph, pw, cc, lr, lc, stride, p_slot)
                pool.store(out, img, r, q, rr, qq, c0, cc)


def _big_window(pool: _Pool, img, oy, ox, y0, x0, lr, lc) -> None:
    """One output pixel whose lr x lc window (clipped) is wider than an ALU window."""
    em, op = pool.em, pool.op
    c = pool.pin.shape[3]
    if not pool.is_max:
        c_t = _channel_tile(
            pool,
            lr,
            lc,
            f"one {lr}x{lc} window of one channel does not fit half of INP (its average is "
            "one GAP)",
            "pooling window larger than half of INP",
        )
        p_slot = pool.params(lr * lc)
        for c0 in range(0, c, c_t):
            cc = min(c_t, c - c0)
            slot = pool.load(img, y0, x0, lr, lc, c0, cc)
            out = em.slots[Buf.OUT].take()
            pool.alu(AluOp.GAP, Buf.INP, slot, None, out, lr, lc, cc, 1, 1, 1, p_slot)
            pool.store(out, img, oy, ox, 1, 1, c0, cc)
        return
    parts = [(y, x, min(WINDOW_MAX, lr - y), min(WINDOW_MAX, lc - x))
             for y in range(0, lr, WINDOW_MAX) for x in range(0, lc, WINDOW_MAX)]  # fmt: skip
    r_max, q_max = min(lr, WINDOW_MAX), min(lc, WINDOW_MAX)
    c_t = next((t for t in halvings(c) if pool.fits(r_max, q_max, t, 1)), None)
    if c_t is None:
        raise HardwareLimitError(
            f"node {op.name!r}: one {r_max}x{q_max} window of one channel does not fit half of INP",
            "pooling window larger than half of INP",
        )
    for c0 in range(0, c, c_t):
        cc = min(c_t, c - c0)
        acc = None
        for y, x, r, q in parts:  # max of the sub-windows' maxima
            slot = pool.load(img, y0 + y, x0 + x, r, q, c0, cc)
            out = em.slots[Buf.OUT].take()
            pool.alu(AluOp.MAXPOOL, Buf.INP, slot, None, out, r, q, cc, r, q, 1, None)
            if acc is not None:
                pool.alu(AluOp.MAX, Buf.OUT, acc, out, out, 1, 1, cc, 1, 1, 1, None)
            acc = out
        pool.store(acc, img, oy, ox, 1, 1, c0, cc)
