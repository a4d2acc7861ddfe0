"""Row-tiled vector nodes (Add, Clip, Trunc, Softmax, Gelu, LayerNorm) copy their middle tiles
from the first ones (`Emitter.repeat`): the programs equal those with every tile emitted, on
networks with residual adds and transformer ops, on presets and on small buffers (many
tiles)."""

import numpy as np
import pytest

from accelsim.config import load_config
from accelsim.errors import AccelsimError
from accelsim.frontend import vector_layer
from accelsim.frontend.emit import Emitter
from accelsim.frontend.lower import lower
from workloads import registry

CONFIGS = [
    ("edge", []),
    ("server", []),
    ("edge", ["buffers.inp_bytes=4096", "buffers.out_bytes=2048"]),
    ("edge", ["buffers.inp_bytes=8192", "buffers.out_bytes=4096", "buffers.row_bits=64"]),
]


@pytest.mark.parametrize(
    "name, kwargs", [("resnet18", {"image_size": 64}), ("bert_base", {}), ("small_cnn", {})]
)
def test_copied_tiles_equal_emitted_tiles(name, kwargs, monkeypatch):
    g = registry.build(name, (4, 4), 0, **kwargs)
    copies = []
    real = Emitter.repeat

    def counting(self, per_tile, period, shifts):
        copies.append(len(shifts))
        return real(self, per_tile, period, shifts)

    monkeypatch.setattr(Emitter, "repeat", counting)
    for preset, sets in CONFIGS:
        cfg = load_config(preset, sets)
        programs = []
        for repeat in (False, True):
            monkeypatch.setattr(vector_layer, "REPEAT_TILES", repeat)
            try:
                programs.append(lower(g, cfg, timing_only=True))
            except AccelsimError as exc:  # a buffer too small for a node: the same refusal
                programs.append(str(exc))
        ref, got = programs
        where = f"{name} {preset} {sets}"
        if isinstance(ref, str):
            assert got == ref, where
            continue
        np.testing.assert_array_equal(got.rows(), ref.rows(), err_msg=where)
        assert got.dram_size == ref.dram_size, where
    if name != "small_cnn":  # no row-tiled node there: nothing to copy
        assert sum(copies) > 10, copies


def test_a_copied_stream_simulates_like_the_emitted_one(monkeypatch):
    """Tokens come from the copied regions: both programs run to the same cycle."""
    from accelsim.sim import simulate  # noqa: PLC0415

    g = registry.build("resnet18", (8, 8), 0, image_size=32)
    cfg = load_config("edge", CONFIGS[2][1])
    cycles = []
    for repeat in (False, True):
        monkeypatch.setattr(vector_layer, "REPEAT_TILES", repeat)
        res = simulate(lower(g, cfg, timing_only=True), cfg, count_only=True)
        cycles.append(res.stats.latency_cycles)
    assert cycles[0] == cycles[1]
