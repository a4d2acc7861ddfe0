"""The import state: the IR graph being built from ONNX values, and the steps shared by every
format (quantize the host input, requantize a pending result, move a machine tensor to the
host epilogue, finish the graph).

Rounding follows ONNX: a quantizer computes clamp(rne(float32(x) / float32(scale)) + zp), so a
Relu / Clip bound v folded into it becomes that same integer (Relu's 0 becomes the zero point
exactly); a quantizer after a conv / linear / add / pool is the machine's requantization.
"""

from __future__ import annotations

import copy

import numpy as np

from accelsim.errors import ModelFormatError
from accelsim.frontend.onnx.reader import OModel, ONode
from accelsim.frontend.onnx.values import Act, Host, Pending, QParams, onnx_shape
from accelsim.ir.fold import add_offset
from accelsim.ir.graph import Graph, TensorInfo
from accelsim.ir.host_ops import HostClip, HostDequantize, HostReshape, HostTranspose, HostUnary
from accelsim.ir.ops import (
    Add,
    Clip,
    Concat,
    QuantConv2d,
    Quantize,
    QuantLinear,
    Upsample,
    infer_shape,
)
from accelsim.numeric import value_range

_F32 = np.float32


def fail(node: ONode, msg: str):
    raise ModelFormatError(f"{node.where}: {msg}")


class Builder:
    """IR tensors and nodes built so far, and the ONNX value of every name."""

    def __init__(self, model: OModel):
        self.model = model
        self.tensors: dict[str, TensorInfo] = {}
        self.nodes: list = []
        self.values: dict[str, object] = {}
        self.machine_input: str | None = None
        self._node_names: set[str] = set()
        if len(model.inputs) != 1:
            raise ModelFormatError(
                f"{model.source}: the machine takes one model input, the graph has "
                f"{len(model.inputs)}: {sorted(model.inputs)}"
            )
        ((self.input, (shape, _)),) = model.inputs.items()
        self.tensors[self.input] = TensorInfo(self.input, shape, bits=32, mode="float")
        self.values[self.input] = Host(self.input)

    def tensor_name(self, base: str, machine: bool = True) -> str:
        """A fresh IR tensor name based on an ONNX value name. A graph output's own name is
        kept for a host tensor and reserved otherwise (the host epilogue ends there)."""
        name, k = base, 0
        while name in self.tensors or (machine and name in self.model.outputs):
            k += 1
            name = f"{base}#{k}"
        return name

    def node_name(self, base: str) -> str:
        name, k = base, 0
        while name in self._node_names:
            k += 1
            name = f"{base}#{k}"
        self._node_names.add(name)
        return name

    def add(self, op) -> None:
        self.nodes.append(op)

    def new_tensor(
        self, base: str, shape, qp: QParams | None, layout: str, where: str, final=False
    ) -> str:
        """Declare an IR tensor (float when qp is None) and return its name; `final` keeps an
        ONNX graph output's own name (integers the host returns as they are)."""
        name = base if final and base not in self.tensors else self.tensor_name(base)
        if qp is None:
            self.tensors[name] = TensorInfo(name, shape, bits=32, mode="float")
            return name
        scale, zp = qp.scale, qp.zero_point
        if np.size(zp) > 1:
            zps = np.unique(np.asarray(zp))
            if zps.size > 1:
                raise ModelFormatError(f"{where}: per-channel zero points of an activation")
            zp = int(zps[0])
        if qp.per_channel:
            if qp.axis is None or qp.axis % len(onnx_shape(shape, layout, None)) != 1:
                raise ModelFormatError(
                    f"{where}: per-channel activation scales are supported along the channel "
                    f"axis 1 only, got axis {qp.axis}"
                )
            scale = np.asarray(scale, np.float64).reshape(-1)
        else:
            scale = float(np.asarray(scale).reshape(-1)[0])
        self.tensors[name] = TensorInfo(
            name, shape, bits=qp.bits, mode=qp.mode, scale=scale, zero_point=int(np.ravel(zp)[0])
        )
        return name

    def host_tensor(self, base: str, op, like: str | None = None, exact: bool = False) -> str:
        """Add host op `op` (output set here) and declare its output by running it on zeros;
        `exact` names the output `base` itself (a graph output)."""
        name = base if exact else self.tensor_name(base, machine=False)
        ins = [self.tensors[i] for i in op.inputs]
        out = np.asarray(op.run([np.zeros(t.shape, t.dtype) for t in ins]))
        op.output = name
        src = self.tensors[like] if like else None
        if out.dtype.kind in "iu" and src is not None and not src.is_float:
            self.tensors[name] = TensorInfo(
                name, out.shape, bits=src.bits, mode=src.mode, zero_point=src.zero_point
            )
        else:
            self.tensors[name] = TensorInfo(name, out.shape, bits=32, mode="float")
        self.add(op)
        return name

    def int_bounds(self, lo_r, hi_r, qp: QParams, where: str) -> tuple[int, int]:
        """Integer clamp range of a quantizer that follows a real clamp [lo_r, hi_r]."""
        lo, hi = qp.qrange
        zp = np.asarray(qp.zero_point, np.int64)
        for v, is_lo in ((lo_r, True), (hi_r, False)):
            if v is None:
                continue
            q = np.rint(_F32(v) / np.asarray(qp.scale, _F32)).astype(np.int64) + zp
            q = np.unique(np.clip(q, *qp.qrange))
            if q.size > 1:
                raise ModelFormatError(f"{where}: clip bound {v} maps to different integers")
            lo, hi = (max(lo, int(q[0])), hi) if is_lo else (lo, min(hi, int(q[0])))
        if lo > hi:
            raise ModelFormatError(f"{where}: empty clip range after quantization")
        return lo, hi

    def quantize_host(self, value: Host, qp: QParams, out: str, node: ONode, real: bool) -> Act:
        """The machine's input: the host tensor (ONNX layout) quantized by `qp`."""
        if value.post:
            fail(
                node,
                "quantizes a tensor computed on the host after machine layers "
                "(a host op between two machine segments is not supported)",
            )
        if self.machine_input is not None:
            fail(
                node,
                f"a second quantized model input (the first is {self.machine_input!r});"
                " the machine takes one",
            )
        t = self.tensors[value.name]
        if len(t.shape) not in (2, 4):
            fail(node, f"the quantized input must be 2-D or 4-D (NCHW), got shape {t.shape}")
        src, layout = value.name, "same"
        if len(t.shape) == 4:
            op = HostTranspose(
                name=self.node_name(f"{node.name}/to_nhwc"),
                inputs=(src,),
                output="",
                perm=(0, 2, 3, 1),
            )
            src, layout = self.host_tensor(f"{value.name}/nhwc", op), "nchw"
        shape = self.tensors[src].shape
        name = self.new_tensor(
            out, shape, qp, layout, node.where, final=not real and len(shape) == 2
        )
        self.add(Quantize(name=self.node_name(node.name), inputs=(src,), output=name))
        self.machine_input = name
        act = Act(name, real, layout)
        lo, hi = qp.qrange
        if (lo, hi) != self.tensors[name].qrange:  # QONNX narrow range
            act = self.clip(act, lo, hi, node)
        return act

    def clip(self, act: Act, lo: int, hi: int, node: ONode) -> Act:
        """A Clip node on machine tensor `act` (integer bounds)."""
        t = self.tensors[act.name]
        name = self.tensor_name(f"{act.name}/clip")
        self.tensors[name] = copy.copy(t)
        self.tensors[name].name = name
        relu = lo == t.zero_point and hi == t.qrange[1]
        self.add(
            Clip(
                name=self.node_name(f"{node.name}/clip"),
                inputs=(act.name,),
                output=name,
                lo=int(lo),
                hi=int(hi),
                kind="relu" if relu else "clip",
            )
        )
        return Act(name, act.real, act.layout, act.chw)

    def upsample(self, x: Act, factors, node: ONode, out: str | None = None) -> Act:
        """Nearest upsampling of machine tensor x on the machine (keeps its quantization and
        any pending clamp, which commutes with copying)."""
        t = self.tensors[x.name]
        op = Upsample(
            name=self.node_name(node.name), inputs=(x.name,), output="", factors=tuple(factors)
        )
        shape = infer_shape(op, [t.shape])
        name = self.tensor_name(out or node.outputs[0])
        self.tensors[name] = TensorInfo(name, shape, t.bits, t.mode, t.scale, t.zero_point)
        op.output = name
        self.add(op)
        return Act(name, x.real, "nchw", None, x.lo_r, x.hi_r)

    def settle(self, act: Act, node: ONode) -> Act:
        """`act` with its pending real clamp applied (a Clip node on quantization levels)."""
        if act.lo_r is None and act.hi_r is None:
            return act
        t = self.tensors[act.name]
        qp = QParams(t.scale, t.zero_point, t.bits, t.mode)
        for v in (act.lo_r, act.hi_r):
            if v is None:
                continue
            q = np.rint(_F32(v) / np.asarray(t.scale, _F32)) + t.zero_point
            if not np.all(np.asarray(t.scale, _F32) * _F32(q - t.zero_point) == _F32(v)):
                fail(
                    node,
                    f"reads {act.name!r} clipped at {v}, which is not a quantization "
                    "level of that tensor (only a following quantizer can absorb it)",
                )
        lo, hi = self.int_bounds(act.lo_r, act.hi_r, qp, node.where)
        return self.clip(Act(act.name, act.real, act.layout, act.chw), lo, hi, node)

    def materialize(self, p: Pending, qp: QParams, out: str, node: ONode, real: bool):
        """The IR node of pending result `p`, requantized by quantizer `qp` into a machine
        tensor (then moved to the host if `p` carries data movement)."""
        final = not real and p.layout == "same" and not p.moves
        name = self.new_tensor(out, p.shape, qp, p.layout, node.where, final)
        t = self.tensors[name]
        lo, hi = self.int_bounds(p.lo_r, p.hi_r, qp, node.where)
        narrow = _narrower_bits(t, lo, hi)
        if narrow:  # clamped to exactly a narrower type's range: a narrower tensor
            t.bits = narrow
        tlo, thi = t.qrange
        op = copy.copy(p.op)
        op.name = self.node_name(p.src)  # named after the ONNX op it computes
        if isinstance(op, (QuantConv2d, QuantLinear)):
            if p.offset is not None and np.any(p.offset):
                src = self.tensors[op.inputs[0]]
                op = add_offset(op, p.offset, p.s_in, f"node {op.name!r}", src=src)
            op.relu = lo == t.zero_point
            op.clip_lo = lo if lo > tlo and not op.relu else None
            op.clip_hi = hi if hi < thi else None
            lo, hi = tlo, thi
        elif isinstance(op, Add) and lo == t.zero_point:
            op.relu, lo = True, tlo
        op.output = name
        self.add(op)
        act = Act(name, real, p.layout, p.chw)
        if (lo, hi) != (tlo, thi):
            act = self.clip(act, lo, hi, node)
        moves = list(p.moves)
        if moves and isinstance(moves[0], tuple):  # ("upsample", factors) on the machine
            act = self.upsample(act, moves.pop(0)[1], node, out=f"{out}/up")
        if not moves:
            return act
        host = self.to_host(act, f"{out}/host", node)
        for i, make in enumerate(moves):
            op = make(self.node_name(f"{node.name}/move"), host.name)
            base = out if i == len(moves) - 1 else f"{out}/moved"  # the last takes the name
            host = Host(self.host_tensor(base, op, like=host.name), post=True)
        return host

    def requantize(self, act: Act, qp: QParams, out: str, node: ONode, real: bool) -> Act:
        """A quantizer applied to the float view of machine tensor `act`: nothing when it has
        the same quantization, else the machine's requantization (a one-input Concat)."""
        t = self.tensors[act.name]
        same = qp.mode == t.mode and not qp.per_channel and np.ndim(t.scale) == 0
        same = same and _F32(np.ravel(qp.scale)[0]) == _F32(np.ravel(t.scale)[0])
        same = same and int(np.ravel(qp.zero_point)[0]) == t.zero_point
        if same:  # the same integers, clamped to the quantizer's (possibly narrower) range
            lo, hi = self.int_bounds(act.lo_r, act.hi_r, qp, node.where)
            lo, hi = max(lo, t.qrange[0]), min(hi, t.qrange[1])
            base = Act(act.name, real, act.layout, act.chw)
            return base if (lo, hi) == t.qrange else self.clip(base, lo, hi, node)
        shape = t.shape
        op = Concat(name="", inputs=(act.name,), output="")
        p = Pending(
            "concat", op, shape, act.layout, node.name, chw=act.chw, lo_r=act.lo_r, hi_r=act.hi_r
        )
        return self.materialize(p, qp, out, node, real)

    def to_host(self, act: Act, out: str, node: ONode, final: bool = False) -> Host:
        """Machine tensor `act` as the host sees it in ONNX layout (dequantized for a float
        view, clamped by a pending Relu / Clip): the start of the host epilogue."""
        src = act.name
        t = self.tensors[src]
        steps = []
        if act.layout == "nchw":
            steps.append(HostTranspose(name="", inputs=(), output="", perm=(0, 3, 1, 2)))
        elif act.layout == "flat":
            n, (c, h, w) = t.shape[0], act.chw
            steps += [
                HostReshape(name="", inputs=(), output="", shape=(n, h, w, c)),
                HostTranspose(name="", inputs=(), output="", perm=(0, 3, 1, 2)),
                HostReshape(name="", inputs=(), output="", shape=(n, c * h * w)),
            ]
        if act.real:
            steps.append(
                HostDequantize(
                    name="", inputs=(), output="", scale=t.scale, zero_point=t.zero_point, axis=1
                )
            )
            if act.lo_r is not None or act.hi_r is not None:
                steps.append(HostClip(name="", inputs=(), output="", lo=act.lo_r, hi=act.hi_r))
        if not steps:
            if not final:
                return Host(src, post=True)
            steps.append(HostUnary(name="", inputs=(), output="", op="Identity"))
        for i, op in enumerate(steps):
            last = i == len(steps) - 1
            op.name = self.node_name(f"{node.name}/{type(op).__name__[4:].lower()}")
            op.inputs = (src,)
            base = out if last else f"{out}/{i}"
            src = self.host_tensor(base, op, like=src, exact=last and final)
        return Host(src, post=True)

    def finish(self) -> Graph:
        """The IR graph: one output per ONNX graph output (named as in the ONNX file), nodes
        that no output needs removed."""
        outputs = []
        for o in self.model.outputs:
            v = self.values.get(o)
            where = f"{self.model.source}: graph output {o!r}"
            if isinstance(v, Pending):
                raise ModelFormatError(
                    f"{where} is the unquantized float result of node {v.src!r}; the machine "
                    "returns quantized tensors (add a QuantizeLinear / Quant before it)"
                )
            if isinstance(v, Act):
                if v.real or v.layout != "same" or v.name != o or v.lo_r is not None:
                    prod = next((n for n in self.model.nodes if o in n.outputs), _OutNode(o))
                    v = self.to_host(v, o, prod, final=True)
            elif isinstance(v, Host) and v.name != o:
                op = HostUnary(
                    name=self.node_name(f"{o}/copy"), inputs=(v.name,), output="", op="Identity"
                )
                self.host_tensor(o, op, like=v.name, exact=True)
            elif not isinstance(v, Host):
                raise ModelFormatError(f"{where} is a constant; the machine computes nothing")
            outputs.append(o)
        return _prune(self.model.name, self.tensors, self.nodes, self.input, outputs)


class _OutNode:
    def __init__(self, name: str):
        self.name, self.where = f"output {name}", f"graph output {name!r}"


def _prune(name, tensors, nodes, inp, outputs) -> Graph:
    need = set(outputs)
    keep = []
    for n in reversed(nodes):
        if n.output in need:
            keep.append(n)
            need.update(n.inputs)
    keep.reverse()
    used = {inp, *outputs} | {n.output for n in keep}
    return Graph(name, {k: t for k, t in tensors.items() if k in used}, keep, inp, outputs)


def _narrower_bits(t: TensorInfo, lo: int, hi: int) -> int | None:
    """b < t.bits when [lo, hi] is exactly the range of b-bit integers in t's mode (ONNX
    has no 3-bit type, so a 3-bit tensor is a clamped int8 / uint8 one)."""
    for b in range(1 if t.mode == "unsigned" else 2, t.bits):
        if value_range(b, t.mode) == (lo, hi):
            return b
    return None
