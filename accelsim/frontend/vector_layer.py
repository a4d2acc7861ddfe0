"""Emission of the non-GEMM layers on the vector ALU (and the DMA for plain copies).

- Add, Clip, Trunc (an ADD of the input with itself), Softmax, Gelu, LayerNorm: the tensors
  are viewed as [rows, C] (C the last axis); tiles of whole rows go LOAD -> ALU -> STORE.
  (Softmax and LayerNorm work along C; a LayerNorm's 2C + 1 parameter words may take the
  whole PARAM buffer.)
- MaxPool, AvgPool, GlobalAvgPool: `accelsim.frontend.pool_layer`.
- Concat: each input is copied into its channel slice of the output (LOAD then STORE from the
  input buffer), or requantized on the way (LOAD as int32 into ACC, RESCALE, STORE).
- Upsample: per tile of whole input rows, one LOAD and fh*fw strided STOREs (DMA only).
ALU parameter layouts are those of `accelsim.units.vector` (int32 words in PARAM).
"""

from __future__ import annotations

import math

import numpy as np

from accelsim.config import HwConfig
from accelsim.errors import AccelsimError, HardwareLimitError
from accelsim.frontend.emit import ACC_BITS, MODE_BY_NAME, PARAM_BITS, Emitter, rows_for
from accelsim.frontend.pool_layer import alu_params, emit_pool, param_words
from accelsim.ir.graph import Graph
from accelsim.ir.ops import Add, AvgPool, Clip, Concat, GlobalAvgPool, MaxPool, Trunc, Upsample
from accelsim.ir.params import add_params, concat_params, trunc_params
from accelsim.ir.transformer_ops import Gelu, LayerNorm, Softmax
from accelsim.ir.transformer_params import gelu_params, layernorm_params, softmax_params
from accelsim.isa import AluOp, Buf, Insn, Op, field_max

REPEAT_TILES = True  # middle tiles of row-tiled nodes copied from the first (False: emitted)
# most [rows, C] rows one tile moves: d1 of its LOAD / STORE, w of its ALU op, m of its RESCALE
MAX_TILE_ROWS = min(
    field_max(Op.LOAD, "d1"),
    field_max(Op.STORE, "d1"),
    field_max(Op.ALU, "w"),
    field_max(Op.RESCALE, "m"),
)


def emit_vector_node(em: Emitter, op, g: Graph, places, cfg: HwConfig) -> None:
    """Emit the instructions of one vector-unit node."""
    kind = _EMIT.get(type(op))
    if kind is None:
        raise AccelsimError(
            f"node {op.name!r}: op {type(op).__name__} is not supported by the lowering"
        )
    kind(em, op, g, places, cfg)


def _row_op(op, g: Graph, cfg: HwConfig) -> tuple[AluOp, list[int], int, int]:
    """(ALU operation, PARAM words, imm, output zero point) of a row-tiled node."""
    mult_bits = cfg.rescale.mult_bits
    if isinstance(op, (Add, Trunc)):  # a Trunc reads its one input as both operands
        p = add_params(op, g, mult_bits) if isinstance(op, Add) else trunc_params(op, g)
        return AluOp.ADD, [p.ma, p.mb, p.t, p.za, p.zb], int(bool(p.relu)), p.zp
    if isinstance(op, Softmax):
        return AluOp.SOFTMAX, softmax_params(op, g).words(), 0, 0
    if isinstance(op, Gelu):
        p = gelu_params(op, g, mult_bits)
        return AluOp.GELU, p.words(), 0, p.zp
    if isinstance(op, LayerNorm):
        p = layernorm_params(op, g, mult_bits)
        return AluOp.LAYERNORM, p.words(), 0, p.zp
    return AluOp.CLIP, [op.lo, op.hi], 0, g.tensors[op.output].zero_point


def _param_slots(em: Emitter, op, n_words: int) -> bool:
    """Make one PARAM slot of the whole buffer when the node's words need more than a slot
    (True: the caller re-cuts PARAM into two slots after the node)."""
    if rows_for(n_words, 32, em.row_bits) <= em.slots[Buf.PARAM].rows:
        return False
    em.use_slots(Buf.PARAM, 1)
    if rows_for(n_words, 32, em.row_bits) > em.slots[Buf.PARAM].rows:  # read by one ALU op
        raise HardwareLimitError(
            f"node {op.name!r}: its {n_words} ALU parameter words do not fit the "
            f"{em.slots[Buf.PARAM].rows * em.row_bits // 8}-byte PARAM buffer",
            "ALU parameters larger than PARAM",
        )
    return True


def _rows_per_tile(em: Emitter, c: int, bits_in: list[int], out_bits: int, total: int) -> int:
    """Most rows of c elements such that each input fits an INP slot and the output an OUT
    slot (at least 1)."""
    inp, out = em.slots[Buf.INP].rows, em.slots[Buf.OUT].rows
    rb = em.row_bits
    best = 0
    lo, hi = 1, min(total, MAX_TILE_ROWS)
    while lo <= hi:
        mid = (lo + hi) // 2
        ok = (
            all(rows_for(mid * c, b, rb) <= inp for b in bits_in)
            and rows_for(mid * c, out_bits, rb) <= out
        )
        if ok:
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    if best == 0:
        raise AccelsimError(f"a row of {c} channels does not fit the INP/OUT buffers")
    return best


def _rows_view(place):
    shape = place.shape
    return int(np.prod(shape[:-1])), shape[-1]


def _common_format(srcs) -> tuple[int, str]:
    """One element format holding both operands of a binary ALU op: the ALU reads both at one
    width, so the DMA loads the narrower operand widened (DRAM bytes counted at that width)."""
    modes = {t.mode for t in srcs}
    if len(modes) == 1:
        return max(t.bits for t in srcs), srcs[0].mode
    need = [t.bits + (t.mode == "unsigned") for t in srcs]  # signed width holding each
    return max(need), "signed"


def _elementwise(em: Emitter, op, g: Graph, places, cfg: HwConfig) -> None:
    out_t = g.tensors[op.output]
    srcs = [g.tensors[i] for i in op.inputs]
    pout = places[op.output]
    rows, c = _rows_view(pout)
    em.use_slots(Buf.INP, 4)
    alu_op, words, imm, zp = _row_op(op, g, cfg)
    whole_param = _param_slots(em, op, len(words))
    p_slot = param_words(em, alu_params(em, words), len(words))
    in_bits, in_mode = _common_format(srcs)
    step = _rows_per_tile(em, c, [in_bits], out_t.bits, rows)
    fmt = (in_bits, in_mode, out_t.bits, out_t.mode)

    def tile(r0: int, n: int) -> None:
        """Emit the tile of rows [r0, r0 + n)."""
        slots = []
        for name in op.inputs:
            slot = em.slots[Buf.INP].take()
            em.load(Buf.INP, slot, places[name].dram_addr + r0 * c, 1, n, c, 0, c, in_bits, in_mode)
            slots.append((slot, rows_for(n * c, in_bits, em.row_bits)))
        out_slot = em.slots[Buf.OUT].take()
        _alu_rows(em, (alu_op, imm, zp, len(words)), slots, p_slot, out_slot, n, c, fmt)
        em.store(Buf.OUT, out_slot, pout.dram_addr + r0 * c, 1, n, c, 0, c, out_t.bits, out_t.mode)

    tiles = -(-rows // step)
    # Every tile takes the least recently used INP slot per input and OUT slot, and PARAM stays:
    # the slots go round, so the tiles repeat every `period` tiles with their DRAM addresses
    # moved, and the middle ones are copied (`Emitter.repeat`) from the first.
    inp_slots = len(em.slots[Buf.INP].keys)
    period = math.lcm(inp_slots // math.gcd(inp_slots, len(op.inputs)), len(em.slots[Buf.OUT].keys))
    if not REPEAT_TILES or tiles <= 2 * period:
        for r0 in range(0, rows, step):
            tile(r0, min(step, rows - r0))
    else:
        for k in range(period):
            tile(k * step, step)
        middle = np.arange(period, tiles - 1)
        em.repeat(len(op.inputs) + 2, period, middle // period * period * step * c)
        em.slots[Buf.INP].advance(len(middle) * len(op.inputs))  # the slots the copies took
        em.slots[Buf.OUT].advance(len(middle))
        r0 = (tiles - 1) * step
        tile(r0, rows - r0)
    em.use_slots(Buf.INP, 2)
    if whole_param:
        em.use_slots(Buf.PARAM, 2)


def _alu_rows(em: Emitter, what: tuple, slots: list, p_slot: int, out_slot: int, n, c, fmt):
    """The ALU instruction of a row tile: `what` (ALU op, imm, zero point, PARAM words) over
    the INP `slots` [(slot, rows)] (a unary op reads its one input twice) into `out_slot`."""
    alu_op, imm, zp, n_words = what
    in_bits, in_mode, bits, mode = fmt
    b_slot = slots[1][0] if len(slots) > 1 else slots[0][0]
    em.compute(
        Insn(
            Op.ALU,
            alu_op=alu_op,
            a_buf=Buf.INP,
            a_addr=em.slots[Buf.INP].base(slots[0][0]),
            b_buf=Buf.INP,
            b_addr=em.slots[Buf.INP].base(b_slot),
            dst_buf=Buf.OUT,
            dst_addr=em.slots[Buf.OUT].base(out_slot),
            param_addr=em.slots[Buf.PARAM].base(p_slot),
            h=1,
            w=n,
            c=c,
            in_bits=in_bits,
            in_mode=MODE_BY_NAME[in_mode],
            bits=bits,
            mode=MODE_BY_NAME[mode],
            zp=zp,
            imm=imm,
        ),
        [(Buf.INP, s, r) for s, r in slots]
        + [(Buf.PARAM, p_slot, rows_for(n_words, 32, em.row_bits))],
        [(Buf.OUT, out_slot, rows_for(n * c, bits, em.row_bits))],
    )


def _concat(em: Emitter, op: Concat, g: Graph, places, cfg: HwConfig) -> None:
    pout, dst = places[op.output], g.tensors[op.output]
    rows, c_out = _rows_view(pout)
    c_off = 0
    for name, rp in zip(op.inputs, concat_params(op, g, cfg.rescale.mult_bits)):
        pin, src = places[name], g.tensors[name]
        c = pin.shape[-1]
        if rp is None:  # same quantization: a DMA copy through INP
            step = _rows_per_tile(em, c, [src.bits], 1, rows)
            for r0 in range(0, rows, step):
                n = min(step, rows - r0)
                slot = em.slots[Buf.INP].take()
                em.load(Buf.INP, slot, pin.dram_addr + r0 * c, 1, n, c, 0, c, src.bits, src.mode)
                em.store(
                    Buf.INP,
                    slot,
                    pout.dram_addr + r0 * c_out + c_off,
                    1,
                    n,
                    c,
                    0,
                    c_out,
                    src.bits,
                    src.mode,
                )
        else:
            _requantize_rows(em, op.name, rp, pin, src, pout, dst, rows, c, c_out, c_off)
        c_off += c


def _requantize_rows(em, name, rp, pin, src, pout, dst, rows, c, c_out, c_off):
    """Concat input with its own quantization: LOAD as int32 into ACC, RESCALE, STORE, in
    slices of as many channels as one PARAM slot holds parameters for.
    (The DMA reads it as 32-bit words: a 4x overcount of this rare copy's DRAM bytes.)"""
    p_addr = em.alloc_rescale_params(rp, name)
    rb = em.row_bits
    c_t = min(
        c,
        em.slots[Buf.PARAM].rows * rb // PARAM_BITS,
        em.slots[Buf.ACC].rows * rb // ACC_BITS,
        em.slots[Buf.OUT].rows * rb // dst.bits,
    )
    if c_t < 1:
        raise HardwareLimitError(
            f"node {name!r}: one channel's rescale parameters or accumulator do not fit half "
            f"of PARAM / ACC / OUT",
            "buffers smaller than the smallest tile",
        )
    for c0 in range(0, c, c_t):
        cc = min(c_t, c - c0)
        p_key = ("concat", p_addr, c0)
        em.param_slot(p_key, p_addr + 3 * c0, cc)  # once, ahead of the first row tile
        step = min(
            rows,
            em.slots[Buf.ACC].rows * rb // (ACC_BITS * cc),
            em.slots[Buf.OUT].rows * rb // (dst.bits * cc),
            MAX_TILE_ROWS,
        )
        for r0 in range(0, rows, step):
            n = min(step, rows - r0)
            acc = em.slots[Buf.ACC].take()
            em.load(Buf.ACC, acc, pin.dram_addr + r0 * c + c0, 1, n, cc, 0, c, ACC_BITS, "signed")
            em.rescale_store(
                acc,
                p_key,
                p_addr + 3 * c0,
                pout.dram_addr + r0 * c_out + c_off + c0,
                1,
                n,
                cc,
                0,
                c_out,
                dst.bits,
                dst.mode,
                zp=dst.zero_point,
            )


def _upsample(em: Emitter, op: Upsample, g: Graph, places, cfg: HwConfig) -> None:
    """Nearest upsampling: output pixel (fh*i + dy, fw*j + dx) is input pixel (i, j), so each
    input tile is stored fh*fw times, at offset (dy, dx), with output strides fh rows / fw
    pixels between consecutive input rows / pixels."""
    pin, pout, src = places[op.inputs[0]], places[op.output], g.tensors[op.inputs[0]]
    n, h, w, c = pin.shape
    fh, fw = op.factors
    step = _rows_per_tile(em, c, [src.bits], 1, h * w) // w
    if step < 1:
        raise AccelsimError(f"node {op.name!r}: one input row of {w}x{c} does not fit INP")
    out_row = w * fw * c  # elements of one output row
    for img in range(n):
        for y0 in range(0, h, step):
            ny = min(step, h - y0)
            slot = em.slots[Buf.INP].take()
            base = pin.dram_addr + (img * h + y0) * w * c
            em.load(Buf.INP, slot, base, 1, ny * w, c, 0, c, src.bits, src.mode)
            for dy in range(fh):
                for dx in range(fw):
                    dst = pout.dram_addr + img * h * fh * out_row + (y0 * fh + dy) * out_row
                    em.store(
                        Buf.INP,
                        slot,
                        dst + dx * c,
                        ny,
                        w,
                        c,
                        fh * out_row,
                        fw * c,
                        src.bits,
                        src.mode,
                    )


_EMIT = {
    Add: _elementwise,
    Trunc: _elementwise,
    Clip: _elementwise,
    Softmax: _elementwise,
    Gelu: _elementwise,
    LayerNorm: _elementwise,
    MaxPool: emit_pool,
    AvgPool: emit_pool,
    GlobalAvgPool: emit_pool,
    Concat: _concat,
    Upsample: _upsample,
}
