"""Tile choice: every candidate fits its buffers with the tallest output tile that fits, and the
search (on the analytic costs) finds the DRAM-byte minimum of emitting every candidate."""

import pytest

from accelsim.config import load_config
from accelsim.frontend.emit import Emitter
from accelsim.frontend.gemm_layer import GemmPlace, emit_gemm_layer
from accelsim.frontend.tile_cost import choose_tiling
from accelsim.frontend.tiling import GemmLayer, Tiling, candidates, fits

LAYERS = [
    GemmLayer(h=56, w=56, cin=64, oh=56, ow=56, cout=64, kh=3, kw=3, pad_top=1, pad_left=1),
    GemmLayer(
        h=28,
        w=28,
        cin=128,
        oh=14,
        ow=14,
        cout=256,
        kh=3,
        kw=3,
        stride=2,
        pad_top=1,
        pad_left=1,
        a_bits=4,
        w_bits=4,
        out_bits=4,
    ),
    GemmLayer(h=7, w=7, cin=512, oh=7, ow=7, cout=512, kh=3, kw=3, pad_top=1, pad_left=1),
    GemmLayer(h=1, w=1, cin=512, oh=1, ow=1, cout=1000, conv=False, a_bits=2, w_bits=2),
    GemmLayer(
        h=30, w=30, cin=32, oh=30, ow=30, cout=32, kh=3, kw=3, pad_top=1, pad_left=1, depthwise=True
    ),
]


def _bytes(L, t, cfg):
    em = Emitter(cfg)
    emit_gemm_layer(em, L, t, GemmPlace(0, L.cin, 0, L.cout, 0))
    return em.dram_bytes


@pytest.mark.parametrize("config", ["edge", "server"])
@pytest.mark.parametrize("layer", range(len(LAYERS)))
def test_search_finds_the_minimum(layer, config):
    L, cfg = LAYERS[layer], load_config(config)
    cands = candidates(L, cfg)
    assert cands and all(fits(L, t, cfg) for t in cands)
    best = min(_bytes(L, t, cfg) for t in cands)
    assert _bytes(L, choose_tiling(L, cfg), cfg) == best


@pytest.mark.parametrize("config", ["edge", "server"])
@pytest.mark.parametrize("layer", range(len(LAYERS)))
def test_candidates_take_the_tallest_tile_of_the_widest_rows_that_fit(layer, config):
    """For each (n_t, cin_t): one more output row does not fit, and the previous width of the
    halving sequence (ow, ceil(ow / 2), ...) does not fit even one row."""
    L, cfg = LAYERS[layer], load_config(config)
    widths = [L.ow]
    while widths[-1] > 1:
        widths.append(-(-widths[-1] // 2))
    for t in candidates(L, cfg):
        taller = Tiling(t.oh_t + 1, t.ow_t, t.n_t, t.cin_t, t.order)
        assert t.oh_t == L.oh or not fits(L, taller, cfg)
        for wider in widths[: widths.index(t.ow_t)]:
            assert not fits(L, Tiling(1, wider, t.n_t, t.cin_t, t.order), cfg), (t, wider)


def test_weights_and_inputs_read_once_when_everything_fits():
    """On scalesim32 a layer is one tile: DRAM bytes = input + weights + params + output."""
    L, cfg = LAYERS[0], load_config("scalesim32")
    t = choose_tiling(L, cfg)
    assert t.counts(L) == (1, 1, 1, 1)
    expect = 56 * 56 * 64 + 9 * 64 * 64 + 64 * 12 + 56 * 56 * 64
    assert _bytes(L, t, cfg) == expect
