"""SCALE-Sim topology files as workloads: `accelsim run FILE.csv`.

SCALE-Sim (scale-sim-v2, `scalesim/topology_utils.py`) describes a network as a CSV file, one
layer per row, in one of two formats:

- convolution: header `Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width,
  Channels, Num Filter, Strides,` (a ninth column `Stride width` may follow). The IFMAP size
  already includes any padding; the output has ceil((H - Fh) / S) + 1 rows (and likewise
  columns), so M = output pixels, K = Fh * Fw * Channels, N = Num Filter. A row whose name
  contains "DP" is depthwise: SCALE-Sim runs it as Channels one-channel layers of Num Filter
  filters each; here it is one conv with groups = Channels (the machine's depthwise mapping
  when Num Filter is 1, else one GEMM per channel as in SCALE-Sim).
- GEMM: header `Layer, M, N, K,`: an M x K input times a K x N weight (SCALE-Sim maps it onto
  its conv form as an M x K map, a 1 x K filter, one channel and N filters).

Rows end with a comma in SCALE-Sim's files, and SCALE-Sim ignores what follows a row's last
comma (a comment such as `#dw`); here trailing empty fields and one field past the header's
columns are ignored, and lines with no fields are skipped. The header
names only pick the format (SCALE-Sim's own files spell them in several ways), but the field
count, integers and sizes of every row are checked, and a bad file gives one error naming the
file, line and column.

Each row becomes an independent single-layer graph (`workloads.single_layer`) with its own
random input of the row's size: consecutive rows of a topology file are in general not
shape-consistent, and SCALE-Sim too simulates each layer on its own. `accelsim run` runs them
back to back (`accelsim.sequence`), one report row per file row.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from accelsim.errors import ModelFormatError
from accelsim.ir import Graph
from workloads.single_layer import single_conv, single_gemm

CONV_COLUMNS = (
    "Layer name",
    "IFMAP Height",
    "IFMAP Width",
    "Filter Height",
    "Filter Width",
    "Channels",
    "Num Filter",
    "Strides",
)
STRIDE_WIDTH_COLUMN = "Stride width"  # optional ninth column of the convolution format
GEMM_COLUMNS = ("Layer", "M", "N", "K")


@dataclass(frozen=True)
class TopologyLayer:
    """One row: its layer name, file line, format ("conv" or "gemm") and integer fields.

    dims: conv (ifmap_h, ifmap_w, filter_h, filter_w, channels, filters, stride);
    gemm (m, n, k). depthwise: a conv row whose name contains "DP"."""

    name: str
    line: int
    kind: str
    dims: tuple[int, ...]
    depthwise: bool = False

    def graph(self, bits=(8, 8), seed=0) -> Graph:
        """This layer as a single-layer graph at (activation, weight) bits."""
        if self.kind == "gemm":
            return single_gemm(*self.dims, bits[0], bits[1], seed, name=self.name)
        return single_conv(
            *self.dims, bits[0], bits[1], seed, depthwise=self.depthwise, name=self.name
        )


@dataclass(frozen=True)
class Topology:
    """A SCALE-Sim topology file: name (the file name without extension), path, format and
    layers in file order."""

    name: str
    path: str
    kind: str
    layers: tuple[TopologyLayer, ...]

    def graphs(self, bits=(8, 8), seed: int = 0) -> Iterator[Graph]:
        """The layers' graphs in file order, built one at a time (layer i seeded by
        (seed, i), so its weights do not depend on the other rows)."""
        for i, layer in enumerate(self.layers):
            yield layer.graph(bits, (seed, i))


def is_topology_path(name: str) -> bool:
    """True for a model argument naming a CSV file (SCALE-Sim topology)."""
    return Path(name).suffix.lower() == ".csv"


def _cells(text: str) -> list[str]:
    cells = [c.strip() for c in text.split(",")]
    while cells and not cells[-1]:  # SCALE-Sim's rows end with a comma
        cells.pop()
    return cells


def _norm(cell: str) -> str:
    return " ".join(cell.lower().split())


class _Reader:
    """Parses one file; `fail` raises the error naming the file, line and column."""

    def __init__(self, path: str):
        self.path = path

    def fail(self, line: int, message: str, column: int | None = None, name: str = "") -> NoReturn:
        where = f"line {line}" + (f", column {column}" if column else "")
        where += f" ({name})" if name else ""
        raise ModelFormatError(f"topology file {self.path!r} {where}: {message}")

    def header(self, cells: list[str]) -> tuple[str, tuple[str, ...]]:
        """(format, column names) from the header cells."""
        names = [_norm(c) for c in cells]
        if len(names) >= 4 and names[1:4] == ["m", "n", "k"]:
            if len(names) > 4:
                self.fail(1, f"unexpected column {cells[4]!r} after K (GEMM format)", 5)
            return "gemm", GEMM_COLUMNS
        if len(names) >= 2 and names[1].startswith("ifmap"):
            if len(names) < len(CONV_COLUMNS):
                missing = CONV_COLUMNS[len(names)]
                self.fail(1, f"the header lacks column {missing!r} (convolution format)")
            if len(names) == 9 and "stride" in names[8]:
                return "conv", (*CONV_COLUMNS, STRIDE_WIDTH_COLUMN)
            if len(names) > 8:
                self.fail(1, f"unexpected column {cells[8]!r} after Strides", 9)
            return "conv", CONV_COLUMNS
        self.fail(
            1,
            "the header is neither SCALE-Sim's convolution format ("
            + ", ".join(CONV_COLUMNS)
            + ",) nor its GEMM format ("
            + ", ".join(GEMM_COLUMNS)
            + ",)",
        )

    def row(self, line: int, cells: list[str], columns: tuple[str, ...]) -> list[int]:
        """The integer fields of one row (columns 2 onwards), all checked positive.

        SCALE-Sim drops whatever follows a row's last comma, so one field past the header's
        columns is ignored (mobilnet_4k.csv ends a row with `1,#dw`); more are an error."""
        if len(cells) < len(columns):
            self.fail(
                line,
                f"expected {len(columns)} fields ({', '.join(columns)}), found {len(cells)}",
                len(cells) + 1,
                columns[len(cells)],
            )
        if len(cells) > len(columns) + 1:
            self.fail(
                line,
                f"unexpected field {cells[len(columns)]!r} (the header has {len(columns)} columns)",
                len(columns) + 1,
            )
        values = []
        for col, (cell, column) in enumerate(zip(cells[1:], columns[1:]), start=2):
            v = int(cell) if cell.isascii() and cell.isdigit() else 0
            if v < 1:
                self.fail(line, f"expected a positive integer, got {cell!r}", col, column)
            values.append(v)
        return values

    def conv_layer(self, line: int, name: str, v: list[int]) -> TopologyLayer:
        h, w, fh, fw, c, nf, stride = v[:7]
        if fh > h:
            self.fail(line, f"{fh} exceeds the IFMAP Height {h}", 4, "Filter Height")
        if fw > w:
            self.fail(line, f"{fw} exceeds the IFMAP Width {w}", 5, "Filter Width")
        if len(v) == 8 and v[7] != stride:
            self.fail(
                line,
                f"{v[7]} differs from the stride height {stride}; this machine's "
                "convolutions take one stride for both axes",
                9,
                STRIDE_WIDTH_COLUMN,
            )
        return TopologyLayer(name, line, "conv", (h, w, fh, fw, c, nf, stride), "DP" in name)


def read_topology(path) -> Topology:
    """Read a SCALE-Sim topology CSV file (module docstring); ModelFormatError naming the file,
    line and column if it is malformed."""
    path = Path(path)
    r = _Reader(str(path))
    try:
        text = path.read_bytes().decode("utf-8-sig")  # some of SCALE-Sim's files carry a BOM
    except FileNotFoundError:
        raise ModelFormatError(f"topology file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise ModelFormatError(f"cannot read topology file {str(path)!r}: {exc}") from None
    except UnicodeDecodeError:
        raise ModelFormatError(f"topology file {str(path)!r} is not UTF-8 text") from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        r.fail(1, "empty file or header line; expected a SCALE-Sim topology header")
    kind, columns = r.header(_cells(lines[0]))
    layers, seen = [], {}
    for line, raw in enumerate(lines[1:], start=2):
        cells = _cells(raw)
        if not cells:
            continue  # blank lines are skipped, as in SCALE-Sim
        name = cells[0] or f"line{line}"
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:  # report rows need distinct names
            name = f"{name}#{seen[name]}"
        values = r.row(line, cells, columns)
        if kind == "gemm":
            layers.append(TopologyLayer(name, line, "gemm", tuple(values)))
        else:
            layers.append(r.conv_layer(line, name, values))
    if not layers:
        r.fail(len(lines), "the file has a header but no layer rows")
    return Topology(path.stem, str(path), kind, tuple(layers))
