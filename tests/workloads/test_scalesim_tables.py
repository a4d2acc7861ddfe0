"""On `scalesim32`, the per-layer compute_cycles of resnet50, vgg16 and the dense layers of
mobilenet_v2 equal SCALE-Sim's compute-cycle formulas under OS, WS and IS.

The tables: for every conv and linear layer, the expected cycles are computed here from the
layer's implicit GEMM (M = images * OH * OW, K = kh * kw * Cin, N = Cout; a linear layer has
M = rows, K = inputs, N = outputs) with SCALE-Sim's formulas for an R x C = 32 x 32 array of
8-bit MACs (DESIGN.md "Cost model"; `accelsim.units.matmul`; `scalesim_cycles` in conftest):

    OS: ceil(M/R) * ceil(N/C) * (K + R + C - 2)
    WS: ceil(K/R) * ceil(N/C) * (M + 2R + C - 2)
    IS: ceil(K/R) * ceil(M/C) * (N + 2R + C - 2)

What is compared with them: the `compute_cycles` of the layer's row in the run report (a
timing-only run), which is the matmul unit's busy cycles, the sum of the cost formula over the
layer's GEMM instructions. scalesim32's buffers hold every layer in one tile, so that sum is the
formula on the whole layer, with one exception: VGG-16's fc6 has 25,088 x 4,096 8-bit weights
(103 MB), more than half of the 64 MB weight buffer, and the tiler splits it into 4 GEMMs of
N = 1,024 (all of K). SCALE-Sim, with no buffer limit on a layer, counts it as one GEMM. Under OS
and WS, N is a spatial dimension and 1,024 is a multiple of C, so the 4 GEMMs' folds add up to
the one GEMM's exactly; under IS, N is the temporal dimension and each GEMM pays its own fill
and drain: 3 more times ceil(K/R) * ceil(M/C) * (2R + C - 2) = 3 * 784 * 1 * 94 = 221,088
cycles. The test asserts that exactly.

Depthwise layers (mobilenet_v2's 17) are not in SCALE-Sim's table: SCALE-Sim has no depthwise
mode (a topology row named "DP" runs as Channels separate one-channel layers, C GEMMs of
(M, kh*kw, 1)). The machine runs a depthwise layer as C independent one-column problems packed
side by side on the array's columns, costed as one GEMM of (M, kh*kw, C); the test checks that
mapping too.
"""

import math

import numpy as np
import pytest

from accelsim.config import load_config
from accelsim.ir import QuantConv2d, QuantLinear
from accelsim.isa import Op
from accelsim.report import summarize
from accelsim.runner import run_model
from tests.workloads.conftest import SCALESIM_ARRAY, needs_jit, scalesim_cycles

R = C = SCALESIM_ARRAY


def layer_gemm(g, node) -> tuple[int, int, int]:
    """(M, K, N) of a layer from its tensors and weight shape (per group for depthwise)."""
    if isinstance(node, QuantLinear):
        return g.tensors[node.inputs[0]].shape[0], node.weight.shape[0], node.cout
    images, oh, ow, cout = g.tensors[node.output].shape
    kh, kw, cin_per_group, _ = node.weight.shape
    return images * oh * ow, kh * kw * cin_per_group, cout


@needs_jit
@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
@pytest.mark.parametrize("name", ["resnet50", "vgg16", "mobilenet_v2"])
def test_compute_cycles_equal_scalesim_tables(imagenet, name, dataflow):
    g = imagenet(name)
    cfg = load_config("scalesim32", [f"matmul.dataflow={dataflow}"])
    result = run_model(g, cfg, np.random.default_rng(0).random((1, 224, 224, 3)), count_only=True)
    rows = {r["name"]: r for r in summarize(result, cfg)["layers"]}
    gemms: dict[str, list] = {}
    for insn in result.program.insns:
        if insn.op is Op.GEMM:
            gemms.setdefault(result.program.tags[insn.tag], []).append((insn.m, insn.k, insn.n))
    layers = [n for n in g.nodes if isinstance(n, (QuantConv2d, QuantLinear))]
    dense = [n for n in layers if getattr(n, "groups", 1) == 1]
    assert len(dense) == {"resnet50": 54, "vgg16": 16, "mobilenet_v2": 36}[name]
    for node in dense:
        m, k, n = layer_gemm(g, node)
        table = scalesim_cycles(dataflow, m, k, n)
        row = rows[node.name]
        assert row["macs"] == m * k * n, node.name
        if (name, node.name) == ("vgg16", "fc6"):
            assert gemms[node.name] == [(1, 25088, 1024)] * 4
            extra = 3 * math.ceil(k / R) * math.ceil(m / C) * (2 * R + C - 2)
            assert extra == 221_088
            assert row["compute_cycles"] == table + (extra if dataflow == "is" else 0)
        else:
            assert gemms[node.name] == [(m, k, n)], node.name  # one tile: the whole layer
            assert row["compute_cycles"] == table, node.name
    for node in layers:
        if getattr(node, "groups", 1) > 1:  # depthwise: C one-column problems side by side
            m, taps, channels = layer_gemm(g, node)
            assert taps == 9 and channels == node.groups
            assert gemms[node.name] == [(m, taps, channels)]
            assert rows[node.name]["compute_cycles"] == scalesim_cycles(dataflow, m, taps, channels)
            assert rows[node.name]["macs"] == m * taps * channels
