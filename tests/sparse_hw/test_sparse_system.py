"""Sparse networks end to end: lowered, simulated, and equal to the sparse IR reference."""

import numpy as np
import pytest

from accelsim import sparse as sp
from accelsim.cli import main
from accelsim.config import load_config
from accelsim.errors import AccelsimError, ConfigError, ModelFormatError, SparseInputError
from accelsim.ir.params import rescale_params
from accelsim.ir.sparse_ops import run_sparse_reference
from accelsim.kernels.rescale import rescale_ref
from accelsim.runner import run_model
from tests.helpers import random_input
from workloads.sparse_nets import sparse_tiny


@pytest.mark.parametrize("groups", [1, 2, 4, 8])
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_simulated_equals_reference(groups, bits):
    """Every layer of the tiny net (all sparse ops), two batches, exact for G and bits."""
    g = sparse_tiny(bits, bits, seed=bits, channels=4)
    cfg = load_config("edge", [f"svge.groups={groups}"])
    x = random_input(groups + bits, 70, extent=7, batches=2)
    res = run_model(g, cfg, x, check=True)
    assert res.check_ok, res.check_message
    ref, _ = run_sparse_reference(g, *x, groups=groups)
    np.testing.assert_array_equal(res.outputs["out"], ref["out"])
    assert res.stats.total("svge_pairs") > 0


@pytest.mark.parametrize("clip", [(10, 20), (None, 20)])
def test_fused_clip_of_a_sparse_conv_is_applied(clip, edge):
    """A sparse conv's fused clip reaches RESCALE (a missing bound is the output range's), as
    for dense convs: simulated equals the reference and the layer lies in the clip range."""
    g = sparse_tiny(8, 8, seed=0, channels=4)
    stem = next(n for n in g.nodes if n.name == "stem")
    stem.clip_lo, stem.clip_hi = clip
    g.validate()
    res = run_model(g, edge, random_input(3, 60, extent=6), check=True)
    assert res.check_ok, res.check_message
    lo = 0 if clip[0] is None else clip[0]  # stem's output is 8-bit unsigned
    assert lo <= res.outputs["stem"].min() and res.outputs["stem"].max() <= 20
    assert res.outputs["stem"].max() == 20  # the bound is reached: the clip did something


def test_reference_twins_and_dense_definition():
    """fast (Numba) and `_ref` paths agree; one conv equals the dense 3D conv reference."""
    g = sparse_tiny(4, 4, seed=1, channels=4)
    coords, feats = random_input(7, 40, extent=6)
    fast, sets = run_sparse_reference(g, coords, feats, groups=4, fast=True)
    slow, _ = run_sparse_reference(g, coords, feats, groups=4, fast=False)
    for name in fast:
        np.testing.assert_array_equal(np.asarray(fast[name]), np.asarray(slow[name]))
    op = g.node("stem") if hasattr(g, "node") else next(n for n in g.nodes if n.name == "stem")
    _, acc = sp.dense_conv_ref(sets["s1"], fast["x0"], op.weight, 3, groups=4)
    p = rescale_params(op, g.dense_view(), 32)
    want = rescale_ref(acc.astype(np.int32), p.bias, p.mult, p.shift, mode="single", **p.kwargs())
    np.testing.assert_array_equal(fast["stem"], want)


def test_count_only_gives_identical_timing():
    g = sparse_tiny(8, 8, seed=0, channels=4)
    cfg = load_config("edge", ["svge.groups=4"])
    x = random_input(2, 60, extent=7)
    full = run_model(g, cfg, x)
    fast = run_model(g, cfg, x, count_only=True, program=full.program)
    assert fast.stats.latency_cycles == full.stats.latency_cycles
    assert fast.stats.layer_span == full.stats.layer_span
    for key in ("svge_pairs", "svge_map_cycles", "svge_conv_cycles", "dram_read_bytes"):
        assert fast.stats.total(key) == full.stats.total(key)


def test_group_count_reduces_pairs_and_engines_cut_latency():
    g = sparse_tiny(8, 8, seed=0, channels=4)
    x = random_input(4, 120, extent=8)
    runs = {
        G: run_model(g, load_config("edge", [f"svge.groups={G}"]), x, count_only=True)
        for G in (1, 4)
    }
    assert runs[4].stats.total("svge_pairs") < runs[1].stats.total("svge_pairs")
    one = run_model(g, load_config("edge", ["svge.groups=1", "svge.engines=1"]), x, count_only=True)
    assert runs[1].stats.total("svge_conv_cycles") == one.stats.total("svge_conv_cycles")
    assert runs[1].stats.latency_cycles <= one.stats.latency_cycles


@pytest.mark.parametrize("case", ["duplicate", "negative", "fraction", "length", "empty"])
def test_bad_sparse_inputs(case):
    g = sparse_tiny(8, 8, channels=4)
    coords, feats = random_input(0, 20, extent=5)
    coords = coords.astype(np.float64)
    if case == "duplicate":
        coords[3] = coords[7]
    elif case == "negative":
        coords[2, 1] = -1
    elif case == "fraction":
        coords[2, 1] = 0.5
    elif case == "length":
        feats = feats[:-1]
    else:
        coords, feats = coords[:0], feats[:0]
    with pytest.raises(SparseInputError):
        run_model(g, load_config("edge"), (coords, feats))


def test_bad_group_counts():
    with pytest.raises(ConfigError):
        load_config("edge", ["svge.groups=0"])
    g = sparse_tiny(8, 8, channels=4)
    with pytest.raises(SparseInputError):
        run_sparse_reference(g, *random_input(0, 20, extent=5), groups=0)
    g.nodes[1].groups = 0
    with pytest.raises(ModelFormatError, match="groups"):
        g.validate()


def test_cli_run_check_and_bad_input(tmp_path, capsys):
    assert main(["run", "sparse_tiny", "--check", "--set", "svge.groups=2"]) == 0
    out = capsys.readouterr().out
    assert "check passed" in out and "latency" in out and "energy" in out
    coords, feats = random_input(0, 20, extent=5)
    coords[5] = coords[6]
    path = tmp_path / "dup.npz"
    np.savez(path, coords=coords, features=feats)
    assert main(["run", "sparse_tiny", "--input", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "duplicate" in err and "Traceback" not in err
    assert isinstance(SparseInputError("x"), AccelsimError)


def test_lidar_workloads_are_registered_and_valid():
    from workloads import registry

    names = dict(registry.listing())
    assert {"minkunet", "second", "sparse_tiny"} <= set(names)
    mink = registry.build("minkunet", (4, 4), 0)
    mink.validate()
    convs = [n for n in mink.nodes if type(n).__name__ == "SparseConv"]
    assert {n.cout for n in convs} >= {32, 64, 128, 256, 96}
    registry.build("second", (8, 8), 0).validate()


def test_native_roundtrip_and_cli_model_file(tmp_path, capsys):
    from accelsim.frontend.native import load_model, save_model

    g = sparse_tiny(4, 4, seed=2, channels=4)
    path = tmp_path / "tiny.npz"
    save_model(g, path)
    back = load_model(path)
    x = random_input(9, 50, extent=6)
    a, _ = run_sparse_reference(g, *x, groups=2)
    b, _ = run_sparse_reference(back, *x, groups=2)
    for name in a:
        np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]))
    assert back.meta == g.meta
    assert main(["run", str(path), "--timing-only"]) == 0
    assert "sparse" in capsys.readouterr().out


def test_empty_generated_scene_is_a_clear_error():
    from workloads.sparse_nets import make_scene

    with pytest.raises(SparseInputError, match="empty scene"):
        make_scene(0, 0.4, 2.0)
