"""Stats: field table, totals worked by hand, per-layer rows, __add__, JSON round trip."""

import json

import pytest

from accelsim.config import load_config
from accelsim.isa import Buf, Op
from accelsim.program import ProgramBuilder
from accelsim.sim import simulate
from accelsim.stats import FIELDS, MacWidths, Stats, fields_markdown


@pytest.fixture
def run():
    """Two layers on edge (16x16 fusion array, 500 MHz, 25.6 B/cycle, DRAM latency 100):
    tag 1: LOAD 4 rows x 64 B int8 -> 100 + 4*1*3 = 112 cycles, signals matmul;
    tag 2: GEMM 32x64x16 at 4x4 bits (f = 4), waits load: OS 2*1*(16 + 30) = 92 -> [112, 204)."""
    b = ProgramBuilder()
    b.alloc(256)
    b.tags.update({1: "load", 2: "gemm"})
    b.emit(Op.LOAD, signal=1 << 3, tag=1, buf=Buf.INP, d0=4, d1=1, d2=64, s0=64, bits=8)
    b.emit(Op.GEMM, wait=1, tag=2, m=32, k=64, n=16, a_bits=4, w_bits=4, reset=1)
    return simulate(b.build(), load_config("edge"), count_only=True).stats


def test_totals_by_hand(run):
    """latency 204 cycles = 408 ns; MACs 32768; utilisation = 32768 / (204 * 256 * 4) =
    0.1569; DRAM 256 bytes / 408 ns = 0.627 GB/s, share 256 / (204 * 25.6) = 0.049."""
    t = run.totals()
    assert t["latency_cycles"] == 204 and t["latency_s"] == pytest.approx(408e-9)
    assert t["macs"] == 32768 and t["dram_read_bytes"] == 256
    assert t["utilisation"] == pytest.approx(32768 / (204 * 256 * 4))
    assert t["dram_bw_gbps"] == pytest.approx(256 / 408e-9 / 1e9)
    assert t["dram_bw_share"] == pytest.approx(256 / (204 * 25.6))
    assert t["tops"] == pytest.approx(2 * 32768 / 408e-9 / 1e12)
    assert t["stall_token_cycles"] == 112


def test_layer_rows(run):
    rows = {r["layer"]: r for r in run.layer_rows()}
    assert rows["load"]["layer_cycles"] == 112 and rows["gemm"]["layer_cycles"] == 92
    assert rows["gemm"]["busy_cycles_matmul"] == 92 and rows["gemm"]["macs"] == 32768
    assert run.macs_by_width(2) == {(4, 4): 32768} and run.macs_by_width(1) == {}
    assert rows["gemm"]["utilisation"] == pytest.approx(32768 / (92 * 256 * 4))
    assert rows["load"]["sram_write_bits_inp"] == 4 * 64 * 8


def test_add_and_json_roundtrip(run):
    both = run + run
    assert both.latency_cycles == 408 and both.macs() == 2 * 32768
    assert both.layer_span[2] == (112, 204 + 204)  # second run shifted by 204
    assert both.total("instructions") == 4
    back = Stats.from_dict(json.loads(json.dumps(run.to_dict())))
    assert back.counters == run.counters and back.totals() == run.totals()
    assert back.mac_counts == run.mac_counts == {(2, "matmul"): {MacWidths(4, 4): 32768}}
    assert back.peak_macs_per_cycle == run.peak_macs_per_cycle == {("matmul", 4, 4): 1024.0}


def test_fields_table_documents_every_counter(run):
    md = fields_markdown()
    assert md.startswith("| field | unit | description |")
    families = [k.split("<")[0] for k in FIELDS if "<" in k]
    names = set(run.summed()) | set(run.totals()) | set(run.layer_rows()[0])
    for name in names:
        assert name in FIELDS or any(name.startswith(f) for f in families), name
    assert all(len(v) == 2 and v[0] and v[1] for v in FIELDS.values())


def test_shift_tags_keeps_layers_apart_when_runs_add(run):
    """Two copies of the two-layer run: shifted by 2, the second's layers are tags 3 and 4,
    starting after the first run's 204 cycles; without the shift they would merge."""
    both = run + run.shift_tags(2)
    assert both.tags == {1: "load", 2: "gemm", 3: "load", 4: "gemm"}
    rows = both.layer_rows()
    assert [r["layer_cycles"] for r in rows] == [112, 92, 112, 92]
    assert rows[3]["start_cycle"] == 204 + 112 and rows[3]["end_cycle"] == 408
    assert both.counters[(4, "matmul")] == run.counters[(2, "matmul")]
    assert len((run + run).layer_rows()) == 2
