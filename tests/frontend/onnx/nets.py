"""Small ONNX models built with `onnx.helper` for the importer tests, and the three-way check:
onnxruntime (or the qonnx executor) against the IR integer reference and the simulated machine.

Scales in these models are dyadic with short numerators (3 * 2**-8 and the like), so every
float32 product and sum ONNX Runtime forms is exact and its round-half-even requantization is
the exact one: the simulator must then agree on every element.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from accelsim.config import load_config
from accelsim.frontend.onnx import ONNX_ROUND_MODE, load_onnx
from accelsim.ir import run_reference
from accelsim.runner import run_model

TYPES = {
    "int8": TensorProto.INT8,
    "uint8": TensorProto.UINT8,
    "int4": TensorProto.INT4,
    "uint4": TensorProto.UINT4,
    "int2": TensorProto.INT2,
    "uint2": TensorProto.UINT2,
    "int32": TensorProto.INT32,
    "int16": TensorProto.INT16,
}


class Net:
    """Accumulates nodes and initialisers of one ONNX graph."""

    def __init__(self, opset: int = 13, domains=()):
        self.nodes, self.inits, self.k = [], [], 0
        self.opset, self.domains = opset, domains

    def fresh(self, base: str) -> str:
        self.k += 1
        return f"{base}{self.k}"

    def const(self, arr, dtype: str | None = None, name: str | None = None) -> str:
        name = name or self.fresh("c")
        arr = np.asarray(arr)
        if dtype in ("int4", "uint4", "int2", "uint2"):
            t = helper.make_tensor(name, TYPES[dtype], arr.shape, arr.reshape(-1).tolist())
        else:
            if dtype is not None:
                arr = arr.astype(dtype)
            t = numpy_helper.from_array(arr, name)
        self.inits.append(t)
        return name

    def node(self, op: str, inputs, domain: str = "", n_out: int = 1, **attrs):
        outs = [self.fresh(op.lower()) for _ in range(n_out)]
        name = self.fresh(op)
        self.nodes.append(
            helper.make_node(op, list(inputs), outs, name=name, domain=domain, **attrs)
        )
        return outs[0] if n_out == 1 else outs

    def q(self, x, scale, zp, dtype="int8", axis=None):
        s = self.const(np.asarray(scale, np.float32))
        z = self.const(np.asarray(zp), dtype)
        kw = {} if axis is None else {"axis": axis}
        return self.node("QuantizeLinear", [x, s, z], **kw)

    def dq(self, x, scale, zp, dtype="int8", axis=None):
        s = self.const(np.asarray(scale, np.float32))
        z = self.const(np.asarray(zp), dtype)
        kw = {} if axis is None else {"axis": axis}
        return self.node("DequantizeLinear", [x, s, z], **kw)

    def qdq(self, x, scale, zp=0, dtype="int8"):
        return self.dq(self.q(x, scale, zp, dtype), scale, zp, dtype)

    def weight(self, w_int, scale, dtype="int8", axis=0, zp=None):
        """DequantizeLinear of an integer initialiser (per-channel along `axis` when scale is
        an array)."""
        scale = np.asarray(scale, np.float32)
        zp = np.zeros(scale.shape, np.int64) if zp is None else np.asarray(zp)
        w = self.const(w_int, dtype)
        return self.dq(w, scale, zp, dtype, axis=axis if scale.ndim else None)

    def bias(self, b_int, scale):
        return self.dq(
            self.const(np.asarray(b_int), "int32"),
            np.asarray(scale, np.float32),
            np.zeros(np.shape(scale), np.int32),
            "int32",
            axis=0 if np.ndim(scale) else None,
        )

    def model(self, x: str, shape, outputs, in_type=TensorProto.FLOAT) -> onnx.ModelProto:
        inp = helper.make_tensor_value_info(x, in_type, list(shape))
        ops = [helper.make_opsetid("", self.opset)]
        ops += [helper.make_opsetid(d, 1) for d in self.domains]
        g = helper.make_graph(self.nodes, "net", [inp], [], initializer=self.inits)
        m = helper.make_model(g, opset_imports=ops)
        m.ir_version = min(m.ir_version, 10)
        known = {v.name: v for v in onnx.shape_inference.infer_shapes(m).graph.value_info}
        for o in outputs:  # a (name, type) pair where shape inference cannot see the type
            o, t = o if isinstance(o, tuple) else (o, TensorProto.FLOAT)
            vi = known.get(o) or helper.make_tensor_value_info(o, t, None)
            m.graph.output.append(vi)
        return m


def ort_run(model: onnx.ModelProto, x: np.ndarray, optimize: bool = False) -> dict:
    """onnxruntime's outputs by name. Graph optimizations are off by default: they fuse QDQ
    groups into QLinear kernels, and onnxruntime 1.32 then drops a Relu before a uint4
    QuantizeLinear whose zero point is not 0 (ONNX semantics keep it)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {sess.get_inputs()[0].name: x})))


def qonnx_run(model: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    w = ModelWrapper(onnx.ModelProto.FromString(model.SerializeToString())).transform(InferShapes())
    with warnings.catch_warnings():  # qonnx warns where its inferred shapes were not static
        warnings.simplefilter("ignore", UserWarning)
        out = execute_onnx(w, {model.graph.input[0].name: x})
    return {o.name: out[o.name] for o in model.graph.output}


TRANSCENDENTAL = ("Sigmoid", "Tanh", "Exp", "Log", "Sqrt")


def same_level(got: np.ndarray, want: np.ndarray, name: str, ulps: int = 0) -> None:
    """Exact equality of values and of integer dtype (a float output must be the same float32
    quantization level, which for a dequantized tensor is equality). `ulps`: the float32
    units in the last place a transcendental host op (exp in softmax) may differ by, as two
    libm implementations do."""
    want = np.asarray(want)
    if ulps:
        np.testing.assert_array_max_ulp(got.astype(np.float32), want.astype(np.float32), ulps)
        return
    assert got.shape == want.shape, (name, got.shape, want.shape)
    if want.dtype.kind in "iu":
        assert got.dtype.kind in "iu", (name, got.dtype)
    diff = np.flatnonzero(got.astype(np.float64).ravel() != want.astype(np.float64).ravel())
    assert diff.size == 0, (
        f"{name}: {diff.size} of {got.size} elements differ, first at {diff[0]}: "
        f"{got.ravel()[diff[0]]} vs {want.ravel()[diff[0]]}"
    )


def check(
    model: onnx.ModelProto,
    x: np.ndarray,
    *,
    runner=ort_run,
    machine=True,
    config="edge",
    input_shape=None,
    exact=True,
):
    """Import `model`, compare the IR reference with `runner` on every output (unless not
    `exact`), then (machine) simulate the machine core with check=True and compare its
    outputs after the host epilogue with the reference's. Returns the imported graph."""
    graph = load_onnx(model.SerializeToString(), input_shape=input_shape)
    ref = run_reference(graph, x, round_mode=ONNX_ROUND_MODE)
    want = runner(model, x) if exact else {k: ref[k] for k in graph.outputs}
    ulps = {o: _ulps(graph, o) for o in graph.outputs}
    for name in graph.outputs:
        same_level(ref[name], want[name], name, ulps[name])
    if machine:  # the runner runs the host prologue, the machine core and the epilogue
        cfg = load_config(config, [f"rescale.round_mode={ONNX_ROUND_MODE}"])
        res = run_model(graph, cfg, x, check=True)
        assert res.check_ok, res.check_message
        for name in graph.outputs:
            got = np.asarray(res.outputs[name]).reshape(want[name].shape)
            same_level(got, ref[name], name)
    return graph


def _ulps(graph, name: str) -> int:
    op = graph.producer(name)
    kind = type(op).__name__
    return 2 if kind == "HostSoftmax" or getattr(op, "op", None) in TRANSCENDENTAL else 0
