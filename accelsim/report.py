"""Run reports: the per-layer table `accelsim run` prints and its JSON / CSV files.

The keys of the JSON file are defined, with their units, in `RUN_FIELDS` (rendered into the
README by `run_fields_markdown()`); the simulator's own counters are in `accelsim.stats.FIELDS`.
"""

from __future__ import annotations

import csv
import io
import json

from accelsim.config import HwConfig
from accelsim.energy import energy_report, load_energy_table
from accelsim.fileio import atomic_write_text
from accelsim.isa import Unit

UNITS = tuple(u.name.lower() for u in Unit)  # every unit gets a busy_cycles_<unit> column
# key -> (unit, description) for the totals and per-layer rows of `accelsim run --json/--csv`
RUN_FIELDS: dict[str, tuple[str, str]] = {
    "model": ("-", "model name"),
    "config": ("-", "hardware preset name"),
    "latency_cycles": ("cycles", "end of the last instruction"),
    "latency_ms": ("ms", "latency at the configured clock"),
    "macs": ("MACs", "multiply-accumulates"),
    "dram_bytes": ("bytes", "DRAM bytes read plus written"),
    "dram_bw_gbps": ("GB/s", "achieved DRAM bandwidth"),
    "dram_bw_share": ("fraction", "achieved / peak DRAM bandwidth"),
    "utilisation": ("fraction", "array MAC slots used over the run (see stats FIELDS)"),
    "energy_pj": ("pJ", "energy: MACs, buffers, DRAM, rescale/quant/vector ops and leakage"),
    "energy_by_component_pj": ("pJ", "energy split by component; sums to energy_pj"),
    "tops": ("TOPS", "2 * MACs / latency"),
    "tops_per_w": ("TOPS/W", "2 * MACs / energy"),
    "instructions": ("count", "instructions executed"),
    "rescale_mismatch_vs_rne": ("elements", "rescaled outputs differing from round-half-even"),
    "host_ops": (
        "list",
        "host operations run in NumPy before / after the machine program: name, op, stage",
    ),
    "rescale_options": (
        "dict",
        "layer -> cheaper rescale settings (mode/multiplier bits) that give the same outputs "
        "on this input (`accelsim.rescale_audit`; absent with --timing-only)",
    ),
    "layers": ("list", "one row per layer, in graph order, with the keys below"),
    "name": ("-", "layer (node) name"),
    "cycles": ("cycles", "span of the layer: its first instruction start to its last end"),
    "share": (
        "fraction",
        "cycles / latency_cycles (layers may overlap, so shares can exceed 1 in sum)",
    ),
    "compute_cycles": (
        "cycles",
        "busy cycles of the layer's array work: the matmul unit's (GEMM), or for sparse "
        "layers the SVGE's SVG_CONV cycles summed over engines; compare with SCALE-Sim's "
        "per-layer compute cycles",
    ),
    "busy_cycles_<unit>": (
        "cycles",
        "busy cycles of each unit for the layer: " + ", ".join(UNITS) + " (0 if unused)",
    ),
    "stall_token_cycles": (
        "cycles",
        "cycles the layer's instructions waited for tokens, summed over instructions (units "
        "wait at the same time, so the sum can exceed the layer's span)",
    ),
    "stall_dram_cycles": (
        "cycles",
        "cycles the layer's DMA transfers waited for the shared DRAM bus, summed likewise",
    ),
    "svge_*": (
        "-",
        "sparse layers only: svge_pairs, svge_map_cycles, svge_conv_cycles and the "
        "derived svge_group_imbalance, svge_engine_imbalance, svge_halo_fraction, "
        "svge_map_share (see stats FIELDS)",
    ),
}
SVGE_KEYS = (
    "svge_pairs",
    "svge_map_cycles",
    "svge_conv_cycles",
    "svge_group_imbalance",
    "svge_engine_imbalance",
    "svge_halo_fraction",
    "svge_map_share",
)


def run_fields_markdown() -> str:
    """`RUN_FIELDS` as a Markdown table."""
    lines = ["| key | unit | meaning |", "|---|---|---|"]
    lines += [f"| `{k}` | {u} | {d} |" for k, (u, d) in RUN_FIELDS.items()]
    return "\n".join(lines)


def _cycle_columns(row: dict) -> dict:
    """compute_cycles, busy_cycles_<unit> of every unit and the stalls of one layer row."""
    busy = {f"busy_cycles_{u}": row.get(f"busy_cycles_{u}", 0) for u in UNITS}
    compute = row["svge_conv_cycles"] if "svge_conv_cycles" in row else busy["busy_cycles_matmul"]
    return {
        "compute_cycles": compute,
        **busy,
        "stall_token_cycles": row.get("stall_token_cycles", 0),
        "stall_dram_cycles": row.get("stall_dram_cycles", 0),
    }


def summarize(result, cfg: HwConfig) -> dict:
    """Totals and per-layer rows of a run (a `RunResult` or `SequenceResult`: its `name` and
    `stats`) with energy from the config's table."""
    stats = result.stats
    tot = stats.totals()
    energy = energy_report(stats, load_energy_table(cfg.energy.table))
    layers = []
    for row in stats.layer_rows():
        e = sum(energy.per_layer.get(row["tag"], {}).values())
        dram = row.get("dram_read_bytes", 0) + row.get("dram_write_bytes", 0)
        layers.append(
            {
                "name": row["layer"],
                "cycles": row["layer_cycles"],
                "share": row["layer_cycles"] / tot["latency_cycles"]
                if tot["latency_cycles"]
                else 0.0,
                "macs": row["macs"],
                "utilisation": row["utilisation"],
                "dram_bytes": dram,
                "energy_pj": e,
                **_cycle_columns(row),
                **{k: row[k] for k in SVGE_KEYS if k in row},
            }
        )
    return {
        "model": result.name,
        "config": cfg.chip.name,
        "latency_cycles": tot["latency_cycles"],
        "latency_ms": tot["latency_s"] * 1e3,
        "macs": tot["macs"],
        "dram_bytes": tot["dram_bytes"],
        "dram_bw_gbps": tot["dram_bw_gbps"],
        "dram_bw_share": tot["dram_bw_share"],
        "utilisation": tot["utilisation"],
        "energy_pj": energy.total_pj,
        "energy_by_component_pj": energy.by_component,
        "tops": tot["tops"],
        "tops_per_w": energy.tops_per_w,
        "instructions": tot["instructions"],
        "rescale_mismatch_vs_rne": tot["rescale_mismatch_vs_rne"],
        "host_ops": _host_ops(result.graph),
        **({"rescale_options": result.rescale_options} if result.rescale_options else {}),
        "layers": layers,
    }


def _host_ops(graph) -> list[dict]:
    """The host operations of a dense graph, each with its stage (before / after the machine)."""
    from accelsim.ir.host_ops import is_host, split_host  # noqa: PLC0415

    nodes = getattr(graph, "nodes", [])
    if not any(is_host(n) for n in nodes):
        return []
    split = split_host(graph)
    return [
        {"name": n.name, "op": n.describe(), "stage": stage}
        for stage, part in (("before", split.pre), ("after", split.post))
        for n in part
    ]


def _fmt(v: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= div:
            return f"{v / div:.2f}{unit}"
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.3g}"


def _vector_line(s: dict, out) -> None:
    """Which layers ran on the vector unit (no array work: adds, pools, softmax, GELU, layer
    norm) and the unit's busy share of the latency."""
    on_vector = [
        r["name"] for r in s["layers"] if r["busy_cycles_vector"] and not r["compute_cycles"]
    ]
    if not on_vector or not s["latency_cycles"]:
        return
    busy = sum(r["busy_cycles_vector"] for r in s["layers"])
    print(
        f"vector     {busy:,} busy cycles = {busy / s['latency_cycles'] * 100:.1f}% of latency; "
        f"on the vector unit: {', '.join(on_vector)}",
        file=out,
    )


def format_report(summary: dict) -> str:
    """The text table `accelsim run` prints."""
    out = io.StringIO()
    head = (
        f"{'layer':<24}{'cycles':>10}{'share':>7}{'MACs':>10}{'util':>6}{'DRAM B':>10}"
        f"{'energy pJ':>11}"
    )
    print(f"model {summary['model']} on {summary['config']}", file=out)
    print(head, file=out)
    print("-" * len(head), file=out)
    for r in summary["layers"]:
        print(
            f"{r['name'][:23]:<24}{_fmt(r['cycles']):>10}{r['share'] * 100:>6.1f}%"
            f"{_fmt(r['macs']):>10}{r['utilisation'] * 100:>5.0f}%{_fmt(r['dram_bytes']):>10}"
            f"{_fmt(r['energy_pj']):>11}",
            file=out,
        )
    print("-" * len(head), file=out)
    s = summary
    print(f"latency    {s['latency_cycles']:,} cycles = {s['latency_ms']:.3f} ms", file=out)
    print(
        f"MACs       {s['macs']:,}  ({s['tops']:.3f} TOPS, array utilisation "
        f"{s['utilisation'] * 100:.1f}%)",
        file=out,
    )
    print(
        f"DRAM       {s['dram_bytes']:,} bytes, {s['dram_bw_gbps']:.2f} GB/s "
        f"({s['dram_bw_share'] * 100:.1f}% of peak)",
        file=out,
    )
    parts = ", ".join(
        f"{k} {v / s['energy_pj'] * 100:.0f}%"
        for k, v in sorted(s["energy_by_component_pj"].items(), key=lambda kv: -kv[1])
        if s["energy_pj"] and v / s["energy_pj"] >= 0.01
    )
    print(f"energy     {s['energy_pj'] / 1e6:.3f} uJ ({parts})", file=out)
    print(f"efficiency {s['tops_per_w']:.2f} TOPS/W", file=out)
    _vector_line(s, out)
    for stage in ("before", "after"):
        ops = [h for h in s["host_ops"] if h["stage"] == stage]
        if ops:
            text = "; ".join(f"{h['name']}: {h['op']}" for h in ops)
            print(f"host       {stage} the machine (NumPy): {text}", file=out)
    if s.get("rescale_options"):
        opts = s["rescale_options"]
        cheap = {k: v for k, v in opts.items() if v}
        print(
            f"rescale    {len(cheap)} of {len(opts)} requantizing layers give the same outputs "
            "on this input with a cheaper rescale:",
            file=out,
        )
        for name, v in cheap.items():
            print(f"             {name}: {', '.join(v)}", file=out)
    sparse = [r for r in s["layers"] if "svge_pairs" in r]
    if sparse:
        pairs = sum(r["svge_pairs"] for r in sparse)
        mp = sum(r["svge_map_cycles"] for r in sparse)
        cv = sum(r["svge_conv_cycles"] for r in sparse)
        worst = max(sparse, key=lambda r: r["svge_engine_imbalance"])
        print(
            f"sparse     {pairs:,} pairs; map {mp:,} / conv {cv:,} engine cycles; worst "
            f"engine imbalance {worst['svge_engine_imbalance']:.2f} ({worst['name']})",
            file=out,
        )
    return out.getvalue()


def print_report(result, cfg: HwConfig) -> dict:
    summary = summarize(result, cfg)
    print(format_report(summary), end="")
    return summary


def write_json(result, cfg: HwConfig, path) -> None:
    atomic_write_text(path, json.dumps(summarize(result, cfg), indent=2) + "\n")


def write_csv(result, cfg: HwConfig, path) -> None:
    rows = summarize(result, cfg)["layers"]
    columns = list(dict.fromkeys(k for r in rows for k in r))  # sparse rows add svge_* keys
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns or ["name"])
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())
