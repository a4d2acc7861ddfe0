"""Host operations: float (or data-movement) nodes that run in NumPy on the host processor,
before the machine program (input pre-processing such as ``x*2 - 1`` or a layout change) or
after it (dequantization, a final affine or softmax, nearest-neighbour upsampling).

Each op's `run` is its executable definition, written to follow ONNX's arithmetic: float
tensors are float32 and every elementwise step rounds to float32 as ONNX Runtime does, so the
integers the host hands to the machine equal those of the ONNX model. Shapes are checked by
running the definition on zeros of the input shapes. `split_host` cuts a graph into its host
prologue, machine core and host epilogue; the runner executes the three in turn. A host op
between two machine segments is rejected there (no graph needs it yet).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.errors import ModelFormatError
from accelsim.ir.base import Op, fail, tensor
from accelsim.ir.graph import Graph

_F32 = np.float32


@dataclass(kw_only=True)
class HostOp(Op):
    """Base of the host ops: `run(arrays)` is the NumPy definition of the op."""

    N_INPUTS = 1

    def run(self, xs: list[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> str:
        """Short text for reports: the op and its parameters."""
        return type(self).__name__

    def check(self, graph: Graph) -> None:
        super().check(graph)
        ins = [tensor(graph, i) for i in self.inputs]
        zeros = [np.zeros(t.shape, t.dtype) for t in ins]
        try:
            got = np.asarray(self.run(zeros)).shape
        except (ValueError, IndexError, TypeError) as e:
            fail(self, f"cannot run on inputs of shape {[t.shape for t in ins]}: {e}")
        want = tensor(graph, self.output).shape
        if tuple(got) != tuple(want):
            fail(self, f"output {self.output!r} declared with shape {want}, computes {got}")


def _as_f32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x).astype(_F32, copy=False)


@dataclass(kw_only=True)
class HostTranspose(HostOp):
    """Permute axes (ONNX Transpose): NCHW <-> NHWC at the machine's edges."""

    perm: tuple[int, ...]

    def run(self, xs):
        return np.ascontiguousarray(np.transpose(xs[0], self.perm))

    def describe(self) -> str:
        return f"transpose{tuple(self.perm)}"


@dataclass(kw_only=True)
class HostReshape(HostOp):
    """Reshape to a fixed shape (row-major order, as ONNX Reshape)."""

    shape: tuple[int, ...]

    def run(self, xs):
        return np.reshape(xs[0], tuple(self.shape))

    def describe(self) -> str:
        return f"reshape{tuple(self.shape)}"


@dataclass(kw_only=True)
class HostDequantize(HostOp):
    """Integers -> float32 as ONNX DequantizeLinear: float32(q - zp) * float32(scale).

    scale, zero_point: scalars or 1-D arrays along `axis` of the input.
    """

    scale: float | np.ndarray
    zero_point: int | np.ndarray = 0
    axis: int = 1

    def _along_axis(self, v, ndim: int) -> np.ndarray:
        v = np.asarray(v)
        if v.ndim == 0:
            return v
        shape = [1] * ndim
        shape[self.axis % ndim] = v.size
        return v.reshape(shape)

    def run(self, xs):
        q = np.asarray(xs[0]).astype(np.int64)
        zp = self._along_axis(np.asarray(self.zero_point, np.int64), q.ndim)
        scale = self._along_axis(np.asarray(self.scale, _F32), q.ndim)
        return (q - zp).astype(_F32) * scale

    def describe(self) -> str:
        per = "per-channel" if np.ndim(self.scale) else f"scale {float(self.scale):.6g}"
        return f"dequantize ({per})"


_BINARY = {
    "Add": np.add,
    "Sub": np.subtract,
    "Mul": np.multiply,
    "Div": np.divide,
    "Max": np.maximum,
    "Min": np.minimum,
    "Pow": np.power,
}
_UNARY = {
    "Relu": lambda x: np.maximum(x, _F32(0)),
    "Sigmoid": lambda x: _F32(1) / (_F32(1) + np.exp(-x)),
    "Tanh": np.tanh,
    "Exp": np.exp,
    "Log": np.log,
    "Abs": np.abs,
    "Neg": np.negative,
    "Sqrt": np.sqrt,
    "Reciprocal": lambda x: _F32(1) / x,
    "Floor": np.floor,
    "Ceil": np.ceil,
    "Round": np.rint,  # ONNX Round is half to even, like np.rint
    "Identity": lambda x: x,
}
HOST_BINARY_OPS = tuple(_BINARY)
HOST_UNARY_OPS = tuple(_UNARY)


@dataclass(kw_only=True)
class HostBinary(HostOp):
    """One ONNX elementwise binary op (Add, Sub, Mul, Div, Max, Min, Pow) in float32 with a
    constant operand (numpy broadcasting, ONNX layout); const_first puts it on the left."""

    op: str
    const: np.ndarray
    const_first: bool = False

    def run(self, xs):
        x, c = _as_f32(xs[0]), _as_f32(self.const)
        a, b = (c, x) if self.const_first else (x, c)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return _as_f32(_BINARY[self.op](a, b))

    def check(self, graph: Graph) -> None:
        if self.op not in _BINARY:
            fail(self, f"op must be one of {HOST_BINARY_OPS}, got {self.op!r}")
        if not isinstance(self.const, np.ndarray):
            fail(self, "const must be an array")
        super().check(graph)

    def describe(self) -> str:
        c = f"{float(self.const):.6g}" if self.const.size == 1 else f"const{self.const.shape}"
        return f"{c} {self.op} x" if self.const_first else f"x {self.op} {c}"


@dataclass(kw_only=True)
class HostUnary(HostOp):
    """One ONNX elementwise unary op in float32 (Relu, Sigmoid, Tanh, Exp, Round, ...)."""

    op: str

    def run(self, xs):
        if self.op == "Identity":
            return np.array(xs[0])  # a copy, any dtype
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return _as_f32(_UNARY[self.op](_as_f32(xs[0])))

    def check(self, graph: Graph) -> None:
        if self.op not in _UNARY:
            fail(self, f"op must be one of {HOST_UNARY_OPS}, got {self.op!r}")
        super().check(graph)

    def describe(self) -> str:
        return self.op.lower()


@dataclass(kw_only=True)
class HostClip(HostOp):
    """ONNX Clip in float32 (a missing bound is open)."""

    lo: float | None = None
    hi: float | None = None

    def run(self, xs):
        x = _as_f32(xs[0])
        if self.lo is not None:
            x = np.maximum(x, _F32(self.lo))
        if self.hi is not None:
            x = np.minimum(x, _F32(self.hi))
        return x

    def describe(self) -> str:
        return f"clip [{self.lo}, {self.hi}]"


@dataclass(kw_only=True)
class HostSoftmax(HostOp):
    """ONNX Softmax (opset 13) along `axis`, in float32: exp(x - max) / sum."""

    axis: int = -1

    def run(self, xs):
        x = _as_f32(xs[0])
        e = np.exp(x - x.max(axis=self.axis, keepdims=True))
        return _as_f32(e / e.sum(axis=self.axis, keepdims=True))

    def describe(self) -> str:
        return f"softmax(axis={self.axis})"


@dataclass(kw_only=True)
class HostResize(HostOp):
    """Nearest-neighbour resize by whole-number factors per axis (ONNX Resize, mode nearest):
    output index o reads input index floor(o / f) on each axis, for any dtype."""

    factors: tuple[int, ...]

    def run(self, xs):
        x = xs[0]
        if len(self.factors) != x.ndim:
            raise ValueError(f"{len(self.factors)} factors for a {x.ndim}-D tensor")
        for axis, f in enumerate(self.factors):
            x = np.repeat(x, int(f), axis=axis)
        return x

    def describe(self) -> str:
        return f"nearest resize x{tuple(self.factors)}"


@dataclass(kw_only=True)
class HostDepthToSpace(HostOp):
    """ONNX DepthToSpace on an NCHW tensor (mode DCR or CRD), any dtype."""

    blocksize: int
    mode: str = "DCR"

    def run(self, xs):
        x = xs[0]
        n, c, h, w = x.shape
        b = self.blocksize
        if self.mode == "DCR":
            y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
        else:
            y = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
        return np.ascontiguousarray(y.reshape(n, c // (b * b), h * b, w * b))

    def describe(self) -> str:
        return f"depth-to-space {self.blocksize} ({self.mode})"


HOST_OP_TYPES = {
    cls.__name__: cls
    for cls in (
        HostTranspose,
        HostReshape,
        HostDequantize,
        HostBinary,
        HostUnary,
        HostClip,
        HostSoftmax,
        HostResize,
        HostDepthToSpace,
    )
}


def is_host(node) -> bool:
    """True for a node that runs on the host in NumPy rather than on the machine."""
    return isinstance(node, HostOp)


@dataclass
class HostSplit:
    """A graph cut at the machine's edges: `pre` host ops (model input -> the machine's float
    input), the machine `core` graph, and `post` host ops (core outputs -> model outputs)."""

    pre: list
    core: Graph
    post: list


def split_host(graph: Graph) -> HostSplit:
    """Cut `graph` into host prologue, machine core and host epilogue (see HostSplit).

    The core's input is the float tensor its Quantize reads; its outputs are the core tensors
    that the epilogue reads or the model returns. Raises ModelFormatError naming the node when
    a machine node reads a tensor computed by a host op after the machine.
    """
    first = next((n for n in graph.nodes if not is_host(n)), None)
    if first is None:
        raise ModelFormatError(f"model {graph.name!r} has no node that runs on the machine")
    pre, core_nodes, post = [], [], []
    for n in graph.nodes:
        if not is_host(n):
            core_nodes.append(n)
        elif core_nodes:
            post.append(n)
        else:
            pre.append(n)
    post_out = {n.output for n in post}
    for n in core_nodes:
        bad = [i for i in n.inputs if i in post_out]
        if bad:
            raise ModelFormatError(
                f"node {n.name!r} runs on the machine but reads {bad[0]!r}, computed on the "
                "host after an earlier machine layer (a host op between two machine segments "
                "is not supported)"
            )
    core_out = {n.output for n in core_nodes}
    needed = [t for n in post for t in n.inputs if t in core_out]
    needed += [t for t in graph.outputs if t in core_out]
    outputs = list(dict.fromkeys(needed))
    names = {first.inputs[0]} | core_out
    core = Graph(
        name=graph.name,
        tensors={k: t for k, t in graph.tensors.items() if k in names},
        nodes=core_nodes,
        input=first.inputs[0],
        outputs=outputs,
    )
    return HostSplit(pre, core, post)


def run_host(nodes: list, env: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run host ops in order on the arrays of `env` (updated in place and returned)."""
    for n in nodes:
        env[n.output] = n.run([env[i] for i in n.inputs])
    return env
