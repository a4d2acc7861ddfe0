"""Every built-in workload by name, for `accelsim run NAME` and `accelsim workloads`.

Dense models come from `workloads.dense`, sparse LiDAR networks from `workloads.sparse_nets`
(when present). Each builder takes (bits_a, bits_w, seed).
"""

from __future__ import annotations

from accelsim.errors import AccelsimError

DEFAULT = "resnet18"  # `accelsim run` with no model
DEFAULT_KWARGS = {"input_hw": 64}  # keeps the default run a few seconds on a laptop


def _all() -> dict:
    from workloads.dense import WORKLOADS  # noqa: PLC0415

    table = dict(WORKLOADS)
    try:
        from workloads.sparse_nets import WORKLOADS as SPARSE  # noqa: PLC0415
    except ImportError:
        SPARSE = {}
    table.update(SPARSE)
    return table


def listing() -> list[tuple[str, str]]:
    """(name, one-line description) of every built-in workload."""
    return [(name, w.description) for name, w in sorted(_all().items())]


def build(name: str, bits=(8, 8), seed: int = 0, **kwargs):
    """Build workload `name` at (activation, weight) bits with seeded random weights."""
    table = _all()
    if name not in table:
        raise AccelsimError(
            f"{name!r} is neither a model file nor a built-in workload "
            f"(built-in: {', '.join(sorted(table))})"
        )
    return table[name].build(bits[0], bits[1], seed, **kwargs)


def default_model(bits=(8, 8), seed: int = 0):
    """The workload `accelsim run` simulates when no model is given."""
    graph = build(DEFAULT, bits, seed, **DEFAULT_KWARGS)
    graph.name = f"{DEFAULT}_{DEFAULT_KWARGS['input_hw']}x{DEFAULT_KWARGS['input_hw']}"
    return graph
