"""Dense workload builders: valid graphs, ResNet-18 layer shapes, sensible activation ranges."""

import numpy as np
import pytest

from accelsim.ir import (
    Add,
    AvgPool,
    Clip,
    Concat,
    GlobalAvgPool,
    MaxPool,
    QuantConv2d,
    QuantLinear,
    run_reference,
)
from accelsim.ir.reference import JIT_ENABLED
from workloads.dense import WORKLOADS, mlp, random_cnn, resnet18, small_cnn


def test_registry_lists_builders_with_descriptions():
    assert {"small_cnn", "mlp", "resnet18"} <= set(WORKLOADS)
    for name, wl in WORKLOADS.items():
        assert wl.description and "\n" not in wl.description, name
        assert callable(wl.build)


# Without JIT the kernels' argument checks loop over every element in Python: building
# ResNet-18 (calibration runs every layer) takes minutes there, so the coverage job skips it.
needs_jit = pytest.mark.skipif(not JIT_ENABLED, reason="ResNet-18 build is minutes without JIT")


@needs_jit
def test_resnet18_layer_shapes():
    """20 convs + fc; implicit GEMM M = OH*OW, K = kh*kw*Cin, N = Cout at 224x224."""
    g = resnet18(8, 8, seed=0, input_hw=224, calib_hw=16)
    g.validate()
    convs = [n for n in g.nodes if isinstance(n, QuantConv2d)]
    fcs = [n for n in g.nodes if isinstance(n, QuantLinear)]
    assert len(convs) == 20 and len(fcs) == 1
    shapes = {c.name: c.gemm_shape(g) for c in convs}
    assert shapes["conv1"] == (112 * 112, 7 * 7 * 3, 64)
    assert shapes["layer1.0.conv1"] == (56 * 56, 9 * 64, 64)
    assert shapes["layer2.0.conv1"] == (28 * 28, 9 * 64, 128)
    assert shapes["layer2.0.downsample"] == (28 * 28, 64, 128)
    assert shapes["layer3.1.conv2"] == (14 * 14, 9 * 256, 256)
    assert shapes["layer4.0.downsample"] == (7 * 7, 256, 512)
    assert shapes["layer4.1.conv2"] == (7 * 7, 9 * 512, 512)
    assert fcs[0].gemm_shape(g) == (1, 512, 1000)
    assert g.tensors["maxpool"].shape == (1, 56, 56, 64)
    assert g.tensors["gap"].shape == (1, 1, 1, 512)
    assert sum(isinstance(n, Add) for n in g.nodes) == 8
    macs = sum(n.macs(g) for n in convs + fcs)
    assert 1.8e9 < macs < 1.83e9  # the well-known 1.82 GMACs of ResNet-18


def _assert_sensible(g, env):
    """No tensor is constant, and no quantized tensor sits mostly at one end of its range."""
    for n in g.nodes:
        v, t = env[n.output], g.tensors[n.output]
        assert v.min() < v.max(), f"{n.name} is constant"
        lo, hi = t.qrange
        top = 0.25 if t.bits > 2 else 0.4  # 2-bit: 1 of only 4 levels
        assert np.mean(v == hi) < top, f"{n.name} saturates"
        assert np.mean(v == lo) < 0.9, f"{n.name} is mostly at its lowest value"


@pytest.mark.parametrize("bits", [(8, 8), (4, 4), (4, 2), (2, 2)])
def test_small_cnn_runs_with_sensible_ranges(bits):
    g = small_cnn(*bits, seed=1)
    kinds = {type(n) for n in g.nodes}
    assert {QuantConv2d, Add, MaxPool, AvgPool, GlobalAvgPool, QuantLinear} <= kinds
    assert any(isinstance(n, QuantConv2d) and n.groups == 16 for n in g.nodes)  # depthwise
    conv1 = g.node("conv1")
    assert conv1.w_bits == bits[1] and g.tensors["conv1"].bits == bits[0]
    x = np.random.default_rng(7).standard_normal((4, 16, 16, 3))  # not the calibration input
    _assert_sensible(g, run_reference(g, x, fast=JIT_ENABLED))


def test_mlp_runs_with_sensible_ranges():
    g = mlp(4, 4, seed=2, batch=4)
    env = run_reference(g, np.random.default_rng(0).standard_normal((4, 64)))
    _assert_sensible(g, env)
    assert env["logits"].shape == (4, 10)


@needs_jit
def test_resnet18_tiny_run():
    r = resnet18(8, 4, seed=0, input_hw=16, num_classes=10)
    env = run_reference(r, np.random.default_rng(1).standard_normal((2, 16, 16, 3)), fast=True)
    assert env["fc"].shape == (2, 10)
    _assert_sensible(r, env)


def test_builders_are_deterministic():
    a, b = small_cnn(4, 4, seed=5, input_hw=8), small_cnn(4, 4, seed=5, input_hw=8)
    c = small_cnn(4, 4, seed=6, input_hw=8)
    np.testing.assert_array_equal(a.node("conv3").weight, b.node("conv3").weight)
    assert a.tensors["conv3"].scale == b.tensors["conv3"].scale
    assert not np.array_equal(a.node("conv3").weight, c.node("conv3").weight)


def test_random_cnn_covers_ops_and_matches_fast_path():
    seen, depthwise, bits_seen, constant, total = set(), False, set(), 0, 0
    for seed in range(12):
        g = random_cnn(np.random.default_rng(seed))
        g.validate()
        assert isinstance(g.nodes[-1], QuantLinear), seed  # every random CNN ends in a linear
        x = np.random.default_rng(seed + 100).standard_normal(g.tensors["input"].shape)
        for mode in ("single", "tflite"):
            ref = run_reference(g, x, round_mode=mode)
            fast = run_reference(g, x, round_mode=mode, fast=True)
            for name in ref:
                np.testing.assert_array_equal(ref[name], fast[name], err_msg=name)
        for n in g.nodes:
            seen.add(type(n))
            depthwise |= isinstance(n, QuantConv2d) and n.groups > 1
            bits_seen.add(g.tensors[n.output].bits)
            total += 1
            constant += ref[n.output].min() == ref[n.output].max()
    kinds = {QuantConv2d, Add, MaxPool, AvgPool, Concat, Clip, GlobalAvgPool, QuantLinear}
    assert kinds <= seen, kinds - seen
    assert depthwise
    assert bits_seen == {2, 4, 8}
    assert constant / total < 0.1
