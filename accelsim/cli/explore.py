"""`accelsim sweep | results | recost | plot | report`: design-space sweeps, their results
tables, energy re-costing, plots and reports (argument parsing and the command
implementations)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from accelsim.cli.args import positive_int
from accelsim.errors import AccelsimError


def add_sweep_args(p: argparse.ArgumentParser) -> None:
    """Options shared by `sweep` and `report`: workers, scheduler, resuming."""
    p.add_argument(
        "--jobs", type=positive_int, default=None, help="worker processes (default: every core)"
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the points on a Dask cluster: tcp://host:port, or `local` for a LocalCluster "
        "of --jobs workers (needs the dask extra)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_parsers(sub) -> None:
    """Add the sweep, results, recost, report and plot subcommands."""
    from accelsim.plots.names import KIND_NAMES  # noqa: PLC0415 (no matplotlib at start-up)

    sw = sub.add_parser(
        "sweep",
        help="run a design-space sweep (TOML spec) into a SQLite results file",
        description="Run every design point of SPEC (workloads x axes; see "
        "accelsim/sweep/spec.py for the format) and write one row per point and per layer "
        "to a SQLite file. Exit status 1 if a point failed (its error is in the file).",
    )
    sw.add_argument("spec", help="sweep specification (TOML)")
    sw.add_argument("-o", "--output", help="results file (default: NAME.sqlite, NAME from SPEC)")
    add_sweep_args(sw)
    again = sw.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="continue an existing results file: skip points "
        "already written (failed points run again)",
    )
    again.add_argument("--overwrite", action="store_true", help="replace an existing file")

    res = sub.add_parser(
        "results",
        help="summarise or export a results file",
        description="Without options, print the sweep's points. --csv OUT.csv / --parquet "
        "OUT.parquet write the points table to OUT and the layers table (with each point's "
        "workload, bits and swept values) to OUT.layers.csv / OUT.layers.parquet.",
    )
    res.add_argument("results", help="results file (.sqlite) written by `accelsim sweep`")
    res.add_argument(
        "--csv", metavar="OUT.csv", help="export points to OUT.csv, layers to OUT.layers.csv"
    )
    res.add_argument(
        "--parquet",
        metavar="OUT.parquet",
        help="export points to OUT.parquet, layers to OUT.layers.parquet (needs pyarrow)",
    )

    rc = sub.add_parser(
        "recost",
        help="recompute every energy column of a results file with another energy table",
    )
    rc.add_argument("results", help="results file (.sqlite)")
    rc.add_argument(
        "--energy",
        required=True,
        metavar="TABLE",
        help="energy table: preset name (horowitz45) or TOML file",
    )
    rc.add_argument("-o", "--output", required=True, metavar="NEW.sqlite", help="file to write")

    rp = sub.add_parser(
        "report",
        help="run a sweep (or reuse its results) and write its report folder",
        description="Run the sweep of SPEC (a sweep spec with a [report] table; see "
        "accelsim/sweep/report.py), resuming its results file if there is one, then write "
        "README.md (sweep, generated reading, plots, points table), the plots and points.csv "
        "to the report folder (default: ../NAME from the spec's folder).",
    )
    rp.add_argument("spec", help="report specification (TOML)")
    rp.add_argument("-o", "--output", metavar="DIR", help="report folder (default: see above)")
    rp.add_argument("--rerun", action="store_true", help="run every point again")
    add_sweep_args(rp)

    pl = sub.add_parser("plot", help="plot a results file (PNG, SVG or PDF)")
    pl.add_argument("results", help="results file (.sqlite)")
    pl.add_argument("--kind", required=True, choices=KIND_NAMES, help="what to plot")
    pl.add_argument("-o", "--output", required=True, metavar="FILE", help=".png, .svg or .pdf")
    pl.add_argument(
        "--workload",
        action="append",
        default=None,
        metavar="NAME",
        help="only this workload's points; repeatable",
    )
    pl.add_argument(
        "--point",
        metavar="SEQ|ID",
        help="the point of a breakdown or layers plot "
        "(seq number or point_id prefix; default: the first)",
    )


def source():
    """The workload source of sweeps run from the command line."""
    from accelsim.cli.sources import CliWorkloads, default_cache_dir  # noqa: PLC0415

    return CliWorkloads(default_cache_dir())


def run_spec(spec, output, args, resume: bool, overwrite: bool):
    """Run a parsed spec from the command line; prints the outcome; returns it."""
    from accelsim.sweep.run import run_sweep  # noqa: PLC0415

    outcome = run_sweep(
        spec,
        source(),
        output,
        jobs=args.jobs,
        scheduler=args.scheduler,
        resume=resume,
        overwrite=overwrite,
        progress=not args.no_progress and sys.stderr.isatty(),
        log=lambda text: print(text, file=sys.stderr),
    )
    rate = f", {60 * outcome.points_per_s:,.0f} points/min" if outcome.ran else ""
    print(
        f"wrote {output}: {outcome.points} points ({outcome.skipped} already written, "
        f"{outcome.ran} run in {outcome.seconds:.1f} s{rate}, {outcome.errors} failed; "
        f"engine {outcome.engine})"
    )
    if outcome.interrupted:
        print("interrupted: rerun with --resume to finish", file=sys.stderr)
    return outcome


def sweep(args) -> int:
    from accelsim.sweep.spec import load_spec  # noqa: PLC0415

    spec = load_spec(args.spec)
    output = args.output or f"{spec.name}.sqlite"
    outcome = run_spec(spec, output, args, args.resume, args.overwrite)
    if outcome.errors:
        _print_errors(output)
    return 130 if outcome.interrupted else (1 if outcome.errors else 0)


def _print_errors(path, limit: int = 5) -> None:
    from accelsim.sweep.store import connect  # noqa: PLC0415

    con = connect(path)
    try:
        rows = con.execute(
            "SELECT seq, workload, bits, error FROM points WHERE status = 'error' ORDER BY seq"
        ).fetchall()
    finally:
        con.close()
    for seq, workload, bits, error in rows[:limit]:
        print(f"point {seq} ({workload} {bits or ''}): {error}", file=sys.stderr)
    if len(rows) > limit:
        print(f"... and {len(rows) - limit} more (see the error column)", file=sys.stderr)


def results(args) -> int:
    from accelsim.sweep import export  # noqa: PLC0415

    written = []
    if args.csv:
        written += export.export_csv(args.results, args.csv)
    if args.parquet:
        written += export.export_parquet(args.results, args.parquet)
    if written:
        print("wrote " + ", ".join(str(p) for p in written))
        return 0
    cols, rows = export.tables(args.results)["points"]
    show = [c for c in cols if c in ("seq", "workload", "bits", "status")]
    show += [c for c in cols if "." in c]
    show += [c for c in ("latency_cycles", "energy_pj", "accuracy") if c in cols]
    idx = [cols.index(c) for c in show]
    print("  ".join(show))
    for r in rows:
        print("  ".join("" if r[i] is None else str(r[i]) for i in idx))
    return 0


def recost(args) -> int:
    from accelsim.sweep.recost import recost as do_recost  # noqa: PLC0415

    done = do_recost(args.results, args.energy, args.output)
    print(
        f"wrote {args.output}: {done['points']} points re-costed with {args.energy} in "
        f"{done['seconds']:.2f} s"
    )
    return 0


def plot(args) -> int:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    from accelsim.plots import make_plot, save_plot  # noqa: PLC0415

    if not Path(args.results).is_file():
        raise AccelsimError(f"results file {args.results!r} does not exist")
    fig = make_plot(args.results, args.kind, workloads=args.workload, point=args.point)
    save_plot(fig, args.output)
    print(f"wrote {args.output}")
    return 0


def report(args) -> int:
    from accelsim.sweep.report import report_spec, write_report  # noqa: PLC0415
    from accelsim.sweep.spec import load_spec  # noqa: PLC0415

    spec = load_spec(args.spec)
    rspec = report_spec(spec)
    if args.output:
        rspec.folder = Path(args.output)
    results = rspec.folder / "results.sqlite"
    resume = results.exists() and not args.rerun
    outcome = run_spec(spec, results, args, resume=resume, overwrite=args.rerun)
    readme = write_report(spec, rspec, results, f"accelsim report {args.spec}")
    print(f"wrote {readme}")
    return 130 if outcome.interrupted else 0
