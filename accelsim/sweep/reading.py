"""The generated reading of a report: sentences computed from a sweep's results (which point
is fastest, what narrower bits save, where the Pareto front lies, what each swept key does,
what accuracy and rescale mismatches do). Every number comes from the results table."""

from __future__ import annotations

import statistics

from accelsim.plots.data import Results, bits_order, pareto_front

BITS_KEY = "bits"
GROUPS_KEY = "svge.groups"
RESCALE_KEYS = ("rescale.mult_bits", "rescale.round_mode")


def num(v: float) -> str:
    """A figure to about four significant digits, without exponents: 0.01539, 7.835, 3194,
    16,020."""
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.4g}"


def _ms(p: dict) -> str:
    return f"{num(p['latency_ms'])} ms"


def _uj(p: dict) -> str:
    return f"{num(p['energy_pj'] * 1e-6)} µJ"


def _by(points: list[dict], key) -> dict:
    out: dict = {}
    for p in points:
        out.setdefault(key(p), []).append(p)
    return out


def _workloads(res: Results) -> dict[str, list[dict]]:
    return _by(res.points, lambda p: p["workload"])


def best_points(res: Results) -> list[str]:
    """Per workload: the fastest point, the one with the least energy, the most accurate."""
    out = []
    for w, pts in _workloads(res).items():
        fast = min(pts, key=lambda p: p["latency_ms"])
        cheap = min(pts, key=lambda p: p["energy_pj"])
        text = f"{w}: fastest is {res.label(fast)} ({_ms(fast)}, {_uj(fast)})"
        if cheap is not fast:
            text += f"; least energy is {res.label(cheap)} ({_uj(cheap)}, {_ms(cheap)})"
        else:
            text += ", which also takes the least energy"
        out.append(text + f" (of {len(pts)} points).")
    return out


def _change(ratios: list[float]) -> str:
    """How a quantity moves, given old / new ratios (one per setting of the other keys):
    "falls 3.07x", "rises 1.30x", "falls 1.69-1.80x (median 1.75x)", "does not change"."""
    lo, hi, mid = min(ratios), max(ratios), statistics.median(ratios)
    if all(abs(r - 1) < 5e-4 for r in ratios):
        return "does not change"
    verb, f = ("falls", lambda r: r) if mid >= 1 else ("rises", lambda r: 1 / r)
    if hi - lo < 5e-3:
        return f"{verb} {f(mid):.2f}x"
    a, b = sorted((f(lo), f(hi)))
    return f"{verb} {a:.2f}-{b:.2f}x (median {f(mid):.2f}x)"


def bits_reading(res: Results) -> list[str]:
    """Per workload: energy and latency at the widest bits over those at the narrowest, one
    ratio per setting of the other swept keys (range and median when several)."""
    out = []
    others = [k for k in res.varying() if k not in ("workload", BITS_KEY)]
    for w, pts in _workloads(res).items():
        labels = sorted({p["bits"] for p in pts if p["bits"]}, key=bits_order)
        if len(labels) < 2:
            continue
        wide, narrow = labels[0], labels[-1]
        energy, latency = [], []
        for series in _by(pts, lambda p: tuple(str(p[k]) for k in others)).values():
            at = {p["bits"]: p for p in series}
            if wide in at and narrow in at:
                energy.append(at[wide]["energy_pj"] / at[narrow]["energy_pj"])
                latency.append(at[wide]["latency_ms"] / at[narrow]["latency_ms"])
        if not energy:
            continue
        a = {p["bits"]: p for p in pts}
        out.append(
            f"{w}: from {wide} to {narrow} bits, energy {_change(energy)} "
            f"(e.g. {_uj(a[wide])} to {_uj(a[narrow])}) and latency {_change(latency)} "
            f"({_ms(a[wide])} to {_ms(a[narrow])})."
        )
    return out


def accuracy_reading(res: Results) -> list[str]:
    """Per trained workload: the machine's test accuracy at each width, widest first (a range
    where other swept settings change it)."""
    out = []
    for w, pts in _workloads(res).items():
        acc = _by([p for p in pts if p.get("accuracy") is not None], lambda p: p["bits"])
        if not acc:
            continue
        order = sorted(acc, key=bits_order)

        def at(b, acc=acc) -> str:
            lo, hi = (100 * f(p["accuracy"] for p in acc[b]) for f in (min, max))
            return f"{lo:.2f}%" if lo == hi else f"{lo:.2f}-{hi:.2f}%"

        first = statistics.median(p["accuracy"] for p in acc[order[0]])
        last = statistics.median(p["accuracy"] for p in acc[order[-1]])
        change = 100 * (last - first)
        steps = ", ".join(f"{at(b)} at {b}" for b in order)
        out.append(
            f"{w}: test accuracy on the machine {steps} ({abs(change):.2f} points "
            f"{'lost' if change < 0 else 'gained'} from {order[0]} to {order[-1]})."
        )
    return out


def pareto_reading(res: Results) -> list[str]:
    """Per workload: the points on its latency-energy Pareto front, fastest first."""
    out = []
    for w, pts in _workloads(res).items():
        if len(pts) < 2:
            continue
        front = pareto_front([p["energy_pj"] for p in pts], [p["latency_ms"] for p in pts])
        on = sorted((p for p, f in zip(pts, front) if f), key=lambda p: p["latency_ms"])
        groups = list(_by(on, lambda p: (p["latency_ms"], p["energy_pj"])).values())
        keys = [k for k in res.varying() if k != "workload"]
        names = "; ".join(
            f"{res.label(g[0], keys)}{f' (+{len(g) - 1} equal)' if len(g) > 1 else ''} "
            f"({_ms(g[0])}, {_uj(g[0])})"
            for g in groups[:8]
        )
        more = f"; and {len(groups) - 8} more" if len(groups) > 8 else ""
        out.append(
            f"{w}: Pareto front (no other point both faster and cheaper) {len(on)} of "
            f"{len(pts)} points, fastest first: {names}{more}."
        )
    return out


def key_reading(res: Results, keys: list[str]) -> list[str]:
    """Per workload: median latency and energy at each value of the swept key (or the keys
    of one zip group, varied together), medians over the other settings, and the values
    where each is lowest."""
    out = []
    name = ", ".join(keys)
    for w, pts in _workloads(res).items():
        at = _by(pts, lambda p: tuple(p[k] for k in keys))
        if len(at) < 2:
            continue
        lat = {v: statistics.median(p["latency_ms"] for p in ps) for v, ps in at.items()}
        en = {v: statistics.median(p["energy_pj"] * 1e-6 for p in ps) for v, ps in at.items()}
        vals = list(at)

        def show(v: tuple) -> str:
            return str(v[0]) if len(v) == 1 else "(" + ", ".join(str(x) for x in v) + ")"

        series = ", ".join(f"{show(v)}: {num(lat[v])} ms / {num(en[v])} µJ" for v in vals)
        best_l, best_e = min(vals, key=lambda v: lat[v]), min(vals, key=lambda v: en[v])
        median = " (medians over the other settings)" if len(at[vals[0]]) > 1 else ""
        out.append(
            f"{w}, {name}: {series}{median}; latency is lowest at {show(best_l)}, energy at "
            f"{show(best_e)}."
        )
    return out


def groups_reading(res: Results) -> list[str]:
    """Per workload: MACs, latency and energy from the fewest to the most voxel groups."""
    if GROUPS_KEY not in res.swept:
        return []
    out = []
    for w, pts in _workloads(res).items():
        at = _by(pts, lambda p: p[GROUPS_KEY])
        if len(at) < 2:
            continue
        lo, hi = min(at), max(at)

        def med(g, col, at=at):
            return statistics.median(p[col] for p in at[g])

        if all(med(g, c) == med(lo, c) for g in at for c in ("macs", "latency_ms")):
            continue  # no sparse layer: the group count does not apply
        best = min(at, key=lambda g: med(g, "latency_ms"))

        def change(col: str, lo=lo, hi=hi, med=med) -> str:
            return _change([med(lo, col) / med(hi, col)])

        out.append(
            f"{w}: from G = {lo} to G = {hi}, the MAC count {change('macs')}, energy "
            f"{change('energy_pj')} and latency {change('latency_ms')} "
            f"({num(med(lo, 'latency_ms'))} ms to {num(med(hi, 'latency_ms'))} ms); latency is "
            f"lowest at G = {best} ({num(med(best, 'latency_ms'))} ms)."
        )
    return out


def mismatch_reading(res: Results) -> list[str]:
    """Rescaled outputs that differ from round-half-even, per multiplier width and rounding
    mode (summed over the workloads), with the rescale energy of each."""
    if not any(k in res.swept for k in RESCALE_KEYS):
        return []
    keys = [k for k in RESCALE_KEYS if k in res.swept]
    out = []
    for value, pts in _by(res.points, lambda p: tuple(p[k] for k in keys)).items():
        bad = sum(p.get("rescale_mismatch_vs_rne") or 0 for p in pts)
        total = sum(p.get("rescale_outputs") or 0 for p in pts)
        energy = sum(p.get("energy_rescale_pj") or 0 for p in pts) * 1e-6
        share = f" ({100 * bad / total:.3f}% of {total:,} outputs)" if total else ""
        name = ", ".join(f"{k}={v}" for k, v in zip(keys, value))
        acc = [
            f"{100 * p['accuracy']:.2f}% ({p['workload']}, {p['bits']})"
            for p in pts
            if p.get("accuracy") is not None
        ]
        acc_text = f"; test accuracy {', '.join(acc)}" if acc else ""
        out.append(
            f"{name}: {bad:,} outputs differ from round-half-even{share}; "
            f"rescale energy {num(energy)} µJ over {len(pts)} points{acc_text}."
        )
    return out


def reading(res: Results) -> list[str]:
    """Every reading that applies to what the sweep varies."""
    lines = best_points(res)
    varying = res.varying()
    if BITS_KEY in varying:
        lines += bits_reading(res)
    lines += accuracy_reading(res)
    lines += groups_reading(res)
    lines += mismatch_reading(res)
    zips = [list(keys) for keys in res.meta.get("zips", [])]
    zipped = {k for keys in zips for k in keys}
    for keys in [[k] for k in res.swept if k not in zipped] + zips:
        special = {GROUPS_KEY, *RESCALE_KEYS}
        if any(k in varying for k in keys) and not special & set(keys):
            lines += key_reading(res, keys)
    return lines + pareto_reading(res)
