"""Run a quantized model on the simulated machine: lower, place the input, simulate, and
optionally compare every layer with the IR's integer reference (`accelsim run --check`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from accelsim.config import HwConfig
from accelsim.frontend.lower import lower
from accelsim.ir.graph import Graph
from accelsim.ir.reference import run_reference
from accelsim.program import Program


@dataclass
class RunResult:
    """Outcome of `run_model`: the program, simulator statistics, every layer's output, and
    (with check=True) whether they all equal the reference."""

    graph: Graph
    program: Program
    stats: object
    outputs: dict = field(default_factory=dict)
    check_ok: bool | None = None
    check_message: str = ""


def quantize_input(graph: Graph, x: np.ndarray, cfg: HwConfig) -> np.ndarray:
    """The integers the host writes to DRAM: the graph's input Quantize applied to `x`
    (already-integer input of the quantized input tensor's range is passed through)."""
    ref = run_reference(
        _only_first(graph), x, round_mode=cfg.rescale.round_mode, mult_bits=cfg.rescale.mult_bits
    )
    return ref[graph.nodes[0].output]


def _only_first(graph: Graph) -> Graph:
    keep = graph.nodes[0]
    return Graph(
        graph.name,
        {k: graph.tensors[k] for k in (graph.input, keep.output)},
        [keep],
        graph.input,
        [keep.output],
    )


def run_model(
    graph: Graph,
    cfg: HwConfig,
    x: np.ndarray,
    *,
    count_only: bool = False,
    check: bool = False,
    trace: str | None = None,
    progress: bool = False,
    program: Program | None = None,
) -> RunResult:
    """Lower `graph` for `cfg` (unless `program` is given), simulate it on input `x` (float
    NHWC, batch = the model's) and return statistics and outputs. A sparse graph takes
    x = (coords, features) (see `accelsim.sparse_runner`)."""
    from accelsim.sim import simulate  # noqa: PLC0415

    if getattr(graph, "is_sparse", False):
        from accelsim.sparse_runner import run_sparse_model  # noqa: PLC0415

        return run_sparse_model(
            graph,
            cfg,
            x,
            count_only=count_only,
            check=check,
            trace=trace,
            progress=progress,
            program=program,
        )

    x = np.asarray(x)
    batch = x.shape[0]
    if program is None:
        program = lower(
            graph, cfg, batch=None if batch == graph.tensors[graph.input].shape[0] else batch
        )
    q = quantize_input(graph, x, cfg)
    res = simulate(
        program, cfg, inputs={graph.input: q}, count_only=count_only, trace=trace, progress=progress
    )
    result = RunResult(graph, program, res.stats, res.outputs)
    if check:
        if count_only:
            result.check_ok, result.check_message = None, "check skipped: --timing-only"
        else:
            result.check_ok, result.check_message = compare(graph, program, res.outputs, x, cfg)
    return result


def compare(graph: Graph, program: Program, outputs: dict, x: np.ndarray, cfg: HwConfig):
    """(ok, message): the first layer (graph order) whose simulated output differs from the
    reference, with the first differing element and both values."""
    ref = run_reference(
        graph,
        x,
        round_mode=cfg.rescale.round_mode,
        mult_bits=cfg.rescale.mult_bits,
        fast=True,
        overflow=cfg.matmul.overflow,
    )
    checked = 0
    for node in graph.nodes:
        name = node.output
        if name not in ref:
            continue  # e.g. a float tensor folded away
        if name not in outputs:
            return False, f"check FAILED: layer {node.name!r} output {name!r} was not simulated"
        got, want = outputs[name], np.asarray(ref[name]).reshape(outputs[name].shape)
        bad = np.flatnonzero(got.reshape(-1).astype(np.int64) != want.reshape(-1))
        if bad.size:
            idx = np.unravel_index(bad[0], got.shape)
            return False, (
                f"check FAILED at layer {node.name!r} (tensor {name!r}), element "
                f"{tuple(int(i) for i in idx)}: simulated {int(got[idx])}, reference "
                f"{int(want[idx])} ({bad.size} of {got.size} elements differ)"
            )
        checked += 1
    if checked == 0:
        return False, "check FAILED: no layer output was compared"
    return True, f"check passed: {checked} layer outputs equal the IR integer reference exactly"
