"""Where each op of an ONNX model runs (`accelsim inspect model.onnx`): on the machine, on the
host (NumPy pre- or post-processing), folded away at import (quantizers, batch norm, constant
shape arithmetic), or not at all (unsupported, or rejected by the lowering for a config)."""

from __future__ import annotations

from dataclasses import dataclass

from accelsim.errors import AccelsimError, ModelFormatError
from accelsim.frontend.onnx.convert import convert, handler
from accelsim.frontend.onnx.reader import read_onnx
from accelsim.ir.host_ops import is_host, split_host

MACHINE, HOST, FOLDED, NONE, NOT_REACHED = "machine", "host", "folded", "not at all", "-"


@dataclass
class OpPlacement:
    """One ONNX node: its name, op type, where it runs and what it became (or why not)."""

    name: str
    op: str
    runs_on: str
    detail: str


_FOLDED = {  # what an op with no node of its own became
    "QuantizeLinear": "the requantization of its producer",
    "DequantizeLinear": "quantization parameters of its consumers",
    "Quant": "integer weights, or the requantization of its producer",
    "BipolarQuant": "bipolar integer weights",
    "BatchNormalization": "weight steps and bias of the conv / linear before it",
    "Relu": "the clamp of the requantization",
    "Clip": "the clamp of the requantization",
    "Mul": "weight steps of the conv / linear before it",
    "Add": "the bias of the conv / linear before it",
    "Cast": "nothing (an integer sum read as float)",
    "Transpose": "a relabelling of the layout",
    "Identity": "nothing",
}


def _owned(onnx_name: str, ir_nodes: list) -> list:
    """IR nodes the import made for ONNX node `onnx_name` (named after it)."""
    return [
        n
        for n in ir_nodes
        if n.name == onnx_name or n.name.startswith((f"{onnx_name}/", f"{onnx_name}#"))
    ]


def inspect_onnx(src, cfg=None, *, input_shape=None) -> tuple[list[OpPlacement], str | None]:
    """(one OpPlacement per ONNX node in graph order, the first error or None).

    cfg: a HwConfig to try the lowering with (ops it rejects are "not at all")."""
    model = read_onnx(src, input_shape=input_shape)
    graph, error, lower_error = None, None, None
    try:
        graph = convert(model)
    except ModelFormatError as e:
        error = str(e)
    if graph is not None and cfg is not None:
        from accelsim.frontend.lower import lower  # noqa: PLC0415

        try:
            lower(split_host(graph).core if any(is_host(n) for n in graph.nodes) else graph, cfg)
        except AccelsimError as e:
            lower_error = error = str(e)
    rows = []
    for node in model.nodes:
        if graph is None:
            named = f"node {node.name!r}" in error
            unknown = handler(node) is None and node.op != "Constant"
            runs = NONE if named or unknown else NOT_REACHED
            detail = error if named else ("unsupported op" if unknown else "import stopped")
            rows.append(OpPlacement(node.name, node.op, runs, detail))
            continue
        mine = _owned(node.name, graph.nodes)
        machine = [n for n in mine if not is_host(n) and type(n).__name__ != "Quantize"]
        host = [n for n in mine if is_host(n) or type(n).__name__ == "Quantize"]
        if machine:
            bad = lower_error and any(f"{n.name!r}" in lower_error for n in machine)
            kinds = ", ".join(dict.fromkeys(type(n).__name__ for n in machine))
            rows.append(
                OpPlacement(
                    node.name, node.op, NONE if bad else MACHINE, lower_error if bad else kinds
                )
            )
        elif host:
            what = [n.describe() if is_host(n) else "quantize the input" for n in host]
            rows.append(OpPlacement(node.name, node.op, HOST, ", ".join(what)))
        else:
            rows.append(OpPlacement(node.name, node.op, FOLDED, _FOLDED.get(node.op, "constant")))
    return rows, error


def format_placements(rows: list[OpPlacement]) -> str:
    """The table `accelsim inspect` prints, with a count per placement."""
    w = max([len(r.name) for r in rows] + [4]) + 2
    lines = [f"{'node':<{w}}{'op':<20}{'runs on':<12}detail"]
    for r in rows:
        lines.append(f"{r.name:<{w}}{r.op:<20}{r.runs_on:<12}{r.detail}")
    counts = {k: sum(r.runs_on == k for r in rows) for k in (MACHINE, HOST, FOLDED, NONE)}
    lines.append(", ".join(f"{v} {k}" for k, v in counts.items()))
    return "\n".join(lines)
