"""Run a quantized model on the simulated machine: lower, place the input, simulate, and
optionally compare every layer with the IR's integer reference (`accelsim run --check`).

Both graph kinds take the same path (`run_model`, one `compare`); what differs is the five
steps of `_Kind`, chosen once by `graph.kind`:

- dense (`Graph`): x is a float array in the graph input's layout (NHWC, or the declared
  layout of an imported model whose host ops convert it; its batch may differ from the
  model's). The host runs the host prologue (`accelsim.ir.host_ops`) and the input Quantize
  (already-integer input of the quantized input's range passes through); the machine runs
  the core; the host epilogue then computes the model's own outputs from the machine's.
  Outputs are NHWC machine tensors plus the epilogue's tensors.
- sparse (`SparseGraph`): x = (coords int32 [n, 4], features [n, c]); float features are
  quantized on the host by the graph's `SparseQuantize`, integer ones are taken as already
  quantized. The program is lowered for these coordinates (`accelsim.frontend.sparse_lower`);
  features go to DRAM in the hardware's group-major row order and every output is put back into
  canonical (b, x, y, z) order, so outputs and `--check` compare directly with
  `run_sparse_reference`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from accelsim.config import HwConfig
from accelsim.errors import AccelsimError, SparseInputError
from accelsim.frontend.lower import Prepared, lower, prepare
from accelsim.ir.graph import Graph
from accelsim.ir.host_ops import is_host, run_host, split_host
from accelsim.ir.reference import run_reference
from accelsim.program import Program

if TYPE_CHECKING:  # the sparse modules load on the first sparse run (start-up of dense runs)
    from accelsim.ir.sparse_ops import SparseGraph


@dataclass
class RunResult:
    """Outcome of `run_model`: the program, simulator statistics, every layer's output, and
    (with check=True) whether they all equal the reference."""

    graph: Graph | SparseGraph
    program: Program
    stats: object
    outputs: dict = field(default_factory=dict)
    check_ok: bool | None = None
    check_message: str = ""
    rescale_options: dict | None = None  # layer -> cheaper rescales (`accelsim.rescale_audit`)

    @property
    def name(self) -> str:
        """The model name reports show."""
        return self.graph.name


def run_model(
    graph: Graph | SparseGraph,
    cfg: HwConfig,
    x,
    *,
    count_only: bool = False,
    check: bool = False,
    trace: str | None = None,
    progress: bool = False,
    program: Program | None = None,
    engine: str = "event",
    check_races: bool = True,
) -> RunResult:
    """Lower `graph` for `cfg` (unless `program` is given), simulate it on input `x` (see the
    module docstring for each graph kind) with the timing `engine` ("event" or "fast", see
    `accelsim.sim.simulate`) and return statistics and outputs; with `check=True` also compare
    every layer with the integer reference (`compare`). count_only: timing only (no datapath,
    no outputs); the program is then lowered without its DRAM image and no input is placed.
    check_races: run the simulator's race detector (see `accelsim.sim.simulate`)."""
    from accelsim.sim import simulate  # noqa: PLC0415

    kind = _KINDS[graph.kind]
    if x is None and not count_only:
        raise AccelsimError(
            f"model {graph.name!r}: a functional run needs an input (x=None is for count_only)"
        )
    x = kind.prepare(graph, x)
    if program is None:
        program = kind.lower(graph, cfg, x, count_only)
    res = simulate(
        program,
        cfg,
        inputs=None if count_only else kind.place(graph, cfg, program, x),
        count_only=count_only,
        trace=trace,
        progress=progress,
        engine=engine,
        check_races=check_races,
    )
    outputs = kind.read(graph, program, res.outputs, x)
    result = RunResult(graph, program, res.stats, outputs)
    if check:
        if count_only:
            result.check_ok, result.check_message = None, "check skipped: --timing-only"
        else:
            reference = kind.reference(graph, cfg, x)
            result.check_ok, result.check_message = compare(graph, outputs, reference)
    return result


def lower_for_input(
    graph: Graph | SparseGraph, cfg: HwConfig, x, timing_only: bool = False
) -> Program:
    """The program `run_model` would lower for input `x` (`accelsim compile`): a dense graph
    at x's batch, a sparse graph for x's voxel coordinates; `timing_only`: without its DRAM
    image (for count-only simulation)."""
    kind = _KINDS[graph.kind]
    return kind.lower(graph, cfg, kind.prepare(graph, x), timing_only)


def compare(graph: Graph | SparseGraph, outputs: dict, reference: dict) -> tuple[bool, str]:
    """(ok, message): every layer's simulated output (`outputs`) against `reference` (tensor ->
    integers the machine must produce), in graph order. The message names the first layer that
    differs, its first differing element and both values, or a layer that was not simulated.
    A check that compared nothing fails."""
    checked = 0
    for node in graph.nodes:
        name = node.output
        if name not in reference:
            continue  # not produced on the machine (e.g. a float tensor folded away)
        if name not in outputs:
            return False, f"check FAILED: layer {node.name!r} output {name!r} was not simulated"
        got, want = outputs[name], np.asarray(reference[name])
        if got.size != want.size:
            return False, (
                f"check FAILED at layer {node.name!r} (tensor {name!r}): simulated shape "
                f"{got.shape}, reference shape {want.shape}"
            )
        want = want.reshape(got.shape)
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


class _Kind(NamedTuple):
    """The steps of a run that depend on the graph kind."""

    prepare: Callable  # (graph, x) -> x checked and in canonical form
    lower: Callable  # (graph, cfg, x, timing_only) -> Program for this input
    place: Callable  # (graph, cfg, program, x) -> {input tensor: integers the host writes}
    read: Callable  # (graph, program, simulated outputs, x) -> outputs in the graph's layout
    reference: Callable  # (graph, cfg, x) -> {tensor: integers the machine must produce}


def _dense_prepare(graph: Graph, x) -> np.ndarray:
    if x is None:  # timing needs the shape only: the declared input, zeros
        return np.zeros(graph.tensors[graph.input].shape)
    x = np.asarray(x)
    if x.ndim == 0:
        raise AccelsimError(f"model {graph.name!r}: the input must be an array, not a scalar")
    return x


def _core(graph: Graph) -> Graph:
    """The part of a dense graph that runs on the machine (the graph itself without host ops)."""
    return split_host(graph).core if any(is_host(n) for n in graph.nodes) else graph


def prepare_core(graph: Graph) -> Prepared:
    """The part of a dense graph that runs on the machine, checked and folded once for
    lowering on many configurations (`lower_for_input` takes it in place of the graph; see
    `accelsim.frontend.lower.Prepared`)."""
    return prepare(_core(graph))


def _dense_lower(
    graph: Graph | Prepared, cfg: HwConfig, x: np.ndarray, timing_only: bool
) -> Program:
    core = graph if isinstance(graph, Prepared) else _core(graph)
    g = core.graph if isinstance(core, Prepared) else core
    batch = x.shape[0]
    batch = None if batch == g.tensors[g.input].shape[0] else batch
    return lower(core, cfg, batch=batch, timing_only=timing_only)


def _dense_place(graph: Graph, cfg: HwConfig, program: Program, x: np.ndarray) -> dict:
    """The integers the host writes to DRAM: the host prologue and the input Quantize applied
    to `x`."""
    split = split_host(graph) if any(is_host(n) for n in graph.nodes) else None
    core = split.core if split else graph
    if split:
        x = run_host(split.pre, {graph.input: x})[core.input]
    first = core.nodes[0]
    only_first = Graph(
        core.name,
        {k: core.tensors[k] for k in (core.input, first.output)},
        [first],
        core.input,
        [first.output],
    )
    ref = run_reference(
        only_first, x, round_mode=cfg.rescale.round_mode, mult_bits=cfg.rescale.mult_bits
    )
    return {core.input: ref[first.output]}


def _dense_read(graph: Graph, program: Program, outputs: dict, x: np.ndarray) -> dict:
    """Machine tensors (NHWC) plus the host epilogue's tensors computed from them."""
    if not any(is_host(n) for n in graph.nodes):
        return outputs
    post = split_host(graph).post
    env = dict(outputs)
    run_host(post, env)
    return env


def _dense_reference(graph: Graph, cfg: HwConfig, x: np.ndarray) -> dict:
    ref = run_reference(
        graph,
        x,
        round_mode=cfg.rescale.round_mode,
        mult_bits=cfg.rescale.mult_bits,
        fast=True,
        overflow=cfg.matmul.overflow,
    )
    host = {graph.input} | {n.output for n in graph.nodes if is_host(n)}
    return {name: v for name, v in ref.items() if name not in host}  # what the machine makes


def _sparse_prepare(graph: SparseGraph, x) -> tuple[np.ndarray, np.ndarray]:
    """(coords, features) validated and sorted into canonical row order."""
    if not isinstance(x, (tuple, list)) or len(x) != 2:
        raise SparseInputError(
            f"model {graph.name!r} is sparse: its input is (coords, "
            f"features), got {type(x).__name__}"
        )
    from accelsim.ir.sparse_ops import prepare_input  # noqa: PLC0415

    coords, feats = prepare_input(*x)
    if feats.shape[1] != graph.tensors[graph.input].channels:
        raise SparseInputError(
            f"features have {feats.shape[1]} channels, model "
            f"{graph.name!r} expects {graph.tensors[graph.input].channels}"
        )
    return coords, feats


def _sparse_lower(graph: SparseGraph, cfg: HwConfig, x, timing_only: bool) -> Program:
    return lower(graph, cfg, coords=x[0], timing_only=timing_only)


def _row_order(program: Program, coords) -> np.ndarray:
    """Hardware row -> canonical row of a coordinate set in `program`'s voxel groups."""
    from accelsim.frontend.sparse_lower import hardware_order  # noqa: PLC0415

    meta = program.meta.get("sparse", {})
    groups, coeffs = meta.get("groups", 1), tuple(meta.get("group_coeffs", (1, 2, 3)))
    return hardware_order(coords, groups, coeffs)


def _sparse_place(graph: SparseGraph, cfg: HwConfig, program: Program, x) -> dict:
    """The graph's SparseQuantize applied to the features (integer features pass through), in
    the hardware's row order."""
    from accelsim.ir.sparse_ops import SparseQuantize  # noqa: PLC0415
    from accelsim.kernels import quant  # noqa: PLC0415

    coords, feats = x
    first = graph.nodes[0]
    dst = graph.tensors[first.output]
    if feats.dtype.kind in "iu" or not isinstance(first, SparseQuantize):
        q = feats.astype(dst.dtype)
    else:
        q = quant.quantize_float(
            np.asarray(feats, np.float64), dst.scale, dst.zero_point, dst.bits, dst.mode == "signed"
        )
    return {graph.input: q[_row_order(program, coords)]}


def _sparse_read(graph: SparseGraph, program: Program, outputs: dict, x) -> dict:
    """Every simulated sparse tensor back in canonical (b, x, y, z) row order (BEV maps are
    dense already)."""
    from accelsim.ir.sparse_ops import SparseToBEV, coord_sets  # noqa: PLC0415

    sets = coord_sets(graph, x[0])
    canonical = {}
    for name, arr in outputs.items():
        if isinstance(graph.producer(name), SparseToBEV):
            canonical[name] = arr
            continue
        out = np.empty_like(arr)
        out[_row_order(program, sets[graph.tensors[name].coord_set])] = arr
        canonical[name] = out
    return canonical


def _sparse_reference(graph: SparseGraph, cfg: HwConfig, x) -> dict:
    from accelsim.ir.sparse_ops import run_sparse_reference  # noqa: PLC0415

    ref, _ = run_sparse_reference(
        graph,
        *x,
        groups=cfg.svge.groups,
        group_coeffs=cfg.svge.group_coeffs,
        round_mode=cfg.rescale.round_mode,
        mult_bits=cfg.rescale.mult_bits,
        fast=True,
        overflow=cfg.matmul.overflow,
    )
    return {name: v for name, v in ref.items() if name != graph.input}  # the float features


_KINDS = {
    "dense": _Kind(_dense_prepare, _dense_lower, _dense_place, _dense_read, _dense_reference),
    "sparse": _Kind(_sparse_prepare, _sparse_lower, _sparse_place, _sparse_read, _sparse_reference),
}
