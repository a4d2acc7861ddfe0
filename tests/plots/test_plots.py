"""Plots of a results file, checked by content: axis labels with units, the points drawn
(their count and values, read back from the results), the Pareto front, the roofs, stacked
energy components; and the files `accelsim plot` writes."""

import shutil
import sqlite3

import matplotlib
import numpy as np
import pytest

from accelsim.cli import main
from accelsim.cli.sources import CliWorkloads
from accelsim.errors import AccelsimError
from accelsim.plots import make_plot
from accelsim.sweep.run import run_sweep
from accelsim.sweep.spec import parse_spec

matplotlib.use("Agg")

SPEC = """
name = "plots"
workloads = ["small_cnn", "mlp", "sparse_tiny"]
engine = "event"
[axes]
bits = ["8/8", "4/4", "2/2"]
"svge.groups" = [1, 4]
"""
POINTS = 18


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plots")
    out = tmp / "plots.sqlite"
    spec = parse_spec(SPEC, "plots.toml")
    outcome = run_sweep(spec, CliWorkloads(str(tmp / "cache")), out, jobs=1, progress=False)
    assert outcome.errors == 0
    return out


def _rows(path, sql, args=()):
    con = sqlite3.connect(path)
    cur = con.execute(sql, args)
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r)) for r in cur.fetchall()]
    con.close()
    return rows


def test_bits_plot_draws_every_point_against_its_widths(results):
    fig = make_plot(results, "bits")
    lat, energy = fig.axes[:2]
    assert lat.get_ylabel() == "latency (ms)" and energy.get_ylabel() == "energy (µJ)"
    assert lat.get_xlabel() == "bits (activations / weights)"
    assert [t.get_text() for t in lat.get_xticklabels()] == ["8/8", "4/4", "2/2"]
    assert len(lat.lines) == 6  # one line per (workload, G)
    assert sum(len(line.get_xdata()) for line in lat.lines) == POINTS
    line = next(ln for ln in lat.lines if ln.get_label() == "mlp, groups=1")
    want = _rows(
        results,
        "SELECT latency_ms FROM points WHERE workload='mlp' AND \"svge.groups\"=1 ORDER BY seq",
    )
    assert list(line.get_ydata()) == [r["latency_ms"] for r in want]
    assert list(line.get_xdata()) == [0, 1, 2]


def _front(points):
    """Points no other point beats in both energy and latency (brute force)."""
    return {
        p["seq"]
        for p in points
        if not any(
            q["energy_pj"] <= p["energy_pj"]
            and q["latency_ms"] <= p["latency_ms"]
            and (q["energy_pj"], q["latency_ms"]) != (p["energy_pj"], p["latency_ms"])
            for q in points
        )
    }


def test_pareto_plot_highlights_exactly_each_workloads_front(results):
    """One panel per workload, its 6 points drawn and exactly its brute-force front on the
    dashed line; sparse_tiny's front has more than one point and not all of them."""
    points = _rows(results, "SELECT seq, workload, energy_pj, latency_ms FROM points")
    fig = make_plot(results, "pareto")
    assert len(fig.axes) == 3  # no accuracy: no colour bar
    fronts = {}
    for ax in fig.axes:
        assert ax.get_xlabel() == "energy per inference (µJ)"
        assert ax.get_ylabel() == "latency (ms)"
        mine = [p for p in points if p["workload"] == ax.get_title()]
        (scatter,) = ax.collections
        assert len(scatter.get_offsets()) == len(mine) == 6
        (front_line,) = [ln for ln in ax.lines if ln.get_label() == "Pareto front"]
        drawn = set(zip(front_line.get_xdata(), front_line.get_ydata()))
        front = _front(mine)
        assert drawn == {
            (p["energy_pj"] * 1e-6, p["latency_ms"]) for p in mine if p["seq"] in front
        }
        fronts[ax.get_title()] = len(front)
        # few points: each labelled by its other swept values, equal results by one label
        assert len(ax.texts) == len({(p["energy_pj"], p["latency_ms"]) for p in mine})
    assert set(fronts) == {"small_cnn", "mlp", "sparse_tiny"}
    assert 1 < fronts["sparse_tiny"] < 6
    texts = {t.get_text() for ax in fig.axes for t in ax.texts}
    assert {"2/2, groups=4", "8/8, groups=1 (+1 equal)"} <= texts


def test_pareto_colours_points_by_accuracy(results, tmp_path):
    """With an accuracy column (set here by hand: plots only read the table), points are
    coloured by it on one scale and a colour bar names it."""
    path = tmp_path / "acc.sqlite"
    shutil.copy(results, path)
    con = sqlite3.connect(path)
    con.execute("ALTER TABLE points ADD COLUMN accuracy REAL")
    con.execute("UPDATE points SET accuracy = 0.5 + seq / 100.0")
    con.commit()
    con.close()
    fig = make_plot(path, "pareto")
    *panels, bar = fig.axes
    assert bar.get_ylabel() == "test accuracy on the machine (%)" and len(panels) == 3
    colours = np.concatenate([ax.collections[0].get_array() for ax in panels])
    assert np.allclose(sorted(colours), [50 + s for s in range(POINTS)])
    assert {ax.collections[0].norm.vmax for ax in panels} == {50 + POINTS - 1}


def test_groups_plot(results):
    fig = make_plot(results, "groups", workloads=["sparse_tiny"])
    macs, cycles, energy = fig.axes
    assert macs.get_ylabel() == "MACs (millions)"
    assert cycles.get_ylabel() == "latency (million cycles)"
    assert energy.get_ylabel() == "energy (µJ)" and energy.get_xlabel() == "voxel groups G"
    assert len(macs.lines) == 3  # one per bits
    want = _rows(
        results,
        "SELECT macs FROM points WHERE workload='sparse_tiny' AND bits='8/8' "
        'ORDER BY "svge.groups"',
    )
    line = next(ln for ln in macs.lines if ln.get_label() == "8/8")
    assert list(line.get_xdata()) == [1, 4]
    assert list(line.get_ydata()) == [r["macs"] * 1e-6 for r in want]
    assert want[0]["macs"] > want[1]["macs"]  # G = 4 keeps fewer pairs than G = 1


def test_groups_needs_the_group_axis(tmp_path, results):
    path = tmp_path / "nog.sqlite"
    shutil.copy(results, path)
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value = '[]' WHERE key = 'swept'")
    con.commit()
    con.close()
    with pytest.raises(AccelsimError, match="needs svge.groups among the swept keys"):
        make_plot(path, "groups")


def test_roofline_points_sit_under_their_roof(results):
    """Each point is drawn in its machine's roof colour, and its achieved ops/cycle never
    exceeds that roof, min(2 x peak MACs/cycle, ops/byte x DRAM B/cycle)."""
    from matplotlib.colors import to_rgba

    fig = make_plot(results, "roofline")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "operational intensity (ops / DRAM byte)"
    assert ax.get_ylabel() == "achieved throughput (ops / cycle)"
    points = _rows(results, "SELECT * FROM points ORDER BY seq")
    roofs = {(p["peak_macs_per_cycle"], p["peak_dram_bytes_per_cycle"]) for p in points}
    lines = {to_rgba(ln.get_color()): ln.get_label() for ln in ax.lines}
    assert len(lines) == len(roofs) and all(k.startswith("roof ") for k in lines.values())
    drawn = 0
    for coll in ax.collections:
        label = lines[tuple(coll.get_facecolor()[0])]
        for x, y in coll.get_offsets():
            (p,) = [
                p
                for p in points
                if 2 * p["macs"] / p["dram_bytes"] == pytest.approx(x)
                and 2 * p["macs"] / p["latency_cycles"] == pytest.approx(y)
            ][:1]
            assert label.startswith(f"roof {2 * p['peak_macs_per_cycle']:,.0f} ops/cycle")
            assert 0 < y <= min(2 * p["peak_macs_per_cycle"], x * p["peak_dram_bytes_per_cycle"])
            drawn += 1
    assert drawn == POINTS


def test_breakdown_stacks_each_layers_components(results):
    point = _rows(results, "SELECT point_id FROM points WHERE workload='small_cnn' LIMIT 1")[0]
    layers = _rows(
        results, "SELECT * FROM layers WHERE point_id=? ORDER BY layer_index", (point["point_id"],)
    )
    fig = make_plot(results, "breakdown", point=point["point_id"][:8])
    ax = fig.axes[0]
    assert ax.get_ylabel() == "energy (µJ)" and ax.get_xlabel() == "layer"
    assert [t.get_text() for t in ax.get_xticklabels()] == [r["name"] for r in layers]
    tops = np.zeros(len(layers))
    for container in ax.containers:
        tops = np.maximum(tops, [b.get_y() + b.get_height() for b in container])
    assert np.allclose(tops, [r["energy_pj"] * 1e-6 for r in layers])
    labels = [c.get_label() for c in ax.containers]
    assert "mac" in labels and "dram" in labels and "svge_map" not in labels  # all zero here


def test_layers_plot_shows_each_layer_span(results):
    fig = make_plot(results, "layers", point="0")
    ax = fig.axes[0]
    layers = _rows(
        results,
        "SELECT name, cycles FROM layers l JOIN points p USING (point_id) "
        "WHERE p.seq = 0 ORDER BY layer_index",
    )
    assert ax.get_ylabel() == "latency (cycles)"
    assert [b.get_height() for b in ax.containers[0]] == [r["cycles"] for r in layers]
    with pytest.raises(AccelsimError, match="--point 'zz' matches 0 points"):
        make_plot(results, "layers", point="zz")


def test_cli_writes_png_svg_pdf(results, tmp_path, capsys):
    magic = {".png": b"\x89PNG", ".svg": b"<?xml", ".pdf": b"%PDF"}
    for suffix, head in magic.items():
        out = tmp_path / f"p{suffix}"
        assert main(["plot", str(results), "--kind", "pareto", "-o", str(out)]) == 0
        assert out.read_bytes().startswith(head)
    assert main(["plot", str(results), "--kind", "bits", "-o", str(tmp_path / "p.jpg")]) == 2
    assert "expected a .png, .svg, .pdf file" in capsys.readouterr().err
    assert (
        main(
            [
                "plot",
                str(results),
                "--kind",
                "bits",
                "--workload",
                "vgg",
                "-o",
                str(tmp_path / "p.png"),
            ]
        )
        == 2
    )
    assert "no points of workload(s) vgg" in capsys.readouterr().err


RESCALE_SPEC = """
name = "rescale"
workloads = ["small_cnn", "mlp"]
engine = "event"
timing_only = false
[axes]
bits = ["4/4"]
"rescale.mult_bits" = [16, 32]
"rescale.round_mode" = ["tflite", "rne"]
"""


def test_rescale_plot_mismatch_shares_and_energy(tmp_path):
    """Datapath runs count outputs that differ from round-half-even: none in rne mode, some
    in tflite mode (gemmlowp rounds twice) for small_cnn's 14,346 outputs; the rescale
    energy of a 16-bit multiplier is below that of a 32-bit one (same outputs)."""
    out = tmp_path / "rescale.sqlite"
    spec = parse_spec(RESCALE_SPEC, "rescale.toml")
    assert run_sweep(spec, CliWorkloads(str(tmp_path)), out, jobs=1, progress=False).errors == 0
    fig = make_plot(out, "rescale")
    share, energy = fig.axes[:2]
    assert share.get_ylabel() == "outputs differing from round-half-even (%)"
    assert energy.get_ylabel() == "rescale energy (µJ)"
    assert [t.get_text() for t in share.get_xticklabels()] == [
        "16, rne",
        "16, tflite",
        "32, rne",
        "32, tflite",
    ]
    by_workload = {c.get_label(): [b.get_height() for b in c] for c in share.containers}
    assert set(by_workload) == {"small_cnn", "mlp"}
    for heights in by_workload.values():
        assert heights[0] == heights[2] == 0.0  # rne agrees with itself
    rows = _rows(
        out,
        "SELECT * FROM points WHERE \"rescale.round_mode\" = 'tflite' "
        'ORDER BY workload, "rescale.mult_bits"',
    )
    mlp16, mlp32, small16, _ = rows
    assert small16["rescale_outputs"] == 14346 and small16["rescale_mismatch_vs_rne"] > 0
    assert by_workload["small_cnn"][1] == pytest.approx(
        100 * small16["rescale_mismatch_vs_rne"] / 14346
    )
    assert mlp16["energy_rescale_pj"] < mlp32["energy_rescale_pj"]
    e = {c.get_label(): [b.get_height() for b in c] for c in energy.containers}
    assert e["mlp"][1] == pytest.approx(mlp16["energy_rescale_pj"] * 1e-6)
