"""ONNX QDQ models (QuantizeLinear / DequantizeLinear around float ops) imported and run three
ways: onnxruntime, the IR integer reference and the simulated machine, which must agree on
every element (see `nets` for why the test scales make that exact)."""

import numpy as np
import pytest

from accelsim.ir import run_reference
from tests.frontend.onnx.nets import Net, check, ort_run

pytest.importorskip("onnxruntime")
RNG = np.random.default_rng(7)


def grid(shape, scale, lo=-100, hi=100):
    """float32 input on the quantization grid of `scale` (plus off-grid noise below half a
    step, so the input quantizer rounds)."""
    q = RNG.integers(lo, hi, shape)
    noise = RNG.uniform(-0.45, 0.45, shape)
    return ((q + noise) * scale).astype(np.float32)


def conv_net(opset=13, act="int8", wtype="int8", wrange=8, zp_in=0, zp_out=-5, relu=True):
    n = Net(opset)
    x = n.qdq("x", 2**-5, zp_in, act)
    ws = np.array([3, 5, 7, 1]) * 2.0**-8
    w = n.weight(RNG.integers(-wrange, wrange, (4, 3, 3, 3)), ws, wtype, axis=0)
    b = n.bias(RNG.integers(-50, 50, 4), 2**-5 * ws)
    y = n.node("Conv", [x, w, b], pads=[1, 1, 1, 1])
    if relu:
        y = n.node("Relu", [y])
    return n.model("x", [1, 3, 6, 6], [n.qdq(y, 2**-3, zp_out, act)])


@pytest.mark.parametrize("opset", [13, 17, 19, 21])
def test_conv_per_channel_bias_relu(opset):
    g = check(conv_net(opset), grid((1, 3, 6, 6), 2**-5))
    conv = next(n for n in g.nodes if type(n).__name__ == "QuantConv2d")
    assert conv.relu and conv.w_bits == 8 and np.ndim(conv.w_scale) == 1


@pytest.mark.parametrize(
    "act,wtype,wrange,zp_in,zp_out,opset",
    [
        ("uint8", "int8", 8, 128, 100, 13),
        ("uint4", "int4", 8, 3, 2, 21),  # int4 initialisers need opset 21
        ("int4", "int2", 2, 0, 1, 25),  # int2 needs opset 25
    ],
)
def test_low_bit_types(act, wtype, wrange, zp_in, zp_out, opset):
    """uint8 / uint4 / int4 activations with zero points, int8 / int4 / int2 weights."""
    model = conv_net(opset, act, wtype, wrange, zp_in, zp_out)
    lo, hi = (0, 15) if act == "uint4" else (-8, 7) if act == "int4" else (0, 255)
    g = check(model, grid((1, 3, 6, 6), 2**-5, lo - zp_in, hi - zp_in))
    conv = next(n for n in g.nodes if type(n).__name__ == "QuantConv2d")
    assert conv.w_bits == {"int8": 8, "int4": 4, "int2": 2}[wtype]
    t = g.tensors[conv.output]
    assert (t.bits, t.mode, t.zero_point) == (
        int(act[-1]),
        "unsigned" if act[0] == "u" else "signed",
        zp_out,
    )


def test_residual_add_different_scales():
    """conv -> Q(s=2**-3) and the block input at Q(s=3*2**-6) added, requantized to 2**-2."""
    n = Net(13)
    x = n.qdq("x", 3 * 2**-6, 0)
    ws = 2**-6
    w = n.weight(RNG.integers(-20, 20, (3, 3, 1, 1)), ws)
    c = n.qdq(n.node("Conv", [x, w]), 2**-3, 1)
    s = n.qdq(n.node("Add", [c, x]), 2**-2, -3)
    out = n.qdq(n.node("Relu", [s]), 2**-2, -3)
    g = check(n.model("x", [1, 3, 5, 5], [out]), grid((1, 3, 5, 5), 3 * 2**-6))
    add = next(n for n in g.nodes if type(n).__name__ == "Add")
    scales = {float(g.tensors[i].scale) for i in add.inputs}
    assert scales == {2**-3, 3 * 2**-6}
    assert any(type(n).__name__ == "Clip" for n in g.nodes)  # the Relu after requantization


def test_mlp_per_column_and_per_row_scales():
    """MatMul with weights [K, N] scaled per column (axis 1), then Gemm(transB=1) with weights
    [N, K] scaled per row (axis 0): both are per output channel."""
    n = Net(13)
    x = n.qdq("x", 2**-4, 0)
    w1 = n.weight(RNG.integers(-30, 30, (12, 6)), np.array([1, 3, 5, 7, 9, 11]) * 2.0**-9, axis=1)
    h = n.qdq(n.node("Relu", [n.node("MatMul", [x, w1])]), 2**-3, -128)
    ws2 = np.array([3, 1, 5, 7]) * 2.0**-7
    w2 = n.weight(RNG.integers(-60, 60, (4, 6)), ws2, axis=0)
    b2 = n.bias(RNG.integers(-200, 200, 4), 2**-3 * ws2)
    y = n.qdq(n.node("Gemm", [h, w2, b2], transB=1), 2**-2, 3)
    g = check(n.model("x", [2, 12], [y]), grid((2, 12), 2**-4))
    assert [type(n).__name__ for n in g.nodes].count("QuantLinear") == 2


def test_cnn_pools_concat_flatten_gemm():
    """conv -> maxpool and avgpool branches -> concat -> flatten (NCHW order) -> gemm, and a
    global average pool output: every vector op and the flatten reordering."""
    n = Net(13)
    x = n.qdq("x", 2**-5, 0)
    w = n.weight(RNG.integers(-10, 10, (4, 2, 3, 3)), np.array([1, 3, 5, 3]) * 2.0**-7)
    c = n.qdq(n.node("Relu", [n.node("Conv", [x, w], pads=[1, 1, 1, 1])]), 2**-3, -128)
    mp = n.qdq(n.node("MaxPool", [c], kernel_shape=[2, 2], strides=[2, 2]), 2**-3, -128)
    ap = n.qdq(n.node("AveragePool", [c], kernel_shape=[2, 2], strides=[2, 2]), 2**-4, -20)
    cat = n.qdq(n.node("Concat", [mp, ap], axis=1), 2**-3, -100)
    flat = n.node("Flatten", [cat], axis=1)
    wf = n.weight(RNG.integers(-8, 8, (5, 8 * 3 * 3)), 2**-6, axis=0)
    y = n.qdq(n.node("Gemm", [flat, wf], transB=1), 2**-2, 0)
    gap = n.qdq(n.node("GlobalAveragePool", [c]), 2**-4, 0)
    g = check(n.model("x", [1, 2, 6, 6], [y, gap]), grid((1, 2, 6, 6), 2**-5))
    kinds = {type(n).__name__ for n in g.nodes}
    assert {"MaxPool", "AvgPool", "Concat", "Flatten", "GlobalAvgPool"} <= kinds


def test_rounding_ties_half_to_even():
    """Inputs x = k + 1/2 steps for k = -8..7 all lie on ties: QuantizeLinear rounds them half
    to even to q = -8, -6, -6, -4, -4, -2, -2, 0, 0, 2, 2, 4, 4, 6, 6, 8. A 1x1 identity conv
    with multiplier s_in*s_w/s_out = 1/4 then gives q/4, a tie for q = -6, -2, 2, 6 (twice
    each): half to even gives -2, 0, 0, 2 where half up (the machine's default `single`
    rounding) gives -1, 0, 1, 2, so exactly 4 outputs differ between the two modes."""
    n = Net(13)
    x = n.qdq("x", 2**-3, 0)
    w = n.weight(np.eye(2, dtype=np.int64).reshape(2, 2, 1, 1), 2**-2)
    y = n.qdq(n.node("Conv", [x, w]), 2**-3, 0)
    xin = ((np.arange(-8, 8).reshape(1, 2, 2, 4) + 0.5) * 2**-3).astype(np.float32)
    model = n.model("x", [1, 2, 2, 4], [y])
    g = check(model, xin)
    half_up = run_reference(g, xin, round_mode="single")[y]
    assert np.count_nonzero(half_up != ort_run(model, xin)[y]) == 4


def test_float_bias_keeps_its_fraction_of_an_accumulator_unit():
    """1x1 identity conv, s_in = 2**-3, s_w = 2**-2: one accumulator unit is 2**-5, and a float
    bias of 0.375 units (dyadic: 3 * 2**-8, exact in float32) with an output step of half a
    unit gives y = rne(2 acc + 0.75) = 2 acc + 1 on every element. The bias keeps F = 3
    fractional bits; rounded to whole units (0) it would give 2 acc on every element."""
    n = Net(13)
    x = n.qdq("x", 2**-3, 0)
    w = n.weight(np.eye(2, dtype=np.int64).reshape(2, 2, 1, 1), 2**-2)
    b = n.const(np.full(2, 0.375 * 2**-5, np.float32))
    y = n.qdq(n.node("Conv", [x, w, b]), 2**-6, 0)
    q = np.arange(-20, 20).reshape(1, 2, 4, 5)
    model = n.model("x", [1, 2, 4, 5], [y])
    g = check(model, (q * 2**-3).astype(np.float32))
    conv = next(v for v in g.nodes if type(v).__name__ == "QuantConv2d")
    assert conv.bias_frac_bits == 3 and conv.bias.tolist() == [3, 3]
    got = run_reference(g, (q * 2**-3).astype(np.float32), round_mode="rne")[y]
    np.testing.assert_array_equal(got, (2 * q + 1) * 2.0**-6)


def test_clip_relu6_folded_and_on_float_view():
    """Clip(0, 6) before a quantizer folds into the conv's clamp; Relu on a dequantized view
    followed by the same quantizer becomes a Clip node."""
    n = Net(13)
    x = n.qdq("x", 2**-4, 0)
    w = n.weight(RNG.integers(-60, 60, (3, 2, 1, 1)), 2**-4)
    lo, hi = n.const(np.float32(0)), n.const(np.float32(6))
    c = n.qdq(n.node("Clip", [n.node("Conv", [x, w]), lo, hi]), 2**-4, -128)
    r = n.qdq(n.node("Relu", [x]), 2**-4, 0)
    g = check(n.model("x", [1, 2, 3, 3], [c, r]), grid((1, 2, 3, 3), 2**-4))
    conv = next(n for n in g.nodes if type(n).__name__ == "QuantConv2d")
    assert (conv.relu, conv.clip_hi) == (True, 6 * 16 - 128)
    assert any(type(n).__name__ == "Clip" for n in g.nodes)


def test_host_pre_and_post_processing():
    """Float pre-processing x*2 - 1 before the input quantizer and a final affine and softmax
    after the last dequantizer run as host ops (named in the graph), the rest on the machine,
    including a 2x nearest Resize of the quantized conv output (the DMA's Upsample)."""
    n = Net(13)
    x = n.node("Sub", [n.node("Mul", ["x", n.const(np.float32(2))]), n.const(np.float32(1))])
    xq = n.qdq(x, 2**-6, 0)
    w = n.weight(RNG.integers(-9, 9, (3, 2, 1, 1)), 2**-5)
    c = n.qdq(n.node("Conv", [xq, w]), 2**-3, 0)
    big = n.node("Resize", [c, "", n.const(np.array([1, 1, 2, 2], np.float32))], mode="nearest")
    flat = n.node("Flatten", [c])
    aff = n.node(
        "Add", [n.node("Mul", [flat, n.const(np.float32(0.5))]), n.const(np.float32(0.25))]
    )
    soft = n.node("Softmax", [aff], axis=1)
    model = n.model("x", [1, 2, 2, 2], [soft, big])
    xin = (RNG.integers(0, 64, (1, 2, 2, 2)) * 2**-6).astype(np.float32)
    g = check(model, xin, machine=True)
    host = [type(v).__name__ for v in g.nodes if type(v).__name__.startswith("Host")]
    assert host[:3] == ["HostBinary", "HostBinary", "HostTranspose"]
    assert {"HostSoftmax", "HostDequantize"} <= set(host)
    assert any(type(v).__name__ == "Upsample" for v in g.nodes)


def test_per_channel_activation_output_and_negative_axis():
    """A conv output quantized per channel (QuantizeLinear axis=1) and weights whose scale
    axis is given counted from the end (-4 = the output-channel axis 0)."""
    n = Net(13)
    x = n.qdq("x", 2**-4, 0)
    w = n.weight(RNG.integers(-20, 20, (3, 2, 1, 1)), np.array([1, 3, 5]) * 2.0**-6, axis=-4)
    so = np.array([1, 2, 4]) * 2.0**-3
    y = n.dq(n.q(n.node("Conv", [x, w]), so, [0, 0, 0], axis=1), so, [0, 0, 0], axis=1)
    g = check(n.model("x", [1, 2, 3, 3], [y]), grid((1, 2, 3, 3), 2**-4))
    conv = next(v for v in g.nodes if type(v).__name__ == "QuantConv2d")
    assert np.array_equal(g.tensors[conv.output].scale, so)
