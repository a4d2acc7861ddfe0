"""Run a sparse network on the simulated machine (the sparse half of `accelsim.runner`).

The input is (coords int32 [n, 4], features [n, c]): float features are quantized on the host
by the graph's `SparseQuantize`, integer ones are taken as already quantized. The program is
lowered for these coordinates (`accelsim.frontend.sparse_lower`); features go to DRAM in the
hardware's group-major row order and every output is put back into canonical (b, x, y, z) order,
so outputs and `--check` compare directly with `run_sparse_reference`.
"""

from __future__ import annotations

import zipfile

import numpy as np

from accelsim.errors import AccelsimError, SparseInputError
from accelsim.frontend.sparse_lower import hardware_order
from accelsim.ir.sparse_ops import (
    SparseGraph,
    SparseQuantize,
    coord_sets,
    prepare_input,
    run_sparse_reference,
)
from accelsim.kernels import quant


def default_sparse_input(graph: SparseGraph, seed: int = 0):
    """The generated LiDAR scene of the workload (`graph.meta["scene"]` arguments of
    `workloads.sparse_nets.make_scene`), features cut to the input's channel count."""
    from workloads.sparse_nets import make_scene

    coords, feats = make_scene(seed=seed, **graph.meta.get("scene", {}))
    return coords, feats[:, : graph.tensors[graph.input].channels]


def make_sparse_input(graph: SparseGraph, path: str | None, seed: int = 0):
    """(coords, features): from a .npz with arrays `coords` and `features`, or generated."""
    if path is None:
        return default_sparse_input(graph, seed)
    try:
        with np.load(path, allow_pickle=False) as data:
            if not {"coords", "features"} <= set(data.files):
                raise SparseInputError(
                    f"input {path!r}: a sparse input .npz needs arrays "
                    f"'coords' [n, 4] and 'features' [n, c]"
                )
            coords, feats = data["coords"], data["features"]
    except FileNotFoundError:
        raise AccelsimError(f"input file {path!r} does not exist") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise AccelsimError(f"input file {path!r} is not a .npz archive ({exc})") from None
    c = graph.tensors[graph.input].channels
    if np.ndim(feats) == 2 and feats.shape[1] != c:
        raise SparseInputError(
            f"input {path!r}: features have {feats.shape[1]} channels, "
            f"model {graph.name!r} expects {c}"
        )
    return coords, feats


def quantize_sparse_input(graph: SparseGraph, feats) -> np.ndarray:
    """The integers the host writes: the graph's SparseQuantize applied to the features."""
    first = graph.nodes[0]
    dst = graph.tensors[first.output]
    feats = np.asarray(feats)
    if feats.dtype.kind in "iu" or not isinstance(first, SparseQuantize):
        return feats.astype(dst.dtype)
    return quant.quantize_float(
        np.asarray(feats, np.float64), dst.scale, dst.zero_point, dst.bits, dst.mode == "signed"
    )


def run_sparse_model(
    graph: SparseGraph,
    cfg,
    x,
    *,
    count_only=False,
    check=False,
    trace=None,
    progress=False,
    program=None,
):
    """Lower (unless `program` is given) and simulate `graph` on x = (coords, features)."""
    from accelsim.frontend.lower import lower
    from accelsim.runner import RunResult
    from accelsim.sim import simulate

    if not isinstance(x, (tuple, list)) or len(x) != 2:
        raise SparseInputError(
            f"model {graph.name!r} is sparse: its input is (coords, "
            f"features), got {type(x).__name__}"
        )
    coords, feats = prepare_input(*x)
    if feats.shape[1] != graph.tensors[graph.input].channels:
        raise SparseInputError(
            f"features have {feats.shape[1]} channels, model "
            f"{graph.name!r} expects {graph.tensors[graph.input].channels}"
        )
    if program is None:
        program = lower(graph, cfg, coords=coords)
    meta = program.meta.get("sparse", {})
    G, coeffs = meta.get("groups", 1), tuple(meta.get("group_coeffs", (1, 2, 3)))
    q = quantize_sparse_input(graph, feats)
    res = simulate(
        program,
        cfg,
        inputs={graph.input: q[hardware_order(coords, G, coeffs)]},
        count_only=count_only,
        trace=trace,
        progress=progress,
    )
    sets = coord_sets(graph, coords)
    outputs = {}
    for name, arr in res.outputs.items():
        perm = hardware_order(sets[graph.tensors[name].coord_set], G, coeffs)
        out = np.empty_like(arr)
        out[perm] = arr
        outputs[name] = out
    result = RunResult(graph, program, res.stats, outputs)
    if check:
        if count_only:
            result.check_ok, result.check_message = None, "check skipped: --timing-only"
        else:
            result.check_ok, result.check_message = compare_sparse(
                graph, outputs, coords, feats, cfg
            )
    return result


def compare_sparse(graph: SparseGraph, outputs: dict, coords, feats, cfg):
    """(ok, message): the first layer whose simulated output differs from the reference."""
    ref, _ = run_sparse_reference(
        graph,
        coords,
        feats,
        groups=cfg.svge.groups,
        group_coeffs=cfg.svge.group_coeffs,
        round_mode=cfg.rescale.round_mode,
        mult_bits=cfg.rescale.mult_bits,
        fast=True,
        overflow=cfg.matmul.overflow,
    )
    checked = 0
    for node in graph.nodes:
        name = node.output
        if name not in outputs:
            continue
        got, want = outputs[name], np.asarray(ref[name])
        bad = np.flatnonzero(got.reshape(-1).astype(np.int64) != want.reshape(-1))
        if bad.size:
            idx = np.unravel_index(bad[0], got.shape)
            return False, (
                f"check FAILED at layer {node.name!r} (tensor {name!r}), voxel row "
                f"{int(idx[0])} channel {int(idx[1])}: simulated {int(got[idx])}, "
                f"reference {int(want[idx])} ({bad.size} of {got.size} elements "
                f"differ)"
            )
        checked += 1
    return True, f"check passed: {checked} layer outputs equal the sparse IR reference exactly"
