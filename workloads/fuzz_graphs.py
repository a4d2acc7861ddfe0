"""Fuzz the lowering with random legal graphs on random machines; count and keep the failures.

    python workloads/fuzz_graphs.py --n 10000 [--seed S] [--jobs N] [--sparse] [--out DIR]

Case i of seed S is drawn by `workloads.random_graphs.dense_case` (or
`workloads.sparse_graphs.sparse_case`) from `numpy.random.default_rng([S, i])`, so every case
can be drawn again from its two numbers. Each is run by `run_case`, the property the tests in
`tests/fuzz/` check: the machine gives exactly the integer reference in every layer and
timing-only runs on both timing engines (event and fast) give the functional run's cycles, or
the lowering refuses the graph with a `HardwareLimitError` naming a limit of the modelled
hardware. Outcomes:

- exact: every layer equals the reference and the timing-only runs give the same cycles;
- wrong: a layer differs, or a timing-only run's latency or layer spans differ;
- limit: refused for a hardware limit (counted by the limit's name), or an int32 accumulator
  overflow on a machine set to stop on one (`matmul.overflow = "error"`);
- refused: any other `AccelsimError` (a legal graph the lowering cannot run: a bug);
- crashed: any other exception.

Every case that is not exact or limit is saved under DIR/<kind>-<seed>-<i>/ as `model.npz`
(the native format), `config.toml` and the input (`input.npy`, or `input.npz` with coords and
features), so `accelsim run DIR/.../model.npz --config DIR/.../config.toml --input
DIR/.../input.npy --check` replays it. The counts are printed and written to
DIR/summary-<kind>-<seed>.json.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make `workloads` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from accelsim.config import load_config, to_toml  # noqa: E402
from accelsim.errors import (  # noqa: E402
    AccelsimError,
    AccumulatorOverflow,
    HardwareLimitError,
)
from accelsim.fileio import atomic_write_json, atomic_write_text  # noqa: E402
from workloads.random_graphs import Case, RngDraw, dense_case  # noqa: E402

STATUSES = ("exact", "wrong", "limit", "refused", "crashed")


@dataclass(frozen=True)
class Outcome:
    """What one case did: `status` (one of STATUSES) and a reason (the message, or the limit's
    name for `limit`)."""

    status: str
    reason: str = ""
    detail: str = ""  # the whole message of a limit (its reason is the limit's name)

    @property
    def ok(self) -> bool:
        """True when the property holds (exact, or refused for a hardware limit)."""
        return self.status in ("exact", "limit")


def run_case(case: Case) -> Outcome:
    """Run `case` functionally with --check and timing-only; classify (module docstring)."""
    from accelsim.runner import run_model  # noqa: PLC0415
    from accelsim.sim import simulate  # noqa: PLC0415

    try:
        cfg = load_config("edge", case.overrides)
        res = run_model(case.graph, cfg, case.x, check=True)
        if not res.check_ok:
            return Outcome("wrong", res.check_message)
        for engine in ("event", "fast"):
            timed = simulate(res.program, cfg, engine=engine, count_only=True, strict_tokens=True)
            if (timed.stats.latency_cycles, timed.stats.layer_span) != (
                res.stats.latency_cycles,
                res.stats.layer_span,
            ):
                return Outcome(
                    "wrong",
                    f"timing-only run on the {engine} engine: latency {timed.stats.latency_cycles}"
                    f" or layer spans differ from the functional run's "
                    f"{res.stats.latency_cycles}",
                )
        return Outcome("exact")
    except HardwareLimitError as exc:
        return Outcome("limit", exc.limit, str(exc))
    except AccumulatorOverflow as exc:  # int32 accumulators, configured to stop on overflow
        return Outcome("limit", "int32 accumulator overflow", str(exc))
    except AccelsimError as exc:
        return Outcome("refused", str(exc))
    except Exception as exc:  # noqa: BLE001 - a crash is an outcome to count, not to stop on
        return Outcome("crashed", f"{type(exc).__name__}: {exc}")


def reason_key(outcome: Outcome) -> str:
    """The outcome's reason with names and numbers blanked, to count alike failures together."""
    text = re.sub(r"'[^']*'", "'_'", outcome.reason)
    return re.sub(r"-?\d+(\.\d+)?", "#", text)[:160]


def draw(seed: int, index: int, sparse: bool) -> Case:
    """Case `index` of `seed` (see the module docstring)."""
    d = RngDraw(np.random.default_rng([seed, index]))
    if sparse:
        from workloads.sparse_graphs import sparse_case  # noqa: PLC0415

        return sparse_case(d)
    return dense_case(d)


def save_case(case: Case, folder: Path, outcome: Outcome) -> None:
    """Write the case's model, config, input and outcome into `folder`."""
    from accelsim.frontend.native import save_model  # noqa: PLC0415

    folder.mkdir(parents=True, exist_ok=True)
    save_model(case.graph, folder / "model.npz")
    atomic_write_text(folder / "config.toml", to_toml(load_config("edge", case.overrides)))
    if case.graph.kind == "sparse":
        coords, feats = case.x
        np.savez(folder / "input.npz", coords=coords, features=feats)
    else:
        np.save(folder / "input.npy", case.x)
    atomic_write_json(folder / "outcome.json", {"status": outcome.status, "reason": outcome.reason})


def _one(job: tuple[int, int, bool, str]) -> tuple[int, str, str, str]:
    seed, index, sparse, out = job
    try:
        case = draw(seed, index, sparse)
    except Exception as exc:  # noqa: BLE001 - a generator fault is reported, not fatal
        return index, "crashed", f"generator: {type(exc).__name__}: {exc}", ""
    outcome = run_case(case)
    if not outcome.ok:
        kind = "sparse" if sparse else "dense"
        try:
            save_case(case, Path(out) / f"{kind}-{seed}-{index}", outcome)
        except Exception as exc:  # noqa: BLE001 - the count matters more than the file
            return index, "crashed", f"saving the case: {type(exc).__name__}: {exc}", ""
    return index, outcome.status, outcome.reason, outcome.detail


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1000, help="cases to run (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the case stream (default 0)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--sparse", action="store_true", help="sparse graphs instead of dense")
    p.add_argument("--out", default="fuzz_failures", help="folder for failing cases")
    args = p.parse_args(argv)
    from tqdm import tqdm  # noqa: PLC0415

    jobs = [(args.seed, i, args.sparse, args.out) for i in range(args.n)]
    counts: Counter = Counter()
    reasons: dict[str, Counter] = {s: Counter() for s in STATUSES}
    failing: list[int] = []
    limits: dict[str, list] = {}  # limit -> (case, message) of its first few cases
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = pool.map(_one, jobs, chunksize=4)
        for index, status, reason, detail in tqdm(results, total=args.n, unit="case"):
            counts[status] += 1
            if status != "exact":
                reasons[status][reason_key(Outcome(status, reason))] += 1
            if status == "limit" and len(limits.setdefault(reason, [])) < 5:
                limits[reason].append((index, detail))
            if status not in ("exact", "limit"):
                failing.append(index)
    seconds = time.perf_counter() - t0
    kind = "sparse" if args.sparse else "dense"
    print(f"{args.n} {kind} cases, seed {args.seed}, {seconds:.0f} s")
    for status in STATUSES:
        print(f"  {status:8s} {counts[status]}")
        for reason, n in reasons[status].most_common():
            print(f"      {n:6d}  {reason}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        Path(args.out) / f"summary-{kind}-{args.seed}.json",
        {
            "cases": args.n,
            "kind": kind,
            "seed": args.seed,
            "seconds": round(seconds, 1),
            "counts": {s: counts[s] for s in STATUSES},
            "reasons": {s: dict(reasons[s].most_common()) for s in STATUSES if reasons[s]},
            "failing_cases": failing,
            "limit_examples": limits,
        },
        indent=1,
    )
    return 0 if not failing else 1


if __name__ == "__main__":
    sys.exit(main())
