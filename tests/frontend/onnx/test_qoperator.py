"""ONNX QOperator models (QLinearConv, QLinearMatMul, QLinearAdd, QGemm, ConvInteger,
MatMulInteger) against onnxruntime, the IR reference and the machine."""

import numpy as np
import pytest
from onnx import TensorProto

from accelsim.frontend.onnx import load_onnx
from accelsim.ir import run_reference
from tests.frontend.onnx.nets import Net, check, ort_run

pytest.importorskip("onnxruntime")
RNG = np.random.default_rng(11)
MS = "com.microsoft"


def _qp(n, scale, zp, dtype="int8"):
    return n.const(np.float32(scale)), n.const(np.array(zp), dtype)


def x_in(shape, scale):
    return (RNG.integers(-90, 90, shape) * scale + RNG.uniform(-0.4, 0.4, shape) * scale).astype(
        np.float32
    )


def test_qlinear_conv_matmul_add():
    """x -> Q -> QLinearConv (per-channel weights, int32 bias) -> QLinearAdd with the
    quantized input (other scale) -> DQ; and GlobalAveragePool-free flatten -> QLinearMatMul."""
    n = Net(13, domains=[MS])
    xs = 2**-5
    xq = n.q("x", xs, 0)
    ws = np.array([1, 3, 5], np.float32) * 2**-7
    w = n.const(RNG.integers(-40, 40, (3, 3, 3, 3)), "int8")
    b = n.const(RNG.integers(-300, 300, 3), "int32")
    args = [xq, *_qp(n, xs, 0), w, n.const(ws), n.const(np.zeros(3), "int8"), *_qp(n, 2**-3, 3)]
    c = n.node("QLinearConv", [*args, b], pads=[1, 1, 1, 1])
    a = n.node(
        "QLinearAdd", [c, *_qp(n, 2**-3, 3), xq, *_qp(n, xs, 0), *_qp(n, 2**-2, -2)], domain=MS
    )
    out1 = n.dq(a, 2**-2, -2)
    flat = n.node("Reshape", [a, n.const(np.array([1, -1], np.int64))])
    wm = n.const(RNG.integers(-10, 10, (3 * 4 * 4, 5)), "int8")
    mm = n.node(
        "QLinearMatMul", [flat, *_qp(n, 2**-2, -2), wm, *_qp(n, 2**-6, 0), *_qp(n, 2**-1, 0)]
    )
    model = n.model("x", [1, 3, 4, 4], [out1, (mm, TensorProto.INT8)])
    g = check(model, x_in((1, 3, 4, 4), xs))
    kinds = [type(v).__name__ for v in g.nodes]
    assert kinds.count("QuantConv2d") == 1 and "Add" in kinds and "QuantLinear" in kinds


def test_qgemm_and_integer_ops():
    """QGemm (transB, alpha, int32 bias) with a quantized output; MatMulInteger with a uint8
    weight zero point -> Cast -> Mul(scales) -> Add(bias) -> QuantizeLinear; ConvInteger with
    an input zero point likewise."""
    n = Net(13, domains=[MS])
    xs = 2**-4
    xq = n.q("x", xs, 3, "uint8")
    w = n.const(RNG.integers(-50, 50, (4, 8)), "int8")  # [N, K]: transB=1
    g1 = n.node(
        "QGemm",
        [
            xq,
            *_qp(n, xs, 3, "uint8"),
            w,
            n.const(np.float32(2**-6)),
            n.const(np.int8(0), "int8"),
            n.const(RNG.integers(-99, 99, 4), "int32"),
            *_qp(n, 2**-2, 130, "uint8"),
        ],
        domain=MS,
        transB=1,
        alpha=0.5,
    )
    out1 = n.dq(g1, 2**-2, 130, "uint8")
    wi = n.const(RNG.integers(100, 160, (8, 3)), "uint8")
    mi = n.node(
        "MatMulInteger", [xq, wi, n.const(np.uint8(3), "uint8"), n.const(np.uint8(128), "uint8")]
    )
    f = n.node("Mul", [n.node("Cast", [mi], to=1), n.const(np.float32(xs * 2**-5))])
    f = n.node("Add", [f, n.const(np.array([0.25, -0.5, 1.0], np.float32))])
    out2 = n.qdq(n.node("Relu", [f]), 2**-3, 0)
    g = check(n.model("x", [2, 8], [out1, out2]), x_in((2, 8), xs) + np.float32(3 * xs))
    assert [type(v).__name__ for v in g.nodes].count("QuantLinear") == 2


def test_conv_integer():
    n = Net(13)
    xs = 2**-4
    xq = n.q("x", xs, 2, "uint8")
    w = n.const(RNG.integers(-20, 20, (2, 3, 3, 3)), "int8")
    ci = n.node("ConvInteger", [xq, w, n.const(np.uint8(2), "uint8")], pads=[0, 1, 0, 1])
    f = n.node("Mul", [n.node("Cast", [ci], to=1), n.const(np.float32(xs * 3 * 2**-6))])
    out = n.qdq(f, 2**-2, 5, "uint8")
    check(n.model("x", [1, 3, 5, 5], [out]), x_in((1, 3, 5, 5), xs) + np.float32(2))


def test_qlinear_add_odd_zero_point_ties():
    """onnxruntime's QLinearAdd computes rne(v + zp); QuantizeLinear semantics (and the
    machine) give rne(v) + zp. With an odd output zero point they differ exactly on ties:
    the import warns, and every differing output is a tie off by one."""
    n = Net(13, domains=[MS])
    xq = n.q("x", 2**-3, 0)
    a = n.node(
        "QLinearAdd", [xq, *_qp(n, 2**-3, 0), xq, *_qp(n, 2**-3, 0), *_qp(n, 2**-1, 1)], domain=MS
    )
    model = n.model("x", [1, 16], [(a, TensorProto.INT8)])
    # inputs q = -8..7 at scale 1/8; v = (q + q) / 8 / (1/2) = q / 2 is a tie for each odd q,
    # and adding the odd zero point before rounding flips the even neighbour every time
    x = (np.arange(-8, 8) * 2**-3).reshape(1, 16).astype(np.float32)
    with pytest.warns(UserWarning, match="odd output zero point 1"):
        g = load_onnx(model.SerializeToString())
    ours = run_reference(g, x, round_mode="rne")[a].astype(np.int64)
    theirs = ort_run(model, x)[a].astype(np.int64)
    q = np.arange(-8, 8)
    ties = q % 2 == 1
    assert np.array_equal(ours[0, ~ties], theirs[0, ~ties])
    assert np.all(np.abs(ours[0, ties] - theirs[0, ties]) == 1)  # all 8 ties differ by one
