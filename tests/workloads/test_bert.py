"""bert_base: a reduced encoder layer runs bit-exact on the machine at several widths and
configurations; the full-size layer's MACs, report rows and, on scalesim32, its matmuls'
compute cycles against SCALE-Sim's formulas (one GEMM per head for the attention matmuls)."""

import numpy as np
import pytest

from accelsim.config import load_config
from accelsim.ir import MatMul, QuantLinear
from accelsim.ir.reference import JIT_ENABLED
from accelsim.report import format_report, summarize
from accelsim.runner import run_model
from tests.workloads.conftest import scalesim_cycles
from workloads.bert import bert_base
from workloads.registry import build, listing

SMALL = dict(seq=16, hidden=64, heads=2, ffn=128)
# without JIT the full-size layer's kernels loop in Python for minutes
needs_jit = pytest.mark.skipif(not JIT_ENABLED, reason="the full-size layer is slow without JIT")
LAYERS = [
    "query", "key", "value", "scores", "softmax", "context", "attn_out", "attn_residual",
    "attn_layernorm", "ffn_in", "gelu", "ffn_out", "ffn_residual", "out_layernorm",
]  # fmt: skip


def _macs(seq, hidden, heads, ffn):
    """QKV 3 * seq * hidden^2, scores and context 2 * heads * seq^2 * (hidden / heads),
    output projection seq * hidden^2, FFN 2 * seq * hidden * ffn."""
    d = hidden // heads
    return 4 * seq * hidden**2 + 2 * heads * seq * seq * d + 2 * seq * hidden * ffn


@pytest.mark.parametrize(
    "bits,overrides",
    [
        ((8, 8), []),
        ((4, 4), []),
        ((2, 2), []),
        ((1, 1), []),
        ((3, 6), ["matmul.dataflow=ws", "rescale.round_mode=tflite", "rescale.mult_bits=16"]),
        ((4, 4), ["matmul.dataflow=is", "rescale.round_mode=rne", "vector.lanes=5"]),
    ],
)
def test_reduced_layer_is_bit_exact(bits, overrides):
    """Sequence 16, hidden 64, 2 heads, FFN 128: every layer's output equals the integer
    reference exactly."""
    g = bert_base(*bits, seed=1, **SMALL)
    cfg = load_config("edge", overrides)
    x = np.random.default_rng(2).standard_normal((16, 64))
    result = run_model(g, cfg, x, check=True)
    assert result.check_ok, result.check_message
    assert "15 layer outputs" in result.check_message
    assert result.stats.totals()["macs"] == _macs(**SMALL) == 557_056


def test_reduced_layer_on_server():
    g = bert_base(8, 8, seed=0, **SMALL)
    result = run_model(g, load_config("server"), np.zeros((16, 64)), check=True)
    assert result.check_ok, result.check_message


def test_listed_and_built_by_name():
    assert "bert_base" in dict(listing())
    assert build("bert_base", (2, 2), **SMALL).tensors["softmax"].bits == 2


@pytest.fixture(scope="module")
def full():
    return bert_base(8, 8, 0)


@needs_jit
def test_full_size_timing(full, edge):
    """128 x 768, 12 heads, FFN 3072: 931,135,488 MACs; the report has one row per matmul
    and vector layer, the vector layers' rows busy only on the vector unit (and DMA), and the
    text report names them."""
    assert _macs(128, 768, 12, 3072) == 931_135_488
    result = run_model(full, edge, np.zeros((128, 768)), count_only=True)
    report = summarize(result, edge)
    rows = {r["name"]: r for r in report["layers"]}
    assert list(rows) == LAYERS and report["macs"] == 931_135_488
    for name in ("softmax", "gelu", "attn_layernorm", "out_layernorm", "attn_residual"):
        assert rows[name]["busy_cycles_vector"] > 0 and rows[name]["busy_cycles_matmul"] == 0
    assert rows["scores"]["macs"] == rows["context"]["macs"] == 12 * 128 * 128 * 64
    vector_layers = "softmax, attn_residual, attn_layernorm, gelu, ffn_residual, out_layernorm"
    assert f"on the vector unit: {vector_layers}\n" in format_report(report)


@needs_jit
@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_full_size_compute_cycles_equal_scalesim(full, dataflow):
    """On scalesim32 every matmul of the layer runs as one tile per GEMM: a linear layer's
    compute cycles are SCALE-Sim's formula on (M = 128, K, N); an attention matmul's are 12
    times the formula on one head's GEMM (scores (128, 64, 128), context (128, 128, 64)),
    since each head is its own GEMM with its own fill and drain, as 12 GEMM rows of a
    SCALE-Sim topology file would be."""
    cfg = load_config("scalesim32", [f"matmul.dataflow={dataflow}"])
    result = run_model(full, cfg, np.zeros((128, 768)), count_only=True)
    rows = {r["name"]: r for r in summarize(result, cfg)["layers"]}
    for node in full.nodes:
        if isinstance(node, QuantLinear):
            m, k, n = node.gemm_shape(full)
            assert rows[node.name]["compute_cycles"] == scalesim_cycles(dataflow, m, k, n)
        elif isinstance(node, MatMul):
            m, k, n = node.gemm_shape(full)
            expect = 12 * scalesim_cycles(dataflow, m, k, n)
            assert rows[node.name]["compute_cycles"] == expect, node.name
