"""Independent layers run back to back: several single-layer models simulated one after the
other on one machine, reported as one run with one row per layer.

A SCALE-Sim topology file lists layers whose shapes do not chain, so each becomes its own graph
with its own input (`workloads.topology`). Each is lowered and simulated on its own, starting
from an idle machine with empty buffers (its weights and input come from DRAM), the way
SCALE-Sim simulates each layer of a topology on its own. The merged `Stats` renumber each
run's layer tags (`Stats.shift_tags`) and shift its spans by the latency of the runs before it
(`Stats.__add__`): the run's latency is the sum of the layers' latencies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from accelsim.config import HwConfig
from accelsim.ir.graph import Graph
from accelsim.runner import run_model
from accelsim.stats import Stats


@dataclass
class SequenceResult:
    """Outcome of `run_sequence`: the merged statistics, every layer's outputs (keyed
    "model/tensor") and, with check=True, whether every layer equals its reference. `name` is
    the model name reports show; `layers` counts the models run."""

    name: str
    stats: Stats
    outputs: dict = field(default_factory=dict)
    check_ok: bool | None = None
    check_message: str = ""
    layers: int = 0
    graph: None = None  # no one graph: each layer is its own model (reports read `name`)
    rescale_options: dict | None = None  # not audited for a sequence


def run_sequence(
    name: str,
    models: Iterable[tuple[Graph, np.ndarray]],
    cfg: HwConfig,
    *,
    count_only: bool = False,
    check: bool = False,
    progress: bool = False,
    engine: str = "event",
    check_races: bool = True,
) -> SequenceResult:
    """Simulate each (graph, input) of `models` in turn on `cfg` with the timing `engine` and
    merge the statistics.

    Models are consumed one at a time, so a long topology never holds every layer's weights.
    With check=True every model's outputs are compared with its IR reference
    (`accelsim.runner.compare`); the first failure is reported. check_races: run the race
    detector (see `accelsim.sim.simulate`)."""
    stats, outputs, failed, n = Stats(), {}, None, 0
    for graph, x in models:
        r = run_model(
            graph,
            cfg,
            x,
            count_only=count_only,
            check=check,
            progress=progress,
            engine=engine,
            check_races=check_races,
        )
        offset = max(stats.tags, default=0)
        stats = stats + r.stats.shift_tags(offset)
        outputs.update({f"{graph.name}/{k}": v for k, v in r.outputs.items()})
        if r.check_ok is False and failed is None:
            failed = r.check_message
        n += 1
    result = SequenceResult(name, stats, outputs, layers=n)
    if check and count_only:
        result.check_ok, result.check_message = None, "check skipped: --timing-only"
    elif check:
        result.check_ok = failed is None
        result.check_message = failed or (
            f"check passed: the outputs of all {n} layers equal the IR integer reference exactly"
        )
    return result
