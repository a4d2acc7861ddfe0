"""Matmul unit: MAC precision models, SCALE-Sim cycle formulas, GEMM / conv / depthwise datapath."""

import math

import numpy as np
import pytest

from accelsim.config import load_config
from accelsim.errors import AccumulatorOverflow, IsaError
from accelsim.isa import Buf, Insn, Op
from accelsim.kernels.gemm import gemm_ref, im2col_ref
from accelsim.program import ProgramBuilder
from accelsim.sim import simulate
from accelsim.stats import MacWidths
from accelsim.units.matmul import Matmul, matmul_cycles, precision
from tests.helpers import make_mem, random_operand, standalone

# (M, K, N): GEMM shapes, several not divisible by 32
SHAPES = [
    (32, 32, 32),
    (64, 64, 64),
    (1, 1, 1),
    (33, 31, 65),
    (100, 27, 10),
    (196, 576, 64),
    (3136, 147, 64),
    (7, 4096, 1000),
    (512, 768, 768),
    (50, 3, 200),
    (31, 33, 97),
]


def scalesim_compute_cycles(df, M, K, N, R=32, C=32):
    """SCALE-Sim compute cycles, written out separately from the implementation:
    OS: folds over output rows/cols, each streaming K operands plus fill R + C - 2;
    WS: folds over K rows and N cols, each streaming M inputs plus 2R + C - 2;
    IS: folds over K rows and M cols, each streaming N weights plus 2R + C - 2."""
    if df == "os":
        return math.ceil(M / R) * math.ceil(N / C) * (K + R + C - 2)
    if df == "ws":
        return math.ceil(K / R) * math.ceil(N / C) * (M + 2 * R + C - 2)
    return math.ceil(K / R) * math.ceil(M / C) * (N + 2 * R + C - 2)


def test_scalesim_literal_values():
    """Two shapes worked by hand on 32x32: (64,64,64) OS = 2*2*(64+62) = 504;
    WS = 2*2*(64+94) = 632; (33,31,65) IS = 1*2*(65+94) = 318."""
    cfg = load_config("scalesim32")
    assert matmul_cycles(cfg, 64, 64, 64, dataflow="os") == 504
    assert matmul_cycles(cfg, 64, 64, 64, dataflow="ws") == 632
    assert matmul_cycles(cfg, 33, 31, 65, dataflow="is") == 318


@pytest.mark.parametrize("df", ["os", "ws", "is"])
def test_scalesim32_single_gemm_cycles(df):
    """A program of one GEMM (no tokens, no DMA) ends exactly at the SCALE-Sim cycle count."""
    cfg = load_config("scalesim32", [f"matmul.dataflow={df}"])
    for M, K, N in SHAPES:
        b = ProgramBuilder()
        b.alloc(1)
        b.emit(Op.GEMM, m=M, k=K, n=N, a_bits=8, w_bits=8, reset=1)
        res = simulate(b.build(), cfg, count_only=True)
        assert res.stats.latency_cycles == scalesim_compute_cycles(df, M, K, N), (M, K, N)
        assert res.stats.macs() == M * K * N


def test_precision_models():
    """fusion: 8/a' * 8/w' with a', w' rounded up to 1, 2, 4, 8; serial models count passes."""
    fus = load_config("edge")
    assert precision(fus, 8, 8) == (1, 1)
    assert precision(fus, 4, 4) == (4, 1)
    assert precision(fus, 3, 8) == (2, 1)
    assert precision(fus, 2, 1) == (32, 1)
    assert precision(fus, 1, 1) == (64, 1)
    sa = load_config("edge", ["matmul.mac_model=serial_act", "matmul.serial_bits=2"])
    assert precision(sa, 5, 8) == (1, 3)
    sb = load_config("edge", ["matmul.mac_model=serial_both"])
    assert precision(sb, 4, 3) == (1, 12)
    fixed = load_config("edge", ["matmul.mac_model=fixed", "matmul.max_bits=4"])
    assert precision(fixed, 2, 4) == (1, 1)
    with pytest.raises(IsaError, match="max_bits"):
        precision(fixed, 8, 4)


def test_fusion_and_serial_cycles_by_hand():
    """edge 16x16 fusion, 4x4 bits (f = 4), M=K=N=64, OS: 4*4*(ceil(64/4) + 30) = 736;
    WS: ceil(64/64)*4*(64 + 46) = 440. serial_both s=1 at 2x2 bits (passes 4), OS:
    4*4*(4*64 + 30) = 4576. Without fill/drain OS 4x4: 4*4*16 = 256."""
    cfg = load_config("edge")
    assert matmul_cycles(cfg, 64, 64, 64, 4, 4) == 736
    assert matmul_cycles(cfg, 64, 64, 64, 4, 4, dataflow="ws") == 440
    sb = load_config("edge", ["matmul.mac_model=serial_both"])
    assert matmul_cycles(sb, 64, 64, 64, 2, 2) == 4576
    nofd = load_config("edge", ["matmul.fill_drain=false"])
    assert matmul_cycles(nofd, 64, 64, 64, 4, 4) == 256


def test_depthwise_cycles_and_macs(edge):
    """Depthwise 3x3 over 32 channels, m = 16: costed as (m, k=9, n=32):
    OS 16x16 fixed-equivalent at 8 bits: 1*2*(9 + 30) = 78 cycles; MACs = 16*9*32."""
    unit = standalone(Matmul, edge)
    insn = Insn(
        Op.GEMM,
        m=16,
        k=9,
        n=32,
        a_bits=8,
        w_bits=8,
        conv=1,
        depthwise=1,
        kh=3,
        kw=3,
        ow=4,
        patch_w=6,
        reset=1,
    )
    cyc, acc, counts = unit.profile(insn)
    assert cyc == 78
    assert dict(counts)[MacWidths(8, 8)] == 16 * 9 * 32
    assert acc[0] == (Buf.INP, "inp_addr", 6 * 6 * 32 * 8 // 128, False)  # 6x6x32 patch, 8-bit


def test_gemm_accumulates(edge):
    rng = np.random.default_rng(1)
    x, w, x2 = (
        random_operand(rng, (5, 7), 4),
        random_operand(rng, (7, 3), 4),
        random_operand(rng, (5, 7), 4),
    )
    mem = make_mem(edge)
    unit = standalone(Matmul, edge)
    mem.write(Buf.INP, 0, x, 4)
    mem.write(Buf.INP, 10, x2, 4)
    mem.write(Buf.WGT, 0, w, 4)
    kw = dict(m=5, k=7, n=3, a_bits=4, w_bits=4, acc_addr=2)
    unit.run(Insn(Op.GEMM, reset=1, **kw), mem)
    unit.run(Insn(Op.GEMM, inp_addr=10, **kw), mem)
    expect = gemm_ref(x2, w, gemm_ref(x, w, a_bits=4, w_bits=4), a_bits=4, w_bits=4)
    np.testing.assert_array_equal(mem.read(Buf.ACC, 2, 15, 32, "t").reshape(5, 3), expect)


def test_conv_gemm_reads_patch_as_im2col(edge):
    """3x3 conv, stride 2, dilation 1 over a 9x7x4 patch, ow = 3 -> oh = 4, m = 12."""
    rng = np.random.default_rng(2)
    patch, w = random_operand(rng, (9, 7, 4), 8), random_operand(rng, (36, 5), 8)
    mem = make_mem(edge)
    mem.write(Buf.INP, 0, patch, 8)
    mem.write(Buf.WGT, 0, w, 8)
    standalone(Matmul, edge).run(
        Insn(
            Op.GEMM,
            m=12,
            k=36,
            n=5,
            a_bits=8,
            w_bits=8,
            reset=1,
            conv=1,
            kh=3,
            kw=3,
            stride=2,
            ow=3,
            patch_w=7,
        ),
        mem,
    )
    expect = gemm_ref(im2col_ref(patch, 3, 3, 2), w, a_bits=8, w_bits=8)
    np.testing.assert_array_equal(mem.read(Buf.ACC, 0, 60, 32, "t").reshape(12, 5), expect)


def test_depthwise_conv(edge):
    rng = np.random.default_rng(3)
    patch, w = random_operand(rng, (4, 4, 6), 4), random_operand(rng, (9, 6), 4)
    mem = make_mem(edge)
    mem.write(Buf.INP, 0, patch, 4)
    mem.write(Buf.WGT, 0, w, 4)
    standalone(Matmul, edge).run(
        Insn(
            Op.GEMM,
            m=4,
            k=9,
            n=6,
            a_bits=4,
            w_bits=4,
            reset=1,
            conv=1,
            depthwise=1,
            kh=3,
            kw=3,
            ow=2,
            patch_w=4,
        ),
        mem,
    )
    expect = np.zeros((4, 6), np.int64)
    for c in range(6):
        cols = im2col_ref(patch[:, :, c : c + 1], 3, 3)
        expect[:, c] = gemm_ref(cols, w[:, c : c + 1], a_bits=4, w_bits=4)[:, 0]
    np.testing.assert_array_equal(mem.read(Buf.ACC, 0, 24, 32, "t").reshape(4, 6), expect)


def test_conv_field_errors(edge):
    unit = standalone(Matmul, edge)
    with pytest.raises(IsaError, match="not a multiple of ow"):
        unit.profile(Insn(Op.GEMM, m=10, k=9, n=4, conv=1, kh=3, kw=3, ow=4, patch_w=6))
    with pytest.raises(IsaError, match="not a multiple of kh"):
        unit.profile(Insn(Op.GEMM, m=8, k=10, n=4, conv=1, kh=3, kw=3, ow=4, patch_w=6))


@pytest.mark.parametrize("mode", ["error", "wrap"])
def test_accumulator_overflow_follows_config(mode):
    """ACC holds 2**31 - 100; adding 127 * 127 overflows int32: an error by default, a
    two's-complement wrap when matmul.overflow = wrap."""
    cfg = load_config("edge", [f"matmul.overflow={mode}"])
    mem = make_mem(cfg)
    mem.write(Buf.ACC, 0, np.array([[2**31 - 100]], np.int32), 32)
    mem.write(Buf.INP, 0, np.array([[127]], np.int8), 8)
    mem.write(Buf.WGT, 0, np.array([[127]], np.int8), 8)
    insn = Insn(Op.GEMM, m=1, k=1, n=1, a_bits=8, w_bits=8, reset=0)
    if mode == "error":
        with pytest.raises(AccumulatorOverflow):
            standalone(Matmul, cfg).run(insn, mem)
    else:
        standalone(Matmul, cfg).run(insn, mem)
        assert mem.read(Buf.ACC, 0, 1, 32, "t")[0] == 2**31 - 100 + 127 * 127 - 2**32
