"""The compiled tile loop of GEMM layers (`gemm_kernel` via `gemm_compiled`) emits what the
Python definition (`emit_gemm_layer_ref`) emits: the same instructions, regions, DRAM bytes
and slot state, over whole networks (residual blocks read one tensor from two layers, batches
reuse weights across images) on every preset and on small random buffers."""

import random

import numpy as np
import pytest

from accelsim.config import load_config
from accelsim.frontend import gemm_compiled
from accelsim.frontend.lower import lower
from accelsim.jit import jit_disabled
from workloads import registry

pytestmark = pytest.mark.skipif(jit_disabled(), reason="the compiled loop needs Numba")

MODELS = [
    ("small_cnn", (4, 4)),
    ("mlp", (8, 8)),
    ("resnet18@32", (8, 8)),
    ("resnet18@32", (2, 3)),
    ("mobilenet_v2@32", (4, 4)),  # depthwise layers
]


def _configs() -> list:
    rng = random.Random(7)
    out = [load_config(name) for name in ("edge", "server", "scalesim32")]
    for _ in range(4):
        side = rng.choice([4, 8, 16, 32])
        sets = [f"matmul.rows={side}", f"matmul.cols={side}"]
        for buf in ("inp", "wgt", "acc", "out", "param"):
            size = getattr(out[0].buffers, f"{buf}_bytes")
            sets.append(f"buffers.{buf}_bytes={int(size * rng.choice([0.25, 0.5, 1, 2]))}")
        out.append(load_config("edge", sets))
    return out


def _lower(g, cfg, compiled: bool, monkeypatch, batch=None):
    """The program, and how many GEMM layer calls the compiled loop emitted (it may hand a
    layer back to the Python emission; the networks here must not)."""
    kept = []
    real = gemm_compiled.emit

    def counting(*args):
        done = real(*args)
        kept.append(done)
        return done

    with monkeypatch.context() as m:
        if compiled:
            m.setattr(gemm_compiled, "jit_loaded", lambda: True)
            m.setattr(gemm_compiled, "emit", counting)
        else:
            m.setattr(gemm_compiled, "emit", lambda *a: False)
        return lower(g, cfg, batch=batch, timing_only=True), kept


@pytest.mark.parametrize("name, bits", MODELS)
def test_compiled_emission_equals_the_definition(name, bits, monkeypatch):
    model, _, size = name.partition("@")
    g = registry.build(model, bits, 0, **({"image_size": int(size)} if size else {}))
    for i, cfg in enumerate(_configs()):
        for batch in (None, 2):
            ref, _ = _lower(g, cfg, False, monkeypatch, batch)
            got, kept = _lower(g, cfg, True, monkeypatch, batch)
            where = f"{name} config {i} batch {batch}"
            assert kept and all(kept), where  # every GEMM layer came from the compiled loop
            assert len(got.insns) == len(ref.insns), where
            for k, (a, b) in enumerate(zip(got.insns, ref.insns)):
                assert a == b, f"{where}: instruction {k}: {a} != {b}"
            assert got.dram_size == ref.dram_size, where


def test_the_compiled_loop_is_taken(monkeypatch):
    """Guard against the comparison above passing because both runs took the Python path."""
    calls = []
    real = gemm_compiled.K.gemm_tiles

    def counting(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(gemm_compiled.K, "gemm_tiles", counting)
    monkeypatch.setattr(gemm_compiled, "jit_loaded", lambda: True)
    lower(registry.build("small_cnn", (4, 4), 0), load_config("edge"), timing_only=True)
    assert calls


def _state(em):
    return [(list(em.slots[b].keys), list(em.slots[b].lru)) for b in gemm_compiled.BUFS]


@pytest.mark.parametrize("name", ["small_cnn", "resnet18@32", "mlp"])
def test_regions_dram_bytes_and_slot_state_equal_layer_by_layer(name, monkeypatch):
    """Each layer alone, every tiling candidate: two images with one placement (weights and
    parameters stay resident across them), then a second layer reading the same input tensor
    (its input patches are found resident)."""
    from accelsim.frontend.emit import Emitter
    from accelsim.frontend.gemm_layer import GemmPlace, emit_gemm_layer, emit_gemm_layer_ref
    from accelsim.frontend.lower import gemm_layer_of
    from accelsim.frontend.tiling import candidates
    from accelsim.ir.fold import fold_batchnorm
    from accelsim.ir.ops import QuantConv2d, QuantLinear

    monkeypatch.setattr(gemm_compiled, "jit_loaded", lambda: True)
    model, _, size = name.partition("@")
    g = fold_batchnorm(
        registry.build(model, (4, 4), 0, **({"image_size": int(size)} if size else {}))
    )
    cfg = load_config("edge", ["buffers.inp_bytes=16384", "buffers.wgt_bytes=16384"])
    checked = 0
    for op in g.nodes:
        if not isinstance(op, (QuantConv2d, QuantLinear)):
            continue
        L = gemm_layer_of(op, g, None)[0]
        for t in candidates(L, cfg)[:6]:
            ems = []
            for fn in (emit_gemm_layer_ref, emit_gemm_layer):
                em = Emitter(cfg, image=False)
                calls = [
                    (GemmPlace(0, L.cin, 10**6, L.cout, 5, key="a", pad_value=1), 0),
                    (GemmPlace(0, L.cin, 10**6, L.cout, 5, key="a", pad_value=1), 1),
                    (GemmPlace(0, L.cin, 2 * 10**6, L.cout, 7, key="b", pad_value=1), 0),
                ]
                trail = []
                try:
                    for P, img in calls:
                        fn(em, L, t, P, image=img)
                        trail.append(_state(em))
                except Exception as exc:  # both must reject the same tile the same way
                    trail.append(str(exc))
                ems.append((em, trail))
            (ref, ref_trail), (got, got_trail) = ems
            at = f"{op.name} {t}"
            assert got_trail == ref_trail, at
            assert np.array_equal(got.stream(), ref.stream()), at
            assert got.log.regions().tolist() == ref.log.regions().tolist(), at
            assert (got.log.ptr, got.log.units) == (ref.log.ptr, ref.log.units), at
            assert got.dram_bytes == ref.dram_bytes, at
            checked += 1
    assert checked >= 6


def test_kernel_writes_every_table_field():
    assert gemm_compiled.MATCHES_TABLE


def test_a_compiled_row_outside_its_field_range_is_named(monkeypatch):
    """Compiled rows go into the stream as they are; the stream check names a field out of
    its table range as it names one from the Python emission."""
    from accelsim.errors import IsaError  # noqa: PLC0415
    from accelsim.insn_table import COLUMN, OP  # noqa: PLC0415
    from accelsim.isa import Op  # noqa: PLC0415

    real = gemm_compiled._rows

    def spoiled(rec, tag):
        rows = real(rec, tag)
        gemm = np.flatnonzero(rows[:, OP] == int(Op.GEMM))[0]
        rows[gemm, COLUMN[Op.GEMM]["k"]] = 0
        return rows

    monkeypatch.setattr(gemm_compiled, "jit_loaded", lambda: True)
    monkeypatch.setattr(gemm_compiled, "_rows", spoiled)
    g = registry.build("small_cnn", (4, 4), 0)
    with pytest.raises(IsaError, match=r"\(GEMM, tag \d+\): GEMM.k = 0 is out of range"):
        lower(g, load_config("edge"), timing_only=True)
