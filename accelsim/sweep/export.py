"""Export a results file as tidy tables that pandas reads directly: the `points` table, and the
`layers` table with each point's workload, bits and swept values joined on, so each layer row
stands alone. CSV (the csv module) or Parquet (pyarrow, the `parquet` extra).

`accelsim results R.sqlite --csv OUT.csv` writes OUT.csv (points) and OUT.layers.csv (layers).
The `config_json`, `key_json` and counts columns stay in the SQLite file.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from accelsim.errors import AccelsimError
from accelsim.fileio import atomic_write, atomic_write_text
from accelsim.sweep.store import columns, connect, q, read_meta

_INTERNAL = ("config_json", "key_json")


def layers_path(path) -> Path:
    """Where the layers table of an export to `path` goes: OUT.csv -> OUT.layers.csv."""
    path = Path(path)
    return path.with_name(f"{path.stem}.layers{path.suffix}")


def tables(path, drop=()) -> dict[str, tuple[list[str], list[tuple]]]:
    """{"points": (columns, rows), "layers": (columns, rows)} of a results file, points in
    spec order, layers by point then layer order; without the points columns `drop`."""
    con = connect(path)
    try:
        swept = read_meta(con).get("swept", [])
        pcols = [c for c in columns(con, "points") if c not in (*_INTERNAL, *drop)]
        points = con.execute(
            f"SELECT {', '.join(q(c) for c in pcols)} FROM points ORDER BY seq"
        ).fetchall()
        ident = ["seq", "workload", "bits", *swept]
        lcols = [c for c in columns(con, "layers") if c != "point_id"]
        sel = ", ".join(
            ["l.point_id", *(f"p.{q(c)}" for c in ident), *(f"l.{q(c)}" for c in lcols)]
        )
        layers = con.execute(
            f"SELECT {sel} FROM layers l JOIN points p ON p.point_id = l.point_id "
            "ORDER BY p.seq, l.layer_index"
        ).fetchall()
    finally:
        con.close()
    lcols = ["point_id", *ident, *lcols]
    return {"points": (pcols, points), "layers": (lcols, layers)}


def _csv(cols: list[str], rows: list[tuple]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    w.writerows(rows)
    return buf.getvalue()


def export_csv(path, out, drop=()) -> list[Path]:
    """Write the points table (without the columns `drop`) to `out` and the layers table to
    `layers_path(out)`."""
    t = tables(path, drop)
    atomic_write_text(out, _csv(*t["points"]))
    atomic_write_text(layers_path(out), _csv(*t["layers"]))
    return [Path(out), layers_path(out)]


def export_parquet(path, out) -> list[Path]:
    """Like `export_csv`, as Parquet files (needs pyarrow: `pip install 'accelsim[parquet]'`)."""
    try:
        import pyarrow as pa  # noqa: PLC0415
        import pyarrow.parquet as pq  # noqa: PLC0415
    except ImportError:
        raise AccelsimError("--parquet needs pyarrow: pip install 'accelsim[parquet]'") from None
    t = tables(path)
    for target, (cols, rows) in ((Path(out), t["points"]), (layers_path(out), t["layers"])):
        table = pa.table({c: [r[i] for r in rows] for i, c in enumerate(cols)})
        atomic_write(target, lambda fh, table=table: pq.write_table(table, fh))
    return [Path(out), layers_path(out)]
