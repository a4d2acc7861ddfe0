"""Helpers of the sweep tests: read a results file back as plain rows."""

import sqlite3

VOLATILE = ("seconds",)  # wall time of a point: the one column two runs may not share


def dump(path) -> dict[str, list[dict]]:
    """Every row of the points, layers and counts tables, as dicts without wall times,
    sorted by point (and layer), so two results files compare with ==."""
    con = sqlite3.connect(path)
    out = {}
    for table, order in (
        ("points", "point_id"),
        ("layers", "point_id, layer_index"),
        ("counts", "point_id"),
    ):
        cur = con.execute(f"SELECT * FROM {table} ORDER BY {order}")
        names = [d[0] for d in cur.description]
        out[table] = [{k: v for k, v in zip(names, r) if k not in VOLATILE} for r in cur.fetchall()]
    con.close()
    return out
