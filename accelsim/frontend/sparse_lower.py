"""Lowering of sparse networks (`SparseGraph`) to SVG_MAP / SVG_CONV instructions.

A sparse program is compiled for one input scene (as an inference engine is built for one
shape): the kernel maps decide how much work each instruction carries, and putting those counts
in the instructions (n_pairs, P_k per offset) makes the timing a function of the stream alone,
so count_only runs give identical cycles. The engine still rebuilds each map on chip (SVG_MAP,
costed and checked against the instruction) from coordinates in COORD.

Layout. Every sparse tensor lives in DRAM as [n, c] rows in *hardware order*: the rows of its
coordinate set grouped by voxel group `(a*x+b*y+c*z) mod G` (G, a, b, c from `svge.groups` and
`svge.group_coeffs`), canonical (b, x, y, z) order inside a group, so one group's voxels are one
contiguous block. Coordinates of every set are in DRAM too (16 bits per value); those of the
strided convs' new sets are computed here (downsampling) -- a simplification: on chip they
would come out of the map builder.

Per conv layer, the output rows of each group are cut into tiles of at most T voxels (one work
item = one group tile). Per item, in program order:

    LOAD COORD (input window)  LOAD COORD (output tile)  SVG_MAP
    LOAD INP (input window feature rows; one LOAD per contiguous segment)
    per output-channel tile:  [LOAD WGT]  SVG_CONV per offset with pairs
                              [LOAD PARAM]  RESCALE  STORE   (`Emitter.rescale_store`)

The input window is a few row ranges (cut at voxel-group blocks and at gaps wider than
GAP_BYTES) holding every input voxel the tile's pairs read,
its halo included; segments are padded to whole buffer rows. Items go to the least-loaded
engine (list scheduling on `units.svge` costs); each engine
has its own INP, COORD, MAP and ACC slots, so engines never touch each other's data. Weights
are stored per output-channel tile with each used offset's [c_in, n_t] block padded to whole
rows (offsets with no pairs anywhere in the layer are not stored), and stay resident when they
fit. ReLU / Add / Concat use the dense vector-layer emitter on the [n, c] rows; the BEV collapse
(`SparseToBEV`) is DMA transfers into a dense map (`accelsim.frontend.bev_lower`).
"""

from __future__ import annotations

import numpy as np

from accelsim import sparse as sp
from accelsim.errors import HardwareLimitError, SparseInputError
from accelsim.frontend.bev_lower import bev_shape, emit_to_bev
from accelsim.frontend.emit import (
    Emitter,
)
from accelsim.frontend.sparse_conv_lower import SparseConvEmitter
from accelsim.frontend.tokens import insert_tokens
from accelsim.frontend.validate import validate_stream
from accelsim.frontend.vector_layer import emit_vector_node
from accelsim.ir.sparse_ops import (
    HOST_OPS,
    SparseConv,
    SparseGraph,
    SparseToBEV,
    _dense_twin,
    coord_sets,
)
from accelsim.isa import Op, field_max
from accelsim.program import Program, TensorPlace
from accelsim.units.svge import COORD_BITS

COORD_MAX = 2**COORD_BITS - 1


def hardware_order(coords, groups: int, group_coeffs) -> np.ndarray:
    """Row permutation (hardware row -> canonical row): group-major, canonical within."""
    return np.argsort(sp.group_of(coords, groups, group_coeffs), kind="stable")


def lower_sparse(graph: SparseGraph, cfg, coords, timing_only: bool = False) -> Program:
    """Lower `graph` for hardware `cfg` and the input voxels `coords` (int32 [n, 4]);
    timing_only: no DRAM image (see `accelsim.frontend.lower.lower`)."""
    graph.validate()  # 1. ops, channels and coordinate sets are consistent
    G, coeffs = sp.check_groups(cfg.svge.groups, cfg.svge.group_coeffs)
    for field, value, what in (
        ("group", G - 1, "svge.groups"),
        ("engine", cfg.svge.engines - 1, "svge.engines"),
    ):
        if value > field_max(Op.SVG_MAP, field):
            raise HardwareLimitError(
                f"{what} = {value + 1} exceeds the SVG_MAP / SVG_CONV {field} field (at most "
                f"{field_max(Op.SVG_MAP, field) + 1})",
                f"{what} beyond the instruction field",
            )
    c = sp.check_coords(coords, "input coords")
    sp.tensor.check_unique(c, "input coords")
    c = c[np.lexsort((c[:, 3], c[:, 2], c[:, 1], c[:, 0]))]
    sets = coord_sets(graph, c)  # 2. every coordinate set (strided convs downsample)
    if max(int(s.max()) for s in sets.values()) > COORD_MAX:
        raise SparseInputError(f"coords: values above {COORD_MAX} do not fit 16-bit COORD")
    hw = {k: v[hardware_order(v, G, coeffs)] for k, v in sets.items()}  # 3. group-major rows
    em = Emitter(cfg, image=not timing_only)
    coord_addr = {k: em.alloc(v.size, v) for k, v in hw.items()}  # 4. DRAM layout
    places = {}
    for name, t in graph.tensors.items():
        if not t.is_float:
            producer = graph.producer(name)
            if isinstance(producer, SparseToBEV):  # a dense NHWC map
                shape = bev_shape(producer, graph.tensors[producer.inputs[0]].channels)
            else:
                shape = (hw[t.coord_set].shape[0], t.channels)
            size = int(np.prod(shape, dtype=np.int64))
            places[name] = TensorPlace(em.alloc(size), shape, t.bits, t.mode)
    dense = graph.dense_view({k: v.shape[0] for k, v in sets.items()})
    first = graph.nodes[0].output
    for tag, op in enumerate(graph.nodes, start=1):  # 5. instructions per layer
        em.tag = tag
        if isinstance(op, HOST_OPS):
            continue
        if isinstance(op, SparseConv):
            SparseConvEmitter(em, op, graph, dense, hw, coord_addr, places, cfg).emit()
        elif isinstance(op, SparseToBEV):
            emit_to_bev(em, op, graph, hw, places)
        else:
            emit_vector_node(em, _dense_twin(op, graph), dense, places, cfg)
    table = em.finish()
    insert_tokens(table, em.log)  # 6. wait / signal bits from read-write analysis
    validate_stream(table, cfg)  # 7. every word fits the ISA table, tokens balance
    return Program(
        None,
        em.dram_image(),
        dram_size=em.dram_size,
        table=table,
        inputs={graph.input: places[first]},
        outputs=places,
        tags={i + 1: n.name for i, n in enumerate(graph.nodes)},
        meta={
            "model": graph.name,
            "config": cfg.chip.name,
            "sparse": {
                "groups": G,
                "group_coeffs": list(coeffs),
                "voxels": int(c.shape[0]),
                "coord_sets": {k: t.coord_set for k, t in graph.tensors.items()},
            },
        },
    )
