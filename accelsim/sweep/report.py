"""Design-space reports: `accelsim report SPEC.toml` runs a sweep (or reuses its results) and
writes a folder with README.md (what was swept, a generated reading of the results, the plots
and a table of every point), the plots as PNG and the points as CSV.

The spec is a sweep spec with a `[report]` table:

    [report]
    title = "Bit widths on ResNet-18"       # the README's heading
    intro = "What the report asks."         # a paragraph under it
    dir = "../bits"                         # output folder from the spec's folder (default
                                            # ../NAME: reports/specs/x.toml -> reports/NAME)
    columns = ["dram_bytes"]                # more points columns for the table
    [[report.plots]]                        # default: the kinds the sweep's axes call for
    kind = "pareto"                         # accelsim plot kinds
    workloads = ["resnet18"]                # optional: only these workloads' points
    point = "0"                             # breakdown / layers: which point (seq or id)
    file = "pareto_resnet18.png"            # optional file name (default KIND.png)
    caption = "..."                         # optional

The sweep's results go to `results.sqlite` in that folder (kept out of version control; a
rerun resumes it, so an unchanged simulator runs nothing again).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from accelsim.errors import AccelsimError
from accelsim.fileio import atomic_write_text
from accelsim.plots import make_plot, save_plot
from accelsim.plots.data import load_results
from accelsim.plots.kinds import KINDS
from accelsim.sweep.export import export_csv
from accelsim.sweep.reading import num, reading
from accelsim.sweep.spec import SweepSpec
from accelsim.sweep.store import connect, read_meta

_PLOT_KEYS = ("kind", "workloads", "point", "file", "caption")
CAPTIONS = {
    "bits": "Latency and energy against the bit widths (A/W).",
    "pareto": "Latency against energy; the red squares are the Pareto front.",
    "groups": "MACs, latency and energy against the voxel group count G.",
    "roofline": "Achieved operations per cycle against operations per DRAM byte, under the "
    "machine's roofs.",
    "breakdown": "Energy of each layer of one point, by component.",
    "layers": "Latency of each layer of one point.",
    "rescale": "Rescaled outputs that differ from round-half-even, and the rescale energy, per "
    "multiplier width and rounding mode.",
}
# (column, heading, scale, format) of the points table
_TABLE = (
    ("latency_ms", "latency (ms)", 1.0, ""),
    ("energy_pj", "energy (µJ)", 1e-6, ""),
    ("tops_per_w", "TOPS/W", 1.0, ".3g"),
    ("utilisation", "util %", 100.0, ".1f"),
)


@dataclass
class ReportSpec:
    """The `[report]` table of a spec, checked."""

    title: str
    intro: str = ""
    folder: Path = Path(".")
    columns: list = field(default_factory=list)
    plots: list = field(default_factory=list)


def report_spec(spec: SweepSpec) -> ReportSpec:
    """The report part of `spec`; AccelsimError names the key that is wrong."""
    raw, where = dict(spec.report), f"{spec.path}: [report]"
    unknown = set(raw) - {"title", "intro", "dir", "columns", "plots"}
    if unknown:
        raise AccelsimError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    plots = raw.get("plots") or _default_plots(spec)
    for i, p in enumerate(plots, 1):
        if not isinstance(p, dict) or p.get("kind") not in KINDS or set(p) - set(_PLOT_KEYS):
            raise AccelsimError(
                f"{where} plots #{i}: expected a table with kind (one of {', '.join(KINDS)}) "
                f"and optionally {', '.join(_PLOT_KEYS[1:])}, got {p!r}"
            )
    folder = Path(os.path.normpath(Path(spec.folder) / raw.get("dir", f"../{spec.name}")))
    return ReportSpec(
        str(raw.get("title", spec.name)),
        str(raw.get("intro", "")),
        folder,
        list(raw.get("columns", [])),
        plots,
    )


def _default_plots(spec: SweepSpec) -> list[dict]:
    keys = spec.swept_keys
    kinds = ["bits"] if "bits" in keys else []
    kinds += ["groups"] if "svge.groups" in keys else []
    return [{"kind": k} for k in (*kinds, "pareto", "roofline")]


def _cell(value, fmt: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, fmt) if fmt else num(value)
    return str(value)


def points_table(path, extra: list[str]) -> str:
    """Markdown table of every point: identity, swept values, the main totals, accuracy and
    mismatches where present, `extra` columns, and the error of a failed point."""
    con = connect(path)
    try:
        swept = read_meta(con).get("swept", [])
        cur = con.execute("SELECT * FROM points ORDER BY seq")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        con.close()
    ident = [("seq", "#", 1, ""), ("workload", "workload", 1, ""), ("bits", "bits", 1, "")]
    ident += [(k, k, 1, "") for k in swept]
    cols = list(_TABLE)
    if any(r.get("accuracy") is not None for r in rows):
        cols.append(("accuracy", "accuracy %", 100.0, ".2f"))
    if any(r.get("rescale_mismatch_vs_rne") for r in rows):
        cols.append(("rescale_mismatch_vs_rne", "outputs != rne", 1, ""))
    cols += [(c, c, 1, "") for c in extra]
    head = [h for _, h, _, _ in ident + cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [_cell(r.get(key)) for key, _, _, _ in ident]
        for key, _, scale, fmt in cols:
            v = r.get(key) if r["status"] == "ok" else None
            cells.append(_cell(v * scale if isinstance(v, float) else v, fmt))
        lines.append("| " + " | ".join(cells) + " |")
    errors = [f"- point {r['seq']} failed: {r['error']}" for r in rows if r["status"] != "ok"]
    return "\n".join(lines + ([""] + errors if errors else []))


def _sweep_summary(spec: SweepSpec, meta: dict, n_points: int, n_errors: int) -> list[str]:
    lines = [f"- workloads: {', '.join(spec.workloads)}"]
    timing = "timing only (no datapath)" if spec.timing_only else "datapath simulated"
    lines.append(f"- base configuration: `{spec.base}`; {timing}")
    for key, values in spec.axes:
        shown = [f"{v[0]}/{v[1]}" if key == "bits" else str(v) for v in values]
        lines.append(f"- axis `{key}`: {', '.join(shown)}")
    for keys, rows in spec.zips:
        pairs = ["(" + ", ".join(str(v) for v in row) + ")" for row in rows]
        lines.append(f"- varied together ({', '.join(keys)}): {', '.join(pairs)}")
    for rule in spec.bits_rules:
        only = f" ({', '.join(rule.workloads)})" if rule.workloads else ""
        lines.append(
            f"- bits rule: layers {', '.join(rule.layers)} at {rule.bits[0]}/{rule.bits[1]}{only}"
        )
    engine = meta.get("engine")
    lines.append(
        f"- {n_points} points ({n_errors} failed) on the {engine} timing engine; code "
        f"version {meta.get('code_version')}"
    )
    return lines


def write_report(spec: SweepSpec, rspec: ReportSpec, results_path, command: str) -> Path:
    """Write the report folder from the results file; returns the README's path."""
    folder = rspec.folder
    res = load_results(results_path)
    meta = res.meta
    figures = []
    for p in rspec.plots:
        name = p.get("file") or f"{p['kind']}.png"
        try:
            fig = make_plot(
                results_path, p["kind"], workloads=p.get("workloads"), point=p.get("point")
            )
        except AccelsimError as exc:
            figures.append(f"*{name}: not drawn ({exc})*")
            continue
        save_plot(fig, folder / name)
        caption = p.get("caption") or CAPTIONS[p["kind"]]
        figures.append(f"![{caption}]({name})\n\n{caption}")
    export_csv(results_path, folder / "points.csv", drop=("seconds",))  # no wall times: a
    # rebuild with the same code writes the same files
    total = len(res.points) + res.errors
    text = [f"# {rspec.title}", ""]
    if rspec.intro:
        text += [rspec.intro.strip(), ""]
    text += [
        f"Generated by `{command}`. The sweep's results are in `results.sqlite` here (not in "
        "version control: the command rebuilds it), every point in `points.csv` and its "
        "layers in `points.layers.csv`.",
        "",
        "## Sweep",
        "",
        *_sweep_summary(spec, meta, total, res.errors),
        "",
        "## What the results show",
        "",
        *[f"- {line}" for line in reading(res)],
        "",
        "## Plots",
        "",
    ]
    for fig in figures:
        text += [fig, ""]
    text += ["## Points", "", points_table(results_path, rspec.columns), ""]
    readme = folder / "README.md"
    atomic_write_text(readme, "\n".join(text))
    return readme
