"""Lowering end to end: simulated outputs equal the IR integer reference exactly, tokens are
balanced and race-free, DMA overlaps compute, and ResNet-18 maps to SCALE-Sim's GEMMs."""

import math

import numpy as np
import pytest

from accelsim.config import load_config
from accelsim.errors import AccelsimError
from accelsim.frontend.lower import lower
from accelsim.frontend.validate import validate_stream
from accelsim.ir.builder import GraphBuilder
from accelsim.ir.ops import QuantConv2d, QuantLinear
from accelsim.isa import Op, encode_program
from accelsim.runner import run_model
from accelsim.sim import simulate
from workloads.dense import mlp, random_cnn, resnet18, small_cnn

TINY = [
    "matmul.rows=8",
    "matmul.cols=4",
    "buffers.inp_bytes=2048",
    "buffers.wgt_bytes=2048",
    "buffers.acc_bytes=2048",
    "buffers.out_bytes=1024",
    "buffers.param_bytes=512",
]
CONFIGS = {"edge": ("edge", []), "tiny": ("edge", TINY), "server": ("server", [])}


def _input(graph, seed=0):
    return np.random.default_rng(seed).random(graph.tensors[graph.input].shape)


def _check(graph, cfg, seed=0):
    res = run_model(graph, cfg, _input(graph, seed), check=True)
    assert res.check_ok, res.check_message
    return res


@pytest.mark.parametrize("mode", ["single", "tflite", "rne"])
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("seed", range(4))
def test_random_cnns_are_bit_exact(seed, config, mode):
    """Random CNNs (2/4/8-bit mixed per layer, residual adds, depthwise, pooling, concat, odd
    shapes) on three machines, including one whose 8x4 array and 1-2 KB buffers divide
    nothing evenly, give exactly the reference integers in every rounding mode."""
    name, sets = CONFIGS[config]
    cfg = load_config(name, [*sets, f"rescale.round_mode={mode}"])
    _check(random_cnn(np.random.default_rng(seed)), cfg, seed)


@pytest.mark.parametrize("bits", [(2, 2), (4, 4), (8, 8), (4, 2), (2, 8)])
def test_small_cnn_and_mlp_at_bit_widths(bits):
    cfg = load_config("edge", TINY)
    _check(small_cnn(*bits, seed=1), cfg)
    _check(mlp(*bits, seed=1), cfg)


def test_sixteen_bit_multipliers_are_exact_too():
    cfg = load_config("edge", ["rescale.mult_bits=16"])
    _check(random_cnn(np.random.default_rng(11)), cfg)


def test_stream_is_valid_balanced_and_race_free():
    """The lowered stream passes the ISA/token check and the simulator's race detector, and
    leaves no token behind."""
    cfg = load_config("edge", TINY)
    g = small_cnn(4, 4, seed=2)
    prog = lower(g, cfg)
    validate_stream(prog.insns, cfg)
    res = simulate(prog, cfg, count_only=True, check_races=True, strict_tokens=True)
    assert res.stats.totals()["tokens_left"] == 0
    assert sum(i.wait != 0 for i in prog.insns) > 10


def test_dma_overlaps_compute():
    """On a multi-layer network the units work in parallel: the latency is below the sum of
    all units' busy cycles."""
    cfg = load_config("edge")
    stats = {
        g.name: simulate(lower(g, cfg), cfg, count_only=True).stats
        for g in (small_cnn(8, 8, seed=0), mlp(8, 8, seed=0))
    }
    for name, s in stats.items():
        assert s.latency_cycles < s.total("busy_cycles"), name
    # the MLP is weight-bound: the next layer's weights stream in during the current layer
    assert stats["mlp"].latency_cycles < 0.8 * stats["mlp"].total("busy_cycles")


def test_count_only_gives_identical_timing():
    cfg = load_config("edge", TINY)
    g = random_cnn(np.random.default_rng(3))
    prog = lower(g, cfg)
    full = run_model(g, cfg, _input(g), program=prog).stats
    fast = simulate(prog, cfg, count_only=True).stats
    assert full.latency_cycles == fast.latency_cycles
    assert full.layer_span == fast.layer_span


def test_timing_only_lowering_keeps_the_instructions_and_drops_the_image(tmp_path):
    """Lowered timing-only, a network has the same instruction words and DRAM size but no
    image; count-only simulation gives the same statistics, and the datapath, which would
    need the image, refuses it with a clear error, as does saving it."""
    cfg = load_config("edge", TINY)
    for g in (random_cnn(np.random.default_rng(5)), mlp(4, 4, seed=3)):
        full, timing = lower(g, cfg), lower(g, cfg, timing_only=True)
        assert timing.dram is None and timing.dram_size == full.dram.size > 0
        assert encode_program(timing.insns) == encode_program(full.insns)
        a = simulate(full, cfg, count_only=True).stats
        b = simulate(timing, cfg, count_only=True).stats
        assert (a.latency_cycles, a.counters) == (b.latency_cycles, b.counters)
    with pytest.raises(AccelsimError, match="lowered timing-only"):
        simulate(timing, cfg)
    with pytest.raises(AccelsimError, match="no DRAM image"):
        timing.save(tmp_path / "p.npz")


def test_timing_only_run_lowers_without_the_image():
    """run_model(count_only=True) lowers timing-only and gives the event timing of the full
    program."""
    cfg = load_config("edge", TINY)
    g = small_cnn(8, 8, seed=4)
    res = run_model(g, cfg, _input(g), count_only=True)
    assert res.program.dram is None and res.outputs == {}
    assert res.stats.latency_cycles == simulate(lower(g, cfg), cfg).stats.latency_cycles


def _scalesim_os_cycles(m, k, n, r=32, c=32):
    """SCALE-Sim's output stationary compute cycles: ceil(M/R) * ceil(N/C) * (K + R + C - 2)."""
    return math.ceil(m / r) * math.ceil(n / c) * (k + r + c - 2)


def test_resnet18_on_scalesim32_matches_scalesim_gemms():
    """With scalesim32's huge buffers every layer is one tile: one GEMM per conv with
    M = OH*OW, K = kh*kw*Cin, N = Cout, and its matmul cycles equal SCALE-Sim's formula."""
    cfg = load_config("scalesim32")
    g = resnet18(8, 8, seed=0)
    prog = lower(g, cfg)
    stats = simulate(prog, cfg, count_only=True).stats
    tag_of = {name: tag for tag, name in prog.tags.items()}
    convs = [n for n in g.nodes if isinstance(n, (QuantConv2d, QuantLinear))]
    assert len(convs) == 21
    for node in convs:
        tag = tag_of[node.name]
        gemms = [i for i in prog.insns if i.op is Op.GEMM and i.tag == tag]
        assert len(gemms) == 1, node.name
        gi = gemms[0]
        if isinstance(node, QuantConv2d):
            _, oh, ow, cout = g.tensors[node.output].shape
            kh, kw, cin, _ = node.weight.shape
            expect = (oh * ow, kh * kw * cin, cout)
        else:
            expect = (1, node.weight.shape[0], node.cout)
        assert (gi.m, gi.k, gi.n) == expect, node.name
        assert stats.counters[(tag, "matmul")]["busy_cycles"] == _scalesim_os_cycles(*expect)


@pytest.mark.parametrize("config", ["edge", "tiny"])
def test_grouped_convs_read_their_own_channels(config):
    """Grouped (not depthwise) convs: 3 groups of 2 -> 4 channels, then 6 groups of 2 -> 2
    with a 3x1 kernel. Each group reads the same rows and columns of other channels, so a
    resident input tile must not be reused across groups."""
    b = GraphBuilder("grouped", (1, 9, 7, 6), np.random.default_rng(3))
    x = b.quantize(8, signed=False)
    y = b.conv(x, 12, 3, groups=3, w_bits=4, bits=4, name="g3")
    z = b.conv(y, 12, (3, 1), groups=6, padding=0, w_bits=2, bits=8, name="g6")
    name, sets = CONFIGS[config]
    _check(b.finish(z), load_config(name, sets))


def test_a_prepared_graph_lowers_as_the_graph_itself():
    """`prepare` checks and folds once and keeps the rescale integers per multiplier width:
    the programs equal those of the graph, at every width, timing-only or with the image."""
    from accelsim.frontend.lower import prepare
    from workloads import registry

    g = registry.build("small_cnn", (4, 4), 0)
    prepared = prepare(g)
    for sets in ([], ["rescale.mult_bits=16"], ["matmul.cols=8", "rescale.mult_bits=16"], []):
        cfg = load_config("edge", sets)
        for timing_only in (True, False):
            a = lower(g, cfg, timing_only=timing_only)
            b = lower(prepared, cfg, timing_only=timing_only)
            assert encode_program(a.insns) == encode_program(b.insns), sets
            assert a.dram_size == b.dram_size
            if not timing_only:
                assert np.array_equal(a.dram, b.dram), sets
    assert {bits for _, bits in prepared.rescale} == {32, 16}
    with pytest.raises(AccelsimError, match="only a dense graph"):
        prepare(registry.build("sparse_tiny", (4, 4), 0))
