"""Random legal sparse graphs, voxel sets and voxel-group settings for fuzzing the sparse
lowering (the dense side and the `Draw` protocol: `workloads/random_graphs.py`).

`sparse_case(d)` draws 1 to 300 duplicate-free voxels (a single voxel included) in one or two
batches, in boxes from 1 to 12 voxels on a side, then 1 to 4 layers of every sparse op:
submanifold convs (kernel 1 or 3, dilation 1..3), strided convs (kernel 2 or 3, stride 2: a
new coordinate set), transposed convs back to the set a strided conv came from, ReLU, residual
adds of different scales, concat (requantized or copied), and sometimes a BEV collapse. Every
tensor has its own 1..8-bit width, signed or unsigned (weights also unsigned or bipolar);
zero points are 0 (a sparse conv's input must have zero point 0). Convs take G from the
config (`svge.groups` 1..8, so groups may be empty) or carry their own G 1..8 and group
coefficients (negative, zero and above the 4-bit SVG_MAP fields included). Weight step sizes
follow the rule of `workloads.sparse_nets` (outputs spread over about half their range).
"""

from __future__ import annotations

import math

import numpy as np

from accelsim.ir.sparse_ops import (
    SparseAdd,
    SparseConcat,
    SparseConv,
    SparseGraph,
    SparseQuantize,
    SparseReLU,
    SparseTensor,
    SparseToBEV,
)
from accelsim.numeric import storage_dtype, value_range
from workloads.random_graphs import Case, Draw, _bits, _w_mode, machine

COEFFS = ((1, 2, 3), (1, 1, 1), (0, 0, 1), (3, -1, 2), (17, 5, 40))


class _Net:
    """A SparseGraph grown one node at a time."""

    def __init__(self, d: Draw, rng: np.random.Generator, c_in: int):
        self.d, self.rng = d, rng
        t = SparseTensor("features", c_in, 32, "float", 1.0, 0, "s0")
        self.g = SparseGraph("fuzz_sparse", {"features": t}, [], "features", [])
        self.parent: dict[str, str] = {}  # coordinate set -> the set it was strided from
        self.n = 0
        x = self.tensor("s0", c_in, scale=0.25, bits=_bits(d), signed=True)
        self.g.nodes.append(SparseQuantize(name="quant", inputs=("features",), output=x))
        self.x = x

    def tensor(self, coord_set, c, *, scale=None, bits=None, signed=None) -> str:
        self.n += 1
        name = f"t{self.n}"
        bits = _bits(self.d) if bits is None else bits
        signed = self.d.flag() if signed is None else signed
        if scale is None:
            scale = 2.0 ** -self.d.int(0, 4)
        mode = "signed" if signed else "unsigned"
        self.g.tensors[name] = SparseTensor(name, c, bits, mode, scale, 0, coord_set)
        return name

    def conv(self, x, cout, k, *, stride=1, transposed=False, out_set=None, dilation=1):
        d, src = self.d, self.g.tensors[x]
        y = self.tensor(out_set or src.coord_set, cout)
        dst = self.g.tensors[y]
        wb = _bits(d)
        mode = _w_mode(d, wb) or ("bipolar" if wb == 1 else "signed")
        lo, hi = value_range(wb, mode)
        w = self.rng.integers(lo, hi + 1, size=(k**3, src.channels, cout))
        if mode == "bipolar":
            w = np.where(w >= 0, 1, -1)
        w_std = max(float(np.std(w)), 0.5)
        x_std = max(1.0, value_range(src.bits, src.mode)[1] / 3)
        taps = {1: 1, 2: 2, 3: 7}[k]
        qmax = max(value_range(dst.bits, dst.mode)[1], 1)
        m = qmax / 2 / (math.sqrt(taps * src.channels) * w_std * x_std)
        own = d.pick(("config", "groups"))
        groups = coeffs = None
        if own == "groups":
            groups = d.int(1, 8)
            coeffs = d.pick((None, *COEFFS))
        bias = self.rng.integers(-4, 5, cout).astype(np.int32) if d.flag() else None
        self.g.nodes.append(
            SparseConv(
                name=y,
                inputs=(x,),
                output=y,
                weight=w.astype(storage_dtype(wb, mode)),
                w_bits=wb,
                w_mode=mode,
                w_scale=m * dst.scale / src.scale,
                bias=bias,
                relu=d.flag(),
                stride=stride,
                dilation=dilation,
                transposed=transposed,
                groups=groups,
                group_coeffs=coeffs,
            )
        )
        return y

    def layer(self, x: str) -> str:
        d, src = self.d, self.g.tensors[x]
        kind = d.pick(("subm", "strided", "up", "relu", "add", "concat"))
        if kind == "subm" or (kind == "up" and src.coord_set not in self.parent):
            return self.conv(x, d.int(1, 8), d.pick((3, 1)), dilation=d.int(1, 3))
        if kind == "strided":
            out_set = f"s{len(self.parent) + 1}"
            self.parent[out_set] = src.coord_set
            return self.conv(x, d.int(1, 8), d.pick((2, 3)), stride=2, out_set=out_set)
        if kind == "up":
            k = d.pick((2, 3))
            return self.conv(
                x, d.int(1, 8), k, stride=2, transposed=True, out_set=self.parent[src.coord_set]
            )
        if kind == "relu":
            same = {"scale": src.scale, "bits": src.bits, "signed": src.mode == "signed"}
            y = self.tensor(src.coord_set, src.channels, **same)
            self.g.nodes.append(SparseReLU(name=y, inputs=(x,), output=y))
            return y
        other = self.conv(x, src.channels, d.pick((1, 3)))
        if kind == "add":
            y = self.tensor(src.coord_set, src.channels)
            ins = (x, other) if d.flag() else (other, x)
            self.g.nodes.append(SparseAdd(name=y, inputs=ins, output=y, relu=d.flag()))
            return y
        ins = (x, other, x)[: d.int(2, 3)]
        c = sum(self.g.tensors[i].channels for i in ins)
        if d.flag():  # the first input's quantization: copied, the others requantized
            signed = src.mode == "signed"
            y = self.tensor(src.coord_set, c, scale=src.scale, bits=src.bits, signed=signed)
        else:
            y = self.tensor(src.coord_set, c)
        self.g.nodes.append(SparseConcat(name=y, inputs=ins, output=y))
        return y


def _coords(d: Draw, rng: np.random.Generator) -> np.ndarray:
    batch = d.int(1, 2)
    side = d.pick((4, 1, 2, 8, 12))
    n = min(d.pick((20, 1, 2, 5, 60, 150, 300)), batch * side**3)
    cells = rng.choice(batch * side**3, size=n, replace=False)
    b, rest = np.divmod(cells, side**3)
    x, rest = np.divmod(rest, side**2)
    y, z = np.divmod(rest, side)
    return np.stack([b, x, y, z], axis=1).astype(np.int32)


def sparse_case(d: Draw) -> Case:
    """A random sparse graph (module docstring), a machine variant and its input voxels."""
    rng = np.random.default_rng(d.int(0, 2**16))
    coords = _coords(d, rng)
    c_in = d.int(1, 5)
    net = _Net(d, rng, c_in)
    x = net.x
    for _ in range(d.int(1, 4)):
        x = net.layer(x)
    outputs = [x]
    if d.flag():
        from accelsim.ir.sparse_ops import coord_sets  # noqa: PLC0415

        net.g.outputs = [x]
        sets = coord_sets(net.g, coords[np.lexsort(coords.T[::-1])])
        top = sets[net.g.tensors[x].coord_set].max(axis=0) + 1
        t = net.g.tensors[x]
        bev = f"t{net.n + 1}"
        net.g.tensors[bev] = SparseTensor(
            bev, t.channels * int(top[3]), t.bits, t.mode, t.scale, 0, "bev"
        )
        net.g.nodes.append(
            SparseToBEV(name=bev, inputs=(x,), output=bev, shape=tuple(int(v) for v in top))
        )
        outputs.append(bev)
    net.g.outputs = outputs
    net.g.validate()
    overrides = machine(d) + [
        f"svge.groups={d.int(1, 8)}",
        f"svge.engines={d.pick((2, 1, 3, 4))}",
        f"svge.group_coeffs=[{', '.join(str(v) for v in d.pick(COEFFS))}]",
    ]
    features = rng.standard_normal((coords.shape[0], c_in)) * 2
    return Case(net.g, overrides, (coords, features))
