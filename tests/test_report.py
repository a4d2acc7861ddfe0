"""Run reports: the per-layer cycle columns (compute, busy per unit, stalls) worked by hand,
sparse layers' compute cycles, and CSV files whose rows carry different keys."""

import csv

import numpy as np
import pytest

from accelsim.config import load_config
from accelsim.isa import Buf, Op
from accelsim.program import ProgramBuilder
from accelsim.report import RUN_FIELDS, UNITS, summarize, write_csv
from accelsim.sequence import SequenceResult, run_sequence
from accelsim.sim import simulate
from tests.helpers import random_input
from workloads.single_layer import single_gemm
from workloads.sparse_nets import sparse_tiny


@pytest.fixture
def two_layers():
    """edge: tag 1 LOAD 4 rows x 64 B = 100 + 4 * 1 * 3 = 112 cycles, signals matmul;
    tag 2 GEMM 32x64x16 at 4x4 bits (f = 4): OS 2 * 1 * (16 + 30) = 92 cycles, waiting 112
    cycles for the load's token (as in tests/test_stats.py)."""
    b = ProgramBuilder()
    b.alloc(256)
    b.tags.update({1: "load", 2: "gemm"})
    b.emit(Op.LOAD, signal=1 << 3, tag=1, buf=Buf.INP, d0=4, d1=1, d2=64, s0=64, bits=8)
    b.emit(Op.GEMM, wait=1, tag=2, m=32, k=64, n=16, a_bits=4, w_bits=4, reset=1)
    cfg = load_config("edge")
    return SequenceResult("two", simulate(b.build(), cfg, count_only=True).stats), cfg


def test_layer_cycle_columns_by_hand(two_layers):
    result, cfg = two_layers
    rows = {r["name"]: r for r in summarize(result, cfg)["layers"]}
    zero = {f"busy_cycles_{u}": 0 for u in UNITS}
    assert set(UNITS) == {"load", "store", "quantizer", "matmul", "rescale", "vector", "svge"}
    load, gemm = rows["load"], rows["gemm"]
    assert {k: load[k] for k in zero} == {**zero, "busy_cycles_load": 112}
    assert {k: gemm[k] for k in zero} == {**zero, "busy_cycles_matmul": 92}
    assert load["compute_cycles"] == 0 and gemm["compute_cycles"] == 92
    assert load["stall_token_cycles"] == 0 and gemm["stall_token_cycles"] == 112
    assert load["stall_dram_cycles"] == gemm["stall_dram_cycles"] == 0
    assert list(load) == list(gemm)  # every dense row has the same columns
    for key in ("compute_cycles", "busy_cycles_<unit>", "stall_token_cycles"):
        assert key in RUN_FIELDS


def test_sparse_layers_report_svge_conv_cycles_and_csv_has_every_column(tmp_path):
    """A sparse conv's array work is SVG_CONV on the SVGE: compute_cycles = svge_conv_cycles.
    Run after a dense GEMM (back to back), its rows carry svge_* keys the first row lacks;
    the CSV still has one column for each key, empty where a row has none."""
    cfg = load_config("edge")
    gemm = single_gemm(8, 16, 32)
    models = [
        (gemm, np.random.default_rng(0).random((8, 32))),
        (sparse_tiny(8, 8, seed=0, channels=4), random_input(0, 40, extent=6)),
    ]
    result = run_sequence("mixed", models, cfg, count_only=True)
    rows = summarize(result, cfg)["layers"]
    assert rows[0]["name"] == "gemm_8x16x32" and "svge_conv_cycles" not in rows[0]
    assert rows[0]["compute_cycles"] == rows[0]["busy_cycles_matmul"] > 0
    convs = [r for r in rows if r.get("svge_conv_cycles")]
    assert len(convs) == 8
    for r in convs:
        assert r["compute_cycles"] == r["svge_conv_cycles"] > 0
        assert r["busy_cycles_svge"] > 0 and r["busy_cycles_matmul"] == 0
    path = tmp_path / "rows.csv"
    write_csv(result, cfg, path)
    with path.open() as f:
        table = list(csv.DictReader(f))
    assert [r["name"] for r in table] == [r["name"] for r in rows]
    assert table[0]["svge_conv_cycles"] == "" and table[0]["compute_cycles"] != ""
    assert table[1]["svge_conv_cycles"] == str(rows[1]["svge_conv_cycles"])
