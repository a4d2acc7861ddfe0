"""Base of the IR's op nodes: the `Op` dataclass and the checks every op shares."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.errors import ModelFormatError
from accelsim.ir.graph import Graph, TensorInfo


def fail(node, msg: str):
    raise ModelFormatError(f"node {node.name!r} ({type(node).__name__}): {msg}")


def ints(node, value, n: int, what: str, lo: int) -> tuple[int, ...]:
    """Check `value` is a sequence of n ints >= lo; return it as a tuple."""
    ok = isinstance(value, (tuple, list)) and len(value) == n
    ok = ok and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    if not ok or any(v < lo for v in value):
        fail(node, f"{what} must be {n} integers >= {lo}, got {value!r}")
    return tuple(int(v) for v in value)


def tensor(graph: Graph, name: str) -> TensorInfo:
    return graph.tensors[name]


def same_quant(a: TensorInfo, b: TensorInfo) -> bool:
    return (
        a.bits == b.bits
        and a.mode == b.mode
        and a.zero_point == b.zero_point
        and np.array_equal(np.asarray(a.scale), np.asarray(b.scale))
    )


def check_shape(node, graph: Graph, expected: tuple[int, ...]) -> None:
    got = tensor(graph, node.output).shape
    if tuple(got) != tuple(expected):
        fail(node, f"output {node.output!r} declared with shape {got}, expected {expected}")


def check_int_input(node, graph: Graph, name: str, ndim: int) -> TensorInfo:
    t = tensor(graph, name)
    if t.is_float:
        fail(node, f"input {name!r} must be a quantized integer tensor, got float")
    if len(t.shape) != ndim:
        fail(node, f"input {name!r} must have {ndim} dimensions, got shape {t.shape}")
    return t


def window_out(size: int, k: int, stride: int, pad_lo: int, pad_hi: int, dil: int = 1) -> int:
    """Output length of a sliding window along one axis."""
    return (size + pad_lo + pad_hi - dil * (k - 1) - 1) // stride + 1


@dataclass(kw_only=True)
class Op:
    """Base of all nodes: a name, input tensor names and one output tensor name."""

    name: str
    inputs: tuple[str, ...]
    output: str
    N_INPUTS = 1  # number of inputs; None = one or more

    def __post_init__(self) -> None:
        self.inputs = tuple(self.inputs)

    def check(self, graph: Graph) -> None:
        """Raise ModelFormatError naming this node if it disagrees with its tensors."""
        if self.N_INPUTS is not None and len(self.inputs) != self.N_INPUTS:
            fail(self, f"takes {self.N_INPUTS} input(s), got {len(self.inputs)}")
        if not self.inputs:
            fail(self, "needs at least one input")

    def macs(self, graph: Graph) -> int:
        """Multiply-accumulates of this op (0 except for conv / linear)."""
        return 0
