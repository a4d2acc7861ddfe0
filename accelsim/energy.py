"""Energy: turn a run's counts (`Stats`) into picojoules by component and layer.

    E = sum MACs(a, w) * e_mac(a, w) + sum_buf bits(buf) * e_bit(buf) + DRAM bits * e_dram
        + rescale/quant/vector element ops * e_op + map-building ops * e_map
        + leakage per cycle * latency

Per-operation energies come from a TOML table (`accelsim/configs/energy_<name>.toml`, default
`horowitz45` with its citations). Composition of the unit operations from the table's
primitives:

- MAC at a x w bits: `int8_mult_pj * a*w/64 + add(accumulator_bits)`, where add(b) is linear
  in b through the table's 8-bit and 32-bit add energies.
- RESCALE element: one multiply of the 32-bit accumulator by the `rescale.mult_bits`-bit
  multiplier, `int32_mult_pj * mult_bits/32` (multiplier energy grows with the product of the
  operand widths), and two 32-bit adds (bias, rounding). A RESCALE with F bias fractional bits
  has a (32 + F)-bit bias adder: `add(32 + F) - add(32)` more per element, charged through
  `rescale_bias_frac_bits` (F summed over the elements; add(b) is linear in b).
- QUANT element: one 32-bit multiply and one 32-bit add (rounding).
- VECTOR element: one 32-bit add.
- SVG_MAP (kernel-map building, component `svge_map`): the map builder's hash-table inserts and
  probes (`svge_map_hash_ops`) times `svge_map.hash_op_pj`, or its sorter and merge steps
  (`svge_map_sort_ops`) times `svge_map.sort_op_pj`; the table derives both from its SRAM and
  integer figures. Its COORD reads and MAP writes are costed as buffer bits like any other.
- SRAM: bits/64 * e64(size) (reads) and times `write_to_read` (writes); e64(size) is
  interpolated linearly in log(size)-log(energy) between the table points.
- DRAM: (read + written bytes) * 8/64 * `pj_per_64b`.
- Leakage: (`pe_pj_per_cycle` * R * C + `sram_pj_per_cycle_per_kib` * total SRAM KiB) * latency,
  shared among layers in proportion to their busy cycles.

Exact sums: every per-layer, per-component entry is rounded to a multiple of 2**-10 pJ, so any
sum of entries is exact in float64 (up to 2**43 pJ, about 8.8 J) and the breakdowns add up
exactly to `total_pj`. Counts are kept apart from energy: `recompute_energy(stats_dict, table)`
re-costs a saved run with another table without simulating.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from accelsim.errors import ConfigError
from accelsim.stats import Stats

CONFIG_DIR = Path(__file__).parent / "configs"
QUANTUM_PJ = 2.0**-10  # every entry is a multiple of this, so sums are exact


@dataclass(frozen=True)
class EnergyTable:
    """Energy per primitive operation (pJ); see the TOML files for sources."""

    int8_mult_pj: float
    int8_add_pj: float
    int32_mult_pj: float
    int32_add_pj: float
    accumulator_bits: int
    sram_sizes_bytes: tuple
    sram_read_pj_per_64b: tuple
    sram_write_to_read: float
    dram_pj_per_64b: float
    map_hash_op_pj: float
    map_sort_op_pj: float
    pe_leak_pj_per_cycle: float
    sram_leak_pj_per_cycle_per_kib: float
    source: str = ""

    def add_pj(self, bits: int) -> float:
        """Energy of one `bits`-bit add: linear through the 8- and 32-bit table points."""
        return self.int8_add_pj + (self.int32_add_pj - self.int8_add_pj) * (bits - 8) / 24

    def mac_pj(self, a_bits: int, w_bits: int) -> float:
        """Energy of one MAC at a_bits x w_bits (multiply ~ a*w, accumulate ~ linear)."""
        return self.int8_mult_pj * a_bits * w_bits / 64 + self.add_pj(self.accumulator_bits)

    def sram_pj_per_64b(self, size_bytes: float) -> float:
        """64-bit read energy of an SRAM of `size_bytes`, log-log interpolated."""
        xs = [math.log(s) for s in self.sram_sizes_bytes]
        ys = [math.log(e) for e in self.sram_read_pj_per_64b]
        x = math.log(size_bytes)
        i = 1
        while i < len(xs) - 1 and x > xs[i]:
            i += 1
        y = ys[i - 1] + (ys[i] - ys[i - 1]) * (x - xs[i - 1]) / (xs[i] - xs[i - 1])
        return math.exp(y)


# TOML section -> {key: EnergyTable field}
_KEYS = {
    "mac": {
        "int8_mult_pj": "int8_mult_pj",
        "int8_add_pj": "int8_add_pj",
        "int32_mult_pj": "int32_mult_pj",
        "int32_add_pj": "int32_add_pj",
        "accumulator_bits": "accumulator_bits",
    },
    "sram": {
        "sizes_bytes": "sram_sizes_bytes",
        "read_pj_per_64b": "sram_read_pj_per_64b",
        "write_to_read": "sram_write_to_read",
    },
    "dram": {"pj_per_64b": "dram_pj_per_64b"},
    "svge_map": {"hash_op_pj": "map_hash_op_pj", "sort_op_pj": "map_sort_op_pj"},
    "leakage": {
        "pe_pj_per_cycle": "pe_leak_pj_per_cycle",
        "sram_pj_per_cycle_per_kib": "sram_leak_pj_per_cycle_per_kib",
    },
}


def load_energy_table(name_or_path: str = "horowitz45") -> EnergyTable:
    """Load an energy table by preset name (`horowitz45`) or TOML path. Unknown sections or
    keys, missing keys and non-numeric or negative values raise ConfigError naming file and key."""
    path = Path(name_or_path)
    if not path.suffix and (CONFIG_DIR / f"energy_{name_or_path}.toml").exists():
        path = CONFIG_DIR / f"energy_{name_or_path}.toml"
    if not path.exists():
        raise ConfigError(f"energy table {name_or_path!r}: no such file or preset")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    values = {}
    for section, table in data.items():
        if section not in _KEYS or not isinstance(table, dict):
            raise ConfigError(f"{path}: unknown section [{section}]; known: {', '.join(_KEYS)}")
        for key, value in table.items():
            if key not in _KEYS[section]:
                raise ConfigError(
                    f"{path}: unknown key {section}.{key}; known keys in "
                    f"[{section}]: {', '.join(_KEYS[section])}"
                )
            vals = value if isinstance(value, list) else [value]
            if not vals or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in vals
            ):
                raise ConfigError(
                    f"{path}: {section}.{key} must be a number >= 0 (or a list of "
                    f"them), got {value!r}"
                )
            values[_KEYS[section][key]] = tuple(value) if isinstance(value, list) else value
    missing = [
        f"{s}.{k}" for s, keys in _KEYS.items() for k, name in keys.items() if name not in values
    ]
    if missing:
        raise ConfigError(f"{path}: missing key(s) {', '.join(missing)}")
    sizes, energies = values["sram_sizes_bytes"], values["sram_read_pj_per_64b"]
    if (
        len(sizes) < 2
        or len(sizes) != len(energies)
        or min(sizes) <= 0
        or min(energies) <= 0
        or list(sizes) != sorted(set(sizes))
    ):
        raise ConfigError(
            f"{path}: sram.sizes_bytes and sram.read_pj_per_64b must be equally "
            f"long (>= 2), positive, sizes strictly increasing"
        )
    return EnergyTable(**values, source=str(path))


def _q(x: float) -> float:
    return round(x / QUANTUM_PJ) * QUANTUM_PJ


@dataclass
class EnergyReport:
    """Energy of a run: `per_layer` tag -> component -> pJ; `by_component` component -> pJ;
    `total_pj`; `tops_per_w` = 2 * MACs / total_pJ (ops per pJ = TOPS/W)."""

    per_layer: dict
    by_component: dict = field(default_factory=dict)
    total_pj: float = 0.0
    tops_per_w: float = 0.0

    def to_dict(self) -> dict:
        return {
            "per_layer": {str(t): c for t, c in self.per_layer.items()},
            "by_component": self.by_component,
            "total_pj": self.total_pj,
            "tops_per_w": self.tops_per_w,
        }


def energy_report(stats: Stats, table: EnergyTable) -> EnergyReport:
    """Energy by layer and component for the counts in `stats` (see the module docstring)."""
    t = table
    m = stats.machine
    buf_bytes = m.get("buffer_bytes", {})
    e_read = {b: t.sram_pj_per_64b(s) / 64 for b, s in buf_bytes.items()}
    leak_per_cycle = (
        t.pe_leak_pj_per_cycle * m.get("array_rows", 0) * m.get("array_cols", 0)
        + t.sram_leak_pj_per_cycle_per_kib * sum(buf_bytes.values()) / 1024
    )
    # the 32-bit accumulator times the m-bit multiplier: energy ~ the operands' widths' product
    rescale_pj = t.int32_mult_pj * m.get("rescale_mult_bits", 32) / 32 + 2 * t.int32_add_pj
    grouped = stats.per_tag()  # tag -> (summed counters, (unit, widths) -> MACs)
    tags = sorted({tag for tag, _ in stats.counters})
    busy = {tag: grouped[tag][0].get("busy_cycles", 0) for tag in tags}
    all_busy = sum(busy.values())
    per_layer = {}
    for tag in tags:
        c, by_unit = grouped[tag]
        widths: dict = {}  # MACs per width over units, summed in `macs_by_width` order
        for (_, w), n in by_unit.items():
            widths[w] = widths.get(w, 0) + n
        comp = {"mac": sum(n * t.mac_pj(*w) for w, n in widths.items())}
        for b in buf_bytes:
            bits_r = c.get(f"sram_read_bits_{b}", 0)
            bits_w = c.get(f"sram_write_bits_{b}", 0)
            if bits_r or bits_w:
                comp[f"sram_{b}"] = (bits_r + bits_w * t.sram_write_to_read) * e_read[b]
        comp["dram"] = (
            (c.get("dram_read_bytes", 0) + c.get("dram_write_bytes", 0))
            * 8
            / 64
            * t.dram_pj_per_64b
        )
        comp["svge_map"] = (
            c.get("svge_map_hash_ops", 0) * t.map_hash_op_pj
            + c.get("svge_map_sort_ops", 0) * t.map_sort_op_pj
        )
        comp["rescale"] = c.get("rescale_ops", 0) * rescale_pj + c.get(
            "rescale_bias_frac_bits", 0
        ) * (t.add_pj(33) - t.add_pj(32))
        comp["quant"] = c.get("quant_ops", 0) * (t.int32_mult_pj + t.int32_add_pj)
        comp["vector"] = c.get("vector_ops", 0) * t.int32_add_pj
        comp["leakage"] = (
            leak_per_cycle * stats.latency_cycles * busy[tag] / all_busy if all_busy else 0.0
        )
        per_layer[tag] = {k: _q(v) for k, v in comp.items()}
    by_component: dict = {}
    for comp in per_layer.values():
        for k, v in comp.items():
            by_component[k] = by_component.get(k, 0.0) + v
    total = sum(by_component.values())
    macs = stats.macs()
    return EnergyReport(per_layer, by_component, total, 2 * macs / total if total else 0.0)


def recompute_energy(saved_stats: dict, table) -> EnergyReport:
    """Re-cost a finished run: `saved_stats` is `Stats.to_dict()` (e.g. from JSON), `table` an
    `EnergyTable` or a table name/path. No simulation."""
    if not isinstance(table, EnergyTable):
        table = load_energy_table(table)
    return energy_report(Stats.from_dict(saved_stats), table)
