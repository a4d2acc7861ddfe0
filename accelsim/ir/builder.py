"""Build quantized graphs layer by layer with random weights and calibrated step sizes.

`GraphBuilder` appends one node per call. Weights are drawn as a float Gaussian per output
channel and quantized with the LSQ initial step size s = 2*mean|w| / sqrt(Qp) (per channel).
Each activation's step size is calibrated on a float calibration input run through the integer
reference as the graph grows: symmetric tensors use the same LSQ rule on the real values;
unsigned tensors without ReLU use an asymmetric min/max range with a zero point. So outputs use
their integer range sensibly instead of saturating or collapsing to zero.

`with_input_shape(graph, shape)` re-declares a finished graph for another input size (shapes
propagated node by node), so a big network is calibrated cheaply at a small size;
`GraphBuilder.resize_input` does the same halfway through a build (for a classifier whose size
depends on the image).

Per-layer widths: inside `with layer_bits({node name: {"w_bits": W, "bits": A}})` every
builder gives the named nodes those widths instead of the ones the model's code passes (`bits`
is the width of the node's output tensor). Workload builders take one A/W pair for the whole
network; this is how a sweep's per-layer bit rules reach any of them without changing their
signatures. Random draws do not depend on widths, so the real-valued weights stay the same.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np

from accelsim.ir.graph import Graph, TensorInfo
from accelsim.ir.ops import (
    Add,
    AvgPool,
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
    infer_shape,
)
from accelsim.ir.reference import conv_acc, run_node
from accelsim.kernels.gemm import gemm
from accelsim.numeric import storage_dtype, value_range

# Calibration runs the integer reference with the kernels chosen per call (`run_reference`):
# the BLAS GEMM, and the compiled twins of the other ops only where loading Numba pays, so a
# model build (a timing-only run's start-up) usually needs no Numba.
CALIBRATION_KERNELS = "auto"

_LAYER_BITS: ContextVar[Mapping[str, Mapping[str, int]] | None] = ContextVar(
    "layer_bits", default=None
)


@contextmanager
def layer_bits(overrides: Mapping[str, Mapping[str, int]]) -> Iterator[None]:
    """Within the block, `GraphBuilder`s give node `name` the widths `overrides[name]`: keys
    `w_bits` (weights of a conv / linear) and `bits` (its output tensor: conv, linear, add,
    concat, quantize, average pools)."""
    token = _LAYER_BITS.set(dict(overrides))
    try:
        yield
    finally:
        _LAYER_BITS.reset(token)


def _mode(bits: int, signed: bool) -> str:
    return "bipolar" if bits == 1 and signed else ("signed" if signed else "unsigned")


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (int(v), int(v)) if np.ndim(v) == 0 else (int(v[0]), int(v[1]))


def _pads(v: int | tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    return (int(v),) * 4 if np.ndim(v) == 0 else tuple(int(p) for p in v)


def lsq_step(values: np.ndarray, bits: int, mode: str) -> float:
    """LSQ initial step size 2*mean|v| / sqrt(Qp) of real values (Qp: largest integer)."""
    qp = max(value_range(bits, mode)[1], 1)
    m = float(np.mean(np.abs(values))) if values.size else 0.0
    return 2.0 * m / np.sqrt(qp) if m > 0 else 1.0


def calib_step(values: np.ndarray, bits: int, mode: str) -> float:
    """Activation step size: the smaller of the LSQ initial step and the 99.9th percentile of
    |v| over Qp. At 2 bits the LSQ rule wins (coarse but balanced); at 4-8 bits the
    percentile rule does (fine steps, 0.1% clipped)."""
    qp = max(value_range(bits, mode)[1], 1)
    step = lsq_step(values, bits, mode)
    if values.size:
        p = float(np.percentile(np.abs(values), 99.9)) / qp
        step = min(step, p) if p > 0 else step
    return step


def _redeclared(graph: Graph, shape: tuple[int, ...]) -> Graph:
    shapes = {graph.input: tuple(shape)}
    for n in graph.nodes:
        shapes[n.output] = infer_shape(n, [shapes[i] for i in n.inputs])
    tensors = {
        k: dataclasses.replace(t, shape=shapes.get(k, t.shape)) for k, t in graph.tensors.items()
    }
    return Graph(graph.name, tensors, list(graph.nodes), graph.input, list(graph.outputs))


def with_input_shape(graph: Graph, shape: tuple[int, ...]) -> Graph:
    """Copy of `graph` declared for input `shape`: every tensor shape is re-inferred.

    Weights and step sizes are kept; average pools' multipliers follow the new window sizes.
    The result is validated (a Linear after a Flatten whose size changed is rejected).
    """
    out = _redeclared(graph, shape)
    out.validate()
    return out


class GraphBuilder:
    """Grows a Graph node by node; every method returns the name of the new output tensor.

    name: graph name. input_shape: NHWC (or [N, features]) shape of the float input.
    rng: numpy Generator for weights and the calibration input. calib_x: calibration input
    (default: standard normal, input_shape with the batch raised to calib_batch; only the
    batch may differ from input_shape). `values` holds every tensor's calibration value.
    weight_dtype: float type the random weights are drawn and scaled in. float64 (the
    default) reproduces the models recorded in the tests; float32 halves the memory traffic of
    big layers (VGG-16's fc6 has 103M weights) and computes the per-channel steps in one pass.
    """

    def __init__(
        self,
        name: str,
        input_shape: tuple[int, ...],
        rng: np.random.Generator,
        *,
        calib_x: np.ndarray | None = None,
        calib_batch: int = 8,
        mult_bits: int = 32,
        weight_dtype: type = np.float64,
    ):
        self.rng, self.mult_bits, self.weight_dtype = rng, mult_bits, np.dtype(weight_dtype)
        t = TensorInfo("input", tuple(input_shape), bits=32, mode="float")
        self.graph = Graph(name, {"input": t}, [], "input", [])
        if calib_x is None:
            batch = max(calib_batch, input_shape[0])
            calib_x = rng.standard_normal((batch, *tuple(input_shape)[1:]))
        self.values: dict[str, np.ndarray] = {"input": np.asarray(calib_x, np.float64)}
        self._count: dict[str, int] = {}
        self.layer_bits = _LAYER_BITS.get() or {}  # per-node width overrides (`layer_bits`)

    def _widths(self, name: str, bits, w_bits: int | None = None):
        """(bits, w_bits) of node `name`: the model's, unless `layer_bits` overrides them."""
        over = self.layer_bits.get(name, {})
        return over.get("bits", bits), over.get("w_bits", w_bits)

    def _name(self, kind: str, name: str | None) -> str:
        if name is None:
            self._count[kind] = self._count.get(kind, 0) + 1
            name = f"{kind}{self._count[kind]}"
        if name in self.graph.tensors:
            raise ValueError(f"tensor {name!r} already exists")
        return name

    def _quant(self, real: np.ndarray, bits: int, mode: str, relu: bool) -> tuple[float, int]:
        """(scale, zero point) of a new tensor from its real calibration values."""
        lo, hi = value_range(bits, mode)
        if mode == "unsigned" and not relu:
            rmin = min(float(np.percentile(real, 0.1)), 0.0)
            rmax = max(float(np.percentile(real, 99.9)), 0.0)
            scale = (rmax - rmin) / (hi - lo) if rmax > rmin else 1.0
            return scale, int(np.clip(np.rint(-rmin / scale), lo, hi))
        vals = real[real > 0] if mode == "unsigned" else real
        return calib_step(vals, bits, mode), 0

    def _add_node(self, op, bits: int, mode: str, scale, zp: int) -> str:
        shape = infer_shape(op, [self.graph.tensors[i].shape for i in op.inputs])
        self.graph.tensors[op.output] = TensorInfo(op.output, shape, bits, mode, scale, zp)
        self.graph.nodes.append(op)
        ins = [self.values[i] for i in op.inputs]
        self.values[op.output] = run_node(
            op, ins, self.graph, mult_bits=self.mult_bits, fast=CALIBRATION_KERNELS
        )
        return op.output

    def _same_as(self, op, x: str) -> str:
        """Add a node whose output keeps the quantization of tensor `x`."""
        t = self.graph.tensors[x]
        return self._add_node(op, t.bits, t.mode, t.scale, t.zero_point)

    def _weights(
        self, shape: tuple[int, ...], bits: int, mode: str | None = None
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """Integer weights of `shape` (last axis = Cout), per-channel steps, weight mode
        (default signed, bipolar at 1 bit; "unsigned" weights quantize |w|)."""
        mode = mode or _mode(bits, True)
        lo, hi = value_range(bits, mode)
        fan_in = int(np.prod(shape[:-1]))  # He-style init keeps activations near unit scale
        dt = self.weight_dtype
        flat = self.rng.standard_normal(shape, dtype=dt).reshape(-1, shape[-1])
        flat *= self.rng.uniform(0.5, 1.5, shape[-1]).astype(dt)  # in place: same rounding
        flat *= dt.type(np.sqrt(2.0 / fan_in))
        if mode == "unsigned":  # unsigned weights quantize the magnitudes
            np.abs(flat, out=flat)
        if mode == "bipolar":
            return (
                np.where(flat >= 0, 1, -1).reshape(shape).astype(np.int8),
                np.mean(np.abs(flat), axis=0).astype(np.float64),
                mode,
            )
        if dt == np.float64:  # lsq_step of each column, summed as the recorded models were:
            # a row of the transposed copy sums in the same (pairwise) order as the column alone
            qp = max(hi, 1)
            mean = np.mean(np.ascontiguousarray(np.abs(flat).T), axis=1)
            step = np.where(mean > 0, 2.0 * mean / np.sqrt(qp), 1.0)
        else:
            mean = np.add.reduce(np.abs(flat), axis=0, dtype=np.float64) / len(flat)
            qp = max(hi, 1)
            step = np.where(mean > 0, 2.0 * mean / np.sqrt(qp), 1.0)  # lsq_step per column
        flat /= step.astype(dt)
        np.rint(flat, out=flat)
        np.clip(flat, lo, hi, out=flat)
        return flat.reshape(shape).astype(storage_dtype(bits, mode)), step.astype(np.float64), mode

    def _acc_real(self, op, x: str) -> np.ndarray:
        """Real values s_in*s_w*(acc + bias - zp_in*sum w) on the calibration input."""
        src = self.graph.tensors[x]
        if isinstance(op, QuantConv2d):
            acc = conv_acc(op, self.values[x], self.graph, fast=CALIBRATION_KERNELS)
            acc = acc.astype(np.int64)
        else:  # exact (float32 BLAS on K-blocks), far faster than an int64 matmul
            acc = gemm(
                self.values[x],
                op.weight,
                a_bits=src.bits,
                w_bits=op.w_bits,
                a_mode=src.mode,
                w_mode=op.w_mode,
            ).astype(np.int64)
        wsum = op.weight.reshape(-1, op.cout).astype(np.int64).sum(axis=0)
        acc = acc + op.bias_or_zeros() - src.zero_point * wsum
        return acc * float(src.scale) * op.w_scale_per_channel()

    def _weighted(self, op, x: str, bits: int, signed: bool, relu: bool, relu6: bool) -> str:
        src = self.graph.tensors[x]
        # Bias as a folded batch norm would leave it: each channel's pre-activation centred on
        # a small random fraction of its spread, so no channel is dead after a ReLU.
        real = self._acc_real(op, x)
        axes = tuple(range(real.ndim - 1))
        unit = float(src.scale) * op.w_scale_per_channel()
        centre = self.rng.uniform(-0.3, 0.3, op.cout) * np.std(real, axis=axes)
        op.bias = np.rint((centre - np.mean(real, axis=axes)) / unit).astype(np.int32)
        real = self._acc_real(op, x)
        if relu or relu6:
            real = np.clip(real, 0.0, 6.0 if relu6 else None)
        mode = "signed" if signed else "unsigned"
        scale, zp = self._quant(real, bits, mode, relu or relu6)
        op.relu = bool(relu or relu6)
        if relu6:
            op.clip_hi = int(min(value_range(bits, mode)[1], zp + np.rint(6.0 / scale)))
        return self._add_node(op, bits, mode, scale, zp)

    def quantize(self, bits: int = 8, signed: bool = True, name: str | None = None) -> str:
        """Quantize the float input (signed: symmetric LSQ step; unsigned: min/max + zp)."""
        name = self._name("xq", name)
        bits, _ = self._widths(name, bits)
        mode = "signed" if signed else "unsigned"  # the input quantizer has no bipolar mode
        scale, zp = self._quant(self.values["input"], bits, mode, relu=False)
        return self._add_node(
            Quantize(name=name, inputs=("input",), output=name), bits, mode, scale, zp
        )

    def conv(
        self,
        x: str,
        cout: int,
        k: int | tuple[int, int],
        *,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int, int, int] | None = None,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        w_bits: int = 8,
        w_mode: str | None = None,
        bits: int = 8,
        signed: bool = False,
        relu: bool = True,
        relu6: bool = False,
        name: str | None = None,
    ) -> str:
        """QuantConv2d with cout output channels and a k x k (or kh x kw) kernel.

        stride, dilation: an int or (vertical, horizontal). padding None = "same"-style
        dilation * k//2 on every side. groups = Cin and cout = Cin gives a depthwise conv.
        w_mode: weight encoding (default signed, bipolar at 1 bit). bits/signed: output
        tensor; relu/relu6: fused activation.
        """
        name = self._name("conv", name)
        bits, w_bits = self._widths(name, bits, w_bits)
        kh, kw = _pair(k)
        (sy, sx), (dy, dx) = _pair(stride), _pair(dilation)
        if padding is None:
            padding = (dy * (kh // 2),) * 2 + (dx * (kw // 2),) * 2
        cin = self.graph.tensors[x].channels
        weight, step, wmode = self._weights((kh, kw, cin // groups, cout), w_bits, w_mode)
        op = QuantConv2d(
            name=name,
            inputs=(x,),
            output=name,
            weight=weight,
            w_bits=w_bits,
            w_mode=wmode,
            w_scale=step,
            stride=(sy, sx),
            padding=_pads(padding),
            dilation=(dy, dx),
            groups=groups,
        )
        return self._weighted(op, x, bits, signed, relu, relu6)

    def linear(
        self,
        x: str,
        cout: int,
        *,
        w_bits: int = 8,
        w_mode: str | None = None,
        bits: int = 8,
        signed: bool = True,
        relu: bool = False,
        name: str | None = None,
    ) -> str:
        """QuantLinear [M, K] -> [M, cout] (w_mode as in `conv`)."""
        name = self._name("fc", name)
        bits, w_bits = self._widths(name, bits, w_bits)
        weight, step, wmode = self._weights((self.graph.tensors[x].shape[1], cout), w_bits, w_mode)
        op = QuantLinear(
            name=name,
            inputs=(x,),
            output=name,
            weight=weight,
            w_bits=w_bits,
            w_mode=wmode,
            w_scale=step,
        )
        return self._weighted(op, x, bits, signed, relu, False)

    def add(
        self,
        a: str,
        b: str,
        *,
        bits: int = 8,
        signed: bool = False,
        relu: bool = True,
        name: str | None = None,
    ) -> str:
        """Residual Add with a calibrated output step size."""
        name = self._name("add", name)
        bits, _ = self._widths(name, bits)
        ta, tb = self.graph.tensors[a], self.graph.tensors[b]
        real = ta.scale * (self.values[a].astype(np.float64) - ta.zero_point) + tb.scale * (
            self.values[b].astype(np.float64) - tb.zero_point
        )
        if relu:
            real = np.maximum(real, 0.0)
        mode = "signed" if signed else "unsigned"
        scale, zp = self._quant(real, bits, mode, relu)
        return self._add_node(
            Add(name=name, inputs=(a, b), output=name, relu=relu), bits, mode, scale, zp
        )

    def maxpool(
        self,
        x: str,
        k: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int, int, int] = 0,
        name: str | None = None,
    ) -> str:
        """k x k (or kh x kw) max pool (stride defaults to the kernel)."""
        name = self._name("maxpool", name)
        op = MaxPool(
            name=name,
            inputs=(x,),
            output=name,
            kernel=_pair(k),
            stride=_pair(k if stride is None else stride),
            padding=_pads(padding),
        )
        return self._same_as(op, x)

    def avgpool(
        self,
        x: str,
        k: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int, int, int] = 0,
        *,
        bits: int | None = None,
        name: str | None = None,
    ) -> str:
        """k x k (or kh x kw) average pool; output requantized to a calibrated step (bits
        default: input's)."""
        name = self._name("avgpool", name)
        op = AvgPool(
            name=name,
            inputs=(x,),
            output=name,
            kernel=_pair(k),
            stride=_pair(k if stride is None else stride),
            padding=_pads(padding),
        )
        return self._pooled(op, x, bits)

    def global_avgpool(self, x: str, *, bits: int | None = None, name: str | None = None) -> str:
        """Global average pool to [N, 1, 1, C]."""
        name = self._name("gap", name)
        return self._pooled(GlobalAvgPool(name=name, inputs=(x,), output=name), x, bits)

    def _pooled(self, op, x: str, bits: int | None) -> str:
        t = self.graph.tensors[x]
        bits, _ = self._widths(op.name, t.bits if bits is None else bits)
        mode = "unsigned" if t.mode == "unsigned" else "signed"
        real = t.scale * (self.values[x].astype(np.float64) - t.zero_point)
        scale, zp = self._quant(real, bits, mode, relu=t.mode == "unsigned" and t.zero_point == 0)
        return self._add_node(op, bits, mode, scale, zp)

    def upsample(self, x: str, factors: int | tuple[int, int], name: str | None = None) -> str:
        """Nearest-neighbour upsampling by whole factors (an int or (fh, fw))."""
        name = self._name("upsample", name)
        op = Upsample(name=name, inputs=(x,), output=name, factors=_pair(factors))
        return self._same_as(op, x)

    def trunc(
        self,
        x: str,
        shift: int,
        rounding: str = "floor",
        *,
        bits: int | None = None,
        signed: bool | None = None,
        name: str | None = None,
    ) -> str:
        """Trunc: drop `shift` low bits (rounding floor, ceil or round). The output's step is
        the input's times 2**shift, zero point 0; bits and sign default to the input's."""
        name = self._name("trunc", name)
        t = self.graph.tensors[x]
        bits = t.bits if bits is None else bits
        signed = t.mode != "unsigned" if signed is None else signed
        op = Trunc(name=name, inputs=(x,), output=name, shift=shift, rounding=rounding)
        mode = "signed" if signed else "unsigned"
        return self._add_node(op, bits, mode, float(t.scale) * 2.0**shift, 0)

    def flatten(self, x: str, name: str | None = None) -> str:
        """NHWC -> [N, H*W*C]."""
        name = self._name("flatten", name)
        return self._same_as(Flatten(name=name, inputs=(x,), output=name), x)

    def clip(self, x: str, kind: str = "relu", name: str | None = None) -> str:
        """Standalone ReLU ("relu") or ReLU6 ("relu6") on a quantized tensor."""
        name = self._name(kind, name)
        t = self.graph.tensors[x]
        lo, hi = t.qrange
        if kind == "relu6":
            hi = int(min(hi, t.zero_point + np.rint(6.0 / float(t.scale))))
        op = Clip(name=name, inputs=(x,), output=name, lo=max(lo, t.zero_point), hi=hi, kind=kind)
        return self._same_as(op, x)

    def concat(
        self,
        xs: list[str],
        *,
        bits: int = 8,
        signed: bool = False,
        keep: bool = False,
        name: str | None = None,
    ) -> str:
        """Channel concat; inputs are requantized to a calibrated common step, or with
        keep=True the output takes the first input's quantization (inputs that share it are
        copied)."""
        name = self._name("concat", name)
        bits, _ = self._widths(name, bits)
        op = Concat(name=name, inputs=tuple(xs), output=name)
        if keep:
            return self._same_as(op, xs[0])
        ts = [self.graph.tensors[x] for x in xs]
        real = np.concatenate(
            [t.scale * (self.values[x].astype(np.float64) - t.zero_point) for t, x in zip(ts, xs)],
            axis=-1,
        )
        mode = "signed" if signed else "unsigned"
        scale, zp = self._quant(real, bits, mode, relu=False)
        return self._add_node(op, bits, mode, scale, zp)

    def resize_input(self, shape: tuple[int, ...]) -> None:
        """Re-declare the layers built so far for input `shape` (NHWC, same batch and channels)
        and tile every calibration value periodically over H and W to its new size.

        Layers added afterwards are then built and calibrated at their real size: a classifier
        whose Linear reads a flattened feature map sized for the full image (VGG's fc6) can
        follow convolutions calibrated cheaply at a small size. Tiling keeps each channel's
        value distribution, which is all that calibration uses."""
        self.graph = _redeclared(self.graph, shape)
        for name, v in self.values.items():
            new = self.graph.tensors[name].shape
            if v.shape[1:] == tuple(new[1:]):
                continue
            if v.ndim != 4 or v.shape[3] != new[3]:
                raise ValueError(f"tensor {name!r}: cannot tile {v.shape} to {new}")
            reps = (1, -(-new[1] // v.shape[1]), -(-new[2] // v.shape[2]), 1)
            self.values[name] = np.tile(v, reps)[:, : new[1], : new[2]]

    def finish(self, *outputs: str) -> Graph:
        """Mark `outputs` (default: the last tensor) as graph outputs, validate, return."""
        self.graph.outputs = list(outputs) or [self.graph.nodes[-1].output]
        self.graph.validate()
        return self.graph
