"""Golden record: cycles, energy and outputs of every built-in workload on every preset.

`tests/golden_expected.json` was written before the structural refactor (issue 11) and pins what
the machine computes: latency, instructions, MACs, DRAM bytes and energy of the run, the span,
DRAM bytes and energy of every layer, and a SHA-256 of every output tensor (functional run,
seed 0). A change that moves any of these numbers must say why in its commit and rewrite the
file with `python tests/test_golden.py --write`.

The `*_full` sparse workloads (a whole 82k-voxel frame) are left out: they take minutes.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

EXPECTED = Path(__file__).with_name("golden_expected.json")
WORKLOADS = ("small_cnn", "mlp", "resnet18", "sparse_tiny", "minkunet", "second")
PRESETS = ("edge", "server", "scalesim32")


def _digest(outputs: dict) -> dict:
    """name -> sha256 of (dtype, shape, bytes) of every output array."""
    out = {}
    for name in sorted(outputs):
        arr = np.ascontiguousarray(outputs[name])
        h = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
        out[name] = h.hexdigest()
    return out


def record(workload: str, preset: str) -> dict:
    """The golden figures of one (workload, preset) run, as stored in the expected file."""
    from accelsim.cli.commands import make_input, resolve_model
    from accelsim.config import load_config
    from accelsim.report import summarize
    from accelsim.runner import run_model

    cfg = load_config(preset)
    graph = resolve_model(workload, (8, 8), 0)
    x = make_input(graph, None, 0)
    result = run_model(graph, cfg, x)
    s = summarize(result, cfg)
    return {
        "latency_cycles": s["latency_cycles"],
        "instructions": s["instructions"],
        "macs": s["macs"],
        "dram_bytes": s["dram_bytes"],
        "energy_pj": s["energy_pj"],
        "layers": [[r["name"], r["cycles"], r["dram_bytes"], r["energy_pj"]] for r in s["layers"]],
        "outputs": _digest(result.outputs),
    }


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("workload", WORKLOADS)
def test_golden(workload, preset):
    """Every figure equals the recorded one exactly (energy sums are exact by construction)."""
    expected = json.loads(EXPECTED.read_text())[f"{workload}@{preset}"]
    got = record(workload, preset)
    for key in ("latency_cycles", "instructions", "macs", "dram_bytes", "energy_pj"):
        assert got[key] == expected[key], key
    assert got["layers"] == expected["layers"]
    assert got["outputs"] == expected["outputs"]


def main() -> int:
    if "--write" not in sys.argv:
        print("usage: python tests/test_golden.py --write   (rewrites the expected file)")
        return 2
    data = {f"{w}@{p}": record(w, p) for w in WORKLOADS for p in PRESETS}
    EXPECTED.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {EXPECTED}: {len(data)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
