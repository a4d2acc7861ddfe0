"""Tile choice: every candidate fits its buffers, and the pruned search finds the same
DRAM-byte minimum as trying every candidate in full."""

import pytest

from accelsim.config import load_config
from accelsim.frontend.emit import Emitter
from accelsim.frontend.gemm_layer import GemmPlace, choose_tiling, emit_gemm_layer
from accelsim.frontend.tiling import GemmLayer, candidates, fits

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
    em = Emitter(cfg, dry=True)
    emit_gemm_layer(em, L, t, GemmPlace(0, L.cin, 0, L.cout, 0))
    return em.dram_bytes


@pytest.mark.parametrize("config", ["edge", "server"])
@pytest.mark.parametrize("layer", range(len(LAYERS)))
def test_pruned_search_finds_the_minimum(layer, config):
    L, cfg = LAYERS[layer], load_config(config)
    cands = candidates(L, cfg)
    assert cands and all(fits(L, t, cfg) for t in cands)
    best = min(_bytes(L, t, cfg) for t in cands)
    assert _bytes(L, choose_tiling(L, cfg), cfg) == best


def test_weights_and_inputs_read_once_when_everything_fits():
    """On scalesim32 a layer is one tile: DRAM bytes = input + weights + params + output."""
    L, cfg = LAYERS[0], load_config("scalesim32")
    t = choose_tiling(L, cfg)
    assert t.counts(L) == (1, 1, 1, 1)
    expect = 56 * 56 * 64 + 9 * 64 * 64 + 64 * 12 + 56 * 56 * 64
    assert _bytes(L, t, cfg) == expect
