"""Re-cost a finished sweep with another energy table, without simulating.

Every point's counts (the `counts` table: `Stats.to_dict()`) go through the same
`accelsim.sweep.rows.energy_columns` a sweep uses, with the new table. The copy's rows are
then what a fresh sweep with `energy.table` set to the new table writes: its energy columns,
`tops_per_w`, `config_json` and `point_id` (which hashes the configuration) all change; cycles,
bytes and MACs do not depend on the table.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import zlib
from pathlib import Path

from accelsim.energy import load_energy_table
from accelsim.errors import AccelsimError
from accelsim.stats import Stats
from accelsim.sweep.points import point_id
from accelsim.sweep.rows import energy_columns
from accelsim.sweep.store import connect, q, read_meta

ENERGY_KEY = "energy.table"


def _update(con, table: str, values: dict, where: str, args: tuple) -> None:
    sets = ", ".join(f"{q(k)} = ?" for k in values)
    con.execute(f"UPDATE {q(table)} SET {sets} WHERE {where}", (*values.values(), *args))


def recost(src, energy: str, dst) -> dict:
    """Write `dst`: the results file `src` with every energy column recomputed from its
    counts with energy table `energy` (a preset name or TOML file). Returns {points, seconds}.
    AccelsimError if `src` is not a results file or `energy` not a table. `dst` appears
    whole or not at all (built in a temporary file next to it, then renamed)."""
    t0 = time.perf_counter()
    table = load_energy_table(energy)
    dst = Path(dst)
    if Path(src).resolve() == dst.resolve():
        raise AccelsimError(f"recost: -o {dst} is the input file; write the result elsewhere")
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    con = connect(src)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp.unlink(missing_ok=True)
        out = sqlite3.connect(tmp, isolation_level=None)
        con.backup(out)
        try:
            n = _recost_in_place(out, energy, table, str(src))
        finally:
            out.close()
        os.replace(tmp, dst)
    except (OSError, sqlite3.Error) as exc:
        raise AccelsimError(f"recost: cannot write {dst}: {exc}") from None
    finally:
        con.close()
        tmp.unlink(missing_ok=True)
    return {"points": n, "seconds": time.perf_counter() - t0}


def _recost_in_place(out: sqlite3.Connection, energy: str, table, src: str) -> int:
    """Recompute the energy columns and point ids of the results database `out`; returns
    the number of points."""
    meta = read_meta(out)
    if ENERGY_KEY in meta.get("swept", []):
        raise AccelsimError(
            f"recost: {src} sweeps {ENERGY_KEY}; one table for every point would make its "
            "points equal (run the sweep with the new table instead)"
        )
    out.execute("BEGIN")
    stats = dict(out.execute("SELECT point_id, stats FROM counts"))
    rows = out.execute("SELECT point_id, config_json, key_json FROM points").fetchall()
    for old_id, config_json, key_json in rows:
        config = json.loads(config_json)
        config["energy"]["table"] = energy
        new_id = point_id(json.loads(key_json), config)
        values = {"point_id": new_id, "config_json": json.dumps(config, sort_keys=True)}
        if old_id in stats:
            run = Stats.from_dict(json.loads(zlib.decompress(stats[old_id])))
            point_cols, layer_cols = energy_columns(run, table)
            values.update(point_cols)
            for tag, cols in layer_cols.items():
                _update(out, "layers", cols, "point_id = ? AND tag = ?", (old_id, tag))
        _update(out, "points", values, "point_id = ?", (old_id,))
        for t in ("layers", "counts"):
            _update(out, t, {"point_id": new_id}, "point_id = ?", (old_id,))
    out.execute(
        "INSERT OR REPLACE INTO meta VALUES (?, ?)",
        ("recosted", json.dumps({"from": src, "energy_table": energy})),
    )
    out.execute("COMMIT")
    return len(rows)
