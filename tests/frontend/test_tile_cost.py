"""The analytic tile costs equal what emission produces, exactly, and the plan cache.

For every tiling candidate of every GEMM layer of the built-in dense workloads, on every preset
and dataflow, the layer is emitted alone by the real emitter (as the search costs it) and what
it emits is tallied: DRAM bytes per buffer from each LOAD / STORE block, instructions per
opcode, busy cycles per unit from the units' cost functions, and the largest region each
buffer access covers. `tile_cost` must give the same numbers. Random layers on tight buffers
cover every residency case and tiles the emitter rejects.
"""

import dataclasses
import inspect
import time

import numpy as np
import pytest

from accelsim import insn_table
from accelsim.config import load_config
from accelsim.errors import AccelsimError
from accelsim.frontend import tile_cost as tc
from accelsim.frontend.emit import Emitter, dma_bytes
from accelsim.frontend.gemm_layer import GemmPlace, emit_gemm_layer
from accelsim.frontend.lower import gemm_layer_of
from accelsim.frontend.matmul_layer import matmul_gemm_layer
from accelsim.frontend.tiling import GemmLayer, Tiling, candidates
from accelsim.ir.fold import fold_batchnorm
from accelsim.ir.ops import QuantConv2d, QuantLinear
from accelsim.ir.reference import JIT_ENABLED
from accelsim.ir.transformer_ops import MatMul
from accelsim.isa import Buf, Op
from accelsim.units.dma import dma_cycles
from accelsim.units.matmul import matmul_cycles
from accelsim.units.rescale import rescale_cycles

PRESETS = ("edge", "server", "scalesim32")
DATAFLOWS = ("os", "ws", "is")


def _tally(em: Emitter) -> tuple[dict, dict]:
    """What `em` emitted: a count per instruction shape (the fields the costs depend on) and
    the largest region of each buffer."""
    shapes: dict = {}
    for insn in insn_table.insns(em.stream()):  # compiled blocks included
        f = insn.f
        if insn.op is Op.GEMM:
            key = (insn.op, f["m"], f["k"], f["n"], f["a_bits"], f["w_bits"])
        elif insn.op is Op.RESCALE:
            key = (insn.op, f["m"], f["n"])
        else:
            key = (insn.op, f["buf"], f["d0"], f["d1"], f["d2"], f["bits"])
        shapes[key] = shapes.get(key, 0) + 1
    rows: dict = {}
    for acc in em.accesses:
        for space, start, stop in (*acc.reads, *acc.writes):
            if space != "dram" and stop - start > rows.get(space, 0):
                rows[space] = stop - start
    return shapes, rows


def emitted(L: GemmLayer, t: Tiling, cfgs: list, images: int) -> dict:
    """What emitting layer `L` alone with tiling `t` produces: {n: [TileCost per config]} for
    the first n = 1 .. `images` images (the configs differ in matmul cycles only), or {} if
    emission rejects a tile."""
    em = Emitter(cfgs[0])
    place = GemmPlace(0, L.cin, 0, L.cout, 0)
    out = {}
    try:
        for img in range(images):
            emit_gemm_layer(em, L, t, place, image=img)
            out[img + 1] = _costs(*_tally(em), cfgs, img + 1)
    except AccelsimError:
        return {}
    return out


def _costs(shapes: dict, rows: dict, cfgs: list, images: int) -> list:
    """TileCost of the instruction shapes counted so far, one per config."""
    load_bytes = {"inp": 0, "wgt": 0, "param": 0}
    store_bytes = 0
    insns = {"LOAD": 0, "STORE": 0, "GEMM": 0, "RESCALE": 0}
    busy = [{"load": 0, "store": 0, "matmul": 0, "rescale": 0} for _ in cfgs]
    for (op, *dims), count in shapes.items():
        insns[op.name] += count
        if op is Op.GEMM:
            unit, cost = "matmul", matmul_cycles
        elif op is Op.RESCALE:
            unit, cost = "rescale", rescale_cycles
        else:
            unit, cost, buf, dims = op.name.lower(), dma_cycles, dims[0], dims[1:]
            nbytes = count * dma_bytes(*dims)
            if op is Op.LOAD:
                load_bytes[Buf(buf).name.lower()] += nbytes
            else:
                store_bytes += nbytes
        for b, cfg in zip(busy, cfgs):
            b[unit] += count * cost(cfg, *dims)
    peak = {Buf(space).name.lower(): r for space, r in rows.items()}
    return [tc.TileCost(images, load_bytes, store_bytes, insns, b, peak) for b in busy]


@pytest.fixture(scope="module")
def dense_layers(imagenet):
    """(workload, node, GemmLayer) of every tiled node (conv, linear, MatMul) of the built-in
    dense workloads: the ImageNet networks from the session fixture, the others built here
    (ResNet-18 calibrated at 32x32: tiles depend on the layer shapes and bits only)."""
    from workloads import imagenet as nets  # noqa: PLC0415
    from workloads.registry import _all  # noqa: PLC0415
    from workloads.sparse_nets import WORKLOADS as SPARSE  # noqa: PLC0415

    layers = []
    for name, wl in sorted(_all().items()):
        if name in SPARSE:
            continue
        if name in nets.WORKLOADS:
            g = imagenet(name)
        else:
            calib = inspect.signature(wl.build).parameters.get("calib_hw")
            g = wl.build(8, 8, 0, **({"calib_hw": 32} if calib is not None else {}))
        g = fold_batchnorm(g)
        for op in g.nodes:
            if isinstance(op, (QuantConv2d, QuantLinear)):
                layers.append((name, op.name, gemm_layer_of(op, g, None)[0]))
            elif isinstance(op, MatMul):  # searched as one head's GEMM
                layers.append((name, op.name, matmul_gemm_layer(op, g)))
    return layers


def _configs(base) -> list:
    return [
        dataclasses.replace(base, matmul=dataclasses.replace(base.matmul, dataflow=df))
        for df in DATAFLOWS
    ]


def _check_layer(L: GemmLayer, cfgs: list, where: str, images: int = 2) -> tuple[int, int]:
    """Compare formulas and emission for every candidate of `L` at 1 .. `images` images;
    returns ((candidate, images) pairs checked, pairs both reject)."""
    checked = rejected = 0
    for t in candidates(L, cfgs[0]):
        want = emitted(L, t, cfgs, images)
        for n_img in range(1, images + 1):
            got = [tc.tile_cost(L, t, cfg, n_img) for cfg in cfgs]
            at = f"{where}: {L} {t} images={n_img}"
            if not want:
                assert got == [None] * len(cfgs), at
                assert tc.layer_dram_bytes(L, t, n_img) is None, at
                rejected += 1
                continue
            for df, w, g in zip(DATAFLOWS, want[n_img], got):
                assert g == w, f"{at} {df}"
            assert g.dram_bytes == tc.layer_dram_bytes(L, t, n_img), at
            checked += 1
    return checked, rejected


# Slow without JIT: the ImageNet builds take minutes there (and the coverage job skips them).
@pytest.mark.skipif(not JIT_ENABLED, reason="ImageNet builds are slow without JIT")
@pytest.mark.parametrize("preset", PRESETS)
def test_formulas_equal_emission_for_every_candidate(preset, dense_layers):
    """Every candidate of every distinct GEMM layer of the dense workloads on `preset` under
    the three dataflows, at one image (as the workloads run), and on server and scalesim32
    also at two (weights resident across images). edge tiles most finely: emitting its
    candidates twice would take most of a minute; the random layers below cover two images
    on tight buffers."""
    cfgs = _configs(load_config(preset))
    images = 1 if preset == "edge" else 2
    checked = rejected = 0
    t0 = time.perf_counter()
    for L in dict.fromkeys(L for _, _, L in dense_layers):
        c, r = _check_layer(L, cfgs, preset, images)
        checked, rejected = checked + c, rejected + r
    workloads = sorted({w for w, _, _ in dense_layers})
    print(
        f"{preset}: {checked} (candidate, images) pairs x 3 dataflows equal, {rejected} "
        f"rejected by both, {', '.join(workloads)}, in {time.perf_counter() - t0:.1f} s"
    )
    assert checked > 0 and {"resnet18", "small_cnn", "mlp", "bert_base"} <= set(workloads)


def _random_layer(rng) -> GemmLayer:
    """A small conv, depthwise conv or linear layer with random geometry and bits; padding
    up to two more than the kernel reach, so some tiles read only padding. A fifth of the
    convs have another vertical stride (one-row tiles), a fifth another vertical dilation
    (one-pixel tiles of gathered taps, their padding laid out in DRAM, as lowering does)."""
    a_bits, w_bits, out_bits = (int(b) for b in rng.choice([2, 4, 8], 3))
    bits = dict(a_bits=a_bits, w_bits=w_bits, out_bits=out_bits)
    kind = rng.choice(["conv", "depthwise", "linear"], p=[0.55, 0.25, 0.2])
    if kind == "linear":
        m = int(rng.integers(1, 12))
        cin, cout = (int(c) for c in rng.integers(1, 80, 2))
        return GemmLayer(h=m, w=1, cin=cin, oh=m, ow=1, cout=cout, conv=False, **bits)
    axes = rng.choice(["same", "row_stride", "row_dilation"], p=[0.6, 0.2, 0.2])
    while True:
        k, stride, dil = (
            int(rng.choice([1, 3, 5])),
            int(rng.integers(1, 3)),
            int(rng.integers(1, 3)),
        )
        sy, dy = stride, dil
        if axes == "row_stride":
            sy = 3 - stride
        elif axes == "row_dilation":
            dy = 3 - dil
        h, w = (int(v) for v in rng.integers(2, 11, 2))
        pt, pl = (int(p) for p in rng.integers(0, (k - 1) * max(dil, dy) + 3, 2))
        if axes == "row_dilation":
            pt = pl = 0
        oh = (h + 2 * pt - (k - 1) * dy - 1) // sy + 1
        ow = (w + 2 * pl - (k - 1) * dil - 1) // stride + 1
        if oh >= 1 and ow >= 1:
            break
    cin = int(rng.integers(1, 24))
    cout = cin if kind == "depthwise" else int(rng.integers(1, 32))
    geo = dict(kh=k, kw=k, stride=stride, dilation=dil, pad_top=pt, pad_left=pl)
    geo |= dict(row_stride=sy if sy != stride else None, row_dilation=dy if dy != dil else None)
    return GemmLayer(
        h=h, w=w, cin=cin, oh=oh, ow=ow, cout=cout, depthwise=kind == "depthwise", **geo, **bits
    )


def test_formulas_equal_emission_on_random_layers_and_tight_buffers():
    """Tight buffers slice input channels and output channels into three or more tiles, so
    every residency case of `_reloads` is exercised; odd padding makes some tiles read only
    padding (both sides then reject the candidate)."""
    rng = np.random.default_rng(7)
    tight = [
        ["buffers.inp_bytes=768", "buffers.wgt_bytes=1024", "buffers.param_bytes=384"],
        ["buffers.inp_bytes=2048", "buffers.wgt_bytes=512", "buffers.acc_bytes=2048"],
        ["buffers.out_bytes=256", "buffers.param_bytes=192", "buffers.row_bits=64"],
    ]
    checked = rejected = 0
    cases, kinds = set(), set()
    for i in range(60):
        L = _random_layer(rng)
        base = load_config("edge", [*tight[i % 3], f"matmul.cols={rng.choice([4, 8])}"])
        for t in candidates(L, base):
            _, _, n_n, n_ci = t.counts(L)
            cases.add((L.depthwise, t.order, n_n > 2, n_ci > 2))
        if L.conv and candidates(L, base):
            kinds.add("one_pixel" if L.one_pixel else "one_row" if L.one_row else "plain")
        c, r = _check_layer(L, _configs(base), f"random layer {i}")
        checked, rejected = checked + c, rejected + r
    assert rejected > 0 and checked > 3 * rejected
    for order in ("spatial", "channel"):
        assert {(False, order, True, True), (True, order, True, False)} <= cases
    assert {"one_row", "one_pixel"} <= kinds


LAYER = GemmLayer(h=28, w=28, cin=128, oh=28, ow=28, cout=128, kh=3, kw=3, pad_top=1, pad_left=1)
UNRELATED = [  # knobs the tile search does not read
    "dram.latency_cycles=7",
    "dram.bw_bytes_per_cycle=3",
    "rescale.round_mode=tflite",
    "matmul.dataflow=ws",
    "matmul.rows=64",
    "matmul.mac_model=serial_act",
    "buffers.map_bytes=1024",
]
TIGHT_LAYERS = [  # plans on edge that slice input and output channels
    GemmLayer(h=14, w=14, cin=512, oh=14, ow=14, cout=512, kh=3, kw=3, pad_top=1, pad_left=1),
    GemmLayer(h=1, w=1, cin=4096, oh=1, ow=1, cout=4096, conv=False),
    GemmLayer(
        h=56, w=56, cin=96, oh=56, ow=56, cout=96, kh=3, kw=3, pad_top=1, pad_left=1, depthwise=True
    ),
]
RELATED = [  # knobs it does read: buffer sizes, row width, array width
    "buffers.inp_bytes=16384",
    "buffers.wgt_bytes=32768",
    "buffers.acc_bytes=16384",
    "buffers.out_bytes=8192",
    "buffers.param_bytes=1024",
    "buffers.row_bits=256",
    "matmul.cols=32",
]


def test_plans_are_reused_across_unrelated_knobs(edge, monkeypatch):
    """Once planned, a config differing only in a knob the search does not read gets the
    same plan without searching again (the candidate generator would fail if called)."""
    tc.clear_plan_cache()
    plan = tc.choose_tiling(LAYER, edge)
    monkeypatch.setattr(tc, "candidates", lambda *a: pytest.fail("searched again"))
    for knob in UNRELATED:
        assert tc.choose_tiling(LAYER, load_config("edge", [knob])) is plan, knob
    assert tc.choose_tiling(LAYER, edge, images=1) is plan
    with pytest.raises(pytest.fail.Exception, match="searched again"):
        tc.choose_tiling(LAYER, load_config("edge", [RELATED[0]]))


@pytest.mark.parametrize("knob", UNRELATED + RELATED)
def test_plan_key_holds_what_the_search_reads(edge, knob):
    """A knob outside the key leaves the uncached search's answer unchanged on layers of
    several shapes; a knob in the key changes the key."""
    other = load_config("edge", [knob])
    same_key = tc.plan_key(LAYER, edge, 1) == tc.plan_key(LAYER, other, 1)
    assert same_key == (knob in UNRELATED)
    if same_key:
        for L in (LAYER, *TIGHT_LAYERS):
            tc.clear_plan_cache()
            a = tc.choose_tiling(L, edge)
            tc.clear_plan_cache()
            assert tc.choose_tiling(L, other) == a, L
    tc.clear_plan_cache()


def test_a_layer_whose_every_tiling_reads_only_padding_is_refused():
    """A 1x1 conv of a 1x1 input padded by 2 on each side has 5x5 outputs. With ACC holding
    one int32 row of 4 channels per slot, every tile is one output pixel, and all but the
    centre one read only padding: the layer is refused, naming the node."""
    cfg = load_config("edge", ["buffers.acc_bytes=32"])
    L = GemmLayer(h=1, w=1, cin=4, oh=5, ow=5, cout=4, pad_top=2, pad_left=2)
    assert candidates(L, cfg) and all(t.oh_t * t.ow_t == 1 for t in candidates(L, cfg))
    tc.clear_plan_cache()
    with pytest.raises(AccelsimError, match="node 'pad': every tiling has a conv tile"):
        tc.choose_tiling(L, cfg, name="pad")
