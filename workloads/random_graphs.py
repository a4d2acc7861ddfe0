"""Random legal dense graphs and machine variants for fuzzing the lowering (see
`workloads/fuzz_graphs.py` and the property tests in `tests/fuzz/`).

Every choice goes through a `Draw` (an integer in a range, one of a few options, a flag), so
one generator serves two drivers: `RngDraw` (a seeded numpy generator, for long runs) and the
property tests' Hypothesis adapter, which shrinks a failing case to its simplest draws. Options
are listed simplest first (the value a shrinker moves to).

`dense_case(d)` draws a graph built by `accelsim.ir.builder.GraphBuilder` with every legal
attribute the dense IR has: 1..8-bit tensors, signed or unsigned (1-bit weights also bipolar,
weights also unsigned), kernels 1..7 on each axis, stride and dilation 1..3 per axis,
asymmetric padding up to past the 4-bit pad fields (so output tiles may read only padding),
maps one pixel wide or high, depthwise and grouped convolution, max and average pooling
windows up to 20 (wider than the ALU's 4-bit kh / kw), padded average pooling, global
average pooling, residual adds of different scales, concat (requantized or copied), ReLU /
ReLU6, nearest upsampling, Trunc, linear heads, batch 1..3; a quarter of the graphs are
transformer-style instead (`sequence_case`: attention MatMuls, softmax, GELU, layer norm, wide
16-bit scores; the I-BERT ops only on input steps their integer constants exist for, which
the IR defines them on). `machine(d)` draws
`section.key=value` overrides of the `edge` preset: arrays down to 1x1, every dataflow, MAC
model, rounding mode and multiplier width, and buffers small enough to tile every dimension.
Sparse graphs: `sparse_graphs.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from accelsim.errors import AccelsimError
from accelsim.ir.builder import GraphBuilder
from accelsim.ir.graph import Graph
from accelsim.ir.sparse_ops import SparseGraph
from accelsim.ir.transformer_builder import TransformerBuilder
from accelsim.ir.transformer_params import erf_constants, exp_constants

MAX_HW = 9  # input height and width are drawn from 1..MAX_HW
MAX_MAP = 20  # an intermediate map stays at most this high / wide (padding is cut back)
MAX_LAYERS = 4
PADS = (0, 1, 2, 3, 5, 16, 17)  # 16 and 17 exceed the LOAD's 4-bit pad fields


class Draw(Protocol):
    """Source of the generators' choices."""

    def int(self, lo: int, hi: int) -> int:
        """An integer in lo..hi (inclusive); lo is the simplest."""

    def pick(self, options: Sequence):
        """One of `options`; the first is the simplest."""

    def flag(self) -> bool:
        """True or False; False is the simplest."""


class RngDraw:
    """`Draw` from a numpy Generator (uniform choices)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def int(self, lo: int, hi: int) -> int:
        return int(self.rng.integers(lo, hi + 1))

    def pick(self, options: Sequence):
        return options[int(self.rng.integers(len(options)))]

    def flag(self) -> bool:
        return bool(self.rng.integers(2))


@dataclass
class Case:
    """One fuzz case: a graph, the `edge` overrides of its machine, and its input (a float NHWC
    array, or (coords, features) for a sparse graph)."""

    graph: Graph | SparseGraph
    overrides: list[str]
    x: object


def machine(d: Draw) -> list[str]:
    """`section.key=value` overrides of `edge` for one machine variant (module docstring)."""
    choices = {
        "matmul.rows": (16, 1, 2, 3, 4, 8, 32),
        "matmul.cols": (16, 1, 2, 3, 4, 8, 32),
        "matmul.dataflow": ("os", "ws", "is"),
        "matmul.mac_model": ("fusion", "serial_act", "serial_both", "fixed"),
        "matmul.serial_bits": (1, 2, 3, 8),
        "matmul.max_bits": (8,) * 30 + (4, 2),  # narrower MACs refuse wider operands
        "matmul.fill_drain": ("true", "false"),
        "matmul.overflow": ("error", "wrap"),
        "rescale.round_mode": ("single", "tflite", "rne"),
        "rescale.mult_bits": (32, 16),
        "rescale.lanes": (16, 1, 3),
        "vector.lanes": (16, 1, 5),
        "quantizer.lanes": (16, 1),
        "buffers.row_bits": (128, 8, 32, 64, 96, 256),
        "buffers.inp_bytes": (65536, 8192, 2048, 1024),
        "buffers.wgt_bytes": (131072, 8192, 1024, 512),
        "buffers.acc_bytes": (65536, 4096, 1024, 512),
        "buffers.out_bytes": (32768, 2048, 512, 256),
        "buffers.param_bytes": (8192, 1024, 256, 96),
        "dram.bw_bytes_per_cycle": (25.6, 1.0, 64.0),
        "dram.latency_cycles": (100, 0, 7),
        "dram.burst_bytes": (64, 1, 32),
        "dram.max_outstanding": (2, 1),
    }
    sets = []
    for key, opts in choices.items():
        v = d.pick(opts)
        if v != opts[0]:
            sets.append(f"{key}={v}")
    return sets


def _bits(d: Draw) -> int:
    return d.pick((8, 4, 2, 1, 3, 5, 6, 7))


def _w_mode(d: Draw, bits: int) -> str | None:
    """None (signed; bipolar at 1 bit), or explicitly signed / unsigned."""
    return d.pick((None, "unsigned", "signed") if bits == 1 else (None, "unsigned"))


def _out(size: int, k: int, s: int, lo: int, hi: int, dil: int = 1) -> int:
    return (size + lo + hi - dil * (k - 1) - 1) // s + 1


def _fit_pads(size: int, k: int, s: int, dil: int, lo: int, hi: int) -> tuple[int, int]:
    """Padding raised until the window fits once, then cut back (larger side first) until the
    output is at most MAX_MAP long."""
    need = dil * (k - 1) + 1 - size - lo - hi
    if need > 0:
        hi += need
    while _out(size, k, s, lo, hi, dil) > MAX_MAP:
        if hi >= lo and hi > 0:
            hi -= 1
        elif lo > 0:
            lo -= 1
        else:
            break
    return lo, hi


def _pair(d: Draw) -> tuple[int, int]:
    """A stride or dilation pair in 1..3, equal on both axes unless a flag says otherwise."""
    v = d.int(1, 3)
    return (v, d.int(1, 3)) if d.flag() else (v, v)


def _axis(
    d: Draw, size: int, max_k: int, s: int, dil: int, pad_lt_kernel: bool
) -> tuple[int, int, int]:
    """(kernel, pad before, pad after) along one axis of stride s and dilation dil."""
    k = d.int(1, max_k)
    lo, hi = d.pick(PADS), d.pick(PADS)
    if pad_lt_kernel:  # pooling: every window holds a real element
        lo, hi = min(lo, k - 1), min(hi, k - 1)
        if size + lo + hi < k:
            hi = min(k - 1, k - size - lo)
            lo = max(lo, k - size - hi)
        while _out(size, k, s, lo, hi) > MAX_MAP and (lo or hi):
            lo, hi = (lo, hi - 1) if hi >= lo else (lo - 1, hi)
        return k, lo, hi
    return (k, *_fit_pads(size, k, s, dil, lo, hi))


def _act(d: Draw, linear: bool = False) -> dict:
    """Output bits, sign and fused activation (ReLU, or ReLU6 for a conv) of a conv / linear."""
    act = {"bits": _bits(d), "signed": d.flag(), "relu": d.flag()}
    if not linear:
        act["relu6"] = act["relu"] and d.flag()
    return act


def _weights(d: Draw) -> dict:
    wb = _bits(d)
    return {"w_bits": wb, "w_mode": _w_mode(d, wb)}


def _conv(d: Draw, b: GraphBuilder, x: str) -> str:
    _, h, w, c = b.graph.tensors[x].shape
    (sy, sx), (dy, dx) = _pair(d), _pair(d)
    kh, pt, pb = _axis(d, h, 7, sy, dy, False)
    kw, pl, pr = _axis(d, w, 7, sx, dx, False)
    kind = d.pick(("dense", "depthwise", "grouped"))
    groups, cout = 1, d.int(1, 8)
    if kind == "depthwise":
        groups, cout = c, c * d.int(1, 2)
    elif kind == "grouped":
        divisors = [g for g in range(2, c + 1) if c % g == 0] or [1]
        groups = d.pick(divisors)
        cout = groups * d.int(1, 3)
    return b.conv(
        x,
        cout,
        (kh, kw),
        stride=(sy, sx),
        dilation=(dy, dx),
        padding=(pt, pb, pl, pr),
        groups=groups,
        **_weights(d),
        **_act(d),
    )


def _pool(d: Draw, b: GraphBuilder, x: str) -> str:
    _, h, w, _ = b.graph.tensors[x].shape
    sy, sx = _pair(d)
    kh, pt, pb = _axis(d, h, 20, sy, 1, True)
    kw, pl, pr = _axis(d, w, 20, sx, 1, True)
    args = ((kh, kw), (sy, sx), (pt, pb, pl, pr))
    if d.flag():
        return b.maxpool(x, *args)
    return b.avgpool(x, *args, bits=_bits(d))


def _residual(d: Draw, b: GraphBuilder, x: str) -> str:
    c = b.graph.tensors[x].channels
    k = d.pick((1, 3, 5))
    branch = d.pick(("conv", "self", "clip"))
    if branch == "conv":
        y = b.conv(x, c, k, **_weights(d), bits=_bits(d), signed=True, relu=False)
    elif branch == "clip":
        y = b.clip(x, d.pick(("relu", "relu6")))
    else:
        y = x
    a, bb = (x, y) if d.flag() else (y, x)
    return b.add(a, bb, bits=_bits(d), signed=d.flag(), relu=d.flag())


def _concat(d: Draw, b: GraphBuilder, x: str) -> str:
    branches = [x]
    for _ in range(d.int(1, 2)):
        kind = d.pick(("conv1", "conv3", "same", "pool"))
        if kind == "conv1":
            branches.append(b.conv(x, d.int(1, 6), 1, **_weights(d), **_act(d)))
        elif kind == "conv3":
            branches.append(b.conv(x, d.int(1, 6), 3, **_weights(d), **_act(d)))
        elif kind == "pool":  # keeps x's quantization: concat copies it
            branches.append(b.maxpool(x, 3, 1, 1))
        else:
            branches.append(x)
    if d.flag():
        branches = branches[::-1]
    return b.concat(branches, bits=_bits(d), signed=d.flag(), keep=d.flag())


def _clip(d: Draw, b: GraphBuilder, x: str) -> str:
    return b.clip(x, d.pick(("relu", "relu6")))


def _gap(d: Draw, b: GraphBuilder, x: str) -> str:
    return b.global_avgpool(x, bits=_bits(d))


def _upsample(d: Draw, b: GraphBuilder, x: str) -> str:
    _, h, w, _ = b.graph.tensors[x].shape
    return b.upsample(x, (d.int(1, max(1, min(3, MAX_MAP // h))), d.int(1, max(1, MAX_MAP // w))))


def _trunc(d: Draw, b: GraphBuilder, x: str) -> str:
    shift = d.pick((1, 0, 2, 3, 8, 12))
    rounding = d.pick(("floor", "ceil", "round"))
    return b.trunc(x, shift, rounding, bits=_bits(d), signed=d.flag())


LAYERS = {
    "conv": _conv,
    "pool": _pool,
    "residual": _residual,
    "concat": _concat,
    "clip": _clip,
    "gap": _gap,
    "upsample": _upsample,
    "trunc": _trunc,
}


def _runs_exp(t) -> bool:
    """The integer softmax has constants for this input step (`exp_constants`)."""
    try:
        exp_constants(float(t.scale))
    except AccelsimError:
        return False
    return True


def _runs_erf(t) -> bool:
    """The integer GELU has constants for this input step and range (`erf_constants`)."""
    lo, hi = t.qrange
    try:
        erf_constants(float(t.scale), lo - t.zero_point, hi - t.zero_point)
    except AccelsimError:
        return False
    return True


def _attention(d: Draw, b: TransformerBuilder, x: str, heads: int) -> str:
    """Q . K^T per head (wide scores), softmax, probabilities . V per head."""
    hidden = b.graph.tensors[x].shape[1]
    proj = [b.linear(x, hidden, **_weights(d), bits=_bits(d), signed=True) for _ in range(3)]
    q, k, v = proj if d.flag() else (proj[0], proj[0], proj[2])  # self-similarity: k = q
    wide = d.pick((16, 8, 12, 4))  # scores feed only the softmax
    alpha = d.pick((0.5, 1.0, 0.125))
    s = b.matmul(q, k, heads=heads, transpose_b=True, alpha=alpha, bits=wide, signed=True)
    if _runs_exp(b.graph.tensors[s]):
        p = b.softmax(s, bits=_bits(d))
    else:  # too coarse a step for the integer exp: narrowed to a matmul operand instead
        p = b.trunc(s, max(0, wide - 8), bits=min(wide, 8), signed=True)
    return b.matmul(p, v, heads=heads, concat_heads=True, bits=_bits(d), signed=d.flag())


def _sequence(d: Draw, b: TransformerBuilder, x: str, heads: int) -> str:
    """One layer of a transformer-style graph on [rows, features] (2-D) tensors."""
    t = b.graph.tensors[x]
    kind = d.pick(("attention", "linear", "softmax", "gelu", "layernorm", "residual", "trunc"))
    if kind == "attention":
        return _attention(d, b, x, heads)
    if kind == "linear":
        return b.linear(x, t.shape[1], **_weights(d), **_act(d, linear=True))
    if kind == "softmax" and _runs_exp(t):  # (the I-BERT ops' steps: IR definition limits)
        return b.softmax(x, bits=_bits(d))
    if kind == "gelu" and _runs_erf(t):
        return b.gelu(x, bits=_bits(d), signed=d.flag())
    if kind == "layernorm":
        return b.layernorm(x, bits=_bits(d), signed=d.flag())
    if kind == "trunc":
        return _trunc(d, b, x)
    if kind != "residual":
        return b.clip(x, "relu")
    y = b.linear(x, t.shape[1], **_weights(d), bits=d.pick((8, 16, 4)), signed=True)
    return b.add(x, y, bits=_bits(d), signed=d.flag(), relu=d.flag())


def sequence_case(d: Draw) -> Case:
    """A random transformer-style graph on a [rows, heads * width] input: attention (MatMul per
    head with and without a transposed second operand, softmax), linear layers, GELU, layer
    norm, residual adds and Trunc, with a machine variant and a float input."""
    heads, width, rows = d.int(1, 3), d.int(1, 4), d.int(1, 8)
    rng = np.random.default_rng(d.int(0, 2**16))
    b = TransformerBuilder("fuzz_seq", (rows, heads * width), rng, calib_batch=rows)
    x = b.quantize(_bits(d), signed=d.flag())
    for _ in range(d.int(1, MAX_LAYERS)):
        x = _sequence(d, b, x, heads)
    return Case(b.finish(x), machine(d), rng.standard_normal((rows, heads * width)))


def dense_case(d: Draw) -> Case:
    """A random dense graph (module docstring), a machine variant and a float input: an image
    CNN, or a quarter of the time a transformer-style graph (`sequence_case`)."""
    if d.pick(("image", "image", "image", "sequence")) == "sequence":
        return sequence_case(d)
    n, h, w, c = d.int(1, 3), d.int(1, MAX_HW), d.int(1, MAX_HW), d.int(1, 6)
    rng = np.random.default_rng(d.int(0, 2**16))
    b = GraphBuilder("fuzz", (n, h, w, c), rng, calib_batch=4)
    x = b.quantize(_bits(d), signed=d.flag())
    for _ in range(d.int(1, MAX_LAYERS)):
        x = LAYERS[d.pick(tuple(LAYERS))](d, b, x)
    head = d.pick(("none", "linear", "linear2"))
    if head != "none":
        x = b.flatten(x)
        for _ in range(1 if head == "linear" else 2):
            x = b.linear(x, d.int(1, 10), **_weights(d), **_act(d, linear=True))
    graph = b.finish(x)
    return Case(graph, machine(d), rng.standard_normal((n, h, w, c)))
