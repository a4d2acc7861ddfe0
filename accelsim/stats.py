"""Statistics of a simulated run: counters per (layer tag, unit), totals and per-layer rows.

Counting is kept apart from computing: `Stats` holds integer counts (cycles, instructions,
MACs by operand widths, bytes and bits moved, element operations); `accelsim.energy` turns them
into picojoules later, so a new energy table re-costs a finished run without simulating.

Every output field is defined once, with its unit, in `FIELDS`; `fields_markdown()` renders that
table for the docs. Counter names with a `<...>` part are families: `sram_read_bits_<buf>` (one
per buffer, e.g. `sram_read_bits_wgt`). MACs are counted per (tag, unit) and per operand widths
`MacWidths(a_bits, w_bits)`, next to the peak MACs per cycle each unit reports at those widths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class MacWidths(NamedTuple):
    """Operand widths a MAC count is kept by: a_bits-bit activations x w_bits-bit weights."""

    a_bits: int
    w_bits: int


# name -> (unit, description). Counters first (kept per (tag, unit)), then derived totals.
FIELDS: dict[str, tuple[str, str]] = {
    "instructions": ("count", "instructions executed"),
    "busy_cycles": (
        "cycles",
        "cycles a unit spends executing (sum of its cost model; a DMA "
        "transfer's latency and data phase, without bus waits)",
    ),
    "stall_token_cycles": ("cycles", "cycles an instruction waited for tokens before starting"),
    "stall_dram_cycles": ("cycles", "cycles a DMA transfer waited for the shared DRAM bus"),
    "macs_by_width": (
        "MACs",
        "multiply-accumulates per operand widths (a_bits, w_bits), per (tag, unit) "
        "(Stats.macs_by_width; JSON: [a_bits, w_bits, MACs] rows)",
    ),
    "dram_read_bytes": ("bytes", "bytes read from DRAM (whole bytes per block row)"),
    "dram_write_bytes": ("bytes", "bytes written to DRAM"),
    "sram_read_bits_<buf>": (
        "bits",
        "bits read from on-chip buffer <buf> (whole rows; "
        "includes the array re-reading operand tiles)",
    ),
    "sram_write_bits_<buf>": ("bits", "bits written to on-chip buffer <buf> (whole rows)"),
    "rescale_ops": ("elements", "accumulators rescaled"),
    "rescale_bias_frac_bits": (
        "element-bits",
        "sum over rescaled accumulators of the RESCALE bias fractional bits F (the bias adder "
        "is 32 + F bits wide; absent when every F is 0)",
    ),
    "quant_ops": ("elements", "elements quantized"),
    "vector_ops": ("elements", "elements processed by the vector ALU (window reads for pooling)"),
    "rescale_mismatch_vs_rne": (
        "elements",
        "rescaled outputs that differ from round-half-even (datapath mode only; 0 with count_only)",
    ),
    "svge_pairs": ("pairs", "kernel-map pairs (in, out, offset) built by SVG_MAP"),
    "svge_gathers": (
        "rows",
        "input feature rows gathered by SVG_CONV (each pair once per output-channel tile)",
    ),
    "svge_scatters": ("rows", "accumulator rows scatter-added by SVG_CONV"),
    "svge_pairs_g<g>": ("pairs", "pairs of the tiles of voxel group g (hardware layout groups)"),
    "svge_map_cycles": ("cycles", "busy cycles of SVG_MAP (kernel map building)"),
    "svge_map_hash_ops": (
        "operations",
        "hash-table inserts and probes of SVG_MAP (map_method hash): n_in + n_out * kernel^3",
    ),
    "svge_map_sort_ops": (
        "operations",
        "sorter and merge steps of SVG_MAP (map_method sort): ceil(n log2 n) + kernel^3 * n",
    ),
    "svge_conv_cycles": ("cycles", "busy cycles of SVG_CONV (gather-GEMM-scatter)"),
    "svge_engine_cycles_e<e>": ("cycles", "busy cycles of SVGE engine e"),
    "svge_used_inputs": ("voxels", "input voxels the tiles' maps read (summed over tiles)"),
    "svge_halo_inputs": ("voxels", "of those, voxels also read by another tile (halo)"),
    "svge_group_imbalance": (
        "ratio",
        "derived: max / mean of svge_pairs_g<g> over the svge.groups groups (1.0 = even)",
    ),
    "svge_engine_imbalance": (
        "ratio",
        "derived: max / mean of svge_engine_cycles_e<e> over the "
        "svge.engines engines (the makespan's overhead)",
    ),
    "svge_halo_fraction": ("fraction", "derived: svge_halo_inputs / svge_used_inputs"),
    "svge_map_share": ("fraction", "derived: svge_map_cycles / (map + conv cycles)"),
    "tag": ("id", "layer row: instruction tag of the layer"),
    "layer": ("name", "layer row: layer name (Program.tags)"),
    "layer_cycles": ("cycles", "span of a layer: first start to last end of its instructions"),
    "start_cycle": ("cycles", "layer row: start of its first instruction"),
    "end_cycle": ("cycles", "layer row: end of its last instruction"),
    "busy_cycles_<unit>": ("cycles", "layer row: busy cycles of one unit (load, matmul, ...)"),
    "latency_cycles": ("cycles", "end of the last instruction of the run"),
    "latency_s": ("s", "latency at the configured clock"),
    "macs": ("MACs", "multiply-accumulates, all widths"),
    "tops": ("TOPS", "2 * MACs / latency_s / 1e12"),
    "dram_bytes": ("bytes", "DRAM bytes read plus written"),
    "dram_bw_gbps": ("GB/s", "achieved DRAM bandwidth: dram_bytes / latency_s / 1e9"),
    "dram_bw_share": ("fraction", "achieved DRAM bandwidth / peak bandwidth"),
    "utilisation": (
        "fraction",
        "array-cycles the MACs used over those available: sum over units and widths of "
        "MACs / peak * arrays, over latency * arrays of the units that ran MACs; a unit's peak "
        "is R * C * f / passes per array (matmul: 1 array, svge: svge.engines), so it is at "
        "most 1, also on several SVGE engines",
    ),
    "tokens_left": ("tokens", "tokens still in a FIFO at the end (unbalanced signal/wait)"),
}


def fields_markdown() -> str:
    """The `FIELDS` table as Markdown (name, unit, description)."""
    lines = ["| field | unit | description |", "|---|---|---|"]
    lines += [f"| `{k}` | {u} | {d} |" for k, (u, d) in FIELDS.items()]
    return "\n".join(lines)


def svge_derived(s: dict, machine: dict) -> dict:
    """Ratios of the sparse engine's counters in `s` (empty if it did no work): group and
    engine imbalance (max / mean, mean over all svge_groups / svge_engines of `machine`),
    halo fraction and the share of map building in its busy cycles."""
    if not s.get("svge_map_cycles") and not s.get("svge_conv_cycles"):
        return {}

    def imbalance(prefix: str, n: int) -> float:
        vals = [v for k, v in s.items() if k.startswith(prefix)]
        total = sum(vals)
        return max(vals) * max(n, len(vals)) / total if total else 1.0

    busy = s.get("svge_map_cycles", 0) + s.get("svge_conv_cycles", 0)
    used = s.get("svge_used_inputs", 0)
    return {
        "svge_group_imbalance": imbalance("svge_pairs_g", machine.get("svge_groups", 1)),
        "svge_engine_imbalance": imbalance("svge_engine_cycles_e", machine.get("svge_engines", 1)),
        "svge_halo_fraction": s.get("svge_halo_inputs", 0) / used if used else 0.0,
        "svge_map_share": s.get("svge_map_cycles", 0) / busy if busy else 0.0,
    }


def _add_into(dst: dict, src: dict) -> None:
    for k, v in src.items():
        dst[k] = dst.get(k, 0) + v


@dataclass
class Stats:
    """Counters of one run (or a sum of runs).

    `counters`: (tag, unit name) -> counter name -> int. `mac_counts`: (tag, unit name) ->
    `MacWidths` -> MACs. `layer_span`: tag -> (first start, last end) in cycles.
    `peak_macs_per_cycle`: (unit name, a_bits, w_bits) -> MACs per cycle of that unit at those
    widths over all its arrays, as the unit reports it. `machine`: clock_mhz,
    peak_dram_bytes_per_cycle, array rows/cols, `mac_arrays` (unit name -> MAC arrays), ...
    """

    counters: dict = field(default_factory=dict)
    latency_cycles: int = 0
    layer_span: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)
    machine: dict = field(default_factory=dict)
    peak_macs_per_cycle: dict = field(default_factory=dict)
    tokens_left: dict = field(default_factory=dict)
    mac_counts: dict = field(default_factory=dict)

    def __add__(self, other: Stats) -> Stats:
        """Two runs back to back: counters add, latencies add, the second run's layer spans
        are shifted by the first run's latency."""
        counters = {k: dict(v) for k, v in self.counters.items()}
        for k, v in other.counters.items():
            _add_into(counters.setdefault(k, {}), v)
        macs = {k: dict(v) for k, v in self.mac_counts.items()}
        for k, v in other.mac_counts.items():
            _add_into(macs.setdefault(k, {}), v)
        spans = dict(self.layer_span)
        for tag, (s, e) in other.layer_span.items():
            s, e = s + self.latency_cycles, e + self.latency_cycles
            spans[tag] = (min(s, spans[tag][0]), max(e, spans[tag][1])) if tag in spans else (s, e)
        tokens = dict(self.tokens_left)
        _add_into(tokens, other.tokens_left)
        return Stats(
            counters,
            self.latency_cycles + other.latency_cycles,
            spans,
            {**self.tags, **other.tags},
            self.machine or other.machine,
            {**self.peak_macs_per_cycle, **other.peak_macs_per_cycle},
            tokens,
            macs,
        )

    def shift_tags(self, offset: int) -> Stats:
        """Copy with every layer tag increased by `offset`, so that the statistics of separate
        programs (each numbering its layers from 1) add up with one row per layer."""
        return Stats(
            {(t + offset, u): dict(c) for (t, u), c in self.counters.items()},
            self.latency_cycles,
            {t + offset: span for t, span in self.layer_span.items()},
            {t + offset: name for t, name in self.tags.items()},
            dict(self.machine),
            dict(self.peak_macs_per_cycle),
            dict(self.tokens_left),
            {(t + offset, u): dict(c) for (t, u), c in self.mac_counts.items()},
        )

    def total(self, name: str, tag: int | None = None, unit: str | None = None) -> int:
        """Sum of counter `name` over (tag, unit) rows matching the given tag and/or unit."""
        return sum(
            c.get(name, 0)
            for (t, u), c in self.counters.items()
            if (tag is None or t == tag) and (unit is None or u == unit)
        )

    def summed(self, tag: int | None = None) -> dict:
        """All counters summed over units (and over tags when tag is None)."""
        out: dict = {}
        for (t, _), c in self.counters.items():
            if tag is None or t == tag:
                _add_into(out, c)
        return out

    def per_tag(self) -> dict:
        """tag -> (its counters summed over units, its (unit name, MacWidths) -> MACs), in
        one pass over the rows: what `summed(tag)` and the MAC queries give, for code that
        asks for every layer."""
        out: dict = {}
        for (t, _), c in self.counters.items():
            _add_into(out.setdefault(t, ({}, {}))[0], c)
        for (t, u), c in self.mac_counts.items():
            _add_into(out.setdefault(t, ({}, {}))[1], {(u, w): n for w, n in c.items()})
        return out

    def _macs_by_unit(self, tag: int | None = None) -> dict:
        """(unit name, MacWidths) -> MACs, summed over tags (or of one tag)."""
        out: dict = {}
        for (t, u), c in self.mac_counts.items():
            if tag is None or t == tag:
                _add_into(out, {(u, w): n for w, n in c.items()})
        return out

    def macs_by_width(self, tag: int | None = None) -> dict:
        """`MacWidths` -> MACs, summed over units (and over tags when tag is None)."""
        out: dict = {}
        for (_, w), n in self._macs_by_unit(tag).items():
            out[w] = out.get(w, 0) + n
        return out

    def macs(self, tag: int | None = None) -> int:
        """Multiply-accumulates at all widths (of one tag, or of the run)."""
        return sum(self.macs_by_width(tag).values())

    @property
    def latency_s(self) -> float:
        return self.latency_cycles * 1e-6 / self.machine.get("clock_mhz", 1.0)

    def _utilisation(self, tag: int | None, cycles: int, by_unit: dict | None = None) -> float:
        """Array-cycles the MACs took over the array-cycles available (see FIELDS); `by_unit`:
        the tag's `_macs_by_unit`, if at hand."""
        arrays = self.machine.get("mac_arrays", {})
        used, units = 0.0, set()
        by_unit = self._macs_by_unit(tag) if by_unit is None else by_unit
        for (u, w), n in by_unit.items():
            peak = self.peak_macs_per_cycle.get((u, *w))
            if peak:
                used += n / peak * arrays.get(u, 1)
                units.add(u)
        available = cycles * sum(arrays.get(u, 1) for u in units)
        return used / available if available else 0.0

    def totals(self) -> dict:
        """Run totals (see FIELDS): latency, MACs, TOPS, DRAM bandwidth, utilisation, stalls."""
        s = self.summed()
        secs = self.latency_s
        dram = s.get("dram_read_bytes", 0) + s.get("dram_write_bytes", 0)
        peak_bw = self.machine.get("peak_dram_bytes_per_cycle", 0.0)
        macs = self.macs()
        return {
            "latency_cycles": self.latency_cycles,
            "latency_s": secs,
            "instructions": s.get("instructions", 0),
            "macs": macs,
            "tops": 2 * macs / secs / 1e12 if secs else 0.0,
            "dram_bytes": dram,
            "dram_read_bytes": s.get("dram_read_bytes", 0),
            "dram_write_bytes": s.get("dram_write_bytes", 0),
            "dram_bw_gbps": dram / secs / 1e9 if secs else 0.0,
            "dram_bw_share": dram / (self.latency_cycles * peak_bw)
            if self.latency_cycles and peak_bw
            else 0.0,
            "utilisation": self._utilisation(None, self.latency_cycles),
            "stall_token_cycles": s.get("stall_token_cycles", 0),
            "stall_dram_cycles": s.get("stall_dram_cycles", 0),
            "rescale_mismatch_vs_rne": s.get("rescale_mismatch_vs_rne", 0),
            "tokens_left": sum(self.tokens_left.values()),
        }

    def layer_rows(self) -> list[dict]:
        """One row per layer tag: name, span cycles, busy cycles per unit, MACs, bytes, ..."""
        rows = []
        busy: dict = {}  # tag -> [(unit, busy cycles)] in unit order
        for (t, u), c in sorted(self.counters.items()):
            busy.setdefault(t, []).append((u, c.get("busy_cycles", 0)))
        grouped = self.per_tag()
        for tag in sorted(busy):
            s, by_unit = grouped[tag]
            start, end = self.layer_span.get(tag, (0, 0))
            row = {
                "tag": tag,
                "layer": self.tags.get(tag, f"tag{tag}"),
                "layer_cycles": end - start,
                "start_cycle": start,
                "end_cycle": end,
                "macs": sum(by_unit.values()),
                "utilisation": self._utilisation(tag, end - start, by_unit),
            }
            for u, cycles in busy[tag]:
                row[f"busy_cycles_{u}"] = cycles
            row.update({k: v for k, v in sorted(s.items()) if k != "busy_cycles"})
            row.update(svge_derived(s, self.machine))
            rows.append(row)
        return rows

    def to_dict(self) -> dict:
        """JSON-ready dict (see `from_dict`); includes the totals for convenience. MAC counts
        are rows [a_bits, w_bits, MACs] under each counter row's `macs_by_width`."""
        counters = []
        for (t, u), c in sorted(self.counters.items()):
            macs = self.mac_counts.get((t, u), {})
            extra = {"macs_by_width": [[*w, n] for w, n in macs.items()]} if macs else {}
            counters.append({"tag": t, "unit": u, **c, **extra})
        return {
            "counters": counters,
            "latency_cycles": self.latency_cycles,
            "layer_span": {str(t): list(v) for t, v in self.layer_span.items()},
            "tags": {str(t): n for t, n in self.tags.items()},
            "machine": dict(self.machine),
            "peak_macs_per_cycle": [[*k, v] for k, v in self.peak_macs_per_cycle.items()],
            "tokens_left": dict(self.tokens_left),
            "totals": self.totals(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Stats:
        """Inverse of `to_dict` (the `totals` entry is ignored: it is derived)."""
        counters, macs = {}, {}
        for row in d.get("counters", []):
            row = dict(row)
            key = (int(row.pop("tag")), str(row.pop("unit")))
            by_width = row.pop("macs_by_width", [])
            counters[key] = row
            if by_width:
                macs[key] = {MacWidths(int(a), int(w)): int(n) for a, w, n in by_width}
        peaks = {(str(u), int(a), int(w)): p for u, a, w, p in d.get("peak_macs_per_cycle", [])}
        return cls(
            counters,
            int(d.get("latency_cycles", 0)),
            {int(t): tuple(v) for t, v in d.get("layer_span", {}).items()},
            {int(t): n for t, n in d.get("tags", {}).items()},
            dict(d.get("machine", {})),
            peaks,
            dict(d.get("tokens_left", {})),
            macs,
        )


class Recorder:
    """Mutable per-instruction record the units write during a run (start, end, stalls) plus
    data-dependent counts; `accelsim.sim` folds it into a `Stats` at the end."""

    def __init__(self, n_insns: int):
        self.start = [0] * n_insns
        self.end = [0] * n_insns
        self.stall_token = [0] * n_insns
        self.stall_dram = [0] * n_insns
        self.extra: list = []  # (insn index, counter name, value)

    def add(self, insn, name: str, value: int) -> None:
        self.extra.append((insn.index, name, value))
