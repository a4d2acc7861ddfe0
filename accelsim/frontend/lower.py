"""Lowering: a quantized graph -> a `Program` (instructions + DRAM image) for one config.

`lower()` calls the passes in order, one line each. Layers communicate through DRAM: every
activation tensor has its own DRAM region (NHWC, one element per value), so each layer's output
can be read back and checked against the IR reference (`accelsim run --check`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import math

import numpy as np

from accelsim.config import HwConfig
from accelsim.errors import AccelsimError
from accelsim.frontend.emit import Emitter, check_operands, clip_bounds
from accelsim.frontend.gemm_layer import GemmPlace, emit_gemm_layer, pack_weights
from accelsim.frontend.matmul_layer import emit_matmul, matmul_gemm_layer
from accelsim.frontend.padding import PadPlan, emit_padded_copy, pad_plan
from accelsim.frontend.tile_cost import choose_tiling
from accelsim.frontend.tiling import GemmLayer, Tiling
from accelsim.frontend.tokens import insert_tokens
from accelsim.frontend.validate import validate_stream
from accelsim.frontend.vector_layer import emit_vector_node
from accelsim.ir.fold import fold_batchnorm
from accelsim.ir.graph import Graph
from accelsim.ir.ops import Flatten, QuantConv2d, Quantize, QuantLinear
from accelsim.ir.params import rescale_params
from accelsim.ir.transformer_ops import MatMul
from accelsim.program import Program, TensorPlace


class Prepared:
    """A dense graph checked and with its batch norms folded once (`prepare`), to be lowered
    on many configurations (a sweep's worker, `benchmarks/bench_points.py`). The caller
    promises not to change the graph afterwards: lowering a `Prepared` neither checks the
    graph again nor recomputes a layer's rescale integers at a multiplier width it has seen."""

    kind = "dense"

    def __init__(self, graph: Graph):
        self.graph = fold_batchnorm(graph)
        self.rescale: dict = {}  # (node name, multiplier bits) -> RescaleParams


def prepare(graph: Graph) -> Prepared:
    """`graph` checked and folded once, for lowering on many configurations (see `Prepared`)."""
    if graph.kind != "dense":
        raise AccelsimError(f"model {graph.name!r}: only a dense graph is prepared")
    return Prepared(graph)


def lower(
    graph: Graph | Prepared,
    cfg: HwConfig,
    *,
    batch: int | None = None,
    coords=None,
    timing_only: bool = False,
) -> Program:
    """Lower `graph` (or a `Prepared` one) for hardware `cfg`. `batch` overrides the graph's
    batch size. A sparse
    graph (`graph.kind == "sparse"`, see `accelsim.frontend.sparse_lower`) is lowered for the
    input voxels `coords`. timing_only: the same instructions, but no DRAM image (weights,
    parameters) is built; such a program runs with `simulate(..., count_only=True)` only."""
    with _collector_paused():
        if graph.kind == "sparse":
            from accelsim.frontend.sparse_lower import lower_sparse  # noqa: PLC0415 (start-up)

            return lower_sparse(graph, cfg, coords, timing_only)
        return _lower_dense(graph, cfg, batch, timing_only)


def lowering_key(cfg: HwConfig, kind: str = "dense") -> tuple:
    """The configuration fields lowering a graph of `kind` reads: configs with equal keys
    lower it to the same program, so a sweep lowers once per key and simulates every point
    of it. A dense graph's program does not depend on the dataflow, the array's rows, DRAM,
    clock, MAC model, rounding, energy table or unit timing. A sparse graph's does: its
    lowering spreads the voxel tiles over the SVGE engines by their estimated cycles, so its
    key is every field but the chip name and the energy table.
    tests/frontend/test_lowering_key.py changes every other field and compares the programs."""
    if kind == "sparse":
        return tuple(
            dataclasses.astuple(getattr(cfg, f.name))
            for f in dataclasses.fields(cfg)
            if f.name not in ("chip", "energy")
        )
    return (
        cfg.matmul.cols,  # tile widths (`tiling.candidates`)
        cfg.matmul.max_bits,  # operand width limit
        cfg.rescale.mult_bits,  # rescale integers in DRAM
        dataclasses.astuple(cfg.buffers),  # slots and tiles
    )


@contextlib.contextmanager
def _collector_paused():
    """Lowering builds some 10^5 small objects (instructions, fields, regions) that all live
    until the program is returned: the cyclic garbage collector, run by their allocation,
    would walk them and the graph again and again and free nothing."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _lower_dense(
    graph: Graph | Prepared, cfg: HwConfig, batch: int | None, timing_only: bool
) -> Program:
    prepared = graph if isinstance(graph, Prepared) else Prepared(graph)  # 1. check shapes,
    g = prepared.graph  #        bits and ranges; fold batch norm into the preceding conv / linear
    plans = plan_layers(g, cfg, batch)  # 2. rescale integers (zero points folded into bias),
    #                                      dataflow (loop order) and tiles per layer
    em, places = place_tensors(g, cfg, batch, timing_only)  # 3. lay out DRAM: weights, params,
    #                                                          activations
    emit_nodes(em, g, plans, places, cfg, batch, prepared.rescale)  # 4. instructions per tile
    table = em.finish()
    insert_tokens(table, em.log)  # 5. wait / signal bits from read-write analysis
    validate_stream(table, cfg)  # 6. every word fits the ISA table, tokens balance
    return Program(
        None,
        em.dram_image(),
        dram_size=em.dram_size,
        table=table,
        inputs={g.input: places[_first_quantized(g)]},
        outputs={name: p for name, p in places.items() if name != g.input},
        tags={i + 1: n.name for i, n in enumerate(g.nodes)},
        meta={
            "model": g.name,
            "config": cfg.chip.name,
            "plans": {k: repr(v) for k, v in plans.items()},
        },
    )


def _first_quantized(g: Graph) -> str:
    first = g.nodes[0]
    if not isinstance(first, Quantize):
        raise AccelsimError(
            f"model {g.name!r}: the first node must be the input Quantize, "
            f"got {type(first).__name__} {first.name!r}"
        )
    return first.output


def _batch(g: Graph, name: str, batch: int | None) -> tuple[int, ...]:
    shape = g.tensors[name].shape
    return (batch, *shape[1:]) if batch is not None else shape


def gemm_layer_of(op, g: Graph, batch: int | None) -> tuple[GemmLayer, int]:
    """The per-image `GemmLayer` of a conv (per group) or linear node, and the image count."""
    src, dst = (g.tensors[op.inputs[0]], g.tensors[op.output])
    common = dict(a_bits=src.bits, w_bits=op.w_bits, out_bits=dst.bits)
    if isinstance(op, QuantLinear):
        m = _batch(g, op.inputs[0], batch)[0]
        return GemmLayer(
            h=m, w=1, cin=op.weight.shape[0], oh=m, ow=1, cout=op.cout, conv=False, **common
        ), 1
    n, h, w, cin = _batch(g, op.inputs[0], batch)
    _, oh, ow, cout = dst.shape
    kh, kw, cin_g, _ = op.weight.shape
    (sy, sx), (dy, dx) = op.stride, op.dilation
    depthwise = op.groups > 1 and cin_g == 1 and op.cout == op.groups
    cout_g = cout if depthwise else cout // op.groups
    pad = conv_padding(op, g)
    return GemmLayer(
        h=h + pad.top + pad.bottom,
        w=w + pad.left + pad.right,
        cin=cin if depthwise else cin_g,
        oh=oh,
        ow=ow,
        cout=cout_g,
        kh=kh,
        kw=kw,
        stride=sx,
        dilation=dx,
        pad_top=op.padding[0] - pad.top,
        pad_left=op.padding[2] - pad.left,
        depthwise=depthwise,
        row_stride=sy if sy != sx else None,
        row_dilation=dy if dy != dx else None,
        **common,
    ), n


def conv_padding(op: QuantConv2d, g: Graph) -> PadPlan:
    """The padding of conv `op` laid out in DRAM (`accelsim.frontend.padding`)."""
    _, h, w, _ = g.tensors[op.inputs[0]].shape
    _, oh, ow, _ = g.tensors[op.output].shape
    kh, kw = op.weight.shape[:2]
    gather = op.dilation[0] != op.dilation[1]
    return pad_plan((h, w), (oh, ow), (kh, kw), op.stride, op.dilation, op.padding, gather)


def plan_layers(g: Graph, cfg: HwConfig, batch: int | None) -> dict[str, Tiling]:
    """Tiling (with loop order) per GEMM node, chosen for the fewest DRAM bytes; a MatMul's
    is that of one head's GEMM."""
    plans = {}
    for op in g.nodes:
        if isinstance(op, (QuantConv2d, QuantLinear)):
            L, images = gemm_layer_of(op, g, batch)
            check_operands(op.name, L.a_bits, L.w_bits, cfg)
            plans[op.name] = choose_tiling(L, cfg, images, op.name)
        elif isinstance(op, MatMul):
            if batch is not None:  # its heads and 3-D tensors are not a batch of rows
                raise AccelsimError(
                    f"node {op.name!r}: a MatMul runs on its declared rows only "
                    f"({g.tensors[g.input].shape[0]}), not on a batch of {batch}"
                )
            L = matmul_gemm_layer(op, g)
            check_operands(op.name, L.a_bits, L.w_bits, cfg)
            plans[op.name] = choose_tiling(L, cfg, 1, op.name)
    return plans


def place_tensors(g: Graph, cfg: HwConfig, batch: int | None, timing_only: bool = False):
    """Allocate every activation tensor (Flatten outputs alias their input) in a new emitter
    (which keeps no DRAM contents when `timing_only`)."""
    em = Emitter(cfg, image=not timing_only)
    places: dict[str, TensorPlace] = {}
    aliases = {op.output for op in g.nodes if isinstance(op, Flatten)}
    for name, t in g.tensors.items():
        if t.is_float or name in aliases:
            continue
        shape = _batch(g, name, batch)
        places[name] = TensorPlace(em.alloc(math.prod(shape)), shape, t.bits, t.mode)
    for op in g.nodes:
        if isinstance(op, Flatten):
            src = places[op.inputs[0]]
            places[op.output] = TensorPlace(
                src.dram_addr, _batch(g, op.output, batch), src.bits, src.mode
            )
    return em, places


def emit_nodes(
    em: Emitter, g: Graph, plans, places, cfg: HwConfig, batch: int | None, rescale=None
) -> None:
    """Emit every node of `g` in order; `rescale`: (node, multiplier bits) -> RescaleParams
    already computed for this graph (filled in as they are computed)."""
    rescale = {} if rescale is None else rescale
    for tag, op in enumerate(g.nodes, start=1):
        em.tag = tag
        if isinstance(op, (Quantize, Flatten)):
            continue  # host-side input quantization; Flatten is a DRAM alias
        if isinstance(op, (QuantConv2d, QuantLinear)):
            key = (op.name, cfg.rescale.mult_bits)
            if key not in rescale:
                rescale[key] = rescale_params(op, g, cfg.rescale.mult_bits)
            _emit_gemm_node(em, op, g, plans[op.name], places, cfg, batch, rescale[key])
        elif isinstance(op, MatMul):
            emit_matmul(em, op, g, plans[op.name], places, cfg)
        else:
            emit_vector_node(em, op, g, places, cfg)


def _emit_gemm_node(
    em: Emitter, op, g: Graph, t: Tiling, places, cfg: HwConfig, batch: int | None, rp
) -> None:
    src, dst = g.tensors[op.inputs[0]], g.tensors[op.output]
    L, images = gemm_layer_of(op, g, batch)
    p_addr = em.alloc_rescale_params(rp, op.name)
    pin, pout = places[op.inputs[0]], places[op.output]
    if isinstance(op, QuantConv2d) and (pad := conv_padding(op, g)).any:
        n, h, w, c = pin.shape
        addr = emit_padded_copy(em, pin.dram_addr, pin.shape, pad, pin.bits, pin.mode,
                                rp.pad_value, op.name)  # fmt: skip
        shape = (n, h + pad.top + pad.bottom, w + pad.left + pad.right, c)
        pin = TensorPlace(addr, shape, pin.bits, pin.mode)
    in_img = int(np.prod(pin.shape[1:]))
    out_img = int(np.prod(pout.shape[1:]))
    groups = 1 if (L.depthwise or isinstance(op, QuantLinear)) else op.groups
    blocks = [
        pack_weights(em, L, t, op.weight[..., g * L.cout : (g + 1) * L.cout]) for g in range(groups)
    ]
    for img in range(images):
        for grp in range(groups):
            P = GemmPlace(
                in_addr=pin.dram_addr + img * in_img,
                in_c=pin.shape[-1],
                out_addr=pout.dram_addr + img * out_img,
                out_c=pout.shape[-1],
                p_addr=p_addr,
                w_blocks=blocks[grp],
                in_c_off=0 if L.depthwise else grp * L.cin,
                out_c_off=grp * L.cout,
                a_mode=src.mode,
                w_mode=op.w_mode,
                out_mode=dst.mode,
                pad_value=rp.pad_value,
                zp=rp.zp,
                relu=rp.relu,
                clip=clip_bounds(rp, dst.qrange),
                frac=rp.frac,
                key=(op.name, grp),
            )
            emit_gemm_layer(em, L, t, P, image=img)
