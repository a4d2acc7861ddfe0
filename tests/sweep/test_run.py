"""Running sweeps: a process pool of 2 workers and a Dask LocalCluster write identical
tables; a failing point is recorded and the sweep goes on; --resume runs only what is
missing; the CLI exports tables pandas reads."""

import json
import sqlite3

import pytest

from accelsim.cli import main
from accelsim.cli.sources import CliWorkloads
from accelsim.errors import AccelsimError
from accelsim.sweep.run import run_sweep
from accelsim.sweep.spec import parse_spec
from tests.sweep.helpers import dump

SPEC = """
name = "small"
workloads = ["small_cnn", "mlp"]
base = "edge"
engine = "event"
[axes]
bits = ["8/8", "2/2"]
"matmul.max_bits" = [8, 4]
[zip]
"matmul.rows" = [8, 16]
"matmul.cols" = [8, 16]
"""
POINTS = 16  # 2 workloads x 2 bits x 2 max_bits x 2 array shapes


def _run(tmp_path, name, **kwargs):
    spec = parse_spec(SPEC, "small.toml")
    out = tmp_path / f"{name}.sqlite"
    outcome = run_sweep(spec, CliWorkloads(str(tmp_path / "cache")), out, progress=False, **kwargs)
    return out, outcome


@pytest.fixture(scope="module")
def pool_run(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("pool"), "pool", jobs=2)


def test_pool_writes_every_point_and_records_failures(pool_run):
    """Points on a 4-bit-max array fail (the first layer reads the 8-bit input, more than
    matmul.max_bits): 8 of 16, each with its message and no layers or counts; the others are
    complete."""
    path, outcome = pool_run
    assert (outcome.points, outcome.ran, outcome.errors, outcome.skipped) == (POINTS, POINTS, 8, 0)
    rows = dump(path)
    assert len(rows["points"]) == POINTS
    bad = [p for p in rows["points"] if p["status"] == "error"]
    assert {p["matmul.max_bits"] for p in bad} == {4} and len(bad) == 8
    assert all("operands exceed matmul.max_bits = 4" in p["error"] for p in bad)
    ok_ids = {p["point_id"] for p in rows["points"] if p["status"] == "ok"}
    assert {r["point_id"] for r in rows["layers"]} == ok_ids
    assert {r["point_id"] for r in rows["counts"]} == ok_ids
    by = {
        (p["workload"], p["bits"], p["matmul.max_bits"], p["matmul.rows"]): p
        for p in rows["points"]
    }
    small = by[("small_cnn", "8/8", 8, 16)]
    assert small["latency_cycles"] > 0 and small["macs"] == 508224 and small["model"] == "small_cnn"
    assert json.loads(small["config_json"])["matmul"]["cols"] == 16
    assert small["energy_pj"] == pytest.approx(
        sum(
            v
            for k, v in small.items()
            if k.startswith("energy_") and k.endswith("_pj") and k != "energy_pj"
        )
    )
    layers = [r for r in rows["layers"] if r["point_id"] == small["point_id"]]
    assert [r["name"] for r in layers][:3] == ["conv1", "dwconv", "pwconv"]
    assert sum(r["macs"] for r in layers) == small["macs"]


def test_dask_local_cluster_gives_identical_tables(pool_run, tmp_path):
    pytest.importorskip("dask.distributed", reason="the dask extra is not installed")
    path, outcome = _run(tmp_path, "dask", jobs=2, scheduler="local")
    assert (outcome.ran, outcome.errors) == (POINTS, 8)
    assert dump(path) == dump(pool_run[0])


def test_resume_runs_only_failed_and_missing_points(pool_run, tmp_path):
    """A copy of the pool's file with two ok points deleted: --resume runs those two and the
    eight failed ones again (they fail again), and the tables equal the original."""
    src = sqlite3.connect(pool_run[0])
    copy = tmp_path / "resume.sqlite"
    dst = sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    gone = [r[0] for r in dst.execute("SELECT point_id FROM points WHERE status='ok' LIMIT 2")]
    for table in ("points", "layers", "counts"):
        dst.executemany(f"DELETE FROM {table} WHERE point_id = ?", [(g,) for g in gone])
    dst.commit()
    dst.close()
    spec = parse_spec(SPEC, "small.toml")
    source = CliWorkloads(str(tmp_path / "cache"))
    outcome = run_sweep(spec, source, copy, jobs=2, resume=True, progress=False)
    assert (outcome.skipped, outcome.ran, outcome.errors) == (POINTS - 10, 10, 8)
    assert dump(copy) == dump(pool_run[0])
    with pytest.raises(AccelsimError, match="exists: pass --resume to continue"):
        run_sweep(spec, source, copy, jobs=2, progress=False)
    # resumed with one width only: the 8 points at 2/2 leave the file, the 4 failed 8/8 run again
    narrow = parse_spec(SPEC.replace('["8/8", "2/2"]', '["8/8"]'), "small.toml")
    outcome = run_sweep(narrow, source, copy, jobs=1, resume=True, progress=False)
    assert (outcome.skipped, outcome.ran) == (4, 4)
    assert outcome.notes == [f"removed 8 points of another code version or spec from {copy}"]
    rows = dump(copy)
    assert len(rows["points"]) == 8 and {p["bits"] for p in rows["points"]} == {"8/8"}
    assert {r["point_id"] for r in rows["layers"]} <= {p["point_id"] for p in rows["points"]}
    other = parse_spec(SPEC.replace('"matmul.max_bits" = [8, 4]', ""), "small.toml")
    with pytest.raises(AccelsimError, match=r"holds a sweep over \['matmul.max_bits'"):
        run_sweep(other, source, copy, jobs=2, resume=True, progress=False)


def test_cli_sweep_exit_status_and_exports(pool_run, tmp_path, capsys):
    """`accelsim results --csv` writes points and OUT.layers.csv; pandas reads both with the
    swept columns; --parquet likewise (pyarrow)."""
    pd = pytest.importorskip("pandas", reason="pandas reads the exports")
    path = pool_run[0]
    assert main(["results", str(path), "--csv", str(tmp_path / "r.csv")]) == 0
    points = pd.read_csv(tmp_path / "r.csv")
    layers = pd.read_csv(tmp_path / "r.layers.csv")
    assert len(points) == POINTS and "config_json" not in points.columns
    assert {"workload", "bits", "matmul.rows", "latency_cycles", "energy_pj"} <= set(points.columns)
    ok = points[points.status == "ok"]
    assert len(layers) == len(dump(path)["layers"])
    per_point = layers.groupby("point_id").macs.sum()
    assert (per_point.loc[ok.point_id].values == ok.macs.values).all()
    assert {"workload", "bits", "matmul.max_bits", "name", "cycles"} <= set(layers.columns)
    pytest.importorskip("pyarrow", reason="the parquet extra is not installed")
    assert main(["results", str(path), "--parquet", str(tmp_path / "r.parquet")]) == 0
    pq = pd.read_parquet(tmp_path / "r.parquet")
    assert list(pq.columns) == list(points.columns) and len(pq) == POINTS
    assert len(pd.read_parquet(tmp_path / "r.layers.parquet")) == len(layers)
    capsys.readouterr()
    assert main(["results", str(path)]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split() == [
        "seq",
        "workload",
        "bits",
        "status",
        "matmul.max_bits",
        "matmul.rows",
        "matmul.cols",
        "latency_cycles",
        "energy_pj",
    ]
    assert len(listing) == POINTS + 1


def test_cli_errors_are_one_line(tmp_path, capsys):
    spec = tmp_path / "bad.toml"
    spec.write_text(SPEC.replace('"matmul.rows" = [8, 16]', '"matmul.rows" = [8, -1]'))
    assert main(["sweep", str(spec), "-o", str(tmp_path / "x.sqlite")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "matmul.rows: must be positive, got -1" in err
    assert not (tmp_path / "x.sqlite").exists()
    assert main(["results", str(tmp_path / "none.sqlite")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "junk.sqlite").write_text("not sqlite")
    assert main(["results", str(tmp_path / "junk.sqlite")]) == 2
    assert "not a results file" in capsys.readouterr().err


def test_fast_engine_points_equal_the_event_engines(pool_run, tmp_path):
    """The same spec on the fast timing engine: every number of every point and layer equals
    the event engine's; only the engine column and the ids (which hash the engine) differ."""
    spec = parse_spec(SPEC.replace('engine = "event"', 'engine = "fast"'), "small.toml")
    out = tmp_path / "fast.sqlite"
    outcome = run_sweep(spec, CliWorkloads(str(tmp_path / "cache")), out, jobs=1, progress=False)
    assert (outcome.engine, outcome.errors) == ("fast", 8)

    def by_seq(path):
        rows = dump(path)
        seq = {p["point_id"]: p["seq"] for p in rows["points"]}
        skip = ("point_id", "key_json", "engine")
        points = {p["seq"]: {k: v for k, v in p.items() if k not in skip} for p in rows["points"]}
        layers = {
            (seq[r["point_id"]], r["layer_index"]): {k: v for k, v in r.items() if k != "point_id"}
            for r in rows["layers"]
        }
        engines = {p["engine"] for p in rows["points"]}
        return points, layers, engines

    fast, event = by_seq(out), by_seq(pool_run[0])
    assert fast[2] == {"fast"} and event[2] == {"event"}
    assert fast[0] == event[0] and fast[1] == event[1] and len(fast[1]) > 0
