"""Sweep specifications: the TOML file `accelsim sweep` reads, parsed and checked.

    name = "bits_resnet18"
    workloads = ["resnet18", "small_cnn"]  # built-in names, model files or topology CSVs
    base = "edge"                          # preset name or config TOML file
    engine = "fast"                        # optional: fast (default) | event (SimPy reference)
    timing_only = true                     # optional, default true (count-only simulation)
    seed = 0                               # optional: weights and input of built-in workloads
    [axes]                                 # full product of every axis, in this order
    bits = ["8/8", "4/4", "2/2", "2/8"]    # A/W of built-in workloads
    "matmul.rows" = [8, 16, 32]            # any config key (section.key)
    [zip]                                  # optional: keys varied together (one length)
    "matmul.rows" = [16, 32]
    "matmul.cols" = [16, 32]
    [[bits_rules]]                         # optional, repeatable: per-layer widths
    layers = ["first", "last"]             # "first", "last" or name patterns ("layer4.*")
    bits = "8/8"                           # A/W of those layers
    workloads = ["resnet18"]               # optional: only these workloads

`[[zip]]` (an array of tables) gives several groups, each varied as one axis. A key may be an
axis or in a zip group, not both. Bits rules apply in order (a later rule wins for a layer
both select). A rule's layers are the weighted layers (convolutions and linears): `first` and
`last` in graph order, anything else an `fnmatch` pattern of layer names. A rule's A/W sets
the layer's weight width W and the width A of the activations it reads: the tensor's
producer (through any pools and flattens between them) writes A-bit values, which its other
readers then see as well. Unknown keys, unknown workloads, empty axes and values the config
rejects raise `AccelsimError` naming the file and key, before any point runs.

A `[report]` table is kept for `accelsim report` (`accelsim.sweep.report`) and not read here.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from accelsim.config import HwConfig, from_dict, load_config
from accelsim.errors import AccelsimError, ConfigError
from accelsim.numeric import parse_bits

ENGINES = ("fast", "event")
BITS_KEY = "bits"  # the axis of A/W widths; every other axis is a config key
DEFAULT_BITS = (8, 8)
_TOP_KEYS = (
    "name",
    "workloads",
    "base",
    "engine",
    "timing_only",
    "seed",
    "axes",
    "zip",
    "bits_rules",
    "report",
)


@dataclass(frozen=True)
class BitsRule:
    """Widths (a_bits, w_bits) for the layers `layers` selects, in `workloads` (None: all)."""

    layers: tuple[str, ...]
    bits: tuple[int, int]
    workloads: tuple[str, ...] | None = None

    def applies_to(self, workload: str) -> bool:
        return self.workloads is None or workload in self.workloads

    def label(self) -> str:
        return f"{','.join(self.layers)}={self.bits[0]}/{self.bits[1]}"


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep file. `axes`: (key, values) in file order; `zips`: (keys, rows) per zip
    group, rows being tuples of one value per key; `path`, `text`: where it came from."""

    name: str
    workloads: tuple[str, ...]
    base: str
    base_config: HwConfig
    engine: str = "fast"
    timing_only: bool = True
    seed: int = 0
    axes: tuple = ()
    zips: tuple = ()
    bits_rules: tuple[BitsRule, ...] = ()
    report: dict = field(default_factory=dict)
    path: str = ""
    text: str = ""
    folder: str = "."  # relative model files and base configs are found from here

    @property
    def swept_keys(self) -> list[str]:
        """Every key the sweep varies, axes first, then zip groups (the results' columns)."""
        return [k for k, _ in self.axes] + [k for keys, _ in self.zips for k in keys]

    @property
    def config_keys(self) -> list[str]:
        """The swept config keys (all swept keys but bits), each a column of the results."""
        return [k for k in self.swept_keys if k != BITS_KEY]


def _fail(where: str, msg: str):
    raise AccelsimError(f"{where}: {msg}")


def set_key(cfg: HwConfig, key: str, value, where: str) -> HwConfig:
    """`cfg` with config key `key` ("section.key") set to `value`, checked by the config's own
    rules; ConfigError names `where` and the key."""
    if not isinstance(key, str) or key.count(".") != 1:
        _fail(where, f"{key!r} is not a config key (section.key) or {BITS_KEY!r}")
    section, name = key.split(".")
    data = cfg.to_dict()
    data.setdefault(section, {})[name] = value
    return from_dict(data, where)


def _bits(value, where: str) -> tuple[int, int]:
    if not isinstance(value, str):
        _fail(where, f'expected A/W bits such as "4/4", got {value!r}')
    try:
        return parse_bits(value, "A/W")
    except AccelsimError as exc:
        _fail(where, str(exc).removeprefix("bits: "))


def _values(where: str, key: str, values, base: HwConfig) -> tuple:
    """An axis' values, each checked (bits parsed; config values against the base config)."""
    if not isinstance(values, list):
        _fail(where, f"{key!r} must be a list of values, got {values!r}")
    if not values:
        _fail(where, f"{key!r} is empty: an axis needs at least one value")
    if key == BITS_KEY:
        return tuple(_bits(v, f"{where} {key}") for v in values)
    for v in values:
        set_key(base, key, v, where)
    return tuple(tuple(v) if isinstance(v, list) else v for v in values)


def _zip_groups(raw, where: str, base: HwConfig) -> tuple:
    groups = raw if isinstance(raw, list) else [raw]
    out = []
    for i, group in enumerate(groups):
        at = where if isinstance(raw, dict) else f"{where} #{i + 1}"
        if not isinstance(group, dict) or not group:
            _fail(at, "a zip group is a table of keys with equally long lists")
        cols = {k: _values(at, k, v, base) for k, v in group.items()}
        lengths = {k: len(v) for k, v in cols.items()}
        if len(set(lengths.values())) != 1:
            _fail(at, f"keys varied together need lists of one length, got {lengths}")
        out.append((tuple(cols), tuple(zip(*cols.values()))))
    return tuple(out)


def _rules(raw, where: str, workloads: tuple[str, ...]) -> tuple[BitsRule, ...]:
    if not isinstance(raw, list):
        _fail(where, "bits_rules must be an array of tables ([[bits_rules]])")
    rules = []
    for i, r in enumerate(raw, 1):
        at = f"{where} #{i}"
        if not isinstance(r, dict):
            _fail(at, "expected a table with layers and bits")
        unknown = set(r) - {"layers", "bits", "workloads"}
        if unknown:
            _fail(
                at, f"unknown key(s) {', '.join(sorted(unknown))}; known: layers, bits, workloads"
            )
        layers = r.get("layers")
        if (
            not isinstance(layers, list)
            or not layers
            or not all(isinstance(x, str) for x in layers)
        ):
            _fail(at, "layers must be a non-empty list of names: first, last or patterns")
        only = r.get("workloads")
        if only is not None:
            if not isinstance(only, list) or not all(w in workloads for w in only):
                _fail(at, f"workloads must list workloads of the sweep ({', '.join(workloads)})")
            only = tuple(only)
        rules.append(BitsRule(tuple(layers), _bits(r.get("bits"), f"{at} bits"), only))
    return tuple(rules)


def parse_spec(text: str, path: str = "<spec>", base_dir: Path | None = None) -> SweepSpec:
    """Parse and check a sweep file's TOML `text` (see the module docstring). Relative paths
    of `base` and of model files resolve against `base_dir` (the spec's folder). Workload
    names are checked when the points are expanded (`accelsim.sweep.points.expand`), by the
    source that knows where workloads come from."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AccelsimError(f"{path}: not valid TOML: {exc}") from None
    unknown = [k for k in data if k not in _TOP_KEYS]
    if unknown:
        _fail(path, f"unknown key(s) {', '.join(unknown)}; known: {', '.join(_TOP_KEYS)}")
    name = data.get("name")
    if not isinstance(name, str) or not name or "/" in name:
        _fail(path, f"name must be a non-empty string without '/', got {name!r}")
    workloads = data.get("workloads")
    if not isinstance(workloads, list) or not workloads:
        _fail(path, "workloads must be a non-empty list of workload names or files")
    if not all(isinstance(w, str) and w for w in workloads) or len(set(workloads)) < len(workloads):
        _fail(path, f"workloads must be distinct names, got {workloads!r}")
    base = data.get("base", "edge")
    if not isinstance(base, str):
        _fail(path, f"base must be a preset name or TOML file, got {base!r}")
    if base_dir is not None and Path(base).suffix and not Path(base).is_absolute():
        base = str(base_dir / base)
    try:
        base_cfg = load_config(base)
    except ConfigError as exc:
        raise AccelsimError(f"{path}: base: {exc}") from None
    engine = data.get("engine", "fast")
    if engine not in ENGINES:
        _fail(path, f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    timing_only = data.get("timing_only", True)
    if not isinstance(timing_only, bool):
        _fail(path, f"timing_only must be true or false, got {timing_only!r}")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        _fail(path, f"seed must be an integer >= 0, got {seed!r}")
    axes_raw = data.get("axes", {})
    if not isinstance(axes_raw, dict):
        _fail(path, "[axes] must be a table of key = [values]")
    axes = tuple((k, _values(f"{path}: [axes]", k, v, base_cfg)) for k, v in axes_raw.items())
    zips = _zip_groups(data["zip"], f"{path}: [zip]", base_cfg) if "zip" in data else ()
    keys = [k for k, _ in axes] + [k for ks, _ in zips for k in ks]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        _fail(path, f"key(s) {', '.join(twice)} vary in more than one axis or zip group")
    report = data.get("report", {})
    if not isinstance(report, dict):
        _fail(path, "[report] must be a table")
    return SweepSpec(
        name=name,
        workloads=tuple(workloads),
        base=base,
        base_config=base_cfg,
        engine=engine,
        timing_only=timing_only,
        seed=seed,
        axes=axes,
        zips=zips,
        bits_rules=_rules(data.get("bits_rules", []), f"{path}: [[bits_rules]]", tuple(workloads)),
        report=report,
        path=path,
        text=text,
        folder=str(base_dir or Path(".")),
    )


def load_spec(path) -> SweepSpec:
    """Read and parse the sweep file at `path`; AccelsimError names the file and the key."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise AccelsimError(f"sweep file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AccelsimError(f"sweep file {str(path)!r} cannot be read ({exc})") from None
    return parse_spec(text, str(path), path.parent)
