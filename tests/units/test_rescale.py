"""Rescale unit: cost formula, PARAM layout, datapath vs rescale_ref, mismatch counting."""

import numpy as np

from accelsim.config import load_config
from accelsim.isa import Buf, Insn, Op
from accelsim.kernels.rescale import quantize_multiplier, rescale_ref
from accelsim.units.rescale import Rescale, rescale_cycles
from tests.helpers import make_mem, standalone


def test_rescale_cycles_by_hand(edge):
    """edge: latency 4, 16 lanes, 4 channels/cycle: 16x16 tile -> 4 + 16 + 4 = 24;
    5x3 -> 4 + 1 + 1 = 6."""
    assert rescale_cycles(edge, 16, 16) == 24
    assert rescale_cycles(edge, 5, 3) == 6


def _params(rng, n):
    bias = rng.integers(-500, 500, n).astype(np.int32)
    mult, shift = quantize_multiplier(rng.uniform(0.002, 0.05, n))
    return bias, mult, shift


def test_rescale_datapath_matches_ref():
    cfg = load_config("edge", ["rescale.round_mode=tflite"])
    rng = np.random.default_rng(4)
    acc = rng.integers(-20000, 20000, (6, 8)).astype(np.int32)
    bias, mult, shift = _params(rng, 16)
    mem = make_mem(cfg)
    mem.write(Buf.ACC, 0, acc, 32)
    # a PARAM tile for 16 channels; this RESCALE uses channels 8..15 (row 96*8/128 = 6)
    mem.write(Buf.PARAM, 0, np.stack([bias, mult, shift], 1).astype(np.int32), 32)
    unit = standalone(Rescale, cfg)
    unit.run(
        Insn(
            Op.RESCALE,
            acc_addr=0,
            param_addr=6,
            out_addr=3,
            m=6,
            n=8,
            bits=8,
            zp=-5,
            relu=1,
            clip=1,
            clip_lo=-128,
            clip_hi=100,
        ),
        mem,
    )
    expect = rescale_ref(
        acc,
        bias[8:],
        mult[8:],
        shift[8:],
        zp=-5,
        bits=8,
        signed=True,
        mode="tflite",
        relu=True,
        clip_lo=-128,
        clip_hi=100,
    )
    np.testing.assert_array_equal(mem.read(Buf.OUT, 3, 48, 8, "t").reshape(6, 8), expect)


def test_mismatch_vs_rne_counted():
    """mult = 1, shift = 1 halves the input: 'single' rounds 1/2 and 3/2 up (1, 2), 'rne'
    rounds to even (0, 2); -1/2 -> 0 vs 0; so acc [1, 3, -1, 4] differs in exactly one output."""
    cfg = load_config("edge", ["rescale.round_mode=single"])
    mem = make_mem(cfg)
    mem.write(Buf.ACC, 0, np.array([[1], [3], [-1], [4]], np.int32), 32)
    mem.write(Buf.PARAM, 0, np.array([0, 1, 1], np.int32), 32)
    unit = standalone(Rescale, cfg)
    insn = Insn(Op.RESCALE, m=4, n=1, bits=8)
    insn.index = 0
    unit.run(insn, mem)
    np.testing.assert_array_equal(mem.read(Buf.OUT, 0, 4, 8, "t"), [1, 2, 0, 2])
    assert unit.stats.extra == [(0, "rescale_mismatch_vs_rne", 1)]


def test_fraction_bits_reach_the_datapath_and_the_counts():
    """frac = 2: PARAM bias 1 is a quarter of an accumulator unit and shift 1 becomes 3, so
    acc [1, 3, -1, 4] gives (4 acc + 1) / 8 = 0.625, 1.625, -0.375, 2.125 -> 1, 2, 0, 2 (no
    ties). The profile charges 4 elements x 2 bits to rescale_bias_frac_bits; F = 0 omits it."""
    cfg = load_config("edge", ["rescale.round_mode=rne"])
    mem = make_mem(cfg)
    mem.write(Buf.ACC, 0, np.array([[1], [3], [-1], [4]], np.int32), 32)
    mem.write(Buf.PARAM, 0, np.array([1, 1, 1], np.int32), 32)
    unit = standalone(Rescale, cfg)
    insn = Insn(Op.RESCALE, m=4, n=1, bits=8, frac=2)
    insn.index = 0
    unit.run(insn, mem)
    np.testing.assert_array_equal(mem.read(Buf.OUT, 0, 4, 8, "t"), [1, 2, 0, 2])
    assert ("rescale_bias_frac_bits", 8) in unit.profile(insn)[2]
    assert unit.profile(insn)[0] == unit.profile(Insn(Op.RESCALE, m=4, n=1, bits=8))[0]
    plain = dict(unit.profile(Insn(Op.RESCALE, m=4, n=1, bits=8))[2])
    assert "rescale_bias_frac_bits" not in plain and plain["rescale_ops"] == 4
