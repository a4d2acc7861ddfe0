"""Quantizer unit: cost formula and datapath vs quant_ref."""

import numpy as np

from accelsim.isa import Buf, Insn, Op
from accelsim.kernels.quant import quant_ref
from accelsim.units.quantizer import Quantizer, quant_cycles
from tests.helpers import make_mem, standalone


def test_quant_cycles_by_hand(edge):
    """edge: latency 4, 16 lanes: 100 elements -> 4 + 7 = 11; 16 -> 5."""
    assert quant_cycles(edge, 100) == 11
    assert quant_cycles(edge, 16) == 5


def test_quant_datapath_and_profile(edge):
    rng = np.random.default_rng(5)
    x = rng.integers(-100000, 100000, 40).astype(np.int32)
    mem = make_mem(edge)
    mem.write(Buf.ACC, 0, x, 32)
    unit = standalone(Quantizer, edge)
    insn = Insn(
        Op.QUANT,
        src_buf=Buf.ACC,
        dst_buf=Buf.INP,
        dst_addr=2,
        n=40,
        in_bits=32,
        bits=4,
        mode=1,
        zp=3,
        mult=1 << 30,
        shift=43,
    )
    unit.run(insn, mem)
    expect = quant_ref(x, 1 << 30, 43, zp=3, bits=4, signed=False, mode="single")
    np.testing.assert_array_equal(mem.read(Buf.INP, 2, 40, 4, "t"), expect)
    cyc, acc, counts = unit.profile(insn)
    assert cyc == 4 + 3
    assert unit.accesses(insn, acc) == (
        (Buf.ACC, 0, 10, False),
        (Buf.INP, 2, 2, True),
    )  # 1280 bits, 160 bits
    assert dict(counts)["quant_ops"] == 40
