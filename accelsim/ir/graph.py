"""Graph IR of a quantized network: tensors with quantization parameters, op nodes, validation.

A `Graph` is a topologically ordered list of op nodes (see `accelsim.ir.ops`) plus a table of
`TensorInfo` describing every activation tensor by name. Weights and other constant arrays are
fields of the op that owns them. The graph has one input (a float tensor, consumed by a
`Quantize` node) and one or more outputs.

Integer tensors store real integer values (never offsets or bit patterns). A quantized tensor
with integer value q stands for the real number `scale * (q - zero_point)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from accelsim.errors import AccelsimError, ModelFormatError
from accelsim.numeric import FLOAT_MODE, TENSOR_MAX_BITS, TENSOR_MODES, storage_dtype, value_range


def check_int_array(arr: np.ndarray, bits: int, mode: str, what: str) -> None:
    """Raise ModelFormatError naming `what` unless every value of `arr` fits `bits` in `mode`."""
    if arr.dtype.kind not in "iu":
        raise ModelFormatError(f"{what}: expected an integer array, got dtype {arr.dtype}")
    try:
        lo, hi = value_range(bits, mode)
    except AccelsimError as exc:
        raise ModelFormatError(f"{what}: {exc}") from None
    if arr.size == 0:
        return
    amin, amax = int(arr.min()), int(arr.max())
    if amin < lo or amax > hi:
        raise ModelFormatError(
            f"{what}: values must lie in [{lo}, {hi}] for {bits}-bit {mode}, found [{amin}, {amax}]"
        )
    if mode == "bipolar" and np.any(arr == 0):
        raise ModelFormatError(f"{what}: bipolar values must be -1 or +1, found 0")


@dataclass
class TensorInfo:
    """An activation tensor: name, shape and quantization.

    shape: NHWC for feature maps, [N, features] after Flatten / for Linear.
    bits, mode: integer width and encoding ("signed", "unsigned", "bipolar"); the float graph
        input has mode "float" and bits 32.
    scale: real step size per integer step; a float (per tensor) or a float64 array with one
        entry per channel (last axis).
    zero_point: the integer that stands for real 0 (0 for signed/bipolar by convention).
    """

    name: str
    shape: tuple[int, ...]
    bits: int = 8
    mode: str = "signed"
    scale: float | np.ndarray = 1.0
    zero_point: int = 0

    def __post_init__(self) -> None:
        self.shape = tuple(int(d) for d in self.shape)
        if isinstance(self.scale, np.ndarray):
            self.scale = np.asarray(self.scale, dtype=np.float64)
        else:
            self.scale = float(self.scale)
        self.zero_point = int(self.zero_point)

    @property
    def is_float(self) -> bool:
        """True for the unquantized float tensor (the graph input before `Quantize`)."""
        return self.mode == FLOAT_MODE

    @property
    def qrange(self) -> tuple[int, int]:
        """(lowest, highest) representable integer."""
        return value_range(self.bits, self.mode)

    @property
    def dtype(self) -> np.dtype:
        """Storage dtype of this tensor's integers (float64 for the float input)."""
        return np.dtype(np.float64) if self.is_float else storage_dtype(self.bits, self.mode)

    @property
    def channels(self) -> int:
        """Size of the last (channel) axis."""
        return self.shape[-1]

    def check(self) -> None:
        """Raise ModelFormatError if bits / mode / scale / zero point are inconsistent."""
        what = f"tensor {self.name!r}"
        if self.mode not in TENSOR_MODES:
            raise ModelFormatError(
                f"{what}: mode must be one of {', '.join(TENSOR_MODES)}, got {self.mode!r}"
            )
        if any(d <= 0 for d in self.shape):
            raise ModelFormatError(f"{what}: shape {self.shape} must be positive")
        if self.is_float:
            return
        if self.mode == "bipolar" and self.bits != 1:
            raise ModelFormatError(f"{what}: bipolar tensors have bits 1, got {self.bits}")
        if not 1 <= self.bits <= TENSOR_MAX_BITS:
            raise ModelFormatError(f"{what}: bits must be in 1..{TENSOR_MAX_BITS}, got {self.bits}")
        scale = np.asarray(self.scale)
        if scale.ndim not in (0, 1) or (scale.ndim == 1 and scale.shape[0] != self.channels):
            raise ModelFormatError(
                f"{what}: scale must be a float or an array of {self.channels} channels, "
                f"got shape {scale.shape}"
            )
        if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            raise ModelFormatError(f"{what}: scale must be finite and > 0")
        lo, hi = self.qrange
        if not lo <= self.zero_point <= hi or (self.mode == "bipolar" and self.zero_point):
            raise ModelFormatError(
                f"{what}: zero point {self.zero_point} outside [{lo}, {hi}] "
                f"for {self.bits}-bit {self.mode}"
            )


class NodeLookup:
    """Node queries shared by `Graph` and the sparse graph (both hold `nodes` in order)."""

    nodes: list

    def node(self, name: str):
        """The node called `name` (KeyError if absent)."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def producer(self, tensor: str):
        """The node whose output is `tensor`, or None for the graph input."""
        for n in self.nodes:
            if n.output == tensor:
                return n
        return None

    def consumers(self, tensor: str) -> list:
        """Nodes that read `tensor`, in graph order."""
        return [n for n in self.nodes if tensor in n.inputs]


@dataclass
class Graph(NodeLookup):
    """A quantized network: tensors by name, nodes in topological order, one input.

    input: name of the float input tensor. outputs: names of the tensors the model returns.
    Nodes are op dataclasses from `accelsim.ir.ops`; each names its input tensors and its one
    output tensor.
    """

    name: str
    tensors: dict[str, TensorInfo]
    nodes: list = field(default_factory=list)
    input: str = "input"
    outputs: list[str] = field(default_factory=list)
    kind = "dense"  # graph kind (a class constant): selects lowering, runner and file codec

    def validate(self) -> None:
        """Check the graph; raise ModelFormatError naming the node or tensor at fault.

        Checks: every tensor's quantization is consistent; the single input is a float tensor
        with no producer; nodes are in topological order and each output is produced once;
        every node's parameters and its declared output shape agree with its inputs;
        every graph output exists.
        """
        for name, t in self.tensors.items():
            if name != t.name:
                raise ModelFormatError(f"tensor table key {name!r} names tensor {t.name!r}")
            t.check()
        if self.input not in self.tensors:
            raise ModelFormatError(f"graph input {self.input!r} is not a declared tensor")
        if not self.tensors[self.input].is_float:
            raise ModelFormatError(f"graph input {self.input!r} must have mode 'float'")
        defined = {self.input}
        names = set()
        for n in self.nodes:
            if n.name in names:
                raise ModelFormatError(f"node {n.name!r}: duplicate node name")
            names.add(n.name)
            for t in n.inputs:
                if t not in self.tensors:
                    raise ModelFormatError(f"node {n.name!r}: input tensor {t!r} is not declared")
                if t not in defined:
                    raise ModelFormatError(
                        f"node {n.name!r}: input {t!r} is used before it is produced "
                        "(nodes must be in topological order)"
                    )
            if n.output not in self.tensors:
                raise ModelFormatError(f"node {n.name!r}: output tensor {n.output!r} not declared")
            if n.output in defined:
                raise ModelFormatError(f"node {n.name!r}: tensor {n.output!r} produced twice")
            defined.add(n.output)
            n.check(self)
        for name in self.tensors:
            if name not in defined:
                raise ModelFormatError(f"tensor {name!r} is declared but no node produces it")
        if not self.outputs:
            raise ModelFormatError("graph has no outputs")
        for t in self.outputs:
            if t not in defined:
                raise ModelFormatError(f"graph output {t!r} is not produced by any node")

    def summary(self) -> str:
        """One line per node: name, op, output shape, bits and mode."""
        lines = [f"graph {self.name}: input {self.input} {self.tensors[self.input].shape}"]
        for n in self.nodes:
            t = self.tensors[n.output]
            lines.append(
                f"  {n.name:<24} {type(n).__name__:<14} {t.shape!s:<20} {t.bits}b {t.mode}"
            )
        return "\n".join(lines)
