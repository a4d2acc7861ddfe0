"""Host ops (NumPy pre/post-processing nodes), the host / machine split, and the nearest
Upsample op on the machine."""

import numpy as np
import pytest

from accelsim.config import load_config
from accelsim.errors import ModelFormatError
from accelsim.ir import Graph, TensorInfo, Trunc, Upsample, run_reference
from accelsim.ir.host_ops import HostBinary, HostDequantize, HostTranspose, split_host
from accelsim.ir.ops import Quantize
from accelsim.runner import run_model


def edge_graph():
    """x (NCHW float) -> *2 -> NHWC -> Quantize -> Upsample x(2, 3) -> NCHW -> dequantize."""
    t = {
        "x": TensorInfo("x", (1, 2, 2, 3), bits=32, mode="float"),
        "x2": TensorInfo("x2", (1, 2, 2, 3), bits=32, mode="float"),
        "xh": TensorInfo("xh", (1, 2, 3, 2), bits=32, mode="float"),
        "q": TensorInfo("q", (1, 2, 3, 2), bits=4, mode="signed", scale=0.25),
        "u": TensorInfo("u", (1, 4, 9, 2), bits=4, mode="signed", scale=0.25),
        "un": TensorInfo("un", (1, 2, 4, 9), bits=4, mode="signed", scale=0.25),
        "y": TensorInfo("y", (1, 2, 4, 9), bits=32, mode="float"),
    }
    nodes = [
        HostBinary(name="scale", inputs=("x",), output="x2", op="Mul", const=np.array(2.0)),
        HostTranspose(name="nhwc", inputs=("x2",), output="xh", perm=(0, 2, 3, 1)),
        Quantize(name="quant", inputs=("xh",), output="q"),
        Upsample(name="up", inputs=("q",), output="u", factors=(2, 3)),
        HostTranspose(name="nchw", inputs=("u",), output="un", perm=(0, 3, 1, 2)),
        HostDequantize(name="dq", inputs=("un",), output="y", scale=0.25),
    ]
    g = Graph("edges", t, nodes, "x", ["y"])
    g.validate()
    return g


def test_split_and_machine_run():
    g = edge_graph()
    s = split_host(g)
    assert [n.name for n in s.pre] == ["scale", "nhwc"] and [n.name for n in s.post] == [
        "nchw",
        "dq",
    ]
    assert s.core.input == "xh" and s.core.outputs == ["u"]
    x = np.random.default_rng(0).uniform(-1, 1, (1, 2, 2, 3)).astype(np.float32)
    ref = run_reference(g, x, round_mode="rne")
    q = np.clip(np.rint(x * 2 / 0.25), -8, 7).transpose(0, 2, 3, 1)
    want = np.repeat(np.repeat(q, 2, axis=1), 3, axis=2)
    assert np.array_equal(ref["u"], want)
    assert np.array_equal(ref["y"], (want.transpose(0, 3, 1, 2) * 0.25).astype(np.float32))
    res = run_model(s.core, load_config("edge"), ref["xh"], check=True)
    assert res.check_ok, res.check_message
    assert np.array_equal(res.outputs["u"].reshape(want.shape), want)


def test_declared_host_shape_is_checked_and_mid_graph_host_rejected():
    g = edge_graph()
    g.tensors["x2"] = TensorInfo("x2", (1, 2, 2, 4), bits=32, mode="float")
    with pytest.raises(ModelFormatError, match="computes"):
        g.validate()
    g = edge_graph()
    g.nodes[3] = Upsample(name="up", inputs=("un",), output="u", factors=(2, 3))
    with pytest.raises(ModelFormatError):
        split_host(g)


@pytest.mark.parametrize("rounding", ["floor", "ceil", "round"])
@pytest.mark.parametrize("shift", [0, 1, 3])
def test_trunc_equals_its_definition_and_runs_on_the_machine(rounding, shift):
    """Trunc = ALU ADD of x with itself (see trunc_params): floor / ceil of x / 2**shift in
    every rounding mode, half to even for round under rne; the machine gives the same."""
    x = np.arange(-64, 64, dtype=np.int64)
    t = {
        "f": TensorInfo("f", (1, 2, 4, 16), bits=32, mode="float"),
        "q": TensorInfo("q", (1, 2, 4, 16), bits=8, mode="signed", scale=1.0),
        "y": TensorInfo("y", (1, 2, 4, 16), bits=8, mode="signed", scale=2.0**shift),
    }
    nodes = [
        Quantize(name="quant", inputs=("f",), output="q"),
        Trunc(name="trunc", inputs=("q",), output="y", shift=shift, rounding=rounding),
    ]
    g = Graph("trunc", t, nodes, "f", ["y"])
    g.validate()
    xin = x.reshape(1, 2, 4, 16).astype(np.float64)
    fn = {"floor": np.floor, "ceil": np.ceil, "round": np.rint}[rounding]
    want = fn(x / 2**shift).astype(np.int64)
    for mode in ("single", "rne", "tflite"):
        got = run_reference(g, xin, round_mode=mode)["y"].reshape(-1)
        if rounding != "round" or mode == "rne":
            assert np.array_equal(got, want), mode
    res = run_model(g, load_config("edge", ["rescale.round_mode=rne"]), xin, check=True)
    assert res.check_ok, res.check_message
    assert np.array_equal(res.outputs["y"].reshape(-1), want)
