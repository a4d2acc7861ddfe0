"""Integer reference execution of a graph: every op computed exactly with the kernels' `_ref`
definitions (the NumPy twins that define the hardware's arithmetic), so it is the golden
output the simulator must match bit for bit.

Only the first op, `Quantize`, sees floats (the model input); everything after it is integer:
conv / linear / matmul = GEMM of integers into int32 then RESCALE; pooling, add, clip, concat,
softmax, GELU and layer norm are the vector ALU's integer operations. Multipliers and folded
biases come from `accelsim.ir.params` and `accelsim.ir.transformer_params`, the same functions
lowering uses.
"""

from __future__ import annotations

import numpy as np

from accelsim.errors import AccelsimError
from accelsim.ir import params as P
from accelsim.ir import transformer_params as TP
from accelsim.ir.fold import fold_batchnorm
from accelsim.ir.graph import Graph
from accelsim.ir.host_ops import is_host
from accelsim.ir.ops import (
    Add,
    AvgPool,
    BatchNorm,
    Clip,
    Concat,
    Flatten,
    GlobalAvgPool,
    MaxPool,
    QuantConv2d,
    Quantize,
    QuantLinear,
    Trunc,
    Upsample,
)
from accelsim.ir.transformer_ops import Gelu, LayerNorm, MatMul, Softmax, head
from accelsim.jit import jit_disabled, prefer_numpy
from accelsim.kernels import alu, gemm, ibert, quant
from accelsim.kernels.rescale import rescale, rescale_ref

# The Numba twins are only faster when compiled; with NUMBA_DISABLE_JIT=1 (coverage runs)
# their loops run as Python, far slower than the NumPy `_ref` definitions.
JIT_ENABLED = not jit_disabled()


class _Ctx:
    """Options of one reference run: rounding mode, multiplier width, which kernel twins.

    fast: True runs the compiled kernels, False the NumPy `_ref` definitions, "auto" the BLAS
    GEMM and strided im2col (which need no Numba) and, per call, the compiled twin of the other
    ops only where `accelsim.jit.prefer_numpy` says loading Numba pays. All give the same
    integers."""

    def __init__(self, graph: Graph, round_mode: str, mult_bits: int, fast, overflow: str):
        self.graph, self.round_mode, self.mult_bits = graph, round_mode, mult_bits
        self.overflow, self.fast = overflow, fast
        self.gemm = gemm.gemm if fast else gemm.gemm_ref
        self.im2col = gemm.im2col if fast else gemm.im2col_ref

    def twin(self, compiled, ref, work: int):
        """The compiled kernel or its `_ref` twin for a call of about `work` element ops."""
        if self.fast == "auto":
            return ref if prefer_numpy(work) else compiled
        return compiled if self.fast else ref

    def rescale_with(self, acc: np.ndarray, p: P.RescaleParams) -> np.ndarray:
        return self.twin(rescale, rescale_ref, acc.size)(
            acc,
            p.bias,
            p.mult,
            p.shift,
            mode=self.round_mode,
            mult_bits=self.mult_bits,
            **p.kwargs(),
        )


def pad_nhwc(x: np.ndarray, padding: tuple[int, int, int, int], value: int) -> np.ndarray:
    """Pad an NHWC array by (top, bottom, left, right) with the integer `value`."""
    pt, pb, pl, pr = padding
    return np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=value)


def conv_acc(
    op: QuantConv2d, x: np.ndarray, graph: Graph, *, fast=False, overflow: str = "error"
) -> np.ndarray:
    """int32 accumulators [N, OH, OW, Cout] of a conv: sum of x_padded * w, without bias.

    The input is padded with its zero point; the zero point's contribution is removed by the
    folded bias of `rescale_params`. Grouped / depthwise convs run one GEMM per group.
    """
    return _conv_acc(op, x, _Ctx(graph, "single", 32, fast, overflow))


def _conv_acc(op: QuantConv2d, x: np.ndarray, ctx: _Ctx) -> np.ndarray:
    src = ctx.graph.tensors[op.inputs[0]]
    n = x.shape[0]
    kh, kw, cin_g, cout = op.weight.shape
    cout_g = cout // op.groups
    w = op.weight.reshape(kh * kw * cin_g, cout)
    xp = pad_nhwc(x, op.padding, src.zero_point)
    _, oh, ow, _ = op.out_shape(x.shape)
    acc = np.empty((n, oh * ow, cout), np.int32)
    gkw = {
        "a_bits": src.bits,
        "w_bits": op.w_bits,
        "a_mode": src.mode,
        "w_mode": op.w_mode,
        "overflow": ctx.overflow,
    }
    for b in range(n):
        for g in range(op.groups):
            patch = xp[b, :, :, g * cin_g : (g + 1) * cin_g]
            cols = ctx.im2col(patch, kh, kw, op.stride, op.dilation)
            wg = w[:, g * cout_g : (g + 1) * cout_g]
            acc[b, :, g * cout_g : (g + 1) * cout_g] = ctx.gemm(cols, wg, **gkw)
    return acc.reshape(n, oh, ow, cout)


def _quantize(op, xs, ctx):
    dst = ctx.graph.tensors[op.output]
    fn = ctx.twin(quant.quantize_float, quant.quantize_float_ref, xs[0].size)
    return fn(xs[0], dst.scale, dst.zero_point, dst.bits, dst.mode == "signed")


def _conv(op, xs, ctx):
    return ctx.rescale_with(
        _conv_acc(op, xs[0], ctx), P.rescale_params(op, ctx.graph, ctx.mult_bits)
    )


def _linear(op, xs, ctx):
    src = ctx.graph.tensors[op.inputs[0]]
    acc = ctx.gemm(
        xs[0],
        op.weight,
        a_bits=src.bits,
        w_bits=op.w_bits,
        a_mode=src.mode,
        w_mode=op.w_mode,
        overflow=ctx.overflow,
    )
    return ctx.rescale_with(acc, P.rescale_params(op, ctx.graph, ctx.mult_bits))


def _clip(op, xs, ctx):
    return ctx.twin(alu.clip, alu.clip_ref, xs[0].size)(xs[0], op.lo, op.hi)


def _add(op, xs, ctx):
    p = P.add_params(op, ctx.graph, ctx.mult_bits)
    fn = ctx.twin(alu.add, alu.add_ref, xs[0].size)
    return fn(xs[0], xs[1], mode=ctx.round_mode, **p.kwargs())


def _pool_pads(op) -> tuple[int, int, int, int]:
    pt, pb, pl, pr = op.padding
    return (pt, pl, pb, pr)  # the pool kernels take ONNX order (top, left, bottom, right)


def _maxpool(op, xs, ctx):
    fn = ctx.twin(alu.maxpool, alu.maxpool_ref, xs[0].size * op.kernel[0] * op.kernel[1])
    return fn(xs[0], op.kernel[0], op.kernel[1], op.stride, _pool_pads(op))


def _avgpool(op, xs, ctx):
    p = P.pool_params(op, ctx.graph, ctx.mult_bits)
    fn = ctx.twin(alu.avgpool, alu.avgpool_ref, xs[0].size * op.kernel[0] * op.kernel[1])
    return fn(
        xs[0],
        op.kernel[0],
        op.kernel[1],
        op.stride,
        _pool_pads(op),
        mode=ctx.round_mode,
        mult_bits=ctx.mult_bits,
        **p.kwargs(),
    )


def _gap(op, xs, ctx):
    p = P.pool_params(op, ctx.graph, ctx.mult_bits)
    fn = ctx.twin(alu.global_avgpool, alu.global_avgpool_ref, xs[0].size)
    return fn(xs[0], mode=ctx.round_mode, mult_bits=ctx.mult_bits, **p.kwargs())


def _flatten(op, xs, ctx):
    return xs[0].reshape(xs[0].shape[0], -1)


def _trunc(op, xs, ctx):
    p = P.trunc_params(op, ctx.graph)
    fn = ctx.twin(alu.add, alu.add_ref, xs[0].size)
    return fn(xs[0], xs[0], mode=ctx.round_mode, **p.kwargs())


def _upsample(op, xs, ctx):
    fh, fw = op.factors
    return np.repeat(np.repeat(xs[0], fh, axis=1), fw, axis=2)


def _concat(op, xs, ctx):
    dst = ctx.graph.tensors[op.output]
    parts = []
    for x, p in zip(xs, P.concat_params(op, ctx.graph, ctx.mult_bits)):
        parts.append(x.astype(dst.dtype) if p is None else ctx.rescale_with(x.astype(np.int32), p))
    return np.concatenate(parts, axis=-1)


def _matmul(op, xs, ctx):
    a_t, b_t = (ctx.graph.tensors[i] for i in op.inputs)
    heads = []
    for h in range(op.heads):
        b = head(xs[1], h, op.heads)
        heads.append(
            ctx.gemm(
                np.ascontiguousarray(head(xs[0], h, op.heads)),
                np.ascontiguousarray(b.T if op.transpose_b else b),
                a_bits=a_t.bits,
                w_bits=b_t.bits,
                a_mode=a_t.mode,
                w_mode=b_t.mode,
                overflow=ctx.overflow,
            )
        )
    acc = np.concatenate(heads, axis=1) if op.concat_heads else np.stack(heads)
    return ctx.rescale_with(acc, TP.matmul_params(op, ctx.graph, ctx.mult_bits))


def _softmax(op, xs, ctx):
    fn = ctx.twin(ibert.softmax, ibert.softmax_ref, xs[0].size)
    return fn(xs[0], **TP.softmax_params(op, ctx.graph).kwargs())


def _gelu(op, xs, ctx):
    p = TP.gelu_params(op, ctx.graph, ctx.mult_bits)
    fn = ctx.twin(ibert.gelu, ibert.gelu_ref, xs[0].size)
    return fn(xs[0], mode=ctx.round_mode, mult_bits=ctx.mult_bits, **p.kwargs())


def _layernorm(op, xs, ctx):
    p = TP.layernorm_params(op, ctx.graph, ctx.mult_bits)
    fn = ctx.twin(ibert.layernorm, ibert.layernorm_ref, xs[0].size)
    return fn(xs[0], mode=ctx.round_mode, **p.kwargs())


_RUN = {
    Quantize: _quantize,
    QuantConv2d: _conv,
    QuantLinear: _linear,
    Clip: _clip,
    Add: _add,
    MaxPool: _maxpool,
    AvgPool: _avgpool,
    GlobalAvgPool: _gap,
    Flatten: _flatten,
    Concat: _concat,
    Upsample: _upsample,
    Trunc: _trunc,
    MatMul: _matmul,
    Softmax: _softmax,
    Gelu: _gelu,
    LayerNorm: _layernorm,
}


def run_node(
    op,
    inputs: list[np.ndarray],
    graph: Graph,
    *,
    round_mode: str = "single",
    mult_bits: int = 32,
    fast: bool | str = False,
    overflow: str = "error",
) -> np.ndarray:
    """Run one node on its input arrays; returns its integer output array. fast: which kernel
    twins (True, False or "auto", see `run_reference`).

    Shapes other than channels / features are taken from the arrays, so a node can be run on
    a smaller spatial size than declared (used for calibration).
    """
    if is_host(op):
        return op.run(inputs)
    ctx = _Ctx(graph, round_mode, mult_bits, fast, overflow)
    return _RUN[type(op)](op, inputs, ctx)


def run_reference(
    graph: Graph,
    x,
    *,
    round_mode: str = "single",
    mult_bits: int = 32,
    fast: bool | str = False,
    overflow: str = "error",
) -> dict[str, np.ndarray]:
    """Run `graph` exactly in integers; return every tensor by name (input included).

    x: the float model input (shape of the graph input: NHWC, or the layout its host
    pre-processing reads), or already-quantized integers
    for the first Quantize's output (then Quantize is skipped). round_mode: "single", "rne" or
    "tflite" (RESCALE rounding); mult_bits: rescale multiplier width (16 or 32). fast=True
    uses the compiled twins of the kernels (bit-exact with the `_ref` ones, much faster);
    fast="auto" chooses per call and loads Numba only where that pays (model building).
    overflow: "error" (AccumulatorOverflow on an int32 overflow) or "wrap".
    A graph with BatchNorm nodes is folded first (`fold_batchnorm`); the pre-BN float tensors
    are then absent from the result.
    """
    if any(isinstance(n, BatchNorm) for n in graph.nodes):
        graph = fold_batchnorm(graph)
    x = np.asarray(x)
    src = graph.tensors[graph.input]
    if tuple(x.shape[1:]) != tuple(src.shape[1:]):
        raise AccelsimError(
            f"input has shape {x.shape}, model {graph.name!r} expects {src.shape} "
            "(batch may differ)"
        )
    ctx = _Ctx(graph, round_mode, mult_bits, fast, overflow)
    env: dict[str, np.ndarray] = {graph.input: x}
    first = graph.nodes[0] if graph.nodes else None
    if x.dtype.kind in "iu":
        if not isinstance(first, Quantize):
            raise AccelsimError("integer input given but the graph does not start with Quantize")
        dst = graph.tensors[first.output]
        lo, hi = dst.qrange
        if x.size and (int(x.min()) < lo or int(x.max()) > hi):
            raise AccelsimError(f"integer input outside [{lo}, {hi}] of tensor {dst.name!r}")
        env[first.output] = x.astype(dst.dtype)
    for op in graph.nodes:
        if op.output in env:
            continue
        xs = [env[i] for i in op.inputs]
        env[op.output] = op.run(xs) if is_host(op) else _RUN[type(op)](op, xs, ctx)
    return env
