"""Vector unit: cost (window reads for pooling, row passes and divisions for softmax and layer
norm), PARAM layouts, datapath vs the alu and ibert refs."""

import numpy as np
import pytest

from accelsim.isa import AluOp, Buf, Insn, Mode, Op
from accelsim.kernels import alu, ibert
from accelsim.units.vector import Vector, vector_cycles
from tests.helpers import make_mem, standalone


def test_vector_cycles_by_hand(edge):
    """edge: latency 2, 16 lanes. ADD 4x4x8 = 128 elements -> 2 + 8 = 10. MAXPOOL 3x3
    stride 2 over 9x9x16: 4x4 outputs x 16 ch x 9 reads = 2304 -> 2 + 144 = 146.
    GAP over 7x7x32 = 1568 -> 2 + 98 = 100."""
    assert vector_cycles(edge, AluOp.ADD, 4, 4, 8) == 10
    assert vector_cycles(edge, AluOp.MAXPOOL, 9, 9, 16, 3, 3, 2) == 146
    assert vector_cycles(edge, AluOp.GAP, 7, 7, 32) == 100


def _setup(edge, rng, shape=(4, 5, 3)):
    mem = make_mem(edge)
    a = rng.integers(-128, 128, shape).astype(np.int8)
    b = rng.integers(-128, 128, shape).astype(np.int8)
    mem.write(Buf.INP, 0, a, 8)
    mem.write(Buf.OUT, 0, b, 8)
    return mem, a, b


def _run(edge, mem, op, **fields):
    insn = Insn(
        Op.ALU,
        alu_op=op,
        a_buf=Buf.INP,
        b_buf=Buf.OUT,
        dst_buf=Buf.OUT,
        dst_addr=20,
        in_bits=8,
        bits=8,
        **fields,
    )
    standalone(Vector, edge).run(insn, mem)
    return insn


def test_add_with_param_layout(edge):
    rng = np.random.default_rng(6)
    mem, a, b = _setup(edge, rng)
    mem.write(Buf.PARAM, 0, np.array([3000, -1500, 12, 2, -3], np.int32), 32)  # ma mb t za zb
    _run(edge, mem, op=AluOp.ADD, h=4, w=5, c=3, zp=1, imm=1)
    expect = alu.add_ref(
        a,
        b,
        ma=3000,
        mb=-1500,
        t=12,
        za=2,
        zb=-3,
        zp=1,
        bits=8,
        signed=True,
        mode="single",
        relu=True,
    )
    np.testing.assert_array_equal(mem.read(Buf.OUT, 20, 60, 8, "t").reshape(4, 5, 3), expect)


@pytest.mark.parametrize("op", [AluOp.MAX, AluOp.MIN])
def test_max_min(edge, op):
    mem, a, b = _setup(edge, np.random.default_rng(7))
    _run(edge, mem, op=op, h=4, w=5, c=3)
    expect = np.maximum(a, b) if op == AluOp.MAX else np.minimum(a, b)
    np.testing.assert_array_equal(mem.read(Buf.OUT, 20, 60, 8, "t").reshape(4, 5, 3), expect)


def test_shift_clip(edge):
    mem, a, _ = _setup(edge, np.random.default_rng(8))
    _run(edge, mem, op=AluOp.SHIFT, h=4, w=5, c=3, imm=2)
    np.testing.assert_array_equal(
        mem.read(Buf.OUT, 20, 60, 8, "t").reshape(4, 5, 3), alu.shift_ref(a, 2, bits=8, signed=True)
    )
    mem.write(Buf.PARAM, 0, np.array([-10, 20], np.int32), 32)
    _run(edge, mem, op=AluOp.CLIP, h=4, w=5, c=3)
    np.testing.assert_array_equal(
        mem.read(Buf.OUT, 20, 60, 8, "t").reshape(4, 5, 3), np.clip(a, -10, 20)
    )


def test_pooling(edge):
    rng = np.random.default_rng(9)
    mem, a, _ = _setup(edge, rng, (5, 5, 4))
    _run(edge, mem, op=AluOp.MAXPOOL, h=5, w=5, c=4, kh=3, kw=3, stride=2)
    np.testing.assert_array_equal(
        mem.read(Buf.OUT, 20, 16, 8, "t").reshape(2, 2, 4), alu.maxpool_ref(a, 3, 3, 2)
    )
    m, t = alu.avgpool_multipliers(3, 3)
    mem.write(Buf.PARAM, 0, np.array([m[9], t[9]], np.int32), 32)
    _run(edge, mem, op=AluOp.AVGPOOL, h=5, w=5, c=4, kh=3, kw=3, stride=2, imm=-1, zp=2)
    np.testing.assert_array_equal(
        mem.read(Buf.OUT, 20, 16, 8, "t").reshape(2, 2, 4),
        alu.avgpool_ref(
            a, 3, 3, 2, mult=m[9], shift=t[9], zp_in=-1, zp=2, bits=8, signed=True, mode="single"
        ),
    )
    m, t = alu.avgpool_multipliers(5, 5)
    mem.write(Buf.PARAM, 0, np.array([m[25], t[25]], np.int32), 32)
    _run(edge, mem, op=AluOp.GAP, h=5, w=5, c=4)
    np.testing.assert_array_equal(
        mem.read(Buf.OUT, 20, 4, 8, "t"),
        alu.global_avgpool_ref(
            a, mult=m[25], shift=t[25], zp=0, bits=8, signed=True, mode="single"
        ).reshape(4),
    )


def test_row_op_cycles_by_hand(edge):
    """edge: latency 2, 16 lanes, divide_cycles 16. SOFTMAX over 12 rows of 128: each row
    reads 3 * 128 / 16 = 24 cycles and divides once (16): 2 + 12 * 40 = 482. LAYERNORM over
    4 rows of 768: 3 * 48 = 144 cycles of reads and 2 + 7 = 9 divisions (144) per row:
    2 + 4 * 288 = 1154. GELU is elementwise: 2 x 3072 = 6144 elements, 2 + 384 = 386. With
    divide_cycles = 4 the softmax costs 2 + 12 * 28 = 338. vector_ops counts three reads per
    element of a row op: 3 * 12 * 128 = 4608."""
    assert vector_cycles(edge, AluOp.SOFTMAX, 1, 12, 128) == 482
    assert vector_cycles(edge, AluOp.LAYERNORM, 1, 4, 768) == 1154
    assert vector_cycles(edge, AluOp.GELU, 1, 2, 3072) == 386
    fast_div = edge.with_overrides(["vector.divide_cycles=4"])
    assert vector_cycles(fast_div, AluOp.SOFTMAX, 1, 12, 128) == 338
    insn = Insn(Op.ALU, alu_op=AluOp.SOFTMAX, h=1, w=12, c=128, in_bits=16, bits=8, mode=1)
    cycles, _, counts = standalone(Vector, edge).profile(insn)
    assert cycles == 482 and dict(counts)["vector_ops"] == 4608


def test_ibert_ops_read_their_param_layouts(edge):
    """SOFTMAX [k, q_ln2, q_b, q_c], GELU [k, q_b, q_c, m, t, zx] and LAYERNORM
    [t, gains..., offsets...] give the kernels' results on a 2 x 3 x 8 tile."""
    rng = np.random.default_rng(10)
    mem = make_mem(edge)
    x = rng.integers(-3000, 3000, (2, 3, 8)).astype(np.int32)
    mem.write(Buf.INP, 0, x, 16)
    cases = [
        (AluOp.SOFTMAX, [2, 60, 117, 7200], dict(mode=Mode.UNSIGNED),
         lambda: ibert.softmax_ref(x, shift=2, q_ln2=60, q_b=117, q_c=7200, bits=8)),
        (AluOp.GELU, [1, 40, 900, 1 << 20, 28, -5], dict(zp=3),
         lambda: ibert.gelu_ref(x, zx=-5, shift=1, q_b=40, q_c=900, mult=1 << 20, t=28, zp=3,
                                bits=8, signed=True, mode="single")),
        (AluOp.LAYERNORM, [31, *range(1 << 20, 9 << 20, 1 << 20), *range(-4, 4)], dict(zp=-1),
         lambda: ibert.layernorm_ref(x, gain=np.arange(1, 9) << 20, offset=np.arange(-4, 4),
                                     t=31, zp=-1, bits=8, signed=True, mode="single")),
    ]  # fmt: skip
    for op, words, out, expect in cases:
        mem.write(Buf.PARAM, 0, np.array(words, np.int32), 32)
        insn = Insn(Op.ALU, alu_op=op, a_buf=Buf.INP, dst_buf=Buf.OUT, dst_addr=20, h=2, w=3,
                    c=8, in_bits=16, bits=8, **out)  # fmt: skip
        standalone(Vector, edge).run(insn, mem)
        np.testing.assert_array_equal(mem.read(Buf.OUT, 20, 48, 8, "t").reshape(2, 3, 8), expect())
