"""Vector unit (ALU): elementwise ops and pooling windows on h x w x c integer tiles.

Cost of one ALU instruction::

    cycles = latency_cycles + ceil(elements / lanes)

where `elements` is h*w*c for elementwise ops and global average pooling, and the number of
window reads oh*ow*c*kh*kw for MAXPOOL and AVGPOOL (oh = (h - kh)//stride + 1, likewise ow).

Operands: `a` (and `b` for ADD, MAX, MIN) are tiles of h*w*c elements of `in_bits` bits read at
a_buf/a_addr (b_buf/b_addr); the result goes to dst_buf/dst_addr at `bits` bits, `mode`.
Pooling reads `a` as an NHWC patch [h, w, c] that the LOAD has already padded (no further
padding: for MAXPOOL pad with the smallest input value, for AVGPOOL with the input zero point).

PARAM layouts (int32 values at param_addr, read with bits = 32):

    ADD      [ma, mb, t, za, zb]   y = clamp(zp + RS((a - za)*ma + (b - zb)*mb; t))
    CLIP     [lo, hi]              y = clamp(a, max(lo, out_lo), min(hi, out_hi))
    AVGPOOL  [m, t]                y = clamp(zp + R(sum_window(a - imm); m, t))
    GAP      [m, t]                same over the whole h x w plane; output c elements

`imm`: ADD: bit 0 = fused ReLU; SHIFT: shift amount (> 0 right, rounding half up; < 0 left,
saturating); AVGPOOL / GAP: the input zero point. MAX, MIN and MAXPOOL clamp their result to
the output range. Rounding: ADD, AVGPOOL and GAP use `rescale.round_mode` (shared rounding
hardware; AVGPOOL and GAP also `rescale.mult_bits`); SHIFT rounds half up.
Datapath: `accelsim.kernels.alu`.
"""

from __future__ import annotations

import numpy as np

from accelsim.errors import IsaError
from accelsim.isa import AluOp, Buf, Mode, Unit
from accelsim.kernels import alu
from accelsim.kernels.common import output_range
from accelsim.memory import tile_rows
from accelsim.numeric import sign_mode, storage_dtype
from accelsim.units.base import SRAM_READ, SRAM_WRITE, UnitBase

PARAM_WORDS = {AluOp.ADD: 5, AluOp.CLIP: 2, AluOp.AVGPOOL: 2, AluOp.GAP: 2}
_BINARY = (AluOp.ADD, AluOp.MAX, AluOp.MIN)
_POOL = (AluOp.MAXPOOL, AluOp.AVGPOOL)


def pool_out(h: int, w: int, kh: int, kw: int, stride: int) -> tuple[int, int]:
    """(oh, ow) of an unpadded pooling window over an h x w patch."""
    if kh > h or kw > w:
        raise IsaError(f"pool window {kh}x{kw} is larger than the {h}x{w} patch")
    return (h - kh) // stride + 1, (w - kw) // stride + 1


def vector_elements(
    op: int, h: int, w: int, c: int, kh: int = 1, kw: int = 1, stride: int = 1
) -> int:
    """Elements the ALU processes for one instruction (window reads for pooling)."""
    if op in _POOL:
        oh, ow = pool_out(h, w, kh, kw, stride)
        return oh * ow * c * kh * kw
    return h * w * c


def vector_cycles(
    cfg, op: int, h: int, w: int, c: int, kh: int = 1, kw: int = 1, stride: int = 1
) -> int:
    """Cycles of one ALU instruction:

    cycles = latency_cycles + ceil(elements / lanes), elements = h*w*c (pooling: the window
             reads oh*ow*c*kh*kw)
    """
    v = cfg.vector
    return v.latency_cycles + -(-vector_elements(op, h, w, c, kh, kw, stride) // v.lanes)


def out_elements(op: int, h: int, w: int, c: int, kh: int, kw: int, stride: int) -> int:
    """Elements an ALU instruction writes."""
    if op in _POOL:
        oh, ow = pool_out(h, w, kh, kw, stride)
        return oh * ow * c
    return c if op == AluOp.GAP else h * w * c


class Vector(UnitBase):
    """The vector ALU. Cost: `vector_cycles`; datapath: kernels.alu."""

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
        cyc = self.cfg.vector.latency_cycles + -(-n_el // self.cfg.vector.lanes)
        in_rows = tile_rows(h * w * c, f["in_bits"], rb)
        acc = [(f["a_buf"], "a_addr", in_rows, False)]
        if op in _BINARY:
            acc.append((f["b_buf"], "b_addr", in_rows, False))
        if op in PARAM_WORDS:
            acc.append((Buf.PARAM, "param_addr", tile_rows(PARAM_WORDS[op], 32, rb), False))
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
        p = (
            [int(v) for v in mem.read(Buf.PARAM, f["param_addr"], PARAM_WORDS[op], 32, who)]
            if op in PARAM_WORDS
            else None
        )
        bits, signed, zp = f["bits"], f["mode"] == Mode.SIGNED, f["zp"]
        rc = self.cfg.rescale
        if op == AluOp.ADD:
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
