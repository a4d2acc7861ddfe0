"""Energy: table loading, per-op figures, exact breakdowns, monotonicity, re-costing."""

import json
from pathlib import Path

import numpy as np
import pytest

from accelsim.config import load_config
from accelsim.energy import energy_report, load_energy_table, recompute_energy
from accelsim.errors import ConfigError
from accelsim.isa import Buf, Op
from accelsim.program import ProgramBuilder
from accelsim.sim import simulate
from tests.programs import tiled_gemm_program

TABLE_PATH = load_energy_table().source


@pytest.fixture(scope="module")
def table():
    return load_energy_table("horowitz45")


def _gemm_stats(cfg, m=16, k=64, n=16, bits=8, loads=0):
    b = ProgramBuilder()
    b.alloc(4096)
    for _ in range(loads):
        b.emit(Op.LOAD, buf=Buf.INP, d0=m, d1=1, d2=k, s0=k, bits=bits)
    b.emit(Op.GEMM, m=m, k=k, n=n, a_bits=bits, w_bits=bits, reset=1)
    return simulate(b.build(), cfg, count_only=True, check_races=False).stats


def test_table_figures(table):
    """Horowitz 45 nm: MAC 8x8 = 0.2 (mult) + 0.1 (int32 add) pJ; 4x4 = 0.2/4 + 0.1. SRAM 64-bit
    read 10 / 20 / 100 pJ at 8 KB / 32 KB / 1 MB, 16 KB = sqrt(10 * 20) in log-log."""
    assert table.mac_pj(8, 8) == pytest.approx(0.3)
    assert table.mac_pj(4, 4) == pytest.approx(0.15)
    assert table.add_pj(8) == pytest.approx(0.03) and table.add_pj(32) == pytest.approx(0.1)
    for size, e in ((8192, 10.0), (32768, 20.0), (1 << 20, 100.0)):
        assert table.sram_pj_per_64b(size) == pytest.approx(e)
    assert table.sram_pj_per_64b(16384) == pytest.approx(200**0.5)


def test_breakdown_sums_exactly(table):
    cfg = load_config("edge")
    rng = np.random.default_rng(0)
    x = rng.integers(-8, 8, (40, 70)).astype(np.int8)
    w = rng.integers(-8, 8, (70, 36)).astype(np.int8)
    prog = tiled_gemm_program(cfg, x, w, 0, 1 << 30, 40, a_bits=4, w_bits=4)
    prog.tags[7] = "other"
    for insn in prog.insns[-10:]:
        insn.tag = 7  # two layers
    rep = energy_report(simulate(prog, cfg, count_only=True).stats, table)
    assert len(rep.per_layer) == 2
    assert sum(rep.by_component.values()) == rep.total_pj
    assert sum(v for comp in rep.per_layer.values() for v in comp.values()) == rep.total_pj
    assert sum(sum(c.values()) for c in reversed(list(rep.per_layer.values()))) == rep.total_pj
    assert {"mac", "dram", "leakage", "sram_inp", "sram_acc", "rescale"} <= set(rep.by_component)


def test_energy_rises_with_bits_array_and_accesses(table):
    edge = load_config("edge")
    by_bits = [energy_report(_gemm_stats(edge, bits=b), table) for b in (2, 4, 8)]
    assert (
        by_bits[0].by_component["mac"]
        < by_bits[1].by_component["mac"]
        < by_bits[2].by_component["mac"]
    )
    assert by_bits[0].total_pj < by_bits[1].total_pj < by_bits[2].total_pj
    # same GEMM (fits both arrays) on 16x16 and 32x32: more fill cycles and more PEs leaking
    big = load_config("edge", ["matmul.rows=32", "matmul.cols=32"])
    small_e = energy_report(_gemm_stats(edge), table)
    big_e = energy_report(_gemm_stats(big), table)
    assert big_e.by_component["mac"] == small_e.by_component["mac"]
    assert big_e.total_pj > small_e.total_pj
    one, two = (energy_report(_gemm_stats(edge, loads=n), table) for n in (1, 2))
    assert two.by_component["dram"] == 2 * one.by_component["dram"] > 0
    assert two.by_component["sram_inp"] > one.by_component["sram_inp"]
    assert two.total_pj > one.total_pj


def test_recompute_with_another_table(tmp_path, table):
    stats = _gemm_stats(load_config("edge"), loads=1)
    saved = json.loads(json.dumps(stats.to_dict()))
    base = recompute_energy(saved, "horowitz45")
    assert base.to_dict() == energy_report(stats, table).to_dict()
    text = Path(TABLE_PATH).read_text().replace("pj_per_64b = 1950.0", "pj_per_64b = 3900.0")
    (tmp_path / "dram2x.toml").write_text(text)
    other = recompute_energy(saved, str(tmp_path / "dram2x.toml"))
    assert other.by_component["dram"] == 2 * base.by_component["dram"]
    assert other.by_component["mac"] == base.by_component["mac"]
    assert other.total_pj > base.total_pj


def test_table_errors(tmp_path):
    text = Path(TABLE_PATH).read_text()
    (tmp_path / "extra.toml").write_text(text.replace("[dram]", "[dram]\nfoo_pj = 1.0"))
    with pytest.raises(ConfigError, match=r"extra.toml: unknown key dram.foo_pj"):
        load_energy_table(str(tmp_path / "extra.toml"))
    (tmp_path / "neg.toml").write_text(text.replace("int8_add_pj = 0.03", "int8_add_pj = -1"))
    with pytest.raises(ConfigError, match=r"neg.toml: mac.int8_add_pj must be a number"):
        load_energy_table(str(tmp_path / "neg.toml"))
    (tmp_path / "miss.toml").write_text(text.replace("int8_add_pj = 0.03", ""))
    with pytest.raises(ConfigError, match=r"missing key\(s\) mac.int8_add_pj"):
        load_energy_table(str(tmp_path / "miss.toml"))
    with pytest.raises(ConfigError, match="no such file or preset"):
        load_energy_table("nonexistent")


def test_rescale_energy_follows_the_multiplier_width(table):
    """100 accumulators rescaled: 32-bit multiplier 100 * (3.1 + 2 * 0.1) = 330 pJ; 16-bit
    100 * (3.1 * 16/32 + 0.2) = 175 pJ (Horowitz: int32 multiply 3.1 pJ, add 0.1 pJ). The
    width reaches the energy through the run's machine description."""
    from accelsim.stats import Stats

    def rescale_pj(mult_bits):
        stats = Stats(
            {(1, "rescale"): {"rescale_ops": 100}}, 10, machine={"rescale_mult_bits": mult_bits}
        )
        return energy_report(stats, table).by_component["rescale"]

    assert rescale_pj(32) == pytest.approx(330.0, abs=2**-10)
    assert rescale_pj(16) == pytest.approx(175.0, abs=2**-10)
    cfg = load_config("edge", ["rescale.mult_bits=16"])
    assert _gemm_stats(cfg).machine["rescale_mult_bits"] == 16


def test_fraction_bits_widen_the_bias_adder(table):
    """100 accumulators rescaled with F = 4 bias fractional bits: the bias adder is 36 bits,
    add(36) - add(32) = 4 * (0.1 - 0.03) / 24 pJ more each, so 330 + 100 * 4 * 0.07 / 24
    = 331.1667 pJ (Horowitz: int8 add 0.03 pJ, int32 add 0.1 pJ, adders linear in width)."""
    from accelsim.stats import Stats

    counts = {"rescale_ops": 100, "rescale_bias_frac_bits": 400}
    stats = Stats({(1, "rescale"): counts}, 10, machine={"rescale_mult_bits": 32})
    assert energy_report(stats, table).by_component["rescale"] == pytest.approx(
        330.0 + 400 * 0.07 / 24, abs=2**-10
    )
