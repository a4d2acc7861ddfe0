"""Which layers could use a cheaper rescale without changing any output on the given inputs.

Every requantizing layer (conv / linear, residual add, average pools, a requantizing concat,
a rounding Trunc) is recomputed from its reference inputs with each cheaper setting of the
rescale hardware: one-rounding `single` mode (one adder instead of the round-half-even logic),
gemmlowp's `tflite` mode, and a 16-bit multiplier instead of 32 bits. A setting is listed for a
layer when its outputs equal the configured setting's on every element of the run's input;
this is evidence for that input, not a proof for all inputs.
"""

from __future__ import annotations

import numpy as np

from accelsim.config import HwConfig
from accelsim.errors import AccelsimError
from accelsim.ir.graph import Graph
from accelsim.ir.host_ops import is_host
from accelsim.ir.ops import Quantize
from accelsim.ir.reference import run_node, run_reference

# Nodes whose integers depend on the round mode or the multiplier width
_REQUANTIZING = ("QuantConv2d", "QuantLinear", "Add", "AvgPool", "GlobalAvgPool", "Concat", "Trunc")


def _candidates(cfg: HwConfig) -> list[tuple[str, int]]:
    mode, bits = cfg.rescale.round_mode, cfg.rescale.mult_bits
    out = [(m, bits) for m in ("single", "tflite") if m != mode]
    if bits > 16:
        out += [(mode, 16)] + [(m, 16) for m in ("single", "tflite") if m != mode]
    return out


def label(mode: str, bits: int) -> str:
    """Short name of a rescale setting, e.g. `single/16b`."""
    return f"{mode}/{bits}b"


def cheaper_rescales(graph: Graph, cfg: HwConfig, x) -> dict[str, list[str]]:
    """Layer name -> the cheaper rescale settings (see module docstring) that reproduce its
    outputs exactly on input `x`; layers that keep none map to []."""
    kw = {"round_mode": cfg.rescale.round_mode, "mult_bits": cfg.rescale.mult_bits}
    ref = run_reference(graph, x, fast=True, overflow="wrap", **kw)
    out: dict[str, list[str]] = {}
    for node in graph.nodes:
        if is_host(node) or isinstance(node, Quantize) or type(node).__name__ not in _REQUANTIZING:
            continue
        if node.output not in ref:
            continue  # folded away (batch norm)
        ins = [ref[i] for i in node.inputs]
        keep = []
        for mode, bits in _candidates(cfg):
            try:
                y = run_node(
                    node, ins, graph, round_mode=mode, mult_bits=bits, fast=True, overflow="wrap"
                )
            except AccelsimError:  # e.g. a multiplier too large for 16 bits
                continue
            if np.array_equal(np.asarray(y), np.asarray(ref[node.output])):
                keep.append(label(mode, bits))
        out[node.name] = keep
    return out
