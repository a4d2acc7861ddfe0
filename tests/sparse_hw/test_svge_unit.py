"""The svge unit: cost model by hand, the map datapath against accelsim.sparse, and the
E-engine schedule with in-order retirement on hand-built streams."""

import numpy as np
import pytest

from accelsim.config import load_config
from accelsim.energy import energy_report, load_energy_table
from accelsim.errors import IsaError
from accelsim.isa import Buf, Op, Unit
from accelsim.program import ProgramBuilder
from accelsim.sim import simulate
from accelsim.units.svge import conv_cycles, map_cycles, map_ops
from tests.helpers import make_mem, random_coords


def test_map_cycles_by_hand(edge):
    """hash (edge: 8 lanes, 2 cycles per probe round): n_in=10, n_out=6, K=3:
    ceil((10 + 6*27)/8) * 2 = ceil(172/8) * 2 = 22 * 2 = 44.
    sort (16 wide, 16 merge): n = 16: ceil(16*4/16) + 27*ceil(16/16) = 4 + 27 = 31.
    kernel 1: ceil((10 + 6)/8) * 2 = 4."""
    assert map_cycles(edge, 10, 6, 3) == 44
    assert map_cycles(edge, 10, 6, 1) == 4
    srt = edge.with_overrides(["svge.map_method=sort"])
    assert map_cycles(srt, 10, 6, 3) == 31


def test_map_ops_and_energy_by_hand(edge):
    """One SVG_MAP, n_in = 10, n_out = 6, kernel 3. hash: 10 inserts + 6*27 probes = 172
    ops, 172 * 23.5 pJ = 4042 pJ in component svge_map; sort: n = 16, ceil(16*log2 16) = 64
    sorter steps + 27*16 = 432 merge steps = 496 ops, 496 * 20.1 pJ = 9969.6 pJ (to the
    energy's 2**-10 pJ grid). COORD reads and MAP writes stay in sram_coord / sram_map."""
    assert map_ops(edge, 10, 6, 3) == ("svge_map_hash_ops", 172)
    srt = edge.with_overrides(["svge.map_method=sort"])
    assert map_ops(srt, 10, 6, 3) == ("svge_map_sort_ops", 496)
    table = load_energy_table("horowitz45")
    for cfg, name, want_pj in (
        (edge, "svge_map_hash_ops", 4042.0),
        (srt, "svge_map_sort_ops", 9969.6),
    ):
        b = ProgramBuilder()
        b.alloc(16)
        b.emit(Op.SVG_MAP, n_in=10, n_out=6, n_pairs=20, kernel=3, map_addr=0)
        stats = simulate(b.build(), cfg, count_only=True).stats
        assert stats.layer_rows()[0][name] == (172 if name.endswith("hash_ops") else 496)
        energy = energy_report(stats, table)
        assert energy.by_component["svge_map"] == pytest.approx(want_pj, abs=2**-10)
        assert energy.by_component["sram_coord"] > 0 and energy.by_component["sram_map"] > 0


def test_conv_cycles_by_hand(edge):
    """edge: 16x16 output-stationary Bit Fusion array, fill/drain 16+16-2 = 30.
    P=20, 8x8 ch, 8 bit (f=1): ceil(20/16)*ceil(8/16)*(8 + 30) = 2*1*38 = 76 > gather 20.
    4-bit (f=4): 2*1*(ceil(8/4) + 30) = 64. P=200, 1x1 ch, 2-bit, no fill/drain:
    matmul ceil(200/16)*1*ceil(1/16) = 13 < gather 200 / scatter 200 -> 200.
    P=0 (an empty offset that only resets ACC): 0."""
    assert conv_cycles(edge, 20, 8, 8, 8, 8) == 76
    assert conv_cycles(edge, 20, 8, 8, 4, 4) == 64
    nofd = edge.with_overrides(["matmul.fill_drain=false"])
    assert conv_cycles(nofd, 200, 1, 1, 2, 2) == 200
    assert conv_cycles(edge, 0, 8, 8) == 0


def _conv(b, engine, pairs, signal=0, acc=0):
    return b.emit(
        Op.SVG_CONV,
        signal=signal,
        n_in=4,
        n_out=4,
        n_pairs=pairs,
        pairs=pairs,
        cin=8,
        cout=8,
        a_bits=8,
        w_bits=8,
        reset=1,
        engine=engine,
        acc_addr=acc,
    )


def test_engines_run_in_parallel_and_retire_in_order(edge):
    """A: engine 0, P=40: ceil(40/16)*(8+30) = 3*38 = 114 cycles; B: engine 1, P=20: 76;
    C: engine 0, P=20: 76. A and B start at 0, C at 114 (engine 0 free) and ends 190.
    B ends at 76 but signals the rescale unit only when it retires, after A: at 114. The
    RESCALE (m=n=1: 4 + ceil(1/16) + ceil(1/4) = 6 cycles) runs 114..120. Latency 190
    (one engine would take 114 + 76 + 76 = 266)."""
    b = ProgramBuilder()
    b.alloc(16)
    _conv(b, 0, 40, acc=0)
    _conv(b, 1, 20, signal=1 << Unit.RESCALE, acc=100)
    _conv(b, 0, 20, acc=200)
    b.emit(Op.RESCALE, wait=1 << Unit.SVGE, acc_addr=100, m=1, n=1, bits=8, out_addr=0)
    res = simulate(b.build(), edge, count_only=True, strict_tokens=True)
    np.testing.assert_array_equal(res.start_cycles[:4], [0, 0, 114, 114])
    np.testing.assert_array_equal(res.end_cycles[:4], [114, 76, 190, 120])
    assert res.stats.latency_cycles == 190
    one = load_config("edge", ["svge.engines=1"])
    b2 = ProgramBuilder()
    b2.alloc(16)
    for p in (40, 20, 20):
        _conv(b2, 0, p)
    assert simulate(b2.build(), one, count_only=True).stats.latency_cycles == 266


def test_stats_counters_by_hand(edge):
    """The three convs above: gathers = scatters = 80 pair rows; MACs 80*8*8 = 5120; engine
    0 busy 190, engine 1 busy 76 -> engine imbalance 190 / ((190+76)/2) = 1.4286. (Map pairs,
    svge_pairs, are counted by SVG_MAP: none here.)"""
    b = ProgramBuilder()
    b.alloc(16)
    for e, p in ((0, 40), (1, 20), (0, 20)):
        _conv(b, e, p)
    stats = simulate(b.build(), edge, count_only=True).stats
    row = stats.layer_rows()[0]
    assert row["svge_gathers"] == row["svge_scatters"] == 80 and "svge_pairs" not in row
    assert row["macs"] == 5120 and stats.macs_by_width(row["tag"]) == {(8, 8): 5120}
    assert row["svge_engine_cycles_e0"] == 190 and row["svge_engine_cycles_e1"] == 76
    assert row["svge_engine_imbalance"] == pytest.approx(190 / 133)


def test_utilisation_counts_every_engine_array(edge):
    """Two SVG_CONVs at once, one per engine, no fill/drain: P = 32 pairs, 16 -> 16 channels,
    8 bits (f = 1): matmul ceil(32/16)*ceil(16/16)*16 = 32 cycles = gather = scatter, so both
    run over [0, 32). MACs 2 * 32*16*16 = 16384. The unit's peak is E * R*C*f/passes =
    2 * 256 = 512 per cycle: utilisation 16384 / 512 / 32 = 1.0 (the old one-array peak of
    256 gave 2.0). One engine of the two busy alone: 8192 / 512 / 32 = 0.5. With a GEMM
    32x16x16 on the matmul array alongside (32 cycles at its peak of 256): (32 + 2*32)
    array-cycles used of 32 * (1 + 2) available = 1.0."""
    cfg = edge.with_overrides(["matmul.fill_drain=false"])

    def run(engines, gemm=False):
        b = ProgramBuilder()
        b.alloc(16)
        if gemm:
            b.emit(Op.GEMM, m=32, k=16, n=16, a_bits=8, w_bits=8, reset=1, acc_addr=600)
        for e in engines:
            b.emit(Op.SVG_CONV, n_in=32, n_out=32, n_pairs=32, pairs=32, cin=16, cout=16,
                   a_bits=8, w_bits=8, reset=1, engine=e, acc_addr=200 * e)  # fmt: skip
        return simulate(b.build(), cfg, count_only=True).stats

    both = run((0, 1))
    assert both.latency_cycles == 32 and both.macs() == 16384
    assert both.peak_macs_per_cycle == {("svge", 8, 8): 512.0}
    assert both.totals()["utilisation"] == 1.0
    assert both.layer_rows()[0]["utilisation"] == 1.0
    assert run((0,)).totals()["utilisation"] == 0.5
    mixed = run((0, 1), gemm=True)
    assert mixed.latency_cycles == 32 and mixed.macs() == 16384 + 8192
    assert mixed.machine["mac_arrays"] == {"matmul": 1, "svge": 2}
    assert mixed.totals()["utilisation"] == 1.0


def test_engine_field_beyond_config_is_rejected(edge):
    b = ProgramBuilder()
    b.alloc(16)
    _conv(b, 3, 4)
    with pytest.raises(IsaError, match="engine 3 but svge.engines = 2"):
        simulate(b.build(), edge, count_only=True)


def test_map_datapath_checks_pair_count(edge):
    """SVG_MAP rebuilds the map from COORD; a wrong n_pairs field is reported."""
    c = random_coords(5, 6, extent=3)
    b = ProgramBuilder()
    addr = b.add_tensor("c", c.reshape(-1), 16, "unsigned")
    b.emit(
        Op.LOAD,
        buf=Buf.COORD,
        dram_addr=addr,
        d0=1,
        d1=1,
        d2=c.size,
        bits=16,
        mode=1,
        signal=1 << Unit.SVGE,
    )
    b.emit(
        Op.SVG_MAP,
        wait=1,
        coord_addr=0,
        out_coord_addr=0,
        map_addr=0,
        n_in=6,
        n_out=6,
        n_pairs=1,
        kernel=3,
        groups=1,
    )
    with pytest.raises(IsaError, match="the map has 22 pairs, the instruction says n_pairs = 1"):
        simulate(b.build(), edge)


def test_window_read_starts_inside_an_older_tile(edge):
    """A window LOADed into part of an older tile of the same width updates that tile in
    place (the memory model), so no tile starts at the window's first row: the SVGE reads the
    window from inside the tile on (the minkunet G=5, E=3, 1/2-bit failure). Rows are 128
    bits: a 1-bit window of 300 elements, LOADed in two pieces at rows 10 and 12, lies inside
    the 40-row tile at row 0. A window running past that tile into rows no LOAD wrote is an
    error."""
    from accelsim.units.svge import read_span

    mem = make_mem(edge)
    mem.write(Buf.INP, 0, np.zeros(40 * 128, np.uint8), 1)  # the older tile, rows 0..39
    window = np.random.default_rng(0).integers(0, 2, 300).astype(np.uint8)
    mem.write(Buf.INP, 10, window[:256], 1)  # rows 10, 11: inside the older tile
    mem.write(Buf.INP, 12, window[256:], 1)  # row 12, also inside
    assert set(mem.bufs[Buf.INP].tiles) == {0}  # no tile starts at row 10
    np.testing.assert_array_equal(read_span(mem, Buf.INP, 10, 300, 1, "test"), window)
    with pytest.raises(IsaError, match="row 40 of the window holds no data"):
        read_span(mem, Buf.INP, 39, 300, 1, "test")
