"""Each IR op's integer reference against an independent hand-written computation.

The hand versions loop over output elements with Python integers and round with Python's own
integer shifts (`single`: half up) or `round(Fraction)` (`rne`: half to even), so they share
no code with the kernels. Only the integer parameters (multipliers, shifts, folded biases)
come from `accelsim.ir.params`, whose derivation is checked separately against the real
step-size ratios.
"""

from fractions import Fraction

import numpy as np
import pytest

from accelsim.errors import AccelsimError
from accelsim.ir import (
    Add,
    AvgPool,
    Clip,
    Concat,
    Flatten,
    GlobalAvgPool,
    Graph,
    MaxPool,
    QuantConv2d,
    Quantize,
    QuantLinear,
    TensorInfo,
    add_params,
    concat_params,
    pool_params,
    rescale_params,
    run_reference,
)

MODES = ("single", "rne")


def rshift(v: int, shift: int, mode: str) -> int:
    """v / 2**shift rounded: single = half up, rne = half to even (Python integers)."""
    if shift == 0:
        return v
    if mode == "single":
        return (v + (1 << (shift - 1))) >> shift
    return round(Fraction(v, 1 << shift))


def clamp(v: int, t: TensorInfo, lo_extra=None, hi_extra=None) -> int:
    lo, hi = t.qrange
    lo = lo if lo_extra is None else max(lo, lo_extra)
    hi = hi if hi_extra is None else min(hi, hi_extra)
    return min(max(v, lo), hi)


def one_op_graph(op, in_infos: list[TensorInfo], out: TensorInfo) -> Graph:
    """input -> Quantize -> (first input) ... -> op; extra inputs are produced by Quantize too."""
    tensors = {"input": TensorInfo("input", in_infos[0].shape, 32, "float")}
    nodes = []
    for t in in_infos:
        tensors[t.name] = t
        nodes.append(Quantize(name=f"q_{t.name}", inputs=("input",), output=t.name))
    tensors[out.name] = out
    nodes.append(op)
    g = Graph("t", tensors, nodes, "input", [out.name])
    g.validate()
    return g


def run_ints(g: Graph, xs: list[np.ndarray], **kw) -> np.ndarray:
    """Run the last op of `g` on the given integer inputs (one per Quantize node)."""
    from accelsim.ir import run_node

    return run_node(g.nodes[-1], xs, g, **kw)


def rand_ints(rng, t: TensorInfo) -> np.ndarray:
    lo, hi = t.qrange
    return rng.integers(lo, hi + 1, t.shape).astype(t.dtype)


def test_quantize_matches_round_half_even():
    rng = np.random.default_rng(0)
    xin = TensorInfo("x", (1, 3, 4, 2), 4, "unsigned", 0.25, 3)
    g = one_op_graph(
        Quantize(name="q2", inputs=("input",), output="y"),
        [xin],
        TensorInfo("y", (1, 3, 4, 2), 4, "unsigned", 0.25, 3),
    )
    x = rng.normal(0, 2, (1, 3, 4, 2))
    x[0, 0, 0, :] = [0.125, 0.375]  # exact halves: 0.5 -> 0, 1.5 -> 2
    got = run_reference(g, x)["y"]
    want = np.clip(np.rint(x / 0.25) + 3, 0, 15)
    np.testing.assert_array_equal(got, want)
    assert got[0, 0, 0].tolist() == [3, 5]


CONV_CASES = [
    # (name, cin, cout, k, stride, pad, dil, groups, a_bits, a_mode, zp_in, w_bits, relu, clip)
    ("plain", 3, 4, 3, 1, (1, 1, 1, 1), 1, 1, 8, "signed", 0, 8, False, None),
    ("stride2_dil2_asym", 2, 3, 3, 2, (0, 2, 1, 0), 2, 1, 4, "unsigned", 7, 4, True, None),
    ("depthwise", 4, 4, 3, 1, (1, 1, 1, 1), 1, 4, 8, "unsigned", 0, 2, True, (None, 9)),
    ("grouped_mult2", 4, 4, 1, 1, (0, 0, 0, 0), 1, 2, 2, "signed", 0, 4, False, (-3, 3)),
    ("bipolar_w", 3, 5, 2, 1, (0, 1, 0, 1), 1, 1, 8, "unsigned", 128, 1, False, None),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CONV_CASES, ids=[c[0] for c in CONV_CASES])
def test_conv_matches_hand_loop(case, mode):
    _, cin, cout, k, s, pad, d, groups, a_bits, a_mode, zp_in, w_bits, relu, clip = case
    rng = np.random.default_rng(1)
    xin = TensorInfo("x", (2, 6, 5, cin), a_bits, a_mode, 0.05, zp_in)
    w_mode = "bipolar" if w_bits == 1 else "signed"
    wlo, whi = (-1, 1) if w_bits == 1 else (-(1 << (w_bits - 1)), (1 << (w_bits - 1)) - 1)
    w = rng.integers(wlo, whi + 1, (k, k, cin // groups, cout)).astype(np.int8)
    if w_bits == 1:
        w[w == 0] = 1
    op = QuantConv2d(
        name="conv",
        inputs=("x",),
        output="y",
        weight=w,
        w_bits=w_bits,
        w_mode=w_mode,
        w_scale=rng.uniform(0.01, 0.03, cout),
        bias=rng.integers(-300, 300, cout).astype(np.int32),
        stride=(s, s),
        padding=pad,
        dilation=(d, d),
        groups=groups,
        relu=relu,
        clip_lo=clip[0] if clip else None,
        clip_hi=clip[1] if clip else None,
    )
    oshape = op.out_shape(xin.shape)
    out = TensorInfo(
        "y", oshape, 8 if relu else 6, "unsigned" if relu else "signed", 0.02, 0 if not relu else 4
    )
    g = one_op_graph(op, [xin], out)
    x = rand_ints(rng, xin)
    got = run_ints(g, [x], round_mode=mode)

    p = rescale_params(op, g)
    xp = np.pad(
        x.astype(np.int64),
        ((0, 0), (pad[0], pad[1]), (pad[2], pad[3]), (0, 0)),
        constant_values=zp_in,
    )
    cin_g, cout_g = cin // groups, cout // groups
    want = np.zeros(oshape, np.int64)
    for n, oy, ox, c in np.ndindex(*oshape):
        g0 = (c // cout_g) * cin_g
        acc = int(op.bias[c])
        for i in range(k):
            for j in range(k):
                for ci in range(cin_g):
                    v = int(xp[n, oy * s + i * d, ox * s + j * d, g0 + ci]) - zp_in
                    acc += v * int(w[i, j, ci, c])
        y = out.zero_point + rshift(acc * int(p.mult[c]), int(p.shift[c]), mode)
        want[n, oy, ox, c] = clamp(
            y, out, out.zero_point if relu else None, clip[1] if clip else None
        )
        if clip and clip[0] is not None:
            want[n, oy, ox, c] = max(want[n, oy, ox, c], clip[0])
    np.testing.assert_array_equal(got, want)
    assert got.dtype == out.dtype


def test_rescale_params_follow_step_sizes():
    """mult * 2**-shift equals s_in * s_w[c] / s_out to 31 bits; zp folded into the bias."""
    w = np.array([[1, -2], [3, 4]], np.int8)
    op = QuantLinear(
        name="fc",
        inputs=("x",),
        output="y",
        weight=w,
        w_bits=4,
        w_scale=np.array([0.1, 0.3]),
        bias=np.array([10, -20], np.int32),
    )
    g = one_op_graph(
        op,
        [TensorInfo("x", (1, 2), 8, "unsigned", 0.5, 5)],
        TensorInfo("y", (1, 2), 8, "signed", 0.07),
    )
    p = rescale_params(op, g)
    real = 0.5 * np.array([0.1, 0.3]) / 0.07
    np.testing.assert_allclose(p.mult * 2.0 ** -p.shift.astype(float), real, rtol=2**-30)
    assert np.all((p.mult >= 2**30) & (p.mult < 2**31))
    np.testing.assert_array_equal(p.bias, [10 - 5 * 4, -20 - 5 * 2])
    assert p.pad_value == 5
    p16 = rescale_params(op, g, mult_bits=16)
    assert np.all((p16.mult >= 2**14) & (p16.mult < 2**15))


@pytest.mark.parametrize("mode", MODES)
def test_linear_matches_hand_loop(mode):
    rng = np.random.default_rng(2)
    xin = TensorInfo("x", (3, 7), 2, "unsigned", 0.3, 1)
    w = rng.integers(-8, 8, (7, 5)).astype(np.int8)
    op = QuantLinear(
        name="fc",
        inputs=("x",),
        output="y",
        weight=w,
        w_bits=4,
        w_scale=0.04,
        bias=rng.integers(-20, 20, 5).astype(np.int32),
    )
    out = TensorInfo("y", (3, 5), 4, "signed", 0.05)
    g = one_op_graph(op, [xin], out)
    x = rand_ints(rng, xin)
    got = run_ints(g, [x], round_mode=mode)
    p = rescale_params(op, g)
    want = np.zeros((3, 5), np.int64)
    for m, c in np.ndindex(3, 5):
        acc = int(op.bias[c]) + sum((int(x[m, kk]) - 1) * int(w[kk, c]) for kk in range(7))
        want[m, c] = clamp(rshift(acc * int(p.mult[c]), int(p.shift[c]), mode), out)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("relu", [False, True])
def test_add_matches_hand_and_real_sum(mode, relu):
    rng = np.random.default_rng(3)
    a = TensorInfo("a", (1, 4, 3, 5), 8, "unsigned", 0.031, 9)
    b = TensorInfo("b", (1, 4, 3, 5), 4, "signed", 0.11)
    out = TensorInfo("y", (1, 4, 3, 5), 8, "signed", 0.045, -3)
    g = one_op_graph(Add(name="add", inputs=("a", "b"), output="y", relu=relu), [a, b], out)
    xa, xb = rand_ints(rng, a), rand_ints(rng, b)
    got = run_ints(g, [xa, xb], round_mode=mode)
    p = add_params(g.nodes[-1], g)
    want = np.zeros(out.shape, np.int64)
    for idx in np.ndindex(*out.shape):
        v = (int(xa[idx]) - 9) * p.ma + int(xb[idx]) * p.mb
        want[idx] = clamp(-3 + rshift(v, p.t, mode), out, -3 if relu else None)
    np.testing.assert_array_equal(got, want)
    real = 0.031 * (xa.astype(float) - 9) + 0.11 * xb
    if relu:
        real = np.maximum(real, 0)
    inside = (real / 0.045 - 3 > -127) & (real / 0.045 - 3 < 126)
    err = np.abs((got.astype(float) + 3) * 0.045 - real)[inside]
    assert err.max() <= 0.045 * 0.5 + 1e-6


def test_maxpool_padding_never_wins():
    rng = np.random.default_rng(4)
    t = TensorInfo("x", (2, 5, 6, 3), 4, "signed", 0.1)
    op = MaxPool(
        name="mp", inputs=("x",), output="y", kernel=(3, 2), stride=(2, 2), padding=(1, 1, 0, 1)
    )
    oshape = op.out_shape(t.shape)
    g = one_op_graph(op, [t], TensorInfo("y", oshape, 4, "signed", 0.1))
    x = rand_ints(rng, t)
    got = run_ints(g, [x])
    want = np.zeros(oshape, np.int64)
    for n, oy, ox, c in np.ndindex(*oshape):
        vals = [
            int(x[n, y, xx, c])
            for i in range(3)
            for j in range(2)
            if 0 <= (y := oy * 2 - 1 + i) < 5 and 0 <= (xx := ox * 2 + j) < 6
        ]
        want[n, oy, ox, c] = max(vals)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("mode", MODES)
def test_avgpool_counts_only_inbounds(mode):
    rng = np.random.default_rng(5)
    t = TensorInfo("x", (1, 5, 4, 2), 8, "unsigned", 0.02, 10)
    op = AvgPool(
        name="ap", inputs=("x",), output="y", kernel=(3, 3), stride=(2, 1), padding=(1, 1, 1, 0)
    )
    oshape = op.out_shape(t.shape)
    out = TensorInfo("y", oshape, 4, "unsigned", 0.15, 2)
    g = one_op_graph(op, [t], out)
    x = rand_ints(rng, t)
    got = run_ints(g, [x], round_mode=mode)
    p = pool_params(op, g)
    want = np.zeros(oshape, np.int64)
    for n, oy, ox, c in np.ndindex(*oshape):
        vals = [
            int(x[n, y, xx, c]) - 10
            for i in range(3)
            for j in range(3)
            if 0 <= (y := oy * 2 - 1 + i) < 5 and 0 <= (xx := ox - 1 + j) < 4
        ]
        cnt = len(vals)
        np.testing.assert_allclose(
            p.mult[cnt] * 2.0 ** -float(p.shift[cnt]), 0.02 / 0.15 / cnt, rtol=2**-30
        )
        want[n, oy, ox, c] = clamp(
            2 + rshift(sum(vals) * int(p.mult[cnt]), int(p.shift[cnt]), mode), out
        )
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("mode", MODES)
def test_global_avgpool(mode):
    rng = np.random.default_rng(6)
    t = TensorInfo("x", (2, 3, 5, 4), 8, "signed", 0.05)
    out = TensorInfo("y", (2, 1, 1, 4), 8, "signed", 0.01)
    g = one_op_graph(GlobalAvgPool(name="gap", inputs=("x",), output="y"), [t], out)
    x = rand_ints(rng, t)
    got = run_ints(g, [x], round_mode=mode)
    p = pool_params(g.nodes[-1], g)
    np.testing.assert_allclose(p.mult * 2.0**-p.shift, 5.0 / 15, rtol=2**-30)
    want = np.zeros(out.shape, np.int64)
    for n, c in np.ndindex(2, 4):
        s = int(x[n, :, :, c].astype(np.int64).sum())
        want[n, 0, 0, c] = clamp(rshift(s * p.mult, p.shift, mode), out)
    np.testing.assert_array_equal(got, want)


def test_clip_flatten():
    rng = np.random.default_rng(7)
    t = TensorInfo("x", (1, 2, 3, 4), 8, "unsigned", 0.1, 20)
    y = TensorInfo("y", t.shape, 8, "unsigned", 0.1, 20)
    g = one_op_graph(
        Clip(name="relu6", inputs=("x",), output="y", lo=20, hi=80, kind="relu6"), [t], y
    )
    x = rand_ints(rng, t)
    np.testing.assert_array_equal(run_ints(g, [x]), np.clip(x, 20, 80))
    f = TensorInfo("f", (1, 24), 8, "unsigned", 0.1, 20)
    g = one_op_graph(Flatten(name="fl", inputs=("x",), output="f"), [t], f)
    flat = run_ints(g, [x])
    assert flat[0, 1 * 12 + 2 * 4 + 3] == x[0, 1, 2, 3]  # C fastest, then W, then H


@pytest.mark.parametrize("mode", MODES)
def test_concat_requantizes_only_differing_inputs(mode):
    rng = np.random.default_rng(8)
    a = TensorInfo("a", (1, 2, 2, 3), 8, "unsigned", 0.1, 5)
    b = TensorInfo("b", (1, 2, 2, 3), 4, "signed", 0.3)
    out = TensorInfo("y", (1, 2, 2, 6), 8, "unsigned", 0.1, 5)
    g = one_op_graph(Concat(name="cat", inputs=("a", "b"), output="y"), [a, b], out)
    xa, xb = rand_ints(rng, a), rand_ints(rng, b)
    got = run_ints(g, [xa, xb], round_mode=mode)
    pa, pb = concat_params(g.nodes[-1], g)
    assert pa is None
    np.testing.assert_array_equal(got[..., :3], xa)
    want = np.zeros(xb.shape, np.int64)
    for idx in np.ndindex(*xb.shape):
        c = idx[-1]
        want[idx] = clamp(5 + rshift(int(xb[idx]) * int(pb.mult[c]), int(pb.shift[c]), mode), out)
    np.testing.assert_array_equal(got[..., 3:], want)
    np.testing.assert_array_equal(want, np.clip(xb * 3 + 5, 0, 255))  # exact ratio 3


def test_run_reference_checks_input_shape_and_modes_agree_on_fast_path():
    from workloads.dense import small_cnn

    g = small_cnn(4, 4, seed=1, input_hw=8)
    x = np.random.default_rng(0).standard_normal((1, 8, 8, 3))
    for mode in ("single", "rne", "tflite"):
        a = run_reference(g, x, round_mode=mode)
        b = run_reference(g, x, round_mode=mode, fast=True)
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    with pytest.raises(AccelsimError, match=r"shape \(1, 9, 8, 3\), model 'small_cnn' expects"):
        run_reference(g, np.zeros((1, 9, 8, 3)))
