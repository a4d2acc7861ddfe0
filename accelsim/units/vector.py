"""Vector unit (ALU): elementwise ops, pooling windows and row ops on h x w x c integer tiles.

Cost of one ALU instruction::

    cycles = latency_cycles + ceil(elements / lanes)

where `elements` is h*w*c for elementwise ops (GELU included: its polynomial is pipelined in
each lane) and global average pooling, and the number of window reads oh*ow*c*kh*kw for MAXPOOL
and AVGPOOL (oh = (h - kh)//stride + 1, likewise ow). The row ops SOFTMAX and LAYERNORM work on
h*w rows of c elements, one row at a time, and read each row three times (softmax: max, then
exp and sum, then normalize; layer norm: sum, then sum of squared deviations, then normalize
and scale), with a scalar step per row between passes that divides (softmax: 2^48 // sum;
layer norm: the mean, ISQRT_DIVISIONS Newton steps of the square root, 2^31 // std) on a
sequential divider of `divide_cycles`::

    cycles = latency_cycles + h*w * (3 * ceil(c / lanes) + divisions * divide_cycles)
    divisions = 1 (SOFTMAX), 2 + ISQRT_DIVISIONS = 9 (LAYERNORM)

Example (edge: 16 lanes, latency 2, divide_cycles 16): SOFTMAX over 12 rows of 128 costs
2 + 12 * (3 * 8 + 16) = 482 cycles; LAYERNORM over 4 rows of 768 costs 2 + 4 * (3 * 48 + 9 *
16) = 1154. `vector_ops` counts three reads per element for the row ops.

Operands: `a` (and `b` for ADD, MAX, MIN) are tiles of h*w*c elements of `in_bits` bits read at
a_buf/a_addr (b_buf/b_addr); the result goes to dst_buf/dst_addr at `bits` bits, `mode`.
Pooling reads `a` as an NHWC patch [h, w, c] that the LOAD has already padded (no further
padding: for MAXPOOL pad with the smallest input value, for AVGPOOL with the input zero point).

PARAM layouts (int32 values at param_addr, read with bits = 32):

    ADD        [ma, mb, t, za, zb]   y = clamp(zp + RS((a - za)*ma + (b - zb)*mb; t))
    CLIP       [lo, hi]              y = clamp(a, max(lo, out_lo), min(hi, out_hi))
    AVGPOOL    [m, t]                y = clamp(zp + R(sum_window(a - imm); m, t))
    GAP        [m, t]                same over the whole h x w plane; output c elements
    SOFTMAX    [k, q_ln2, q_b, q_c]  unsigned output of scale 2^-bits (zp 0)
    GELU       [k, q_b, q_c, m, t, zx]   zx: the input zero point
    LAYERNORM  [t, g_0..g_c-1, o_0..o_c-1]   2c + 1 words

`imm`: ADD: bit 0 = fused ReLU; SHIFT: shift amount (> 0 right, rounding half up; < 0 left,
saturating); AVGPOOL / GAP: the input zero point. MAX, MIN and MAXPOOL clamp their
result to the output range. Rounding: ADD, AVGPOOL, GAP, GELU and LAYERNORM use
`rescale.round_mode` (shared rounding hardware; AVGPOOL, GAP and GELU also
`rescale.mult_bits`); SHIFT rounds half up. SOFTMAX, GELU and LAYERNORM are I-BERT's
integer-only operations (`accelsim.kernels.ibert`, whose docstring defines them).
Datapath: `accelsim.kernels.alu`, `accelsim.kernels.ibert`.
"""

from __future__ import annotations

import numpy as np

from accelsim.errors import IsaError
from accelsim.isa import AluOp, Buf, Mode, Unit
from accelsim.kernels import alu, ibert
from accelsim.kernels.common import output_range
from accelsim.kernels.ibert import ISQRT_DIVISIONS
from accelsim.memory import tile_rows
from accelsim.numeric import sign_mode, storage_dtype
from accelsim.units.base import SRAM_READ, SRAM_WRITE, UnitBase

PARAM_WORDS = {
    AluOp.ADD: 5,
    AluOp.CLIP: 2,
    AluOp.AVGPOOL: 2,
    AluOp.GAP: 2,
    AluOp.SOFTMAX: 4,
    AluOp.GELU: 6,
}
_BINARY = (AluOp.ADD, AluOp.MAX, AluOp.MIN)
_POOL = (AluOp.MAXPOOL, AluOp.AVGPOOL)
ROW_PASSES = 3  # reads of every row by SOFTMAX and LAYERNORM
ROW_DIVISIONS = {AluOp.SOFTMAX: 1, AluOp.LAYERNORM: 2 + ISQRT_DIVISIONS}  # per row


def param_words(op: int, c: int) -> int:
    """int32 PARAM words an ALU operation reads (0: none); LAYERNORM's grow with c."""
    if op == AluOp.LAYERNORM:
        return 2 * c + 1
    return PARAM_WORDS.get(op, 0)


def pool_out(h: int, w: int, kh: int, kw: int, stride: int) -> tuple[int, int]:
    """(oh, ow) of an unpadded pooling window over an h x w patch."""
    if kh > h or kw > w:
        raise IsaError(f"pool window {kh}x{kw} is larger than the {h}x{w} patch")
    return (h - kh) // stride + 1, (w - kw) // stride + 1


def vector_elements(
    op: int, h: int, w: int, c: int, kh: int = 1, kw: int = 1, stride: int = 1
) -> int:
    """Elements the ALU processes for one instruction (window reads for pooling, three reads
    per element for the row ops)."""
    if op in _POOL:
        oh, ow = pool_out(h, w, kh, kw, stride)
        return oh * ow * c * kh * kw
    if op in ROW_DIVISIONS:
        return ROW_PASSES * h * w * c
    return h * w * c


def vector_cycles(
    cfg, op: int, h: int, w: int, c: int, kh: int = 1, kw: int = 1, stride: int = 1
) -> int:
    """Cycles of one ALU instruction:

    cycles = latency_cycles + ceil(elements / lanes), elements = h*w*c (pooling: the window
             reads oh*ow*c*kh*kw); SOFTMAX, LAYERNORM: latency_cycles + h*w * (3 * ceil(c /
             lanes) + divisions * divide_cycles), divisions 1 (softmax), 9 (layer norm)
    """
    v = cfg.vector
    if op in ROW_DIVISIONS:
        per_row = ROW_PASSES * -(-c // v.lanes) + ROW_DIVISIONS[op] * v.divide_cycles
        return v.latency_cycles + h * w * per_row
    return v.latency_cycles + -(-vector_elements(op, h, w, c, kh, kw, stride) // v.lanes)


def out_elements(op: int, h: int, w: int, c: int, kh: int, kw: int, stride: int) -> int:
    """Elements an ALU instruction writes."""
    if op in _POOL:
        oh, ow = pool_out(h, w, kh, kw, stride)
        return oh * ow * c
    return c if op == AluOp.GAP else h * w * c


class Vector(UnitBase):
    """The vector ALU. Cost: `vector_cycles`; datapath: kernels.alu and kernels.ibert."""

    unit = Unit.VECTOR
    ADDR_FIELDS = ("a_addr", "b_addr", "dst_addr", "param_addr")

    def cycles(self, insn) -> int:
        f = insn.f  # the ALU operation (Insn.op is the opcode)
        return vector_cycles(
            self.cfg, f["alu_op"], f["h"], f["w"], f["c"], f["kh"], f["kw"], f["stride"]
        )

    def profile(self, insn):
        f = insn.f
        op, h, w, c, rb = f["alu_op"], f["h"], f["w"], f["c"], self.row_bits
        try:
            n_el = vector_elements(op, h, w, c, f["kh"], f["kw"], f["stride"])
            n_out = out_elements(op, h, w, c, f["kh"], f["kw"], f["stride"])
        except IsaError as exc:
            raise IsaError(f"insn {insn.index} ALU {AluOp(op).name}: {exc}") from None
        cyc = vector_cycles(self.cfg, op, h, w, c, f["kh"], f["kw"], f["stride"])
        in_rows = tile_rows(h * w * c, f["in_bits"], rb)
        acc = [(f["a_buf"], "a_addr", in_rows, False)]
        if op in _BINARY:
            acc.append((f["b_buf"], "b_addr", in_rows, False))
        if param_words(op, c):
            acc.append((Buf.PARAM, "param_addr", tile_rows(param_words(op, c), 32, rb), False))
        acc.append((f["dst_buf"], "dst_addr", tile_rows(n_out, f["bits"], rb), True))
        counts = [("vector_ops", n_el)]
        counts += [((SRAM_WRITE if wr else SRAM_READ)[b], rows * rb) for b, _, rows, wr in acc]
        return cyc, tuple(acc), tuple(counts)

    def run(self, insn, mem):
        f = insn.f
        op, h, w, c = AluOp(f["alu_op"]), f["h"], f["w"], f["c"]
        who = f"insn {insn.index} ALU {op.name}"
        a = mem.read(f["a_buf"], f["a_addr"], h * w * c, f["in_bits"], who).reshape(h, w, c)
        b = (
            mem.read(f["b_buf"], f["b_addr"], h * w * c, f["in_bits"], who).reshape(h, w, c)
            if op in _BINARY
            else None
        )
        n_words = param_words(op, c)
        p = (
            [int(v) for v in mem.read(Buf.PARAM, f["param_addr"], n_words, 32, who)]
            if n_words
            else None
        )
        bits, signed, zp = f["bits"], f["mode"] == Mode.SIGNED, f["zp"]
        rc = self.cfg.rescale
        if op in (AluOp.SOFTMAX, AluOp.GELU, AluOp.LAYERNORM):
            y = _ibert(op, a, p, f, rc, who)
        elif op == AluOp.ADD:
            y = alu.add(
                a,
                b,
                ma=p[0],
                mb=p[1],
                t=p[2],
                za=p[3],
                zb=p[4],
                zp=zp,
                bits=bits,
                signed=signed,
                mode=rc.round_mode,
                relu=bool(f["imm"] & 1),
            )
        elif op in (AluOp.MAX, AluOp.MIN, AluOp.MAXPOOL, AluOp.CLIP):
            x = (
                alu.maximum(a, b)
                if op == AluOp.MAX
                else alu.minimum(a, b)
                if op == AluOp.MIN
                else alu.maxpool(a, f["kh"], f["kw"], f["stride"])
                if op == AluOp.MAXPOOL
                else a
            )
            lo, hi = output_range(bits, signed)
            if op == AluOp.CLIP:
                lo, hi = max(lo, p[0]), min(hi, p[1])
            y = alu.clip(x.astype(np.int32), lo, hi).astype(storage_dtype(bits, sign_mode(signed)))
        elif op == AluOp.SHIFT:
            y = alu.shift(a, f["imm"], bits=bits, signed=signed, mode="single")
        elif op == AluOp.AVGPOOL:
            y = alu.avgpool(
                a,
                f["kh"],
                f["kw"],
                f["stride"],
                mult=p[0],
                shift=p[1],
                zp_in=f["imm"],
                zp=zp,
                bits=bits,
                signed=signed,
                mode=rc.round_mode,
                mult_bits=rc.mult_bits,
            )
        else:  # GAP
            y = alu.global_avgpool(
                a,
                mult=p[0],
                shift=p[1],
                zp_in=f["imm"],
                zp=zp,
                bits=bits,
                signed=signed,
                mode=rc.round_mode,
                mult_bits=rc.mult_bits,
            )
        mem.write(f["dst_buf"], f["dst_addr"], y, bits)


def _ibert(op, a, p, f, rc, who: str):
    """SOFTMAX, GELU or LAYERNORM on tile `a` ([h, w, c]) with PARAM words `p`."""
    bits, signed, zp = f["bits"], f["mode"] == Mode.SIGNED, f["zp"]
    if op == AluOp.SOFTMAX:
        if signed or zp:
            raise IsaError(f"{who}: writes unsigned probabilities with zero point 0")
        return ibert.softmax(a, shift=p[0], q_ln2=p[1], q_b=p[2], q_c=p[3], bits=bits)
    out = dict(zp=zp, bits=bits, signed=signed, mode=rc.round_mode)
    if op == AluOp.GELU:
        return ibert.gelu(
            a, zx=p[5], shift=p[0], q_b=p[1], q_c=p[2], mult=p[3], t=p[4],
            mult_bits=rc.mult_bits, **out,
        )  # fmt: skip
    c = f["c"]
    return ibert.layernorm(a, gain=p[1 : 1 + c], offset=p[1 + c :], t=p[0], **out)
