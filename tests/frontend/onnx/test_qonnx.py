"""QONNX models as Brevitas exports them (Quant / BipolarQuant on weights and activations, float
conv bias, BatchNormalization, the Shape-Gather-Unsqueeze-Concat-Reshape flatten) against the
qonnx executor, the IR reference and the machine."""

import numpy as np
import pytest

from accelsim.errors import ModelFormatError
from accelsim.frontend.onnx import load_onnx
from tests.frontend.onnx.nets import Net, check, qonnx_run

pytest.importorskip("qonnx")
RNG = np.random.default_rng(5)
QD = "qonnx.custom_op.general"


def quant(n, x, scale, bits, signed=1, narrow=0, zp=0.0, rounding="ROUND"):
    args = [
        x,
        n.const(np.asarray(scale, np.float32)),
        n.const(np.float32(zp)),
        n.const(np.float32(bits)),
    ]
    return n.node("Quant", args, domain=QD, signed=signed, narrow=narrow, rounding_mode=rounding)


def flatten_by_shape(n, x):
    """Brevitas's flatten: Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1]))."""
    batch = n.node("Gather", [n.node("Shape", [x]), n.const(np.int64(0))], axis=0)
    un = n.node("Unsqueeze", [batch, n.const(np.array([0], np.int64))])
    shape = n.node("Concat", [un, n.const(np.array([-1], np.int64))], axis=0)
    return n.node("Reshape", [x, shape])


def brevitas_cnn(act_bits=8, w_bits=4, bipolar_fc=False):
    n = Net(13, domains=[QD])
    x = quant(n, "x", 2**-4, act_bits)
    wf = RNG.integers(-7, 8, (4, 2, 3, 3)) * (np.array([1, 3, 5, 3]) * 2.0**-6)[:, None, None, None]
    w = quant(
        n,
        n.const(wf.astype(np.float32)),
        (np.array([1, 3, 5, 3]) * 2.0**-6).reshape(4, 1, 1, 1),
        w_bits,
        narrow=1,
    )
    c = n.node(
        "Conv",
        [x, w, n.const((RNG.integers(-64, 64, 4) * 2.0**-6).astype(np.float32))],
        pads=[1, 1, 1, 1],
    )
    var = np.float32(1) - np.float32(1e-5)  # var + eps == 1 in float32: an exact batch norm
    bn = n.node(
        "BatchNormalization",
        [
            c,
            n.const(np.array([0.5, 2, -1, 1], np.float32)),
            n.const(np.array([0.25, -0.5, 0, 1], np.float32)),
            n.const(np.array([0.125, 0, 0.5, -1], np.float32)),
            n.const(np.full(4, var, np.float32)),
        ],
        epsilon=1e-5,
    )
    r = quant(n, n.node("Relu", [bn]), 2**-3, 4, signed=0)
    p = n.node("MaxPool", [r], kernel_shape=[2, 2], strides=[2, 2])
    f = flatten_by_shape(n, p)
    if bipolar_fc:
        wfc = n.node(
            "BipolarQuant",
            [
                n.const(RNG.standard_normal((4 * 3 * 3, 3)).astype(np.float32)),
                n.const(np.float32(2**-4)),
            ],
            domain=QD,
        )
    else:
        wt = n.const((RNG.integers(-3, 4, (3, 4 * 3 * 3)) * 2**-5).astype(np.float32))
        wfc = n.node("Transpose", [quant(n, wt, 2**-5, 3, narrow=1)], perm=[1, 0])
    y = quant(n, n.node("MatMul", [f, wfc]), 2**-2, 8)
    return n.model("x", [1, 2, 6, 6], [y])


@pytest.mark.parametrize("bipolar_fc", [False, True], ids=["int3_fc", "bipolar_fc"])
def test_brevitas_cnn(bipolar_fc):
    x = RNG.integers(-100, 100, (1, 2, 6, 6)) * 2**-4 + RNG.uniform(-0.03, 0.03, (1, 2, 6, 6))
    g = check(brevitas_cnn(bipolar_fc=bipolar_fc), x.astype(np.float32), runner=qonnx_run)
    kinds = [type(n).__name__ for n in g.nodes]
    assert "BatchNorm" not in kinds and "Reshape" not in kinds
    fc = next(n for n in g.nodes if type(n).__name__ == "QuantLinear")
    assert fc.w_mode == ("bipolar" if bipolar_fc else "signed")


def test_subpixel_depth_to_space_after_conv():
    """ESPCN's sub-pixel head: Conv -> DepthToSpace -> Relu -> Quant. The per-tensor Relu and
    quantizer commute with the channel-to-space move, so the conv requantizes on the machine
    and DepthToSpace runs on the host epilogue, on integers."""
    n = Net(13, domains=[QD])
    x = quant(n, "x", 2**-4, 8, signed=0)
    w = quant(
        n,
        n.const((RNG.integers(-7, 8, (8, 2, 3, 3)) * 2**-5).astype(np.float32)),
        2**-5,
        4,
        narrow=1,
    )
    d = n.node("DepthToSpace", [n.node("Conv", [x, w], pads=[1, 1, 1, 1])], blocksize=2, mode="CRD")
    y = quant(n, n.node("Relu", [d]), 2**-3, 8, signed=0)
    xin = (RNG.integers(0, 200, (1, 2, 4, 4)) * 2**-4).astype(np.float32)
    g = check(n.model("x", [1, 2, 4, 4], [y]), xin, runner=qonnx_run)
    assert type(g.producer(g.outputs[0])).__name__ == "HostDepthToSpace"


def test_trunc_avgpool_and_trunc_of_a_tensor():
    """Brevitas's TruncAvgPool2d: AveragePool -> Mul(k*k) -> Trunc(FLOOR) drops the low bits
    of the window sum; and a Trunc of a quantized tensor (v1: same scale, fewer bits)."""
    n = Net(13, domains=[QD])
    x = quant(n, "x", 2**-4, 8, signed=0)
    w = quant(
        n,
        n.const((RNG.integers(-7, 8, (3, 2, 3, 3)) * 2**-5).astype(np.float32)),
        2**-5,
        4,
        narrow=1,
    )
    r = quant(n, n.node("Relu", [n.node("Conv", [x, w], pads=[1, 1, 1, 1])]), 2**-3, 4, signed=0)
    s = n.node(
        "Mul",
        [n.node("AveragePool", [r], kernel_shape=[2, 2], strides=[2, 2]), n.const(np.float32(4))],
    )
    tr = n.node(
        "Trunc",
        [
            s,
            n.const(np.float32(2**-3)),
            n.const(np.float32(0)),
            n.const(np.float32(6)),
            n.const(np.float32(4)),
        ],
        domain=QD,
        rounding_mode="FLOOR",
    )
    t2 = n.node(
        "Trunc",
        [
            x,
            n.const(np.float32(2**-4)),
            n.const(np.float32(0)),
            n.const(np.float32(8)),
            n.const(np.float32(5)),
        ],
        domain=QD,
        rounding_mode="FLOOR",
    )
    xin = (RNG.integers(0, 250, (1, 2, 4, 4)) * 2**-4).astype(np.float32)
    g = check(n.model("x", [1, 2, 4, 4], [tr, t2]), xin, runner=qonnx_run)
    assert [type(v).__name__ for v in g.nodes].count("Trunc") == 2


def test_narrow_signed_input_and_floor_rounded_weights():
    """A signed narrow-range input Quant ([-127, 127]: a Clip after the input quantizer) and
    weights quantized with rounding_mode FLOOR (applied at import, exactly as qonnx does)."""
    n = Net(13, domains=[QD])
    x = quant(n, "x", 2**-4, 8, narrow=1)
    wf = RNG.uniform(-0.2, 0.2, (5, 6)).astype(np.float32)
    w = quant(n, n.const(wf), 2**-6, 6, rounding="FLOOR")
    y = quant(n, n.node("MatMul", [x, w]), 2**-3, 8)
    xin = np.concatenate([np.full((1, 2), -9.0), RNG.uniform(-8, 8, (1, 3))], 1).astype(np.float32)
    g = check(n.model("x", [1, 5], [y]), xin, runner=qonnx_run)
    clip = next(v for v in g.nodes if type(v).__name__ == "Clip")
    assert clip.lo == -127
    fc = next(v for v in g.nodes if type(v).__name__ == "QuantLinear")
    assert np.array_equal(fc.weight, np.floor(wf / np.float32(2**-6)).astype(np.int64))


def test_activation_rounding_other_than_half_even_is_refused():
    n = Net(13, domains=[QD])
    y = quant(n, "x", 2**-4, 8, rounding="FLOOR")
    with pytest.raises(ModelFormatError, match="rounding_mode 'FLOOR' on an activation"):
        load_onnx(n.model("x", [1, 4], [y]).SerializeToString())
