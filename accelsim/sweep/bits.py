"""Per-layer widths of a sweep: turn bits rules into the node overrides a graph builder takes
(`accelsim.ir.builder.layer_bits`) and check a built graph carries them.

A rule gives its layers A/W: the layer's weights get W bits, and the activations it reads get
A bits at their producer: walking back from the layer's input through nodes that pass their
input's width on (max pools and flattens keep it; average pools requantize to it and are set
too) to the first node that chooses a width (a conv, linear, add, concat or the input
quantizer).
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from accelsim.errors import AccelsimError
from accelsim.ir import QuantConv2d, QuantLinear
from accelsim.ir.vector_ops import AvgPool, Clip, Flatten, GlobalAvgPool, MaxPool

_KEEPS_WIDTH = (MaxPool, Flatten, Clip)  # output has its input's quantization
_POOLS = (AvgPool, GlobalAvgPool)  # output width defaults to the input's (set it too)


def weighted_layers(graph) -> list:
    """The conv and linear nodes of `graph`, in graph order."""
    return [n for n in graph.nodes if isinstance(n, (QuantConv2d, QuantLinear))]


def select(graph, patterns) -> list:
    """Weighted layers that `patterns` select: `first`, `last` or fnmatch name patterns."""
    layers = weighted_layers(graph)
    out = []
    for pat in patterns:
        if pat == "first":
            hit = layers[:1]
        elif pat == "last":
            hit = layers[-1:]
        else:
            hit = [n for n in layers if fnmatchcase(n.name, pat)]
        out += [n for n in hit if n not in out]
    return out


def layer_overrides(graph, rules, workload: str) -> dict[str, dict[str, int]]:
    """{node name: {"w_bits": W} and/or {"bits": A}} for `rules` applied in order to the
    graph built at the point's bits; AccelsimError if a rule selects no layer."""
    over: dict[str, dict[str, int]] = {}
    for rule in rules:
        hit = select(graph, rule.layers)
        if not hit:
            names = ", ".join(n.name for n in weighted_layers(graph))
            raise AccelsimError(
                f"bits rule {rule.label()}: no layer of {workload!r} matches (its weighted "
                f"layers: {names})"
            )
        a, w = rule.bits
        for node in hit:
            over.setdefault(node.name, {})["w_bits"] = w
            producer = graph.producer(node.inputs[0])
            while isinstance(producer, _KEEPS_WIDTH + _POOLS):
                if isinstance(producer, _POOLS):
                    over.setdefault(producer.name, {})["bits"] = a
                producer = graph.producer(producer.inputs[0])
            if producer is not None:
                over.setdefault(producer.name, {})["bits"] = a
    return over


def check_overrides(graph, over: dict, workload: str) -> None:
    """AccelsimError unless every override of `over` shows in the built `graph` (a builder
    that ignores `layer_bits` would otherwise give uniform widths silently)."""
    for name, want in over.items():
        node = graph.node(name)
        got = {"bits": graph.tensors[node.output].bits, "w_bits": getattr(node, "w_bits", None)}
        for key, value in want.items():
            if got[key] != value:
                raise AccelsimError(
                    f"workload {workload!r}: layer {name!r} was built with {key} = {got[key]}, "
                    f"its bits rule asks for {value} (its builder does not take per-layer widths)"
                )
