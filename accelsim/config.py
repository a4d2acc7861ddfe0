"""Hardware configuration: one frozen dataclass per unit, loaded from TOML presets.

A configuration describes the simulated processor: clock, DRAM, on-chip buffers (capacity in
bits, since tensors are stored packed at their own width), the matrix-multiply array and its MAC
model, the quantizer, rescale and vector units and the sparse voxel group engine. Presets live
in `accelsim/configs/*.toml`; `load_config("edge", ["matmul.rows=32"])` loads one and applies
`section.key=value` overrides. Unknown sections or keys, wrong types, out-of-range values and
non-positive sizes are rejected with a `ConfigError` naming the file and key. Every field carries
its unit in its name and a one-line description in its metadata (rendered by `describe()`).
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from accelsim.errors import ConfigError
from accelsim.numeric import MAC_MAX_BITS

PRESET_DIR = Path(__file__).parent / "configs"


def _f(default, doc, *, min=None, choices=None):
    """A config field with a description, a lower bound and/or a set of allowed values."""
    return field(default=default, metadata={"doc": doc, "min": min, "choices": choices})


@dataclass(frozen=True)
class ChipConfig:
    clock_mhz: float = _f(500.0, "core clock frequency in MHz", min=1e-3)
    name: str = _f("custom", "preset name, for reports")


@dataclass(frozen=True)
class DramConfig:
    bw_bytes_per_cycle: float = _f(16.0, "peak DRAM bandwidth in bytes per core cycle", min=1e-6)
    latency_cycles: int = _f(100, "fixed latency of one transfer (request to first data)", min=0)
    burst_bytes: int = _f(
        64, "DRAM burst size in bytes; rows are rounded up to whole bursts", min=1
    )
    max_outstanding: int = _f(
        2,
        "DMA transfers in flight at once (their latency phases overlap; data phases share the bus)",
        min=1,
    )


@dataclass(frozen=True)
class BufferConfig:
    row_bits: int = _f(128, "width of one buffer row in bits (addresses count rows)", min=8)
    inp_bytes: int = _f(64 * 1024, "input activation buffer capacity in bytes", min=1)
    wgt_bytes: int = _f(128 * 1024, "weight buffer capacity in bytes", min=1)
    acc_bytes: int = _f(64 * 1024, "int32 accumulator buffer capacity in bytes", min=1)
    out_bytes: int = _f(32 * 1024, "output activation buffer capacity in bytes", min=1)
    param_bytes: int = _f(8 * 1024, "per-channel parameter buffer (multiplier, shift, bias)", min=1)
    coord_bytes: int = _f(64 * 1024, "voxel coordinate buffer capacity in bytes", min=1)
    map_bytes: int = _f(128 * 1024, "kernel map buffer capacity in bytes", min=1)

    def capacity_bits(self, buf: str) -> int:
        """Capacity of buffer `buf` ('inp', 'wgt', ...) in bits."""
        return 8 * getattr(self, f"{buf.lower()}_bytes")

    def capacity_rows(self, buf: str) -> int:
        """Capacity of buffer `buf` in rows of `row_bits`."""
        return self.capacity_bits(buf) // self.row_bits


@dataclass(frozen=True)
class MatmulConfig:
    rows: int = _f(16, "systolic array rows R (the reduction dimension K maps onto rows)", min=1)
    cols: int = _f(16, "systolic array columns C", min=1)
    dataflow: str = _f(
        "os", "os (output), ws (weight) or is (input) stationary", choices=("os", "ws", "is")
    )
    mac_model: str = _f(
        "fusion",
        "MAC precision model: fusion (Bit Fusion), serial_act "
        "(Stripes), serial_both (Loom) or fixed",
        choices=("fusion", "serial_act", "serial_both", "fixed"),
    )
    serial_bits: int = _f(1, "bits processed per pass by the bit-serial MAC models", min=1)
    max_bits: int = _f(MAC_MAX_BITS, "widest operand the MACs accept, in bits", min=1)
    fill_drain: bool = _f(True, "include the array fill and drain terms (R + C - 2, 2R + C - 2)")
    overflow: str = _f(
        "error",
        "int32 accumulator overflow: error (detect and report) or wrap",
        choices=("error", "wrap"),
    )


@dataclass(frozen=True)
class QuantizerConfig:
    lanes: int = _f(16, "elements quantized per cycle", min=1)
    latency_cycles: int = _f(4, "pipeline latency in cycles", min=0)


@dataclass(frozen=True)
class RescaleConfig:
    lanes: int = _f(16, "accumulators rescaled per cycle", min=1)
    latency_cycles: int = _f(4, "pipeline latency in cycles", min=0)
    param_channels_per_cycle: int = _f(
        4, "per-channel (multiplier, shift, bias) sets loaded from PARAM per cycle", min=1
    )
    mult_bits: int = _f(32, "width of the integer multiplier, 16 or 32 bits", choices=(16, 32))
    round_mode: str = _f(
        "single", "rounding: single, tflite (gemmlowp) or rne", choices=("single", "tflite", "rne")
    )


@dataclass(frozen=True)
class VectorConfig:
    lanes: int = _f(16, "elements processed per cycle by the vector ALU", min=1)
    latency_cycles: int = _f(2, "pipeline latency in cycles", min=0)
    divide_cycles: int = _f(
        16, "cycles of one integer division (per-row step of softmax and layer norm)", min=1
    )


@dataclass(frozen=True)
class SvgeConfig:
    groups: int = _f(4, "voxel groups G: voxel (x,y,z) is in group (a*x+b*y+c*z) mod G", min=1)
    engines: int = _f(2, "parallel engines E; groups go to the least-loaded engine", min=1)
    group_coeffs: tuple = _f((1, 2, 3), "group coefficients (a, b, c)")
    map_method: str = _f("hash", "kernel map construction: hash or sort", choices=("hash", "sort"))
    hash_lanes: int = _f(8, "hash probes issued per cycle", min=1)
    probe_cycles: int = _f(2, "cycles per hash probe round", min=1)
    sort_width: int = _f(16, "elements per cycle of the sorter", min=1)
    merge_width: int = _f(16, "elements per cycle of the merge stage", min=1)
    gather_rows_per_cycle: int = _f(1, "feature rows gathered per cycle", min=1)
    scatter_rows_per_cycle: int = _f(1, "feature rows scattered per cycle", min=1)


@dataclass(frozen=True)
class EnergyConfig:
    table: str = _f(
        "horowitz45",
        "energy table: a preset name in accelsim/configs/energy_*.toml or a TOML file path",
    )


@dataclass(frozen=True)
class HwConfig:
    """The whole simulated processor. Frozen: derive a variant with `with_overrides`."""

    chip: ChipConfig = field(default_factory=ChipConfig)
    dram: DramConfig = field(default_factory=DramConfig)
    buffers: BufferConfig = field(default_factory=BufferConfig)
    matmul: MatmulConfig = field(default_factory=MatmulConfig)
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)
    rescale: RescaleConfig = field(default_factory=RescaleConfig)
    vector: VectorConfig = field(default_factory=VectorConfig)
    svge: SvgeConfig = field(default_factory=SvgeConfig)
    energy: EnergyConfig = field(default_factory=EnergyConfig)

    def with_overrides(self, overrides, source: str = "--set") -> HwConfig:
        """A copy with `section.key=value` overrides applied (values parsed as TOML)."""
        data = to_dict(self)
        for text in overrides:
            section, key, value = _parse_override(text, source)
            data.setdefault(section, {})[key] = value
        return from_dict(data, source)

    def to_dict(self) -> dict:
        return to_dict(self)


_SECTION_CLASSES = {
    "chip": ChipConfig,
    "dram": DramConfig,
    "buffers": BufferConfig,
    "matmul": MatmulConfig,
    "quantizer": QuantizerConfig,
    "rescale": RescaleConfig,
    "vector": VectorConfig,
    "svge": SvgeConfig,
    "energy": EnergyConfig,
}


def to_dict(cfg: HwConfig) -> dict:
    """Plain nested dict of the config (tuples become lists), suitable for TOML/JSON."""
    out = {}
    for name in _SECTION_CLASSES:
        sec = getattr(cfg, name)
        out[name] = {
            f.name: (list(v) if isinstance(v := getattr(sec, f.name), tuple) else v)
            for f in dataclasses.fields(sec)
        }
    return out


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


def to_toml(cfg: HwConfig) -> str:
    """The whole config as TOML text that `load_config(path)` reads back to an equal config."""
    lines = []
    for section, table in to_dict(cfg).items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml_value(v)}" for key, v in table.items()]
        lines.append("")
    return "\n".join(lines)


def _check_value(cls, f, value, where: str):
    meta, default = f.metadata, f.default
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        value = float(value)
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
    elif isinstance(default, tuple):
        if (
            not isinstance(value, (list, tuple))
            or len(value) != len(default)
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            raise ConfigError(f"{where}: expected a list of {len(default)} integers, got {value!r}")
        value = tuple(value)
    if meta.get("choices") is not None and value not in meta["choices"]:
        allowed = ", ".join(str(c) for c in meta["choices"])
        raise ConfigError(f"{where}: expected one of {allowed}, got {value!r}")
    if meta.get("min") is not None and value < meta["min"]:
        kind = "positive" if 0 < meta["min"] <= 1 else f">= {meta['min']}"
        raise ConfigError(f"{where}: must be {kind}, got {value!r}")
    return value


def from_dict(data: dict, source: str) -> HwConfig:
    """Build an `HwConfig` from nested dicts, rejecting unknown keys and bad values."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a table of sections")
    sections = {}
    for name, table in data.items():
        cls = _SECTION_CLASSES.get(name)
        if cls is None:
            raise ConfigError(
                f"{source}: unknown section [{name}]; known sections: {', '.join(_SECTION_CLASSES)}"
            )
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{name}] must be a table")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, value in table.items():
            if key not in fields:
                raise ConfigError(
                    f"{source}: unknown key {name}.{key}; known keys in "
                    f"[{name}]: {', '.join(fields)}"
                )
            kwargs[key] = _check_value(cls, fields[key], value, f"{source}: {name}.{key}")
        sections[name] = cls(**kwargs)
    cfg = HwConfig(**sections)
    _check_consistency(cfg, source)
    return cfg


def _check_consistency(cfg: HwConfig, source: str) -> None:
    for buf in ("inp", "wgt", "acc", "out", "param", "coord", "map"):
        if cfg.buffers.capacity_bits(buf) < cfg.buffers.row_bits:
            raise ConfigError(
                f"{source}: buffers.{buf}_bytes is smaller than one row "
                f"({cfg.buffers.row_bits} bits)"
            )
    if cfg.matmul.max_bits > MAC_MAX_BITS:
        raise ConfigError(
            f"{source}: matmul.max_bits must be at most {MAC_MAX_BITS}, got {cfg.matmul.max_bits}"
        )


def _parse_override(text: str, source: str):
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ConfigError(f"{source}: override {text!r} must look like section.key=value")
    path, raw = text.split("=", 1)
    section, key = (s.strip() for s in path.split(".", 1))
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word such as ws or tflite is a string
    return section, key, value


def preset_names() -> list[str]:
    """Names of the built-in hardware presets."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml") if not p.stem.startswith("energy_"))


def load_config(name_or_path: str = "edge", overrides=()) -> HwConfig:
    """Load a preset by name (`edge`, `server`, `scalesim32`) or a TOML file by path, then apply
    `section.key=value` overrides. Raises `ConfigError` naming the file and key on bad input."""
    path = Path(name_or_path)
    if not path.suffix and (PRESET_DIR / f"{name_or_path}.toml").exists():
        path = PRESET_DIR / f"{name_or_path}.toml"
    if not path.exists():
        raise ConfigError(
            f"config {name_or_path!r}: no such file or preset (presets: "
            f"{', '.join(preset_names())})"
        )
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    cfg = from_dict(data, str(path))
    return cfg.with_overrides(overrides) if overrides else cfg


def describe() -> list[tuple[str, str, object, str]]:
    """(key, type, default, description) for every config field, for the docs."""
    rows = []
    for name, cls in _SECTION_CLASSES.items():
        for f in dataclasses.fields(cls):
            rows.append(
                (f"{name}.{f.name}", type(f.default).__name__, f.default, f.metadata.get("doc", ""))
            )
    return rows
