"""Batch-norm folding: the folded conv computes the float conv + batch norm up to rounding."""

import numpy as np
import pytest

from accelsim.errors import ModelFormatError
from accelsim.ir import BatchNorm, QuantConv2d, run_reference
from accelsim.ir.fold import fold_batchnorm
from workloads.dense import conv_bn


def test_fold_matches_float_batchnorm():
    g = conv_bn()
    f = fold_batchnorm(g)
    assert [type(n).__name__ for n in f.nodes] == ["Quantize", "QuantConv2d"]
    assert "pre" not in f.tensors and f.nodes[1].output == "y"
    conv, bn = g.node("conv"), g.node("bn")
    folded = f.node("conv")
    assert np.all(folded.w_scale > 0)
    np.testing.assert_array_equal(folded.weight[..., 1], -conv.weight[..., 1])  # gamma < 0

    x = np.random.default_rng(1).uniform(-2, 2, (1, 5, 5, 2))
    env = run_reference(g, x)  # folds on the fly
    xq = env["xq"].astype(np.float64)
    xs = g.tensors["xq"]
    # float conv on the dequantized input (padding = real zero), then float batch norm
    xr = np.pad((xq - xs.zero_point) * xs.scale, ((0, 0), (1, 1), (1, 1), (0, 0)))
    wr = conv.weight * conv.w_scale
    z = np.zeros((1, 5, 5, 4))
    for i in range(3):
        for j in range(3):
            z += np.einsum("nhwc,cd->nhwd", xr[:, i : i + 5, j : j + 5, :], wr[i, j])
    z += conv.bias * xs.scale * conv.w_scale
    y_float = bn.gamma * (z - bn.mean) / np.sqrt(bn.var + bn.eps) + bn.beta
    s_out = g.tensors["y"].scale
    want = np.clip(np.rint(y_float / s_out), -128, 127)
    # one output step of rounding (bias rounding + multiplier rounding), never more
    assert np.max(np.abs(env["y"] - want)) <= 1
    assert np.mean(env["y"] == want) > 0.9


def test_fold_rejects_unfoldable():
    g = conv_bn()
    g.node("bn").gamma[0] = 0.0
    with pytest.raises(ModelFormatError, match="node 'bn'.*gamma == 0"):
        fold_batchnorm(g)
    g = conv_bn()
    g.node("conv").weight[0, 0, 0, 1] = -8  # gamma[1] < 0 would need +8 in 4 bits
    with pytest.raises(ModelFormatError, match="node 'bn'.*negated"):
        fold_batchnorm(g)
    g = conv_bn()
    g.node("conv").relu = True  # ReLU before the batch norm cannot be folded
    with pytest.raises(ModelFormatError, match="node 'conv'.*fused activation"):
        fold_batchnorm(g)


def test_batchnorm_must_follow_conv():
    g = conv_bn()
    bn = g.node("bn")
    g.nodes[2] = BatchNorm(
        name="bn",
        inputs=("xq",),
        output="y",
        gamma=bn.gamma[:2],
        beta=bn.beta[:2],
        mean=bn.mean[:2],
        var=bn.var[:2],
    )
    with pytest.raises(
        ModelFormatError, match="node 'conv'.*float output 'pre' must feed exactly one BatchNorm"
    ):
        g.validate()
    assert isinstance(g.node("conv"), QuantConv2d)
