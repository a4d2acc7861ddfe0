"""Vector unit: cost (window reads for pooling), PARAM layouts, datapath vs the alu refs."""

import numpy as np
import pytest

from accelsim.isa import AluOp, Buf, Insn, Op
from accelsim.kernels import alu
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
