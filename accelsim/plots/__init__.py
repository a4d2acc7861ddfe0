"""Design-space plots of a sweep's results file (matplotlib; they read the results only and
never run the simulator). `make_plot(path, kind)` returns the `Figure`; `save_plot` writes it
as PNG, SVG or PDF (chosen by the file's suffix)."""

from __future__ import annotations

from pathlib import Path

from accelsim.errors import AccelsimError
from accelsim.fileio import atomic_write
from accelsim.plots.data import load_results
from accelsim.plots.kinds import KINDS, POINT_KINDS

FORMATS = (".png", ".svg", ".pdf")


def make_plot(path, kind: str, *, workloads=None, point: str | None = None):
    """The `kind` plot (one of `KINDS`) of the results file at `path`; `workloads` keeps only
    those workloads' points; `point` (breakdown, layers) names the point to show."""
    if kind not in KINDS:
        raise AccelsimError(f"unknown plot kind {kind!r}; kinds: {', '.join(KINDS)}")
    res = load_results(path, workloads)
    if kind in POINT_KINDS:
        return KINDS[kind](res, point)
    if point is not None:
        raise AccelsimError(f"--point applies to {', '.join(POINT_KINDS)}, not {kind}")
    return KINDS[kind](res)


def save_plot(fig, out) -> None:
    """Write `fig` to `out` (.png at 150 dpi, .svg or .pdf), atomically."""
    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise AccelsimError(f"plot file {str(out)!r}: expected a {', '.join(FORMATS)} file")
    fmt = out.suffix.lower().lstrip(".")
    atomic_write(out, lambda fh: fig.savefig(fh, format=fmt, dpi=150))
