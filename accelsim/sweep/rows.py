"""A simulated run as rows of the results tables: one `points` row of totals and one `layers`
row per layer, under the names `accelsim run --json` uses, plus every energy component.

Energy columns come from one function, `energy_columns`, both when a point runs and when
`accelsim recost` re-costs its stored counts with another table, so the two agree exactly.
"""

from __future__ import annotations

from accelsim.config import HwConfig
from accelsim.energy import EnergyTable, energy_report, load_energy_table
from accelsim.isa import Buf
from accelsim.report import summarize
from accelsim.stats import Stats

# energy components (accelsim.energy), each an `energy_<name>_pj` column of both tables
ENERGY_COMPONENTS = (
    "mac",
    "svge_map",
    *(f"sram_{b.name.lower()}" for b in Buf),
    "dram",
    "rescale",
    "quant",
    "vector",
    "leakage",
)


def energy_columns(stats: Stats, table: EnergyTable) -> tuple[dict, dict]:
    """(point columns, {layer tag: layer columns}): energy_pj, every energy_<component>_pj
    and, for the point, tops_per_w (2 * MACs / energy)."""
    rep = energy_report(stats, table)
    names = list(ENERGY_COMPONENTS) + sorted(set(rep.by_component) - set(ENERGY_COMPONENTS))

    def split(parts: dict) -> dict:
        return {f"energy_{c}_pj": parts.get(c, 0.0) for c in names}

    point = {"energy_pj": rep.total_pj, "tops_per_w": rep.tops_per_w, **split(rep.by_component)}
    layers = {
        tag: {"energy_pj": sum(parts.values()), **split(parts)}
        for tag, parts in rep.per_layer.items()
    }
    return point, layers


def peak_macs_per_cycle(stats: Stats) -> float:
    """MACs per cycle the machine would reach on this run's mix of units and widths with every
    array busy: MACs / sum over (unit, widths) of MACs / that unit's peak (0 without MACs)."""
    slots = 0.0
    for (_, unit), by_width in stats.mac_counts.items():
        for w, n in by_width.items():
            peak = stats.peak_macs_per_cycle.get((unit, *w))
            slots += n / peak if peak else 0.0
    return stats.macs() / slots if slots else 0.0


def run_rows(result, cfg: HwConfig) -> tuple[dict, list[dict]]:
    """(points row, layers rows) of a run (a result with `stats` and a graph or name)."""
    stats = result.stats
    summary = summarize(result, cfg)
    point = {k: v for k, v in summary.items() if not isinstance(v, (dict, list)) and k != "config"}
    point["preset"] = summary["config"]
    energy, layer_energy = energy_columns(stats, load_energy_table(cfg.energy.table))
    point.update(energy)
    point["rescale_outputs"] = stats.summed().get("rescale_ops", 0)  # mismatch denominator
    point["peak_macs_per_cycle"] = peak_macs_per_cycle(stats)
    point["peak_dram_bytes_per_cycle"] = float(stats.machine.get("peak_dram_bytes_per_cycle", 0))
    layers = []
    tags = sorted({t for t, _ in stats.counters})  # the order of `Stats.layer_rows`
    for i, (row, tag) in enumerate(zip(summary["layers"], tags)):
        layers.append({"layer_index": i, "tag": tag, **row, **layer_energy.get(tag, {})})
    return point, layers
