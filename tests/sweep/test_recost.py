"""`accelsim recost`: a results file re-costed with another energy table equals, row for row,
a fresh sweep run with that table, and it does not simulate."""

from pathlib import Path

import pytest

from accelsim.cli import main
from accelsim.cli.sources import CliWorkloads
from accelsim.config import PRESET_DIR
from accelsim.energy import load_energy_table
from accelsim.sweep.run import run_sweep
from accelsim.sweep.spec import parse_spec
from tests.sweep.helpers import dump

SPEC = """
name = "recost"
workloads = ["mlp", "sparse_tiny"]
base = "{base}"
engine = "event"
[axes]
bits = ["8/8", "4/4"]
"svge.map_method" = ["hash", "sort"]
"""


def _other_table(tmp_path: Path) -> str:
    """horowitz45 with DRAM, the 8-bit multiply and the map builder's steps made dearer."""
    text = Path(load_energy_table().source).read_text()
    for old, new in (
        ("pj_per_64b = 1950.0", "pj_per_64b = 2600.0"),
        ("int8_mult_pj = 0.2", "int8_mult_pj = 0.25"),
        ("hash_op_pj = 23.5", "hash_op_pj = 30.0"),
        ("sort_op_pj = 20.1", "sort_op_pj = 25.0"),
    ):
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "other_energy.toml"
    path.write_text(text)
    return str(path)


def _sweep(tmp_path, base: str, name: str) -> Path:
    out = tmp_path / f"{name}.sqlite"
    spec = parse_spec(SPEC.format(base=base), f"{name}.toml")
    outcome = run_sweep(spec, CliWorkloads(str(tmp_path / "cache")), out, jobs=1, progress=False)
    assert outcome.errors == 0 and outcome.ran == 8
    return out


def test_recost_equals_a_fresh_sweep_with_the_other_table(tmp_path, capsys):
    table = _other_table(tmp_path)
    base = tmp_path / "edge_other.toml"
    base.write_text((PRESET_DIR / "edge.toml").read_text() + f'\n[energy]\ntable = "{table}"\n')
    original = _sweep(tmp_path, "edge", "original")
    fresh = _sweep(tmp_path, str(base), "fresh")
    out = tmp_path / "recosted.sqlite"
    assert main(["recost", str(original), "--energy", table, "-o", str(out)]) == 0
    assert "8 points re-costed" in capsys.readouterr().out
    before, after, want = dump(original), dump(out), dump(fresh)
    assert after == want
    # the table changed energy only: cycles equal, DRAM and map-building energy rose
    old = {(p["workload"], p["bits"], p["svge.map_method"]): p for p in before["points"]}
    for p in after["points"]:
        o = old[(p["workload"], p["bits"], p["svge.map_method"])]
        assert p["latency_cycles"] == o["latency_cycles"] and p["macs"] == o["macs"]
        assert p["energy_dram_pj"] == pytest.approx(o["energy_dram_pj"] * 2600 / 1950)
        assert p["energy_pj"] > o["energy_pj"] and p["point_id"] != o["point_id"]
        if p["workload"] == "sparse_tiny":
            assert p["energy_svge_map_pj"] > o["energy_svge_map_pj"] > 0
    assert before["counts"] != [] and [c["stats"] for c in after["counts"]] != []


def test_recost_refuses_bad_input(tmp_path, capsys):
    (tmp_path / "r.sqlite").write_bytes(b"")
    assert main(["recost", str(tmp_path / "r.sqlite"), "--energy", "nope", "-o", "x.sqlite"]) == 2
    assert "energy table 'nope': no such file or preset" in capsys.readouterr().err
    assert (
        main(
            [
                "recost",
                str(tmp_path / "r.sqlite"),
                "--energy",
                "horowitz45",
                "-o",
                str(tmp_path / "r.sqlite"),
            ]
        )
        == 2
    )
    assert "is the input file" in capsys.readouterr().err
