"""The design-space plots of a results file; each function returns a matplotlib `Figure`.

- `bits`: latency and energy against the A/W widths, one line per combination of the other
  swept values;
- `pareto`: latency against energy, one panel per workload, its Pareto front (no point faster
  and cheaper) drawn as a line, colour = the machine's test accuracy where it is known;
- `groups`: MACs, latency and energy against the voxel group count `svge.groups`;
- `roofline`: operations per DRAM byte against achieved operations per cycle, under the
  machine's roof min(2 * peak MACs/cycle, intensity * DRAM bytes/cycle), one per distinct
  machine (peak at the point's MAC widths), each point in its roof's colour;
- `breakdown`: one point's energy per layer, stacked by component;
- `layers`: one point's per-layer latency (span cycles) as bars;
- `rescale`: the share of rescaled outputs that differ from round-half-even and the rescale
  energy, per rescale multiplier width and rounding mode (sweeps that vary them; mismatches
  are counted when `timing_only = false`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from accelsim.errors import AccelsimError
from accelsim.plots.data import Results, bits_order, pareto_front
from accelsim.plots.names import KIND_NAMES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LATENCY = ("latency_ms", "latency (ms)", 1.0)
ENERGY = ("energy_pj", "energy (µJ)", 1e-6)
MAX_LABELS = 12  # label every point of a panel up to this many; beyond, only the Pareto front
WIDE_RANGE = 8  # an axis whose values span more than this ratio is drawn on a log scale
MAX_ROOFS = 8  # roofs drawn in colours of their own (their points alike) up to this many


def _series(res: Results, x_key: str) -> dict[str, list[dict]]:
    """Points grouped by the varying keys other than `x_key` (label -> points)."""
    others = [k for k in res.varying() if k != x_key]
    groups: dict[str, list[dict]] = {}
    for p in res.points:
        groups.setdefault(res.label(p, others) if others else "", []).append(p)
    return groups


def _need(res: Results, what: str) -> None:
    if not res.points:
        raise AccelsimError(f"{res.path}: no finished (ok) points to plot ({what})")


def _figure(**kwargs) -> Figure:
    """A new matplotlib Figure (matplotlib loads here, not when the command line starts)."""
    from matplotlib.figure import Figure  # noqa: PLC0415

    return Figure(**kwargs)


def _coincident(pts, xs, ys) -> dict:
    """(x, y) -> the points drawn there (points with equal results share one label)."""
    at: dict = {}
    for p, x, y in zip(pts, xs, ys):
        at.setdefault((x, y), []).append(p)
    return at


def _label(res: Results, group: list[dict], keys: list[str] | None = None) -> str:
    more = f" (+{len(group) - 1} equal)" if len(group) > 1 else ""
    return res.label(group[0], keys) + more


def bits(res: Results) -> Figure:
    """Latency (ms) and energy (µJ) against A/W bits, widest first."""
    _need(res, "bits")
    labels = sorted({p["bits"] for p in res.points if p["bits"]}, key=bits_order)
    if not labels:
        raise AccelsimError(f"{res.path}: no point has bits (model files only): nothing to plot")
    fig = _figure(figsize=(10, 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, (col, ylabel, scale) in zip(axes, (LATENCY, ENERGY)):
        for name, pts in _series(res, "bits").items():
            pts = sorted((p for p in pts if p["bits"]), key=lambda p: labels.index(p["bits"]))
            xs = [labels.index(p["bits"]) for p in pts]
            ax.plot(xs, [p[col] * scale for p in pts], "o-", label=name or None)
        ax.set_xticks(range(len(labels)), labels)
        ax.set_xlabel("bits (activations / weights)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    if any(line.get_label() and not line.get_label().startswith("_") for line in axes[0].lines):
        axes[0].legend(fontsize="small")
    fig.suptitle(f"{res.meta.get('name', '')}: latency and energy by bit width")
    return fig


def pareto(res: Results) -> Figure:
    """Latency (ms) against energy (µJ), one panel per workload, each with its Pareto front
    as a line; accuracy as colour where known."""
    _need(res, "pareto")
    by_workload: dict[str, list[dict]] = {}
    for p in res.points:
        by_workload.setdefault(p["workload"], []).append(p)
    n = len(by_workload)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig = _figure(figsize=(6.5 * cols + 1, 5 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    accuracy = [p.get("accuracy") for p in res.points if p.get("accuracy") is not None]
    norm = None
    if accuracy:
        from matplotlib.colors import Normalize  # noqa: PLC0415

        norm = Normalize(100 * min(accuracy), 100 * max(accuracy))
    keys = [k for k in res.varying() if k != "workload"]
    for ax, (workload, pts) in zip(axes, by_workload.items()):
        sc = _pareto_panel(ax, res, pts, keys, norm)
        ax.set_title(workload)
    for ax in axes[n:]:
        ax.set_visible(False)
    if norm is not None:
        fig.colorbar(sc, ax=axes[:n].tolist(), label="test accuracy on the machine (%)")
    fig.suptitle(f"{res.meta.get('name', '')}: latency against energy")
    return fig


def _pareto_panel(ax, res: Results, pts: list[dict], keys: list[str], norm):
    """One workload's points, its front (a dashed line of squares) and their labels."""
    xs = [p["energy_pj"] * 1e-6 for p in pts]
    ys = [p["latency_ms"] for p in pts]
    front = pareto_front(xs, ys)
    if norm is not None:
        colour = [
            100 * p["accuracy"] if p.get("accuracy") is not None else float("nan") for p in pts
        ]
        sc = ax.scatter(
            xs, ys, c=colour, cmap="viridis", norm=norm, s=36, label="design points", zorder=2
        )
    else:
        sc = ax.scatter(xs, ys, s=36, color="tab:blue", label="design points", zorder=2)
    on = sorted((x, y) for x, y, f in zip(xs, ys, front) if f)
    ax.plot(
        [x for x, _ in on],
        [y for _, y in on],
        "s--",
        color="tab:red",
        mfc="none",
        ms=10,
        label="Pareto front",
        zorder=3,
    )
    labelled = 0
    for (x, y), group in sorted(_coincident(pts, xs, ys).items()):
        on_front = front[pts.index(group[0])]
        if on_front or len(pts) <= MAX_LABELS:
            # neighbouring points' labels are staggered vertically so that they stay legible
            ax.annotate(
                _label(res, group, keys),
                (x, y),
                textcoords="offset points",
                xytext=(5, 4 + 9 * (labelled % 3)),
                fontsize=7,
                color="tab:red" if on_front else "0.3",
            )
            labelled += 1
    for values, set_scale, axis in ((xs, ax.set_xscale, ax.xaxis), (ys, ax.set_yscale, ax.yaxis)):
        if min(values) > 0 and max(values) > WIDE_RANGE * min(values):
            set_scale("log")  # points a decade or more apart would crowd into one corner
            _plain_log_ticks(axis)
    ax.set_xlabel("energy per inference (µJ)")
    ax.set_ylabel("latency (ms)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return sc


def _plain_log_ticks(axis) -> None:
    """Ticks of a log axis as plain numbers (10, 20, 50) rather than powers of ten."""
    from matplotlib.ticker import LogLocator, StrMethodFormatter  # noqa: PLC0415

    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(StrMethodFormatter("{x:g}"))
    axis.set_minor_formatter(StrMethodFormatter(""))


def groups(res: Results) -> Figure:
    """MACs (M), latency (M cycles) and energy (µJ) against svge.groups."""
    key = "svge.groups"
    if key not in res.swept:
        raise AccelsimError(f"{res.path}: --kind groups needs {key} among the swept keys")
    _need(res, "groups")
    fig = _figure(figsize=(13, 4.2), layout="constrained")
    axes = fig.subplots(1, 3)
    panels = (
        ("macs", "MACs (millions)", 1e-6),
        ("latency_cycles", "latency (million cycles)", 1e-6),
        ("energy_pj", "energy (µJ)", 1e-6),
    )
    for ax, (col, ylabel, scale) in zip(axes, panels):
        for name, pts in _series(res, key).items():
            pts = sorted(pts, key=lambda p: p[key])
            ax.plot([p[key] for p in pts], [p[col] * scale for p in pts], "o-", label=name or None)
        ax.set_xscale("log", base=2)
        values = sorted({p[key] for p in res.points})
        ax.set_xticks(values, [str(v) for v in values])
        ax.set_xlabel("voxel groups G")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    if len(_series(res, key)) > 1:
        axes[0].legend(fontsize="small")
    fig.suptitle(f"{res.meta.get('name', '')}: MACs, latency and energy by voxel group count")
    return fig


def roofline(res: Results) -> Figure:
    """Achieved ops per cycle against ops per DRAM byte, under each machine's roof."""
    _need(res, "roofline")
    pts = [p for p in res.points if p["dram_bytes"] and p["macs"]]
    if not pts:
        raise AccelsimError(f"{res.path}: no point with MACs and DRAM traffic to place")
    fig = _figure(figsize=(7.5, 5.5), layout="constrained")
    ax = fig.subplots()
    xs = [2 * p["macs"] / p["dram_bytes"] for p in pts]
    ys = [2 * p["macs"] / p["latency_cycles"] for p in pts]
    lo, hi = min(xs) / 4, max(xs) * 4
    machine = [(p["peak_macs_per_cycle"], p["peak_dram_bytes_per_cycle"]) for p in pts]
    machines = sorted(set(machine))
    many = len(machines) > MAX_ROOFS  # then one colour: too many to tell apart
    for i, (peak, bw) in enumerate(machines):
        colour = "0.4" if many else f"C{i}"
        knee = 2 * peak / bw
        gx = [lo, knee, hi] if lo < knee < hi else [lo, hi]
        ax.plot(
            gx,
            [min(2 * peak, x * bw) for x in gx],
            "-",
            color=colour,
            lw=1,
            label=f"roof {2 * peak:,.0f} ops/cycle, {bw:g} B/cycle"
            if not many or i == 0
            else "_roof",
        )
        ax.annotate(
            f"{2 * peak:,.0f}",
            (hi, min(2 * peak, hi * bw)),
            fontsize=7,
            color=colour,
            textcoords="offset points",
            xytext=(2, 0),
            va="center",
        )
        mine = [j for j, m in enumerate(machine) if m == (peak, bw)]
        ax.scatter(
            [xs[j] for j in mine],
            [ys[j] for j in mine],
            s=30,
            color=colour,
            zorder=3,
            label="_points" if not many else ("design points" if i == 0 else "_points"),
        )
    if len(pts) <= MAX_LABELS:
        for (x, y), group in _coincident(pts, xs, ys).items():
            ax.annotate(
                _label(res, group),
                (x, y),
                textcoords="offset points",
                xytext=(4, -8),
                fontsize=7,
                color="0.3",
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("operational intensity (ops / DRAM byte)")
    ax.set_ylabel("achieved throughput (ops / cycle)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    ax.set_title(f"{res.meta.get('name', '')}: roofline (1 MAC = 2 ops)")
    return fig


def breakdown(res: Results, point: str | None = None) -> Figure:
    """One point's energy per layer (µJ), stacked by component."""
    p = res.point(point)
    layers = res.layers_of(p["point_id"])
    comps = [k for k in layers[0] if k.startswith("energy_") and k != "energy_pj"] if layers else []
    comps = [c for c in comps if any(r[c] for r in layers)]
    fig = _figure(figsize=(max(7, 0.35 * len(layers) + 3), 5), layout="constrained")
    ax = fig.subplots()
    bottom = [0.0] * len(layers)
    for c in comps:
        vals = [r[c] * 1e-6 for r in layers]
        ax.bar(range(len(layers)), vals, bottom=bottom, label=c.removeprefix("energy_")[:-3])
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_xticks(range(len(layers)), [r["name"] for r in layers], rotation=90, fontsize=7)
    ax.set_xlabel("layer")
    ax.set_ylabel("energy (µJ)")
    ax.legend(fontsize="small", ncols=2)
    ax.set_title(f"energy by component per layer: {res.label(p)}")
    return fig


def layers(res: Results, point: str | None = None) -> Figure:
    """One point's per-layer latency (cycles from a layer's first start to its last end)."""
    p = res.point(point)
    rows = res.layers_of(p["point_id"])
    fig = _figure(figsize=(max(7, 0.35 * len(rows) + 3), 4.8), layout="constrained")
    ax = fig.subplots()
    ax.bar(range(len(rows)), [r["cycles"] for r in rows], color="tab:blue")
    ax.set_xticks(range(len(rows)), [r["name"] for r in rows], rotation=90, fontsize=7)
    ax.set_xlabel("layer")
    ax.set_ylabel("latency (cycles)")
    ax.set_title(f"per-layer latency: {res.label(p)}")
    return fig


def rescale(res: Results) -> Figure:
    """Per workload and rescale setting (the swept rescale keys): the share of rescaled
    outputs that differ from round-half-even, and the rescale unit's energy."""
    keys = [k for k in ("rescale.mult_bits", "rescale.round_mode") if k in res.swept]
    if not keys:
        raise AccelsimError(
            f"{res.path}: --kind rescale needs rescale.mult_bits or "
            "rescale.round_mode among the swept keys"
        )
    _need(res, "rescale")
    settings = sorted({tuple(p[k] for k in keys) for p in res.points}, key=str)
    names = [", ".join(str(v) for v in s) for s in settings]
    fig = _figure(figsize=(max(9, 1.4 * len(settings) + 5), 4.5), layout="constrained")
    share_ax, energy_ax = fig.subplots(1, 2)
    groups = _by_setting(res, keys, settings)
    width = 0.8 / max(len(groups), 1)
    for i, (label, at) in enumerate(groups.items()):
        xs = [j + (i - (len(groups) - 1) / 2) * width for j in range(len(settings))]
        share = [
            100
            * _sum(at.get(s), "rescale_mismatch_vs_rne")
            / max(_sum(at.get(s), "rescale_outputs"), 1)
            for s in settings
        ]
        energy = [_sum(at.get(s), "energy_rescale_pj") * 1e-6 for s in settings]
        share_ax.bar(xs, share, width, label=label)
        energy_ax.bar(xs, energy, width, label=label)
    for ax in (share_ax, energy_ax):
        ax.set_xticks(range(len(settings)), names, rotation=30, ha="right", fontsize=8)
        ax.set_xlabel(" / ".join(k.split(".")[-1] for k in keys))
        ax.grid(alpha=0.3, axis="y")
    share_ax.set_ylabel("outputs differing from round-half-even (%)")
    energy_ax.set_ylabel("rescale energy (µJ)")
    share_ax.legend(fontsize="small")
    fig.suptitle(f"{res.meta.get('name', '')}: rescale multiplier and rounding")
    return fig


def _by_setting(res: Results, keys: list[str], settings) -> dict:
    """Series label (the other varying keys) -> rescale setting -> its points."""
    others = [k for k in res.varying() if k not in keys]
    out: dict = {}
    for p in res.points:
        label = res.label(p, others) if others else res.meta.get("name", "")
        out.setdefault(label, {}).setdefault(tuple(p[k] for k in keys), []).append(p)
    return out


def _sum(points, col: str) -> float:
    return sum(p.get(col) or 0 for p in points or [])


KINDS = {
    "bits": bits,
    "pareto": pareto,
    "groups": groups,
    "breakdown": breakdown,
    "roofline": roofline,
    "layers": layers,
    "rescale": rescale,
}
POINT_KINDS = ("breakdown", "layers")  # plots of one point (--point)
if tuple(KINDS) != KIND_NAMES:  # pragma: no cover - a kind added in one place only
    raise ImportError("accelsim.plots.names.KIND_NAMES must list the keys of KINDS")
