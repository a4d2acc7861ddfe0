"""`accelsim report`: a spec with a [report] table gives a folder with README.md (the sweep,
a reading computed from the results, the plots, the points), PNG plots and points.csv; a
second run reuses the results."""

import csv

import pytest

from accelsim.cli import main
from accelsim.errors import AccelsimError
from accelsim.sweep.report import report_spec
from accelsim.sweep.spec import parse_spec

SPEC = """
name = "tiny"
workloads = ["small_cnn", "mlp"]
engine = "event"
[axes]
bits = ["8/8", "2/2"]
"matmul.rows" = [8, 16]
[report]
title = "A tiny report"
intro = "Two small models at two widths on two arrays."
[[report.plots]]
kind = "bits"
[[report.plots]]
kind = "pareto"
file = "front.png"
[[report.plots]]
kind = "groups"
"""


def test_report_folder_readme_plots_and_points(tmp_path, capsys):
    spec = tmp_path / "specs" / "tiny.toml"
    spec.parent.mkdir()
    spec.write_text(SPEC)
    assert main(["report", str(spec), "--jobs", "1"]) == 0
    folder = tmp_path / "tiny"  # ../NAME from the spec's folder
    readme = (folder / "README.md").read_text()
    assert readme.startswith("# A tiny report\n\nTwo small models at two widths")
    for section in ("## Sweep", "## What the results show", "## Plots", "## Points"):
        assert section in readme
    assert (folder / "bits.png").read_bytes().startswith(b"\x89PNG")
    assert (folder / "front.png").read_bytes().startswith(b"\x89PNG")
    assert "](front.png)" in readme and "](bits.png)" in readme
    assert "*groups.png: not drawn (" in readme  # no svge.groups axis: said, not drawn
    with open(folder / "points.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8
    fastest = min((r for r in rows if r["workload"] == "mlp"), key=lambda r: float(r["latency_ms"]))
    label = f"mlp, {fastest['bits']}, rows={fastest['matmul.rows']}"
    assert f"- mlp: fastest is {label} ({float(fastest['latency_ms']):.4g} ms" in readme
    by = {(r["workload"], r["bits"], r["matmul.rows"]): float(r["energy_pj"]) for r in rows}
    falls = [by[("small_cnn", "8/8", n)] / by[("small_cnn", "2/2", n)] for n in ("8", "16")]
    assert f"small_cnn: from 8/8 to 2/2 bits, energy falls {min(falls):.2f}-" in readme
    assert readme.count("\n| ") == 1 + 8  # the points table: header and one row per point
    capsys.readouterr()
    assert main(["report", str(spec), "--jobs", "1"]) == 0  # reuses the results
    assert "8 already written, 0 run" in capsys.readouterr().out


def test_report_table_errors_name_the_key():
    bad = SPEC.replace('title = "A tiny report"', 'titel = "x"')
    with pytest.raises(AccelsimError, match=r"\[report\]: unknown key\(s\) titel"):
        report_spec(parse_spec(bad, "r.toml"))
    bad = SPEC.replace('kind = "groups"', 'kind = "pie"')
    with pytest.raises(AccelsimError, match=r"plots #3: expected a table with kind"):
        report_spec(parse_spec(bad, "r.toml"))
