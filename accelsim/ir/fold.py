"""Batch-norm folding: merge each float BatchNorm into the conv / linear that feeds it.

For a conv with input step s_in, weight steps s_w[c] and int32 bias b[c] (so its real output
is z = s_in * s_w[c] * (acc + b[c])), the batch norm y = g*(z - mean)/std + beta equals a conv
with weight step s_w'[c] = s_w[c] * |g[c]| / std[c], weights and bias negated on channels where
g < 0, and bias b'[c] = sign(g) * b[c] + round((beta - g * mean / std) / (s_in * s_w'[c])).
The folded op writes the BatchNorm's (quantized) output tensor directly; the float tensor in
between disappears. Bias rounding is the only approximation (offline, as in every framework).
"""

from __future__ import annotations

import copy

import numpy as np

from accelsim.errors import ModelFormatError
from accelsim.ir.graph import Graph, check_int_array
from accelsim.ir.ops import BatchNorm
from accelsim.numeric import INT32_MAX, INT32_MIN


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


def add_offset(op, offset: np.ndarray, s_in: float, what: str):
    """A copy of conv/linear `op` whose real output is op's plus `offset` (per channel, real
    units): the bias gains round(offset / (s_in * w_scale[c])) accumulator units."""
    add = np.rint(np.asarray(offset, np.float64) / (s_in * op.w_scale_per_channel()))
    bias = op.bias_or_zeros().astype(np.int64) + add
    if np.any(bias < INT32_MIN) or np.any(bias > INT32_MAX):
        raise ModelFormatError(f"{what}: folded bias of {op.name!r} overflows int32")
    new = copy.copy(op)
    new.bias = bias.astype(np.int32)
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
