"""One runner for both graph kinds: `compare` names the first differing layer and element,
fails on a layer that was not simulated and on a check that compared nothing, and
`lower_for_input` lowers what `run_model` runs."""

import numpy as np
import pytest

from accelsim.cli.commands import make_input
from accelsim.config import load_config
from accelsim.errors import AccelsimError, SparseInputError
from accelsim.ir.sparse_ops import SparseToBEV
from accelsim.isa import Buf, Op, encode_program
from accelsim.runner import compare, lower_for_input, run_model
from workloads import registry
from workloads.dense import mlp
from workloads.sparse_nets import second, sparse_tiny


def _run(g):
    x = make_input(g, None, 0)  # generated scene (sparse) or random NHWC (dense)
    return g, x, run_model(g, load_config("edge"), x, check=True)


@pytest.fixture(scope="module")
def sparse_run():
    return _run(sparse_tiny(4, 4, seed=1, channels=4))


@pytest.fixture(scope="module")
def dense_run():
    return _run(mlp(4, 4, seed=2))


def _reference(res):
    """The run's simulated outputs are exact (checked), so they are the reference."""
    assert res.check_ok, res.check_message
    return {k: v.copy() for k, v in res.outputs.items()}


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_nothing_compared_fails(kind, sparse_run, dense_run):
    """A reference holding none of the graph's layers compares nothing: that is a failure,
    for a sparse graph as for a dense one (the sparse check used to pass with 0 layers)."""
    g, _, res = sparse_run if kind == "sparse" else dense_run
    ok, message = compare(g, res.outputs, {})
    assert ok is False and message == "check FAILED: no layer output was compared"


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_layer_not_simulated_fails(kind, sparse_run, dense_run):
    """A layer the reference has but the machine did not produce is named (the sparse check
    used to skip it)."""
    g, _, res = sparse_run if kind == "sparse" else dense_run
    reference = _reference(res)
    node = g.nodes[1]
    outputs = {k: v for k, v in res.outputs.items() if k != node.output}
    ok, message = compare(g, outputs, reference)
    assert ok is False
    assert f"layer {node.name!r} output {node.output!r} was not simulated" in message


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_first_differing_layer_and_element_are_named(kind, sparse_run, dense_run):
    """Two layers are corrupted; the message names the earlier one in graph order, its first
    differing element (flat order), both values and how many elements differ."""
    g, _, res = sparse_run if kind == "sparse" else dense_run
    reference = _reference(res)
    early, late = g.nodes[1].output, g.nodes[-1].output
    outputs = dict(res.outputs)
    outputs[late] = outputs[late].copy()
    outputs[late].reshape(-1)[0] ^= 1  # flipping the low bit changes any integer
    bad = outputs[early].copy()
    flat = bad.reshape(-1)
    flat[3] ^= 1
    flat[5] ^= 1
    outputs[early] = bad
    idx = tuple(int(i) for i in np.unravel_index(3, bad.shape))
    ok, message = compare(g, outputs, reference)
    assert ok is False
    assert message == (
        f"check FAILED at layer {g.nodes[1].name!r} (tensor {early!r}), element {idx}: "
        f"simulated {int(flat[3])}, reference {int(reference[early].reshape(-1)[3])} "
        f"(2 of {bad.size} elements differ)"
    )


def test_shape_mismatch_is_named(sparse_run):
    g, _, res = sparse_run
    reference = _reference(res)
    name = g.nodes[1].output
    reference[name] = reference[name][:-1]
    ok, message = compare(g, res.outputs, reference)
    assert ok is False and f"(tensor {name!r}): simulated shape" in message


def test_check_counts_every_layer_made_on_the_machine(sparse_run, dense_run):
    """Every node output is compared, SECOND's BEV map included (it is made on the machine)."""
    second_run = _run(second(4, 4, seed=0, crop_m=12.8))
    assert sum(isinstance(n, SparseToBEV) for n in second_run[0].nodes) == 1
    for g, _, res in (sparse_run, dense_run, second_run):
        assert res.check_message == (
            f"check passed: {len(g.nodes)} layer outputs equal the IR integer reference exactly"
        )


def test_lower_for_input_is_the_program_run_model_runs(sparse_run, dense_run, edge):
    cfg = edge
    for g, x, res in (sparse_run, dense_run):
        prog = lower_for_input(g, cfg, x)
        assert encode_program(prog.insns) == encode_program(res.program.insns)
        np.testing.assert_array_equal(prog.dram, res.program.dram)
        timing = lower_for_input(g, cfg, x, timing_only=True)  # same words, no image
        assert encode_program(timing.insns) == encode_program(prog.insns)
        assert timing.dram is None and timing.dram_size == prog.dram.size
    assert any(
        i.op is Op.SVG_CONV for i in lower_for_input(sparse_run[0], cfg, sparse_run[1]).insns
    )


def test_sparse_graph_needs_coords_and_features(sparse_run, edge):
    g, x, _ = sparse_run
    with pytest.raises(SparseInputError, match="is sparse: its input is"):
        run_model(g, edge, x[1])


def test_timing_run_without_input_and_narrow_weights_load_in_long_rows():
    """A timing-only run needs no input (the declared shape is used). Narrower weights never
    take more DMA rows: before long contiguous weight runs were cut into long rows (see
    `coalesce`), ResNet-18's 4-bit layer4 weight tiles moved as 4,608 rows of 16 and the 4/4
    network took 1.67x the cycles of 8/8 on edge."""
    cfg = load_config("edge")
    latency = {}
    for bits in ((8, 8), (4, 4)):
        g = registry.build("resnet18", bits, 0, image_size=64)
        res = run_model(g, cfg, None, count_only=True, engine="fast")
        latency[bits] = res.stats.latency_cycles
        rows = [i.d1 * i.d0 for i in res.program.insns if i.op is Op.LOAD and i.buf == Buf.WGT]
        assert max(rows) <= 64, bits  # no weight tile is split into short rows any more
    assert latency[(4, 4)] < latency[(8, 8)]


def test_scalar_or_missing_input_is_refused():
    g = mlp(4, 4, seed=2)
    with pytest.raises(AccelsimError, match="must be an array"):
        run_model(g, load_config("edge"), 3.0)
    with pytest.raises(AccelsimError, match="needs an input"):
        run_model(g, load_config("edge"), None)
