"""The results file of a sweep: one SQLite database, written only by the sweep's parent.

Tables:

- `points`: one row per design point. `point_id` (primary key), `seq` (order in the spec),
  `workload`, `bits` (A/W; empty for a model file's own widths), one column per swept config
  key (named like the key, e.g. `matmul.rows`), `status` (ok | error), `error`, every run
  total under its `accelsim run --json` name (latency_cycles, latency_ms, energy_pj,
  dram_bytes, macs, utilisation, tops_per_w, rescale_mismatch_vs_rne, ...), `rescale_outputs`
  (accumulators rescaled: the mismatches' denominator), `energy_<component>_pj`, the machine's
  `peak_macs_per_cycle` and `peak_dram_bytes_per_cycle` (the roofline), `accuracy` (trained
  models), `engine`, `seconds` (wall time of the point), `config_json` (the whole config) and
  `key_json` (the rest of what `point_id` hashes: workload identity, bits, rules, seed, ...).
- `layers`: one row per point and layer: `point_id`, `layer_index`, `tag` and every per-layer
  field of `--json` (name, cycles, share, macs, utilisation, dram_bytes, energy_pj, ...) plus
  `energy_<component>_pj`.
- `counts`: `point_id`, `stats`: the run's counters (`Stats.to_dict()` as zlib-packed JSON), from
  which `accelsim recost` recomputes energy without simulating.
- `meta`: key, value: the sweep's name, spec text, code version, engine, swept keys.

Each point is written in one transaction (its points row, layers rows and counts together), so
a sweep killed at any moment leaves only whole points; a point written again (a retried error)
replaces its rows. Resuming removes the points the spec no longer names (another code version
or changed axes), so the file always holds one sweep. Columns a new kind of row brings (e.g. a
sparse layer's svge_* fields) are added when first seen.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from accelsim.errors import AccelsimError

SCHEMA_VERSION = "1"
_CORE = {
    "points": (
        '"point_id" TEXT PRIMARY KEY, "seq" INTEGER, "workload" TEXT, "bits" TEXT, {swept}'
        '"status" TEXT, "error" TEXT, "engine" TEXT, "seconds" REAL, "config_json" TEXT, '
        '"key_json" TEXT'
    ),
    "layers": (
        '"point_id" TEXT, "layer_index" INTEGER, "tag" INTEGER, "name" TEXT, '
        'PRIMARY KEY ("point_id", "layer_index")'
    ),
    "counts": '"point_id" TEXT PRIMARY KEY, "stats" BLOB',
    "meta": '"key" TEXT PRIMARY KEY, "value" TEXT',
}


def q(name: str) -> str:
    """A column or table name quoted for SQL (swept keys contain dots)."""
    return '"' + name.replace('"', '""') + '"'


def _sql_type(value) -> str:
    if isinstance(value, bool) or isinstance(value, int):
        return "INTEGER"
    if isinstance(value, float):
        return "REAL"
    return "TEXT"


def cell(value):
    """A Python value as SQLite stores it (tuples and lists as JSON text)."""
    if isinstance(value, (tuple, list, dict)):
        return json.dumps(value)
    return value


def connect(path) -> sqlite3.Connection:
    """Open an existing results file (AccelsimError naming it if it is not one)."""
    path = Path(path)
    if not path.is_file():
        raise AccelsimError(f"results file {str(path)!r} does not exist")
    con = sqlite3.connect(path)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        con.close()
        raise AccelsimError(f"{path}: not a results file ({exc})") from None
    if not {"points", "layers", "meta"} <= tables:
        con.close()
        raise AccelsimError(f"{path}: not a results file (no points / layers / meta tables)")
    return con


def columns(con: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in con.execute(f"PRAGMA table_info({q(table)})")]


def read_meta(con: sqlite3.Connection) -> dict:
    return {k: json.loads(v) for k, v in con.execute("SELECT key, value FROM meta")}


class ResultsStore:
    """The results file of one sweep, open for writing. `meta`: the sweep's description;
    `swept`: swept config keys (columns). An existing file is refused unless `resume` (its
    swept keys must match) or `overwrite` (deleted first)."""

    def __init__(self, path, meta: dict, swept: list[str], resume=False, overwrite=False):
        self.path = Path(path)
        if self.path.exists() and not (resume or overwrite):
            raise AccelsimError(
                f"results file {str(self.path)!r} exists: pass --resume to continue that sweep "
                "or --overwrite to start again"
            )
        if self.path.exists() and overwrite:
            for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
                p.unlink(missing_ok=True)
        fresh = not self.path.exists()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.con = sqlite3.connect(self.path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise AccelsimError(f"cannot write results file {str(self.path)!r}: {exc}") from None
        # WAL: a commit is durable once written, even if the process is killed right after
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("PRAGMA synchronous=NORMAL")
        if fresh:
            self._create(meta, swept)
        else:
            self._check_resume(meta, swept)
        self._cols = {t: set(columns(self.con, t)) for t in ("points", "layers")}

    def _create(self, meta: dict, swept: list[str]) -> None:
        with self.con:
            self.con.execute("BEGIN")
            for table, cols in _CORE.items():
                body = cols.format(swept="".join(f"{q(k)}, " for k in swept))
                self.con.execute(f"CREATE TABLE {q(table)} ({body})")
            meta = {**meta, "swept": swept, "schema": SCHEMA_VERSION}
            self.con.executemany(
                "INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()]
            )

    def _check_resume(self, meta: dict, swept: list[str]) -> None:
        try:
            old = read_meta(self.con)
        except sqlite3.DatabaseError as exc:
            raise AccelsimError(f"{self.path}: not a results file ({exc})") from None
        if old.get("swept") != swept:
            raise AccelsimError(
                f"{self.path}: holds a sweep over {old.get('swept')}, the spec sweeps {swept}; "
                "write to another file or pass --overwrite"
            )
        with self.con:
            self.con.execute("BEGIN")
            for k in ("spec", "code_version", "engine"):
                self.con.execute(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, json.dumps(meta[k]))
                )

    def finished(self) -> set[str]:
        """Point ids written with status ok (`--resume` skips them; errors run again)."""
        return {r[0] for r in self.con.execute("SELECT point_id FROM points WHERE status = 'ok'")}

    def prune(self, keep: set[str]) -> int:
        """Delete the points (and their layers and counts) whose ids are not in `keep`: rows
        of an older code version or of points the spec no longer has. Returns how many."""
        stale = [r[0] for r in self.con.execute("SELECT point_id FROM points")]
        stale = [(pid,) for pid in stale if pid not in keep]
        with self.con:
            self.con.execute("BEGIN IMMEDIATE")
            for table in ("points", "layers", "counts"):
                self.con.executemany(f"DELETE FROM {q(table)} WHERE point_id = ?", stale)
        return len(stale)

    def _ensure(self, table: str, row: dict) -> None:
        for k in [k for k in row if k not in self._cols[table]]:
            self.con.execute(f"ALTER TABLE {q(table)} ADD COLUMN {q(k)} {_sql_type(row[k])}")
            self._cols[table].add(k)

    def _insert(self, table: str, row: dict, replace: bool = False) -> None:
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        names = ", ".join(q(k) for k in row)
        marks = ", ".join("?" for _ in row)
        self.con.execute(
            f"{verb} INTO {q(table)} ({names}) VALUES ({marks})", [cell(v) for v in row.values()]
        )

    def write(self, point_row: dict, layers: list[dict], stats: bytes | None) -> None:
        """Write one point (its points row, layers and counts) in one transaction."""
        pid = point_row["point_id"]
        with self.con:
            self.con.execute("BEGIN IMMEDIATE")
            self._ensure("points", point_row)
            for row in layers:
                self._ensure("layers", row)
            self._insert("points", point_row, replace=True)
            self.con.execute("DELETE FROM layers WHERE point_id = ?", (pid,))
            for row in layers:
                self._insert("layers", {"point_id": pid, **row})
            self.con.execute("DELETE FROM counts WHERE point_id = ?", (pid,))
            if stats is not None:
                self._insert("counts", {"point_id": pid, "stats": stats})

    def close(self) -> None:
        """Checkpoint the write-ahead log into the one file and close."""
        self.con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.con.execute("PRAGMA journal_mode=DELETE")
        self.con.close()
