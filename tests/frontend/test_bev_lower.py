"""The BEV collapse on the machine: LOAD / STORE scatter into a cleared dense map, exact against
`to_bev_ref`, with DMA cycles worked out by hand."""

import numpy as np
import pytest

from accelsim.config import load_config
from accelsim.errors import ModelFormatError, SparseInputError
from accelsim.frontend.bev_lower import scatter_plan, zero_fill
from accelsim.ir.sparse_ops import SparseGraph, SparseQuantize, SparseTensor, SparseToBEV
from accelsim.isa import Op
from accelsim.runner import lower_for_input, run_model
from accelsim.sparse import to_bev_ref
from tests.helpers import random_operand


def bev_graph(channels: int, grid, bits: int = 8, mode: str = "unsigned") -> SparseGraph:
    """features -> SparseQuantize -> SparseToBEV over `grid` (batch, X, Y, Z)."""
    tensors = {
        "features": SparseTensor("features", channels, 32, "float", 1.0, 0, "s1"),
        "x0": SparseTensor("x0", channels, bits, mode, 0.5, 0, "s1"),
        "bev": SparseTensor("bev", channels * grid[3], bits, mode, 0.5, 0, "bev"),
    }
    nodes = [
        SparseQuantize(name="quant", inputs=("features",), output="x0"),
        SparseToBEV(name="to_bev", inputs=("x0",), output="bev", shape=tuple(grid)),
    ]
    g = SparseGraph("bev", tensors, nodes, "features", ["bev"])
    g.validate()
    return g


def _cells(grid, keep):
    """Voxels (b, x, y, z) of `grid` for which keep(b, x, y, z) is true, int32 [n, 4]."""
    idx = np.indices(grid).reshape(4, -1).T
    return idx[[bool(keep(*v)) for v in idx]].astype(np.int32)


SCENES = {
    "voxel_per_cell": ((1, 2, 3, 2), lambda b, x, y, z: True),
    "several_z": ((1, 2, 2, 4), lambda b, x, y, z: (x, y, z) in _SEVERAL_Z),
    "batches": ((3, 2, 2, 2), lambda b, x, y, z: (b + x + 2 * y + z) % 3 != 1),
    "empty_column": ((1, 3, 2, 3), lambda b, x, y, z: x != 1 and (x, y) != (2, 1)),
    "z_one": ((2, 3, 3, 1), lambda b, x, y, z: (b + x * y) % 2 == 0),
}
_SEVERAL_Z = {(0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 0, 3), (0, 1, 1), (0, 1, 3), (1, 0, 2)}
_SEVERAL_Z |= {(1, 1, 0), (1, 1, 1), (1, 1, 2)}


def _run(g, cfg, coords, feats, garbage=1, count_only=False):
    """Lower for `coords`, fill the map's DRAM with `garbage` (so empty cells are only zero if
    the program clears them), then run with check."""
    prog = lower_for_input(g, cfg, (coords, feats))
    place = prog.outputs["bev"]
    prog.dram[place.dram_addr : place.dram_addr + place.size] = garbage
    return run_model(
        g, cfg, (coords, feats), check=not count_only, program=prog, count_only=count_only
    )


@pytest.mark.parametrize("groups", [1, 4])
@pytest.mark.parametrize("channels,bits,mode", [(16, 8, "unsigned"), (3, 4, "signed")])
@pytest.mark.parametrize("scene", sorted(SCENES))
def test_bev_equals_reference(scene, channels, bits, mode, groups, rng):
    """Hand-built scenes (a voxel per cell, several z per column, three batches, empty
    columns, Z = 1), voxel rows aligned to buffer rows (16 x 8 bits) or not (3 x 4 bits), in
    canonical (G = 1) or group-major (G = 4) row order: the simulated map equals to_bev_ref."""
    grid, keep = SCENES[scene]
    coords = _cells(grid, keep)
    feats = random_operand(rng, (coords.shape[0], channels), bits, mode)
    cfg = load_config("edge", [f"svge.groups={groups}"])
    res = _run(bev_graph(channels, grid, bits, mode), cfg, coords, feats)
    assert res.check_ok, res.check_message
    np.testing.assert_array_equal(res.outputs["bev"], to_bev_ref(coords, feats, grid))
    n_empty = np.prod(grid) - coords.shape[0]
    assert (res.outputs["bev"] == 0).sum() >= n_empty * channels  # garbage was cleared


def test_worked_example_cycles_and_bytes(edge, rng):
    """The module docstring's example on edge (latency 100, 3 cycles per 64-byte burst, G = 4):
    16 channels at 8 bits on grid (1, 1, 2, 2), voxels (0,0,0,0), (0,0,1,0), (0,0,1,1).

        LOAD zeros (1 element read, pad 3: 49 zeros)  [0, 103)                 1 B
        STORE clear of column y = 0 (32 elements)      issued 103, 1 burst      32 B
        LOAD of the 3 voxel rows (48 elements)         issued 103, 1 burst      48 B
            (both reach the bus at 203, 3 cycles each: both done by 209)
        STORE run (0,0,0,0), (0,0,1,1): dest 0, 33; 2 x 16 one-element rows
                                                       209 + 100 + 32*3 = 405   32 B
        STORE run (0,0,1,0): 16 one-element rows       405 + 100 + 16*3 = 553   16 B

    553 cycles, 129 DRAM bytes (49 read, 80 written), 5 instructions; --timing-only equal."""
    coords = np.array([[0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]], np.int32)
    feats = random_operand(rng, (3, 16), 8, "unsigned")
    g = bev_graph(16, (1, 1, 2, 2))
    res = _run(g, edge, coords, feats)
    assert res.check_ok, res.check_message
    (row,) = res.stats.layer_rows()
    assert row["layer"] == "to_bev" and row["layer_cycles"] == 553
    assert (row["dram_read_bytes"], row["dram_write_bytes"]) == (49, 80)
    ops = [i.op for i in res.program.insns]
    assert ops == [Op.LOAD, Op.STORE, Op.LOAD, Op.STORE, Op.STORE, Op.FINISH]
    timing = _run(g, edge, coords, feats, count_only=True)
    assert timing.stats.layer_rows()[0]["layer_cycles"] == 553


def test_neighbouring_columns_coalesce_into_one_row(rng):
    """Z = 1, every cell of grid (1, 2, 3, 1) filled, G = 1 (canonical rows): destinations step
    by C = 16, so the six voxels are one contiguous 96-byte STORE and nothing is cleared.
    LOAD 96 B = 2 bursts: 100 + 2*3 = 106; STORE likewise 106: 212 cycles."""
    grid = (1, 2, 3, 1)
    coords = _cells(grid, lambda *v: True)
    feats = random_operand(rng, (6, 16), 8, "unsigned")
    res = _run(bev_graph(16, grid), load_config("edge", ["svge.groups=1"]), coords, feats)
    assert res.check_ok, res.check_message
    stores = [i for i in res.program.insns if i.op is Op.STORE]
    assert [(s.d0, s.d1, s.d2) for s in stores] == [(1, 1, 96)]
    assert res.stats.layer_rows()[0]["layer_cycles"] == 212


def test_scatter_plan_runs_and_chunks():
    """Destinations 0, 9, 8 (a step of 9, then a step back): two runs. With 96-bit voxels and
    128-bit rows the second run would start at bit 192, mid-row, so it opens a second chunk;
    with 64-bit voxels it starts at bit 128 and stays in the first. chunk_max cuts a run."""
    dest = np.array([0, 9, 8])
    assert scatter_plan(dest, 96, 128, 100) == [(0, 2, [(0, 2, 9)]), (2, 1, [(0, 1, 0)])]
    assert scatter_plan(dest, 64, 128, 100) == [(0, 3, [(0, 2, 9), (2, 1, 0)])]
    assert scatter_plan(np.arange(5) * 4, 128, 128, 2) == [
        (0, 2, [(0, 2, 4)]),
        (2, 2, [(0, 2, 4)]),
        (4, 1, [(0, 1, 0)]),
    ]


def test_zero_fill_sizes():
    """(W, pad, zeros): the fewest pads covering the wanted length, W grows past 31 x 31,
    never above the slot."""
    assert zero_fill(8, 1000) == (1, 1, 9)
    assert zero_fill(32, 1000) == (1, 3, 49)
    assert zero_fill(6400, 10912) == (7, 15, 6727)  # second's map on edge
    assert zero_fill(50, 30) == (1, 2, 25)
    assert zero_fill(5, 1) == (1, 0, 1)


def test_bad_bev_input_is_named(edge, rng):
    """A voxel outside the grid, and a map whose channels are not C x Z, get one clear error."""
    coords = np.array([[0, 0, 0, 0], [0, 2, 0, 0]], np.int32)
    feats = random_operand(rng, (2, 4), 8, "unsigned")
    with pytest.raises(SparseInputError, match="outside grid"):
        lower_for_input(bev_graph(4, (1, 2, 2, 2)), edge, (coords, feats))
    g = bev_graph(4, (1, 3, 3, 2))
    g.tensors["bev"].channels = 4
    with pytest.raises(ModelFormatError, match="to_bev.*output channels must be 4 x Z = 8"):
        g.validate()


@pytest.fixture(scope="module")
def second_runs():
    """`second` at 4 bits on a 12.8 m crop, functional with check and timing-only, on edge."""
    from accelsim.cli.commands import make_input  # noqa: PLC0415
    from workloads.sparse_nets import second  # noqa: PLC0415

    g, cfg = second(4, 4, seed=0, crop_m=12.8), load_config("edge")
    x = make_input(g, None, 0)
    return g, cfg, x, run_model(g, cfg, x, check=True), run_model(g, cfg, x, count_only=True)


def test_second_bev_runs_on_the_machine_and_is_checked(second_runs):
    """The check covers the BEV map, which equals to_bev_ref of the simulated conv_out rows;
    the to_bev row has its cycles, DRAM bytes and energy; --timing-only gives the same cycles.
    Bytes at 4 bits: every column holding fewer than Z voxels is cleared (C*Z/2 bytes), the
    rows are read once (n*C/2 bytes), and with Z > 1 each value is written as its own DMA row
    of one byte (n*C bytes). The map (3 x 3 columns of 128 x 2 elements) is shorter than one
    31 x 31 zero pad, so the zero LOAD reads W <= 3 elements: 1 or 2 bytes."""
    from accelsim.ir.sparse_ops import coord_sets, prepare_input  # noqa: PLC0415
    from accelsim.report import summarize  # noqa: PLC0415

    g, cfg, x, res, timing = second_runs
    assert res.check_ok and "bev" in res.outputs, res.check_message
    op = g.nodes[-1]
    assert isinstance(op, SparseToBEV) and op.shape == (1, 3, 3, 2)
    coords = coord_sets(g, prepare_input(*x)[0])["s16"]
    want = to_bev_ref(coords, res.outputs["conv_out"], op.shape)
    np.testing.assert_array_equal(res.outputs["bev"], want)
    n, c = coords.shape[0], g.tensors["conv_out"].channels
    partial = int((np.bincount(coords[:, 1] * 3 + coords[:, 2], minlength=9) < 2).sum())
    (row,) = [r for r in res.stats.layer_rows() if r["layer"] == "to_bev"]
    assert row["dram_write_bytes"] == partial * c * 2 // 2 + n * c
    assert row["dram_read_bytes"] - n * c // 2 in (1, 2)
    (rep,) = [r for r in summarize(res, cfg)["layers"] if r["name"] == "to_bev"]
    assert rep["cycles"] == row["layer_cycles"] > 0 and rep["energy_pj"] > 0
    assert rep["dram_bytes"] == row["dram_read_bytes"] + row["dram_write_bytes"]
    assert [r["layer_cycles"] for r in timing.stats.layer_rows()] == [
        r["layer_cycles"] for r in res.stats.layer_rows()
    ]
    assert timing.stats.latency_cycles == res.stats.latency_cycles
