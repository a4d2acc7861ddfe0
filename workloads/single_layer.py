"""Single-layer workloads: one GEMM (`gemm:M,N,K`) or one convolution, with random
quantized weights. SCALE-Sim topology files (`workloads.topology`) are lists of such layers.

A single-layer graph is input (float) -> Quantize at bits_a (unsigned) -> the layer at
bits_a x bits_w -> ReLU output at bits_a (unsigned), so its GEMM runs at exactly the bit widths
given. Step sizes are calibrated on a small slice (a few rows of a GEMM, a few output rows and
columns of a conv) and the graph is then re-declared at full size, so building a big layer costs
little more than drawing its weights.
"""

from __future__ import annotations

import re

import numpy as np

from accelsim.errors import AccelsimError
from accelsim.ir import Graph
from accelsim.ir.builder import GraphBuilder, with_input_shape

GEMM_PATTERN = "gemm:M,N,K"  # workload name of one GEMM, as in SCALE-Sim's `Layer, M, N, K`
CALIB_ROWS = 16  # GEMM rows (or conv output rows/cols) the step sizes are calibrated on
_INPUT_QUANT = "input_q"  # name of the host-side Quantize node


def _builder(name: str, shape: tuple[int, ...], seed) -> GraphBuilder:
    rng = np.random.default_rng(seed)
    return GraphBuilder(name, shape, rng, calib_batch=shape[0], weight_dtype=np.float32)


def _layer_name(name: str) -> str:
    return f"{name}_layer" if name in ("input", _INPUT_QUANT) else name


def single_gemm(
    m: int, n: int, k: int, bits_a: int = 8, bits_w: int = 8, seed=0, *, name: str = ""
) -> Graph:
    """One GEMM: an [m, k] input times a [k, n] weight (a QuantLinear of m rows, k inputs and
    n outputs) at bits_a x bits_w. seed: an int or a tuple of ints (numpy seed sequence).
    name: the layer's name (default `gemm_MxNxK`)."""
    name = name or f"gemm_{m}x{n}x{k}"
    b = _builder(name, (min(m, CALIB_ROWS), k), seed)
    x = b.quantize(bits_a, signed=False, name=_INPUT_QUANT)
    y = b.linear(x, n, w_bits=bits_w, bits=bits_a, signed=False, relu=True, name=_layer_name(name))
    return with_input_shape(b.finish(y), (m, k))


def single_conv(
    h: int,
    w: int,
    fh: int,
    fw: int,
    channels: int,
    filters: int,
    stride: int = 1,
    bits_a: int = 8,
    bits_w: int = 8,
    seed=0,
    *,
    depthwise: bool = False,
    name: str = "conv",
) -> Graph:
    """One convolution on an [1, h, w, channels] input whose size already includes any
    padding: `filters` outputs of a fh x fw kernel at `stride`, with SCALE-Sim's output size
    ceil((h - fh) / stride) + 1 rows (likewise columns; scalesim/topology_utils.py,
    `topo_calc_hyperparams`). When the stride does not divide h - fh, SCALE-Sim's last window
    overhangs the map by up to stride - 1 rows, which it does not fetch (their addresses are
    invalid in its operand matrix); here they are zero-point padding at the bottom (likewise
    columns at the right). If the overhang covers the whole window (a kernel smaller than the
    stride, such as a 1x1 stride-2 shortcut on an even map), the input is extended by the
    overhang instead, because the emitter makes no tile that reads only padding.

    depthwise: each input channel has its own `filters` kernels (groups = channels, output
    channels = channels * filters), as SCALE-Sim treats rows whose name contains "DP"."""
    pad_b, pad_r = (-(h - fh) % stride), (-(w - fw) % stride)  # the overhang of the last window
    if pad_b >= fh:
        h, pad_b = h + pad_b, 0
    if pad_r >= fw:
        w, pad_r = w + pad_r, 0
    hc, wc = min(h, fh + (CALIB_ROWS - 1) * stride), min(w, fw + (CALIB_ROWS - 1) * stride)
    b = _builder(name, (1, hc, wc, channels), seed)
    x = b.quantize(bits_a, signed=False, name=_INPUT_QUANT)
    y = b.conv(
        x,
        channels * filters if depthwise else filters,
        (fh, fw),
        stride=stride,
        padding=(0, pad_b, 0, pad_r),
        groups=channels if depthwise else 1,
        w_bits=bits_w,
        bits=bits_a,
        name=_layer_name(name),
    )
    return with_input_shape(b.finish(y), (1, h, w, channels))


def parse_gemm_name(text: str) -> tuple[int, int, int]:
    """(M, N, K) of a workload name `gemm:M,N,K`; AccelsimError if malformed."""
    match = re.fullmatch(r"gemm:(\d+),(\d+),(\d+)", text.replace(" ", ""))
    dims = tuple(int(v) for v in match.groups()) if match else ()
    if len(dims) != 3 or min(dims) < 1:
        raise AccelsimError(
            f"workload {text!r}: expected {GEMM_PATTERN} with three positive integers "
            f"(M rows, N outputs, K inputs), e.g. gemm:128,64,256"
        )
    return dims


def gemm_workload(text: str, bits=(8, 8), seed: int = 0) -> Graph:
    """The graph of workload name `gemm:M,N,K` at (activation, weight) bits."""
    m, n, k = parse_gemm_name(text)
    return single_gemm(m, n, k, bits[0], bits[1], seed, name=f"gemm_{m}x{n}x{k}")
