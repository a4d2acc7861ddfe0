"""Vector-unit ops (Add of two tensors, pooling, Relu / Clip, Concat, Flatten) on machine
tensors, the shape ops that only relabel them, and the float ops that run on the host.

A float op on the host input (`Host`) stays there as pre-processing; one on a machine tensor's
float view moves that tensor to the host epilogue (`Builder.to_host`) first; data movement
(Resize, DepthToSpace) on an unquantized result is deferred past its quantizer, since
per-tensor elementwise ops commute with it.
"""

from __future__ import annotations

import numpy as np

from accelsim.frontend.onnx.build import Builder, fail
from accelsim.frontend.onnx.layers import affine, is_const, pending_arith
from accelsim.frontend.onnx.quant_ops import const_array
from accelsim.frontend.onnx.reader import ONode
from accelsim.frontend.onnx.values import Act, Const, Host, Pending, QConst, onnx_shape
from accelsim.ir import host_ops as H
from accelsim.ir.ops import (
    Add,
    AvgPool,
    Concat,
    Flatten,
    GlobalAvgPool,
    MaxPool,
    infer_shape,
)


def _host(b: Builder, node: ONode, x) -> Host:
    """Value x as a host tensor (a machine tensor moves to the host epilogue)."""
    if isinstance(x, Host):
        return x
    if isinstance(x, Act):
        return b.to_host(x, f"{node.inputs[0]}/host", node)
    if isinstance(x, Pending):
        fail(node, f"reads the unquantized result of {x.src!r}; quantize it first")
    fail(node, "input is a constant")


def host_op(b: Builder, node: ONode, x, op) -> Host:
    """Run host op `op` on value x (its name, inputs and output are set here)."""
    h = _host(b, node, x)
    op.name, op.inputs = b.node_name(node.name), (h.name,)
    return Host(b.host_tensor(node.outputs[0], op, like=h.name), post=h.post)


def _onnx_shape(b: Builder, v) -> tuple[int, ...]:
    if isinstance(v, Act):
        return onnx_shape(b.tensors[v.name].shape, v.layout, v.chw)
    if isinstance(v, Host):
        return b.tensors[v.name].shape
    if isinstance(v, Pending):
        return onnx_shape(v.shape, v.layout, v.chw)
    return np.shape(v.value if isinstance(v, Const) else v.q)


def shape(b: Builder, node: ONode, args):
    s = np.asarray(_onnx_shape(b, args[0]), np.int64)
    start, end = node.attrs.get("start", 0), node.attrs.get("end", None)
    return [Const(s[start:end])]


def add(b: Builder, node: ONode, args):
    x, y = args
    if isinstance(x, Pending) and is_const(y):
        return [pending_arith(b, node, x, y, False)]
    if isinstance(y, Pending) and is_const(x):
        return [pending_arith(b, node, y, x, True)]
    if node.op == "Add" and all(isinstance(v, Act) and v.real for v in (x, y)):
        x, y = b.settle(x, node), b.settle(y, node)
        tx, ty = b.tensors[x.name], b.tensors[y.name]
        if tx.shape != ty.shape or x.layout != y.layout:
            fail(node, f"adds tensors of shapes {tx.shape} and {ty.shape} (no broadcasting)")
        op = Add(name="", inputs=(x.name, y.name), output="")
        return [Pending("add", op, tx.shape, x.layout, node.name, chw=x.chw)]
    if isinstance(y, (Const, QConst)) or isinstance(x, (Const, QConst)):
        first = is_const(x)
        c = x if first else y
        arr = c.real() if isinstance(c, QConst) else c.value
        op = H.HostBinary(
            name="", inputs=(), output="", op=node.op, const=np.asarray(arr), const_first=first
        )
        return [host_op(b, node, y if first else x, op)]
    fail(
        node,
        f"{node.op} of {type(x).__name__} and {type(y).__name__} is not supported "
        "(two quantized tensors, a conv result and a constant, or host float and a constant)",
    )


def _pool_attrs(node: ONode, k) -> dict:
    a = node.attrs
    if a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        fail(node, f"auto_pad {a['auto_pad']!r} is not supported")
    if any(d != 1 for d in a.get("dilations", (1, 1))) or a.get("storage_order", 0):
        fail(node, "dilations / storage_order are not supported")
    p = tuple(a.get("pads", (0, 0, 0, 0))) if a.get("auto_pad", "NOTSET") == "NOTSET" else (0,) * 4
    if len(k) != 2 or len(p) != 4:
        fail(node, "only 2-D pooling is supported")
    return {
        "kernel": tuple(k),
        "stride": tuple(a.get("strides", (1, 1))),
        "padding": (p[0], p[2], p[1], p[3]),
    }


def _check_ceil(node: ONode, op, in_shape) -> None:
    if not node.attrs.get("ceil_mode", 0):
        return
    n, h, w, _ = in_shape
    pt, pb, pl, pr = op.padding
    for size, k, s, lo, hi in (
        (h, op.kernel[0], op.stride[0], pt, pb),
        (w, op.kernel[1], op.stride[1], pl, pr),
    ):
        if (size + lo + hi - k) % s:
            fail(node, "ceil_mode=1 gives a partial last window, which is not supported")


def pool(b: Builder, node: ONode, args):
    x = args[0]
    if len(node.outputs) > 1 and node.outputs[1]:
        fail(node, "the Indices output is not supported")
    if not isinstance(x, Act) or x.layout != "nchw":
        fail(node, "input must be a quantized 4-D (NCHW) machine tensor")
    t = b.tensors[x.name]
    if node.op == "GlobalAveragePool" or node.op == "ReduceMean":
        if node.op == "ReduceMean" and (
            sorted(a % 4 for a in node.attrs.get("axes", ())) != [2, 3]
            or not node.attrs.get("keepdims", 1)
        ):
            fail(node, "ReduceMean is supported over axes [2, 3] with keepdims=1 (a global pool)")
        x = b.settle(x, node)
        op = GlobalAvgPool(name="", inputs=(x.name,), output="")
        return [Pending("pool", op, infer_shape(op, [t.shape]), "nchw", node.name)]
    cls = MaxPool if node.op == "MaxPool" else AvgPool
    op = cls(name="", inputs=(x.name,), output="", **_pool_attrs(node, node.attrs["kernel_shape"]))
    _check_ceil(node, op, t.shape)
    shape = infer_shape(op, [t.shape])
    if cls is AvgPool:
        if node.attrs.get("count_include_pad", 0) and any(op.padding):
            fail(
                node,
                "count_include_pad=1 with padding is not supported (the ALU averages "
                "the in-bounds elements)",
            )
        x = b.settle(x, node)
        op.inputs = (x.name,)
        return [Pending("pool", op, shape, "nchw", node.name)]
    name = b.tensor_name(node.outputs[0])  # max pooling keeps the quantization (and any clamp)
    b.tensors[name] = type(t)(name, shape, t.bits, t.mode, t.scale, t.zero_point)
    op.name, op.output = b.node_name(node.name), name
    b.add(op)
    return [Act(name, x.real, "nchw", None, x.lo_r, x.hi_r)]


def relu_clip(b: Builder, node: ONode, args):
    x = args[0]
    if node.op == "Relu":
        lo, hi = 0.0, None
    else:
        a = node.attrs
        lo, hi = a.get("min"), a.get("max")
        if len(args) > 1 and args[1] is not None:
            lo = float(const_array(node, args[1], "min"))
        if len(args) > 2 and args[2] is not None:
            hi = float(const_array(node, args[2], "max"))
    if isinstance(x, Host):
        op = (
            H.HostUnary(name="", inputs=(), output="", op="Relu")
            if node.op == "Relu"
            else (H.HostClip(name="", inputs=(), output="", lo=lo, hi=hi))
        )
        return [host_op(b, node, x, op)]
    if isinstance(x, (Pending, Act)) and (not isinstance(x, Act) or x.real):
        new = type(x)(**{**x.__dict__})
        new.lo_r = lo if x.lo_r is None else (x.lo_r if lo is None else max(x.lo_r, lo))
        new.hi_r = hi if x.hi_r is None else (x.hi_r if hi is None else min(x.hi_r, hi))
        return [new]
    if isinstance(x, Act):  # Relu / Clip on integers: a clamp of the integer values
        t = b.tensors[x.name]
        qlo, qhi = t.qrange
        ilo = qlo if lo is None else max(qlo, int(np.ceil(lo)))
        ihi = qhi if hi is None else min(qhi, int(np.floor(hi)))
        return [b.clip(x, ilo, ihi, node)]
    fail(node, "input is a constant")


def concat(b: Builder, node: ONode, args):
    if not all(isinstance(v, Act) and v.real for v in args):
        fail(node, "inputs must all be quantized machine tensors (float views)")
    nd = len(b.tensors[args[0].name].shape)
    if node.attrs.get("axis", 1) % nd != 1 or any(v.layout == "flat" for v in args):
        fail(node, "concatenation is supported along the channel axis (1) only")
    xs = [b.settle(v, node) for v in args]
    shapes = [b.tensors[v.name].shape for v in xs]
    op = Concat(name="", inputs=tuple(v.name for v in xs), output="")
    return [Pending("concat", op, infer_shape(op, shapes), xs[0].layout, node.name)]


def reshape(b: Builder, node: ONode, args):
    """Flatten / Reshape / Squeeze: a machine tensor may only be flattened [N, C, H, W] ->
    [N, C*H*W]; host tensors reshape freely; quantized constants keep their quantization."""
    x = args[0]
    src = _onnx_shape(b, x)
    if node.op == "Flatten":
        ax = node.attrs.get("axis", 1) % max(len(src), 1)
        target = (int(np.prod(src[:ax])), int(np.prod(src[ax:])))
    elif node.op == "Reshape":
        spec = const_array(node, args[1], "shape").astype(np.int64)
        target = _resolve(node, src, spec, node.attrs.get("allowzero", 0))
    else:  # Squeeze / Unsqueeze
        axes = node.attrs.get("axes")
        if axes is None and len(args) > 1 and args[1] is not None:
            axes = const_array(node, args[1], "axes").tolist()
        target = _squeeze(src, axes, node.op == "Unsqueeze")
    if isinstance(x, Host):
        return [
            host_op(b, node, x, H.HostReshape(name="", inputs=(), output="", shape=tuple(target)))
        ]
    if isinstance(x, QConst):
        if x.qp.per_channel:
            fail(node, "reshaping per-channel quantized weights is not supported")
        return [QConst(x.q.reshape(target), x.qp)]
    if isinstance(x, Act):
        return [_flatten(b, node, x, tuple(target))]
    fail(node, f"cannot reshape a {type(x).__name__}")


def _resolve(node: ONode, src, spec, allowzero) -> tuple[int, ...]:
    out = [int(src[i]) if (d == 0 and not allowzero) else int(d) for i, d in enumerate(spec)]
    if out.count(-1) > 1:
        fail(node, f"shape {spec.tolist()} has more than one -1")
    if -1 in out:
        rest = int(np.prod([d for d in out if d != -1]))
        out[out.index(-1)] = int(np.prod(src)) // max(rest, 1)
    if int(np.prod(out)) != int(np.prod(src)):
        fail(node, f"cannot reshape {tuple(src)} to {tuple(out)}")
    return tuple(out)


def _squeeze(src, axes, unsqueeze: bool) -> tuple[int, ...]:
    if unsqueeze:
        out = list(src)
        for a in sorted(int(a) % (len(src) + len(axes)) for a in axes):
            out.insert(a, 1)
        return tuple(out)
    if axes is None:
        return tuple(d for d in src if d != 1)
    drop = {int(a) % len(src) for a in axes}
    return tuple(d for i, d in enumerate(src) if i not in drop)


def _flatten(b: Builder, node: ONode, x: Act, target) -> Act:
    t = b.tensors[x.name]
    src = onnx_shape(t.shape, x.layout, x.chw)
    if tuple(target) == tuple(src):
        return x
    if len(src) != 4 or x.layout == "flat" or len(target) != 2 or target[0] != src[0]:
        fail(
            node,
            f"reshapes a machine tensor {src} -> {target}; only flattening "
            "[N, C, H, W] -> [N, C*H*W] (or NHWC -> [N, H*W*C]) is supported",
        )
    name = b.tensor_name(node.outputs[0])
    b.tensors[name] = type(t)(name, target, t.bits, t.mode, t.scale, t.zero_point)
    b.add(Flatten(name=b.node_name(node.name), inputs=(x.name,), output=name))
    n, c, h, w = src
    layout = "same" if h * w == 1 or c == 1 or x.layout == "same" else "flat"
    return Act(name, x.real, layout, (c, h, w) if layout == "flat" else None, x.lo_r, x.hi_r)


def transpose(b: Builder, node: ONode, args):
    x = args[0]
    perm = tuple(node.attrs.get("perm", range(len(_onnx_shape(b, x)))[::-1]))
    if perm == tuple(range(len(perm))):
        return [x]
    if isinstance(x, Act) and len(perm) == 4:  # NCHW <-> NHWC: the same machine tensor
        if (x.layout, perm) in (("nchw", (0, 2, 3, 1)), ("same", (0, 3, 1, 2))):
            layout = "same" if x.layout == "nchw" else "nchw"
            return [Act(x.name, x.real, layout, None, x.lo_r, x.hi_r)]
    if isinstance(x, QConst):
        qp = x.qp
        axis = None if qp.axis is None else perm.index(qp.axis % len(perm))
        return [
            QConst(
                x.q.transpose(perm),
                type(qp)(qp.scale, qp.zero_point, qp.bits, qp.mode, axis, qp.lo, qp.hi),
            )
        ]
    return [host_op(b, node, x, H.HostTranspose(name="", inputs=(), output="", perm=perm))]


def passthrough(b: Builder, node: ONode, args):
    """Identity, Dropout (inference) and Cast to float of a pending integer sum."""
    x = args[0]
    if node.op == "Cast":
        to = node.attrs.get("to")
        if isinstance(x, Pending) and x.integer and to == 1:
            return [affine(b, node, x, k=np.ones(x.shape[-1]))]
        if not (isinstance(x, (Host, Act, Pending)) and to == 1 and not getattr(x, "integer", 0)):
            if not (isinstance(x, Act) and not x.real and to in (2, 3)):
                fail(node, f"Cast to type {to} is not supported here")
    return [x]


def movement(b: Builder, node: ONode, args):
    """Nearest Resize and DepthToSpace: host data movement (deferred past a quantizer)."""
    x = args[0]
    if node.op == "Resize":
        a = node.attrs
        if a.get("mode", "nearest") != "nearest":
            fail(node, f"Resize mode {a.get('mode')!r}: only nearest is supported")
        src = _onnx_shape(b, x)
        scales = args[2] if len(args) > 2 else None
        sizes = args[3] if len(args) > 3 else None
        if sizes is not None:
            f = const_array(node, sizes, "sizes") / np.asarray(src)
        else:
            f = const_array(node, scales, "scales")
        if np.any(f != np.rint(f)) or np.any(f < 1):
            fail(node, f"Resize factors {f.tolist()} must be whole numbers >= 1")
        factors = tuple(int(v) for v in f)
        if len(factors) == 4 and factors[:2] == (1, 1):  # spatial: the machine's Upsample
            if isinstance(x, Act) and x.layout == "nchw":
                return [b.upsample(x, factors[2:], node)]
            if isinstance(x, Pending) and x.layout == "nchw" and not x.moves:
                return [Pending(**{**x.__dict__, "moves": [("upsample", factors[2:])]})]

        def make(name, inp):
            return H.HostResize(name=name, inputs=(inp,), output="", factors=factors)
    else:
        bs, mode = int(node.attrs["blocksize"]), node.attrs.get("mode", "DCR")

        def make(name, inp):
            return H.HostDepthToSpace(name=name, inputs=(inp,), output="", blocksize=bs, mode=mode)

    if isinstance(x, Pending):
        new = Pending(**{**x.__dict__, "moves": [*x.moves, make]})
        return [new]
    return [host_op(b, node, x, make("", ""))]


def host_unary(b: Builder, node: ONode, args):
    if node.op == "Softmax":
        op = H.HostSoftmax(name="", inputs=(), output="", axis=node.attrs.get("axis", -1))
    else:
        op = H.HostUnary(name="", inputs=(), output="", op=node.op)
    return [host_op(b, node, args[0], op)]
