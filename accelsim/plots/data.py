"""Results as the plots read them: rows of a sweep's SQLite file as dicts, which keys vary,
labels made of the swept values, and the Pareto front. Nothing here runs the simulator."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from accelsim.errors import AccelsimError
from accelsim.sweep.store import connect, read_meta


@dataclass
class Results:
    """The ok points of a results file (dicts, in spec order), its swept config keys and
    its meta; `layers_of(point_id)` gives a point's layer rows."""

    path: str
    points: list[dict]
    swept: list[str]
    meta: dict = field(default_factory=dict)
    errors: int = 0

    def layers_of(self, point_id: str) -> list[dict]:
        con = connect(self.path)
        try:
            cur = con.execute(
                "SELECT * FROM layers WHERE point_id = ? ORDER BY layer_index", (point_id,)
            )
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]
        finally:
            con.close()

    def varying(self) -> list[str]:
        """Identifying keys whose value differs between points: workload, bits, swept keys."""
        keys = ["workload", "bits", *self.swept]
        return [k for k in keys if len({json.dumps(p.get(k)) for p in self.points}) > 1]

    def label(self, p: dict, keys: list[str] | None = None) -> str:
        """A point's label: `key=value` of the varying keys (workload and bits bare)."""
        keys = self.varying() if keys is None else keys
        parts = []
        for k in keys:
            v = p.get(k)
            parts.append(str(v) if k in ("workload", "bits") else f"{k.split('.')[-1]}={v}")
        return ", ".join(parts) or (p["workload"] if keys is None else "")

    def point(self, which: str | None) -> dict:
        """The point `which` names: its seq number, else a point_id prefix (default: the first)."""
        if not self.points:
            raise AccelsimError(f"{self.path}: no finished (ok) point to plot")
        if which is None:
            return self.points[0]
        hits = [p for p in self.points if str(p["seq"]) == which]
        hits = hits or [p for p in self.points if p["point_id"].startswith(which)]
        if len(hits) != 1:
            raise AccelsimError(
                f"--point {which!r} matches {len(hits)} points of {self.path} (give a seq "
                "number or a longer point_id prefix; `accelsim results` lists them)"
            )
        return hits[0]


def load_results(path, workloads=None) -> Results:
    """The ok points of the results file at `path` (only `workloads` if given)."""
    con = connect(path)
    try:
        meta = read_meta(con)
        cur = con.execute("SELECT * FROM points ORDER BY seq")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        con.close()
    if workloads:
        unknown = set(workloads) - {r["workload"] for r in rows}
        if unknown:
            raise AccelsimError(f"{path}: no points of workload(s) {', '.join(sorted(unknown))}")
        rows = [r for r in rows if r["workload"] in workloads]
    ok = [r for r in rows if r["status"] == "ok"]
    return Results(str(path), ok, list(meta.get("swept", [])), meta, len(rows) - len(ok))


def pareto_front(xs, ys) -> list[bool]:
    """Which points (x, y) no other point beats in both (lower is better in both; a point
    equal to another in both stays on the front)."""
    order = sorted(range(len(xs)), key=lambda i: (xs[i], ys[i]))
    on = [False] * len(xs)
    best_y, best_x = float("inf"), None
    for i in order:
        if ys[i] < best_y or (ys[i] == best_y and xs[i] == best_x):
            on[i] = True
            best_y, best_x = ys[i], xs[i]
    return on


def bits_order(label: str | None) -> tuple:
    """Sort key of an A/W label: widest first (8/8 before 4/4 before 2/2)."""
    if not label:
        return (0, 0)
    a, w = (int(v) for v in label.split("/"))
    return (-a * w, -a, -w)
