"""IR graph -> ONNX QDQ model: every integer tensor becomes a QuantizeLinear output, every op
reads DequantizeLinear views, so onnxruntime computes the same integers as the machine with
`rescale.round_mode = "rne"` (ONNX rounds half to even).

Feature maps are NCHW in the file, as ONNX models are (a native model's image input is
declared NCHW); a flatten transposes to the IR's NHWC order first, and host ops read the IR's
NHWC layout through a Transpose. Widths without an ONNX type (1..7 bits) are stored in int8 /
uint8 and clamped to their range by a Clip before the QuantizeLinear (exact: rounding is
monotone; the importer reads such a clamped tensor back at its narrow width);
9..16 bits use int16 / uint16 (opset 21). Weights are int8 / uint8 initialisers with per-channel
scales, biases int32 with scale s_in * s_w[c], zero point 0 (float32 where the bias has
fractional bits, see `_Exporter.bias`).
"""

from __future__ import annotations

import numpy as np

from accelsim.errors import AccelsimError
from accelsim.fileio import atomic_write
from accelsim.ir import host_ops as H
from accelsim.ir.fold import fold_batchnorm
from accelsim.ir.graph import Graph, TensorInfo
from accelsim.ir.ops import (
    Add,
    AvgPool,
    BatchNorm,
    Clip,
    Concat,
    Flatten,
    GlobalAvgPool,
    MaxPool,
    QuantConv2d,
    Quantize,
    QuantLinear,
    Upsample,
)

_F32 = np.float32
TO_NCHW, TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)


class _Exporter:
    def __init__(self, graph: Graph):
        from onnx import helper, numpy_helper  # noqa: PLC0415 (the `onnx` extra)

        self.h, self.nh = helper, numpy_helper
        self.g = graph
        self.nodes, self.inits, self.k = [], [], 0
        self.opset = 13
        self.nchw: set[str] = set()  # IR tensors whose ONNX value is NCHW (4-D machine tensors)
        self._ir_view: dict[str, str] = {}

    def fresh(self, base: str) -> str:
        self.k += 1
        return f"{base}__{self.k}"

    def const(self, arr, base: str) -> str:
        name = self.fresh(base)
        self.inits.append(self.nh.from_array(np.asarray(arr), name))
        return name

    def node(self, op: str, inputs, base: str, out=None, name=None, **attrs) -> str:
        """Add one ONNX node (named `name`, else a fresh name); returns its output."""
        out = out or self.fresh(base)
        name = name or self.fresh(op)
        self.nodes.append(self.h.make_node(op, list(inputs), [out], name=name, **attrs))
        return out

    def qtype(self, t: TensorInfo):
        if t.mode == "bipolar":
            raise AccelsimError(f"tensor {t.name!r}: bipolar activations have no ONNX type")
        signed = t.mode == "signed"
        if t.bits <= 8:
            return np.int8 if signed else np.uint8
        self.opset = 21
        return np.int16 if signed else np.uint16

    def qparams(self, t: TensorInfo, base: str) -> tuple[list[str], dict]:
        scale = np.asarray(t.scale, _F32)
        zp = np.full(scale.shape, t.zero_point, self.qtype(t))
        attrs = {"axis": 1} if scale.ndim else {}  # the channel axis, NCHW or [N, C]
        return [self.const(scale, f"{base}_scale"), self.const(zp, f"{base}_zp")], attrs

    def quantize(self, xf: str, t: TensorInfo, lo=None, hi=None, relu=False) -> str:
        """QuantizeLinear of float xf into IR tensor t (a Clip / Relu first narrows it to
        t's range and the fused activation)."""
        qlo, qhi = t.qrange
        type_lo, type_hi = np.iinfo(self.qtype(t)).min, np.iinfo(self.qtype(t)).max
        lo = max(qlo, t.zero_point if relu else qlo, qlo if lo is None else lo)
        hi = min(qhi, qhi if hi is None else hi)
        if (lo, hi) != (type_lo, type_hi):
            s = np.asarray(t.scale, np.float64)
            if s.ndim:  # per-channel steps: a clip per channel as Max / Min
                shape = (-1, 1, 1) if len(t.shape) == 4 else (-1,)
                for op, v in (("Max", lo), ("Min", hi)):
                    c = (s * (v - t.zero_point)).astype(_F32).reshape(shape)
                    xf = self.node(op, [xf, self.const(c, "bound")], "clip")
            else:
                bounds = [self.const(_F32(s * (v - t.zero_point)), "b") for v in (lo, hi)]
                xf = self.node("Clip", [xf, *bounds], "clip")
        ins, attrs = self.qparams(t, t.name)
        if len(t.shape) == 4:
            self.nchw.add(t.name)
        return self.node("QuantizeLinear", [xf, *ins], t.name, out=self.name(t.name), **attrs)

    def name(self, ir_name: str) -> str:
        return ir_name  # IR names are unique, so they serve as ONNX value names

    def ir_view(self, ir_name: str) -> str:
        """The ONNX value of IR tensor `ir_name` in the IR's own layout (NHWC)."""
        if ir_name not in self.nchw:
            return ir_name
        if ir_name not in self._ir_view:
            self._ir_view[ir_name] = self.node(
                "Transpose", [ir_name], f"{ir_name}_nhwc", perm=list(TO_NHWC)
            )
        return self._ir_view[ir_name]

    def dq(self, ir_name: str) -> str:
        t = self.g.tensors[ir_name]
        ins, attrs = self.qparams(t, ir_name)
        return self.node("DequantizeLinear", [self.name(ir_name), *ins], f"{ir_name}_dq", **attrs)

    def weighted(self, op) -> None:
        src, dst = (self.g.tensors[i] for i in (op.inputs[0], op.output))
        ws = op.w_scale_per_channel()
        w = op.weight.astype(np.int64)
        conv = isinstance(op, QuantConv2d)
        w_onnx = w.transpose(3, 2, 0, 1) if conv else w  # [Cout, Cin/g, KH, KW] or [K, N]
        wt = np.int8 if op.w_mode != "unsigned" else np.uint8
        axis = 0 if conv else 1
        wdq = self.node(
            "DequantizeLinear",
            [
                self.const(w_onnx.astype(wt), f"{op.name}_w"),
                self.const(ws.astype(_F32), f"{op.name}_ws"),
                self.const(np.zeros(op.cout, wt), "wzp"),
            ],
            f"{op.name}_wdq",
            axis=axis,
        )
        bdq = self.bias(op, float(src.scale), ws)
        x = self.dq(op.inputs[0])
        if conv:
            pt, pb, pl, pr = op.padding
            y = self.node(
                "Conv",
                [x, wdq, bdq],
                op.name,
                strides=list(op.stride),
                pads=[pt, pl, pb, pr],
                dilations=list(op.dilation),
                group=op.groups,
            )
        else:
            y = self.node(
                "Add", [self.node("MatMul", [x, wdq], op.name, name=op.name), bdq], op.name
            )
        self.quantize(y, dst, op.clip_lo, op.clip_hi, op.relu)

    def bias(self, op, s_in: float, ws: np.ndarray) -> str:
        """The bias input of conv / linear `op`: an int32 DequantizeLinear at scale s_in * s_w[c]
        (a whole-unit bias), or float32 values when it has fractional bits F > 0. A DQ at scale
        s_in * s_w[c] * 2**-F would state the same reals, but onnxruntime's optimizer fuses a
        DQ bias into QGemm / QLinearConv as if its scale were s_in * s_w[c]."""
        b = op.bias_or_zeros()
        if op.bias_frac_bits:
            real = np.ldexp(b.astype(np.float64), -op.bias_frac_bits) * s_in * ws
            return self.const(real.astype(_F32), f"{op.name}_b")
        bscale = (_F32(s_in) * ws.astype(_F32)).astype(_F32)
        return self.node(
            "DequantizeLinear",
            [
                self.const(b, f"{op.name}_b"),
                self.const(bscale, f"{op.name}_bs"),
                self.const(np.zeros(op.cout, np.int32), "bzp"),
            ],
            f"{op.name}_bdq",
            axis=0,
        )

    def vector(self, op) -> None:
        dst = self.g.tensors[op.output]
        if isinstance(op, Quantize):
            x = op.inputs[0]
            if len(dst.shape) == 4 and x not in self.nchw:  # a host tensor in the IR's NHWC
                x = self.node("Transpose", [x], "nchw", perm=list(TO_NCHW))
            self.quantize(x, dst)
        elif isinstance(op, Add):
            y = self.node(
                "Add", [self.dq(op.inputs[0]), self.dq(op.inputs[1])], op.name, name=op.name
            )
            self.quantize(y, dst, relu=op.relu)
        elif isinstance(op, Clip):
            self.quantize(self.dq(op.inputs[0]), dst, op.lo, op.hi)
        elif isinstance(op, GlobalAvgPool):
            gap = self.node("GlobalAveragePool", [self.dq(op.inputs[0])], op.name, name=op.name)
            self.quantize(gap, dst)
        elif isinstance(op, MaxPool):  # and AvgPool (count_include_pad = 0)
            pt, pb, pl, pr = op.padding
            kind = "AveragePool" if isinstance(op, AvgPool) else "MaxPool"
            y = self.node(
                kind,
                [self.dq(op.inputs[0])],
                op.name,
                kernel_shape=list(op.kernel),
                strides=list(op.stride),
                pads=[pt, pl, pb, pr],
            )
            self.quantize(y, dst)
        elif isinstance(op, Flatten):
            shape = self.const(np.array(dst.shape, np.int64), "shape")
            self.node(
                "Reshape", [self.ir_view(op.inputs[0]), shape], op.name, out=op.output, name=op.name
            )
        elif isinstance(op, Concat):
            y = self.node("Concat", [self.dq(i) for i in op.inputs], op.name, name=op.name, axis=1)
            self.quantize(y, dst)
        elif isinstance(op, Upsample):
            scales = self.const(np.array([1, 1, *op.factors], _F32), "scales")
            self.nchw.add(op.output)
            self.node(
                "Resize",
                [self.name(op.inputs[0]), "", scales],
                op.name,
                out=op.output,
                mode="nearest",
                coordinate_transformation_mode="asymmetric",
                nearest_mode="floor",
            )
        else:
            raise AccelsimError(f"node {op.name!r}: {type(op).__name__} has no ONNX export")

    def host(self, op) -> None:
        x, out = self.ir_view(op.inputs[0]), op.output
        if isinstance(op, H.HostTranspose):
            self.node("Transpose", [x], out, out=out, perm=list(op.perm))
        elif isinstance(op, H.HostReshape):
            self.node(
                "Reshape", [x, self.const(np.array(op.shape, np.int64), "shape")], out, out=out
            )
        elif isinstance(op, H.HostDequantize):
            t = self.g.tensors[op.inputs[0]]
            s = np.asarray(op.scale, _F32)
            zp = np.full(s.shape, np.asarray(op.zero_point).reshape(-1)[0], self.qtype(t))
            self.node(
                "DequantizeLinear",
                [x, self.const(s, "s"), self.const(zp, "zp")],
                out,
                out=out,
                **({"axis": op.axis} if s.ndim else {}),
            )
        elif isinstance(op, H.HostBinary):
            c = self.const(np.asarray(op.const, _F32), "c")
            self.node(op.op, [c, x] if op.const_first else [x, c], out, out=out)
        elif isinstance(op, H.HostUnary):
            self.node(op.op, [x], out, out=out)
        elif isinstance(op, H.HostClip):
            bounds = ["" if v is None else self.const(_F32(v), "b") for v in (op.lo, op.hi)]
            self.node("Clip", [x, *bounds], out, out=out)
        elif isinstance(op, H.HostSoftmax):
            self.node("Softmax", [x], out, out=out, axis=op.axis)
        elif isinstance(op, H.HostResize):
            sc = self.const(np.array(op.factors, _F32), "scales")
            self.node(
                "Resize",
                [x, "", sc],
                out,
                out=out,
                mode="nearest",
                coordinate_transformation_mode="asymmetric",
                nearest_mode="floor",
            )
        elif isinstance(op, H.HostDepthToSpace):
            self.node("DepthToSpace", [x], out, out=out, blocksize=op.blocksize, mode=op.mode)
        else:
            raise AccelsimError(f"node {op.name!r}: {type(op).__name__} has no ONNX export")

    def model(self):
        from onnx import TensorProto  # noqa: PLC0415

        g = self.g
        shape = list(g.tensors[g.input].shape)
        if g.input in self.nchw:
            shape = [shape[0], shape[3], shape[1], shape[2]]
        ins = [self.h.make_tensor_value_info(g.input, TensorProto.FLOAT, shape)]
        outs = []
        for o in g.outputs:
            t = g.tensors[o]
            shape = list(t.shape)
            if o in self.nchw:  # a 4-D machine output is NCHW in the file
                shape = [shape[0], shape[3], shape[1], shape[2]]
            et = (
                TensorProto.FLOAT
                if t.is_float
                else self.h.np_dtype_to_tensor_dtype(np.dtype(self.qtype(t)))
            )
            outs.append(self.h.make_tensor_value_info(o, et, shape))
        graph = self.h.make_graph(self.nodes, g.name, ins, outs, initializer=self.inits)
        m = self.h.make_model(
            graph, opset_imports=[self.h.make_opsetid("", self.opset)], producer_name="accelsim"
        )
        m.ir_version = 10 if self.opset >= 21 else 8
        return m


def to_onnx(graph: Graph):
    """The ONNX QDQ ModelProto of `graph` (batch norm folded first; see module docstring)."""
    g = fold_batchnorm(graph) if any(isinstance(n, BatchNorm) for n in graph.nodes) else graph
    g.validate()
    ex = _Exporter(g)
    if len(g.tensors[g.input].shape) == 4 and isinstance(g.nodes[0], Quantize):
        ex.nchw.add(g.input)  # a native model: declare its image input NCHW, as ONNX does
    for op in g.nodes:
        if isinstance(op, H.HostOp):
            ex.host(op)
        elif isinstance(op, (QuantConv2d, QuantLinear)):
            ex.weighted(op)
        else:
            ex.vector(op)
    return ex.model()


def save_onnx(graph: Graph, path) -> None:
    """Write `graph` as an ONNX QDQ file at `path`, atomically."""
    data = to_onnx(graph).SerializeToString()
    atomic_write(path, lambda f: f.write(data))
