"""Sparse tensors in the IR: a `SparseGraph` of sparse ops with an exact integer reference.

A sparse tensor is (coords int32 [n, 4] = batch, x, y, z; integer features [n, c] at `bits` with
`scale` and `zero_point`). Its coordinates are not stored in the graph: every tensor names a
*coordinate set* (`SparseTensor.coord_set`); the input set comes with the input data and the
others follow from it (a strided conv makes a new set, `floor(x / stride)`; a submanifold conv
keeps its input's set; a transposed conv goes back to the set its input came from). Rows of
every tensor are in the canonical order of its set: sorted by (batch, x, y, z).

Ops (each with an exact integer `_ref` path through `accelsim.sparse` and the kernels):

- `SparseQuantize`: float features -> integers (host side, like the dense `Quantize`).
- `SparseConv`: submanifold (stride 1, kernel 1 or 3, dilation), strided (kernel 2 or 3,
  stride 2: new active set) or transposed (inverse map of a strided conv). Voxel groups:
  `groups=G` keeps only pairs whose input and output voxels share `(a*x+b*y+c*z) mod G`;
  `groups=None` takes G (and `group_coeffs=None` the coefficients) from the run's setting,
  i.e. the hardware config `svge.groups` / `svge.group_coeffs`. Accumulate in int32 (gather-
  GEMM-scatter), then RESCALE with `accelsim.ir.params.rescale_params` (the dense convs' rule).
  The input zero point must be 0: absent neighbours contribute nothing, so a nonzero zero
  point could not be folded into a per-channel bias.
- `SparseReLU`, `SparseAdd`, `SparseConcat`: the dense vector ops' integer arithmetic on the
  [n, c] feature rows (inputs on one coordinate set).
- `SparseToBEV`: sparse-to-dense bird's-eye-view collapse [batch, X, Y, C*Z] (channel
  c*Z + z holds channel c of height z; same bits, mode and scale as its input).

The graph's input (coords, float features) comes from points by `accelsim.sparse.voxelize`
(host side).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from numbers import Integral

import numpy as np

from accelsim import sparse as sp
from accelsim.errors import ModelFormatError
from accelsim.ir.base import Op, fail
from accelsim.ir.graph import Graph, NodeLookup, TensorInfo, check_int_array
from accelsim.ir.ops import Add, Clip, Concat, _Weighted
from accelsim.ir.params import rescale_params
from accelsim.ir.reference import run_node
from accelsim.kernels import quant
from accelsim.kernels.rescale import rescale, rescale_ref
from accelsim.numeric import FLOAT_MODE, MAC_MAX_BITS, storage_dtype


@dataclass
class SparseTensor:
    """A sparse activation tensor: channels, quantization and the name of its coordinate set.

    mode "float" (bits 32) only for the graph input features."""

    name: str
    channels: int
    bits: int = 8
    mode: str = "signed"
    scale: float = 1.0
    zero_point: int = 0
    coord_set: str = "s1"

    def dense(self, n: int = 1) -> TensorInfo:
        """The [n, c] dense view (for parameter derivation and the vector ops)."""
        return TensorInfo(
            self.name,
            (max(n, 1), self.channels),
            self.bits,
            self.mode,
            float(self.scale),
            self.zero_point,
        )

    @property
    def is_float(self) -> bool:
        return self.mode == FLOAT_MODE

    @property
    def dtype(self):
        return np.dtype(np.float64) if self.is_float else storage_dtype(self.bits, self.mode)


@dataclass(kw_only=True)
class SparseQuantize(Op):
    """Float input features -> integers: q = clamp(round(x / scale) + zp) (host side)."""


@dataclass(kw_only=True)
class SparseConv(_Weighted):
    """Sparse 3D conv; weight [K**3, c_in, c_out] with offsets numbered row-major over the taps
    (see `accelsim.sparse.kmap`). stride 1: submanifold; stride 2: strided (new active set);
    transposed=True: inverse of the strided conv that made the input's coordinate set."""

    stride: int = 1
    dilation: int = 1
    transposed: bool = False
    groups: int | None = None
    group_coeffs: tuple | None = None

    @property
    def kernel_size(self) -> int:
        return round(self.weight.shape[0] ** (1 / 3))

    def geometry(self, groups: int, coeffs) -> dict:
        """Keyword arguments of `accelsim.sparse.kernel_map` for this op."""
        return {
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "dilation": self.dilation,
            "groups": self.groups if self.groups is not None else groups,
            "group_coeffs": tuple(self.group_coeffs if self.group_coeffs is not None else coeffs),
            "transposed": self.transposed,
        }


@dataclass(kw_only=True)
class SparseReLU(Op):
    """y = max(x, zero point), same quantization in and out."""


@dataclass(kw_only=True)
class SparseAdd(Op):
    """Residual add of two tensors on one coordinate set (the vector ALU's ADD), fused ReLU."""

    N_INPUTS = 2
    relu: bool = False


@dataclass(kw_only=True)
class SparseConcat(Op):
    """Channel concatenation of tensors on one coordinate set (requantized as needed)."""

    N_INPUTS = None


@dataclass(kw_only=True)
class SparseToBEV(Op):
    """Sparse -> dense BEV map [batch, X, Y, C*Z] over grid `shape` = (batch, X, Y, Z)."""

    shape: tuple = (1, 1, 1, 1)


SPARSE_OP_TYPES = {
    c.__name__: c
    for c in (SparseQuantize, SparseConv, SparseReLU, SparseAdd, SparseConcat, SparseToBEV)
}
HOST_OPS = (SparseQuantize,)  # run on the host, not lowered to instructions


@dataclass
class SparseGraph(NodeLookup):
    """A sparse network: `SparseTensor`s by name, nodes in topological order, one float input
    (the voxel features; the coordinates come with the data). `meta["scene"]`: keyword
    arguments of `workloads.lidar.generate_scene` for the default input."""

    name: str
    tensors: dict
    nodes: list = field(default_factory=list)
    input: str = "features"
    outputs: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    kind = "sparse"  # graph kind (see `Graph.kind`)

    def dense_view(self, counts: dict | None = None) -> Graph:
        """Dense [n, c] twin of the tensor table (n from `counts[coord_set]`, default 1)."""
        counts = counts or {}
        return Graph(
            self.name,
            {
                k: t.dense(counts.get(t.coord_set, 1))
                if not t.is_float
                else TensorInfo(k, (1, t.channels), 32, "float")
                for k, t in self.tensors.items()
            },
            [],
            self.input,
            list(self.outputs),
        )

    def parents(self) -> dict:
        """coord set -> (finer set, stride) for every set made by a strided conv."""
        out = {}
        for n in self.nodes:
            if isinstance(n, SparseConv) and n.stride > 1 and not n.transposed:
                out[self.tensors[n.output].coord_set] = (
                    self.tensors[n.inputs[0]].coord_set,
                    n.stride,
                )
        return out

    def validate(self) -> None:
        """Raise ModelFormatError naming the node at fault (see module docstring rules)."""
        if self.input not in self.tensors or not self.tensors[self.input].is_float:
            raise ModelFormatError(f"graph input {self.input!r} must be a float sparse tensor")
        dense = self.dense_view()
        made = {self.tensors[self.input].coord_set}
        defined = {self.input}
        for n in self.nodes:
            if type(n).__name__ not in SPARSE_OP_TYPES:
                fail(n, "is not a sparse op")
            for t in n.inputs:
                if t not in defined:
                    fail(n, f"input {t!r} is used before it is produced")
            if n.output not in self.tensors or n.output in defined:
                fail(n, f"output {n.output!r} is undeclared or produced twice")
            defined.add(n.output)
            Op.check(n, dense)
            ins = [self.tensors[t] for t in n.inputs]
            out = self.tensors[n.output]
            if isinstance(n, SparseQuantize):
                if n.inputs[0] != self.input or out.is_float:
                    fail(n, "must quantize the float graph input")
            elif any(t.is_float for t in ins):
                fail(n, "inputs must be quantized integer tensors")
            if isinstance(n, SparseConv):
                self._check_conv(n, ins[0], out, made, dense)
            elif isinstance(n, SparseToBEV):
                self._check_bev(n, ins[0], out)
            else:
                if any(t.coord_set != out.coord_set for t in ins):
                    fail(n, "inputs and output must share one coordinate set")
                if isinstance(n, (SparseAdd, SparseConcat)):
                    widths = {t.channels for t in ins}
                    if isinstance(n, SparseAdd) and (
                        len(widths) != 1 or out.channels != ins[0].channels
                    ):
                        fail(n, "Add needs equal channel counts")
                    if isinstance(n, SparseConcat) and out.channels != sum(t.channels for t in ins):
                        fail(n, "output channels must be the sum of the inputs'")
                elif out.channels != ins[0].channels:
                    fail(n, "output channels must equal the input's")
        for t in self.outputs:
            if t not in defined:
                raise ModelFormatError(f"graph output {t!r} is not produced by any node")

    def _check_bev(self, n, src, out) -> None:
        shape = tuple(n.shape)
        if len(shape) != 4 or not all(isinstance(v, Integral) and v >= 1 for v in shape):
            fail(n, f"shape must be 4 integers (batch, X, Y, Z) >= 1, got {n.shape!r}")
        if out.channels != src.channels * shape[3]:
            fail(n, f"output channels must be {src.channels} x Z = {src.channels * shape[3]}")
        if (out.bits, out.mode, out.scale, out.zero_point) != (
            src.bits,
            src.mode,
            src.scale,
            src.zero_point,
        ):
            fail(n, f"output must keep the quantization of input {src.name!r} (a copy)")

    def _check_conv(self, n, src, out, made, dense) -> None:
        n._check_weights(dense, 3)
        k = n.kernel_size
        if k**3 != n.weight.shape[0] or n.weight.shape[1] != src.channels or out.channels != n.cout:
            fail(n, f"weight shape {n.weight.shape} must be [K**3, {src.channels}, {out.channels}]")
        if src.zero_point != 0:
            fail(n, f"input {src.name!r} must have zero point 0 (absent voxels add nothing)")
        if src.bits > MAC_MAX_BITS:
            fail(
                n,
                f"input {src.name!r} has {src.bits} bits; matmul operands have at most "
                f"{MAC_MAX_BITS}",
            )
        if n.transposed:
            parent = self.parents().get(src.coord_set)
            if parent is None or parent[0] != out.coord_set or parent[1] != n.stride:
                fail(
                    n,
                    f"a transposed conv must return {src.coord_set!r} to the set it was "
                    f"made from with the same stride",
                )
        elif n.stride == 1:
            if out.coord_set != src.coord_set or k not in (1, 3):
                fail(
                    n,
                    "a submanifold conv (stride 1) keeps its input's coordinate set and "
                    "has kernel 1 or 3",
                )
        else:
            if n.stride != 2 or k not in (2, 3) or out.coord_set in made:
                fail(n, "a strided conv has stride 2, kernel 2 or 3 and makes a new coordinate set")
            made.add(out.coord_set)
        if n.groups is not None and (not isinstance(n.groups, int) or n.groups < 1):
            fail(n, f"groups must be None or an integer >= 1, got {n.groups!r}")


def prepare_input(coords, features, name: str = "input"):
    """Validate a sparse input and sort its rows by (batch, x, y, z) (the canonical order).

    Raises `SparseInputError` for duplicate / negative / non-integer coordinates, an empty
    scene, or coords and features of different lengths."""
    c, f = sp.check_sparse(coords, features, name)
    order = np.lexsort((c[:, 3], c[:, 2], c[:, 1], c[:, 0]))
    return np.ascontiguousarray(c[order]), np.ascontiguousarray(np.asarray(f)[order])


def coord_sets(graph: SparseGraph, coords) -> dict:
    """Coordinates of every coordinate set of `graph` from the (sorted) input coordinates."""
    sets = {graph.tensors[graph.input].coord_set: np.asarray(coords, np.int32)}
    for n in graph.nodes:
        if isinstance(n, SparseConv) and n.stride > 1 and not n.transposed:
            dst = graph.tensors[n.output].coord_set
            if dst not in sets:
                sets[dst] = sp.downsample_coords(
                    sets[graph.tensors[n.inputs[0]].coord_set], n.stride
                )
    return sets


def conv_map(
    op: SparseConv, graph: SparseGraph, sets: dict, groups: int = 1, group_coeffs=(1, 2, 3)
):
    """The kernel map of `op` over canonical-order coordinates (cached by accelsim.sparse)."""
    src = sets[graph.tensors[op.inputs[0]].coord_set]
    dst = sets[graph.tensors[op.output].coord_set]
    geo = op.geometry(groups, group_coeffs)
    if op.stride == 1 and not op.transposed:
        return sp.kernel_map(src, **geo)
    return sp.kernel_map(src, **geo, out_coords=dst)


def _dense_twin(op, graph: SparseGraph):
    """The dense vector op whose integer arithmetic a sparse elementwise op uses."""
    if isinstance(op, SparseAdd):
        return Add(name=op.name, inputs=op.inputs, output=op.output, relu=op.relu)
    if isinstance(op, SparseConcat):
        return Concat(name=op.name, inputs=op.inputs, output=op.output)
    t = graph.tensors[op.output]
    return Clip(
        name=op.name, inputs=op.inputs, output=op.output, lo=t.zero_point, hi=t.dense().qrange[1]
    )


def run_sparse_reference(
    graph: SparseGraph,
    coords,
    features,
    *,
    groups: int = 1,
    group_coeffs=(1, 2, 3),
    round_mode: str = "single",
    mult_bits: int = 32,
    fast: bool = True,
    overflow: str = "error",
):
    """Run `graph` exactly in integers on (coords, features); returns (tensors, sets).

    coords/features: the sparse input (validated and sorted, see `prepare_input`); features
    float (quantized by the first node) or integers of the quantized input. groups /
    group_coeffs: the voxel groups of convs whose own `groups` is None. fast=False uses the
    NumPy `_ref` twins. tensors: name -> array in canonical row order; sets: name -> coords.
    """
    sp.check_groups(groups, group_coeffs)
    coords, features = prepare_input(coords, features)
    sets = coord_sets(graph, coords)
    dense = graph.dense_view({k: v.shape[0] for k, v in sets.items()})
    env = {graph.input: features}
    first = graph.nodes[0]
    if np.asarray(features).dtype.kind in "iu" and isinstance(first, SparseQuantize):
        dst = graph.tensors[first.output]
        check_int_array(np.asarray(features), dst.bits, dst.mode, f"input {dst.name!r}")
        env[first.output] = np.asarray(features).astype(dst.dtype)
    for op in graph.nodes:
        if op.output in env:
            continue
        xs = [env[i] for i in op.inputs]
        dst = graph.tensors[op.output]
        if isinstance(op, SparseQuantize):
            fn = quant.quantize_float if fast else quant.quantize_float_ref
            y = fn(
                np.asarray(xs[0], np.float64),
                dst.scale,
                dst.zero_point,
                dst.bits,
                dst.mode == "signed",
            )
        elif isinstance(op, SparseConv):
            src = graph.tensors[op.inputs[0]]
            kmap = conv_map(op, graph, sets, groups, group_coeffs)
            fn = sp.conv if fast else sp.conv_ref
            acc = fn(
                xs[0],
                op.weight,
                kmap,
                a_bits=src.bits,
                w_bits=op.w_bits,
                a_mode=src.mode,
                w_mode=op.w_mode,
                overflow=overflow,
            )
            p = rescale_params(op, dense, mult_bits)
            y = (rescale if fast else rescale_ref)(
                acc, p.bias, p.mult, p.shift, mode=round_mode, mult_bits=mult_bits, **p.kwargs()
            )
        elif isinstance(op, SparseToBEV):
            y = sp.to_bev(sets[graph.tensors[op.inputs[0]].coord_set], xs[0], op.shape)
        else:
            y = run_node(
                _dense_twin(op, graph),
                xs,
                dense,
                round_mode=round_mode,
                mult_bits=mult_bits,
                fast=fast,
                overflow=overflow,
            )
        env[op.output] = y
    return env, sets
