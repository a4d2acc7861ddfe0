"""Transformer IR ops: MatMul's per-head reference worked by hand, the op checks, the
reference's two kernel twins agreeing on a small encoder layer, and the native format."""

import numpy as np
import pytest

from accelsim.errors import ModelFormatError
from accelsim.frontend.native import load_model, save_model
from accelsim.ir import (
    Graph,
    LayerNorm,
    MatMul,
    Quantize,
    Softmax,
    TensorInfo,
    run_node,
    run_reference,
)
from accelsim.ir.transformer_params import matmul_params
from workloads.bert import bert_base


def _matmul_graph(a, b, out_shape, *, out_bits=8, out_scale=0.5, zp_b=0, **kw) -> Graph:
    """Tensors a, b (8-bit signed, step 1) and y and a MatMul node reading a and b. A graph has
    one input, so the tests check the node alone (`MatMul.check`) and run it on given
    integers (`run_node`)."""
    tensors = {
        "input": TensorInfo("input", a.shape, 32, "float"),
        "a": TensorInfo("a", a.shape, 8, "signed", 1.0),
        "b": TensorInfo("b", b.shape, 8, "signed", 1.0, zp_b),
        "y": TensorInfo("y", out_shape, out_bits, "signed", out_scale),
    }
    nodes = [
        Quantize(name="q", inputs=("input",), output="a"),
        MatMul(name="mm", inputs=("a", "b"), output="y", **kw),
    ]
    return Graph("mm", tensors, nodes, "input", ["y"])


def _run(g: Graph, a, b) -> np.ndarray:
    return run_node(g.nodes[1], [a, b], g)


def test_matmul_heads_by_hand():
    """Two heads of K = 2 on one row, a = [1, 2 | 3, 4]. transpose_b, b = [[1, 0, 1, 1],
    [0, 1, 2, 0]] (two keys): head 0 is [1, 2] . [[1, 0], [0, 1]]^T = [1, 2]; head 1 is
    [3, 4] . [[1, 1], [2, 0]]^T = [3 + 4, 6 + 0] = [7, 6]. alpha * s_a * s_b / s_out =
    0.5 * 1 * 1 / 0.5 = 1 (multiplier 2^30, shift 30): out [2, 1, 2] = [[[1, 2]], [[7, 6]]].
    Not transposed with concat_heads, b = [[1, 0, 1, 1], [0, 1, 2, 0]] is [K = 2, H * N]:
    head 0 is [1, 2] . [[1, 0], [0, 1]] = [1, 2], head 1 is [3, 4] . [[1, 1], [2, 0]] =
    [11, 3]; out [1, 4] = [[1, 2, 11, 3]]."""
    a = np.array([[1, 2, 3, 4]], np.int8)
    b = np.array([[1, 0, 1, 1], [0, 1, 2, 0]], np.int8)
    g = _matmul_graph(a, b, (2, 1, 2), heads=2, transpose_b=True, alpha=0.5)
    g.nodes[1].check(g)
    assert matmul_params(g.nodes[1], g).mult.tolist() == [2**30] * 2
    np.testing.assert_array_equal(_run(g, a, b), [[[1, 2]], [[7, 6]]])
    g = _matmul_graph(a, b, (1, 4), heads=2, concat_heads=True, alpha=0.5)
    g.nodes[1].check(g)
    np.testing.assert_array_equal(_run(g, a, b), [[1, 2, 11, 3]])
    assert g.nodes[1].macs(g) == 2 * 1 * 2 * 2


def _check(a_shape, b_shape, out_shape, **kw):
    g = _matmul_graph(np.zeros(a_shape, np.int8), np.zeros(b_shape, np.int8), out_shape, **kw)
    g.nodes[1].check(g)


def test_matmul_checks():
    _check((4, 6), (4, 6), (3, 4, 4), heads=3, transpose_b=True)
    with pytest.raises(ModelFormatError, match="alpha a real > 0, got 3, 'x'"):
        _check((4, 6), (4, 6), (3, 4, 4), heads=3, transpose_b=True, alpha="x")
    with pytest.raises(ModelFormatError, match="zero point 0"):
        _check((4, 6), (4, 6), (3, 4, 4), heads=3, transpose_b=True, zp_b=1)
    with pytest.raises(ModelFormatError, match="does not hold 4 heads"):
        _check((4, 6), (4, 6), (4, 4, 4), heads=4, transpose_b=True)
    with pytest.raises(ModelFormatError, match="do not chain"):
        _check((4, 6), (5, 6), (3, 4, 2), heads=3)
    with pytest.raises(ModelFormatError, match=r"declared with shape \(3, 4, 5\)"):
        _check((4, 6), (4, 6), (3, 4, 5), heads=3, transpose_b=True)


def test_softmax_and_layernorm_checks():
    tensors = {
        "input": TensorInfo("input", (2, 4), 32, "float"),
        "x": TensorInfo("x", (2, 4), 16, "signed", 0.01),
        "p": TensorInfo("p", (2, 4), 8, "unsigned", 1 / 128),
    }
    g = Graph("s", tensors, [Quantize(name="q", inputs=("input",), output="x")], "input", ["p"])
    g.nodes.append(Softmax(name="sm", inputs=("x",), output="p"))
    with pytest.raises(ModelFormatError, match="scale 2\\^-bits"):
        g.validate()
    g.tensors["p"].scale = 1 / 256
    g.validate()
    g.nodes[1] = LayerNorm(name="ln", inputs=("x",), output="p", gamma=np.ones(3), beta=np.ones(4))
    with pytest.raises(ModelFormatError, match=r"gamma must be a float array of shape \(4,\)"):
        g.validate()


@pytest.fixture(scope="module")
def tiny_bert():
    """An encoder layer of sequence 8, hidden 16, 2 heads, FFN 32 at 4/4 bits."""
    return bert_base(4, 4, 3, seq=8, hidden=16, heads=2, ffn=32, name="tiny_bert")


def test_reference_twins_agree(tiny_bert):
    """The NumPy `_ref` kernels and the Numba twins give the same integers on every tensor."""
    x = np.random.default_rng(0).standard_normal((8, 16))
    ref, fast = run_reference(tiny_bert, x), run_reference(tiny_bert, x, fast=True)
    for name in ref:
        np.testing.assert_array_equal(ref[name], fast[name], err_msg=name)
    assert ref["softmax"].shape == (2, 8, 8) and ref["context"].shape == (8, 16)


def test_native_round_trip(tiny_bert, tmp_path):
    """MatMul, Softmax, Gelu and LayerNorm save and load through the native format."""
    save_model(tiny_bert, tmp_path / "bert.npz")
    back = load_model(tmp_path / "bert.npz")
    x = np.random.default_rng(1).standard_normal((8, 16))
    ref, got = run_reference(tiny_bert, x, fast=True), run_reference(back, x, fast=True)
    assert [type(n).__name__ for n in back.nodes] == [type(n).__name__ for n in tiny_bert.nodes]
    for name in ref:
        np.testing.assert_array_equal(ref[name], got[name], err_msg=name)
