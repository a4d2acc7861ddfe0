"""Batch-norm folding: merge each float BatchNorm into the conv / linear that feeds it.

For a conv with input step s_in, weight steps s_w[c] and int32 bias b[c] (so its real output
is z = s_in * s_w[c] * (acc + b[c])), the batch norm y = g*(z - mean)/std + beta equals a conv
with weight step s_w'[c] = s_w[c] * |g[c]| / std[c], weights and bias negated on channels where
g < 0, and bias b'[c] = sign(g) * b[c] + round((beta - g * mean / std) / (s_in * s_w'[c])).
The folded op writes the BatchNorm's (quantized) output tensor directly; the float tensor in
between disappears. Bias rounding is the only approximation (offline, as in every framework).

A native BatchNorm folds to whole accumulator units (its meaning since the format began; the
golden results pin it). The ONNX importer passes the input tensor to `add_offset`, and the bias
then keeps the fractional bits `bias_frac` chooses: RESCALE adds bias * 2**-F before rounding,
so an output whose real value lies within half an accumulator unit of a rounding tie lands on
the same side as in the float model.
"""

from __future__ import annotations

import copy

import numpy as np

from accelsim.errors import ModelFormatError
from accelsim.ir.graph import Graph, TensorInfo, check_int_array
from accelsim.ir.ops import BatchNorm
from accelsim.numeric import BIAS_FRAC_MAX, INT32_MAX, INT32_MIN


def scale_weighted(op, k: np.ndarray, what: str):
    """A copy of conv/linear `op` whose real output is k[c] times op's (k != 0 per channel):
    the weight step takes |k|, and weights and bias are negated on channels where k < 0."""
    k = np.broadcast_to(np.asarray(k, np.float64), (op.cout,))
    if np.any(k == 0) or not np.all(np.isfinite(k)):
        raise ModelFormatError(f"{what}: cannot fold a per-channel factor of 0 or inf")
    sign = np.where(k < 0, -1, 1)
    weight = op.weight.astype(np.int64) * sign  # sign broadcasts over the last (Cout) axis
    try:
        check_int_array(weight, op.w_bits, op.w_mode, "negated weights")
    except ModelFormatError as e:
        raise ModelFormatError(
            f"{what}: a negative factor needs weights of {op.name!r} negated, but {e}"
        ) from None
    new = copy.copy(op)
    new.weight = weight.astype(op.weight.dtype)
    new.w_scale = op.w_scale_per_channel() * np.abs(k)
    if op.bias is not None:
        new.bias = (sign * op.bias.astype(np.int64)).astype(np.int32)
    return new


def acc_bounds(op, src: TensorInfo) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel, the least and greatest sum_k (x_k - zp_in) * w[k, c] of conv/linear
    `op` over every input x in the range of its input tensor `src` (int64 arrays [C]): the
    accumulator RESCALE sees once the zero point is folded into the bias (padding adds 0)."""
    lo, hi = src.qrange
    d_lo, d_hi = lo - src.zero_point, hi - src.zero_point  # d_lo <= 0 <= d_hi
    w = op.weight.reshape(-1, op.cout).astype(np.int64)
    pos, neg = np.maximum(w, 0).sum(axis=0), np.minimum(w, 0).sum(axis=0)
    return pos * d_lo + neg * d_hi, pos * d_hi + neg * d_lo


FLOAT_REL = 2.0**-22  # a float32 bias over float32 scales is known to ~4 float32 ulps


def bias_frac(op, units: np.ndarray, src: TensorInfo) -> tuple[int, np.ndarray]:
    """(F, int64 bias in 2**-F accumulator units) for a real bias of `units` (float64, per
    channel) accumulator units of conv/linear `op` reading integer tensor `src`.

    F is the bias's own step relative to the accumulator unit, as far as RESCALE can carry it:
    the smallest F in 0..BIAS_FRAC_MAX at which every channel lies on the grid 2**-F to within
    what the bias is known to (relative FLOAT_REL, as a float32 value; and half the finest step
    2**-(BIAS_FRAC_MAX+1)), so a whole-unit bias (an int32 bias, a QLinearConv's) gets F = 0
    and a bias quantized at unit / 2**k gets F = k. Otherwise (a float bias, a folded batch
    norm) F is the largest value at which the (32 + F)-bit bias adder cannot saturate for any
    input: (acc << F) + bias within int32 for every acc in `acc_bounds`. If even F = 0 does
    not fit, F = 0 and the caller's int32 check reports the overflow."""
    units = np.asarray(units, np.float64)
    lo, hi = acc_bounds(op, src)
    tol = np.maximum(np.abs(units) * FLOAT_REL, 2.0 ** -(BIAS_FRAC_MAX + 1))
    best = (0, np.rint(units))
    for f in range(BIAS_FRAC_MAX + 1):
        scaled = np.ldexp(units, f)
        b = np.rint(scaled)
        fits = np.all((hi << f) + b <= INT32_MAX) and np.all((lo << f) + b >= INT32_MIN)
        if not fits:
            return best
        best = (f, b)
        if np.all(np.abs(b - scaled) <= np.ldexp(tol, f)):
            return best
    return best


def add_offset(op, offset: np.ndarray, s_in: float, what: str, src: TensorInfo | None = None):
    """A copy of conv/linear `op` whose real output is op's plus `offset` (per channel, real
    units). Without `src`, the bias gains offset / (s_in * w_scale[c]) accumulator units
    rounded to op's bias_frac_bits (whole units for a native BatchNorm). With `src` (op's
    input tensor, of scale s_in), the whole bias is re-expressed with the fractional bits
    `bias_frac` chooses."""
    add = np.asarray(offset, np.float64) / (s_in * op.w_scale_per_channel())
    f = int(op.bias_frac_bits)
    if src is None:
        bias = op.bias_or_zeros().astype(np.int64) + np.rint(np.ldexp(add, f))
    else:
        units = np.ldexp(op.bias_or_zeros().astype(np.float64), -f) + add
        f, bias = bias_frac(op, units, src)
    if np.any(bias < INT32_MIN) or np.any(bias > INT32_MAX):
        raise ModelFormatError(f"{what}: folded bias of {op.name!r} overflows int32")
    new = copy.copy(op)
    new.bias = bias.astype(np.int32)
    new.bias_frac_bits = f
    return new


def fold_one(op, bn: BatchNorm, s_in: float):
    """A copy of conv/linear `op` with batch norm `bn` folded in (output renamed to bn's)."""
    gamma, std = bn.gamma.astype(np.float64), np.sqrt(bn.var.astype(np.float64) + bn.eps)
    if np.any(gamma == 0):
        raise ModelFormatError(f"node {bn.name!r}: cannot fold a batch norm with gamma == 0")
    what = f"node {bn.name!r}"
    scaled = scale_weighted(op, gamma / std, what)
    shift = bn.beta.astype(np.float64) - gamma * bn.mean.astype(np.float64) / std
    new = add_offset(scaled, shift, s_in, what)
    new.output = bn.output
    return new


def fold_batchnorm(graph: Graph) -> Graph:
    """Return a copy of `graph` with every BatchNorm folded into its producer (a pass)."""
    graph.validate()
    bns = {n.inputs[0]: n for n in graph.nodes if isinstance(n, BatchNorm)}
    nodes = []
    for n in graph.nodes:
        if isinstance(n, BatchNorm):
            continue
        if n.output in bns:
            n = fold_one(n, bns[n.output], float(graph.tensors[n.inputs[0]].scale))
        nodes.append(n)
    tensors = {k: t for k, t in graph.tensors.items() if k not in bns}
    out = Graph(
        name=graph.name,
        tensors=tensors,
        nodes=nodes,
        input=graph.input,
        outputs=list(graph.outputs),
    )
    if bns:  # without batch norms the copy holds the nodes just validated
        out.validate()
    return out
