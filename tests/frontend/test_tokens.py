"""Token insertion from read/write sets: RAW, WAR and transitive orderings."""

import numpy as np
import pytest

from accelsim import insn_table
from accelsim.config import load_config
from accelsim.frontend.lower import emit_nodes, place_tensors, plan_layers
from accelsim.frontend.tokens import Access, insert_tokens, insert_tokens_ref
from accelsim.frontend.validate import validate_stream
from accelsim.ir.fold import fold_batchnorm
from accelsim.isa import Buf, Insn, Op, Unit
from workloads.dense import random_cnn

LOAD, MM, RS, ST = (1 << int(u) for u in (Unit.LOAD, Unit.MATMUL, Unit.RESCALE, Unit.STORE))


def _stream():
    """load A->INP0, gemm INP0->ACC0, rescale ACC0->OUT0, store OUT0->dram[100:108],
    load INP0 again (WAR on the gemm), load dram[100:108] (RAW on the store)."""
    insns = [
        Insn(Op.LOAD, d0=1, d1=1, d2=8, bits=8),
        Insn(Op.GEMM, m=1, k=8, n=1, a_bits=8, w_bits=8),
        Insn(Op.RESCALE, m=1, n=1),
        Insn(Op.STORE, d0=1, d1=1, d2=8, bits=8),
        Insn(Op.LOAD, d0=1, d1=1, d2=8, bits=8),
        Insn(Op.LOAD, d0=1, d1=1, d2=8, bits=8),
        Insn(Op.FINISH),
    ]
    acc = [
        Access([("dram", 0, 8)], [(Buf.INP, 0, 4)]),
        Access([(Buf.INP, 0, 4)], [(Buf.ACC, 0, 1)]),
        Access([(Buf.ACC, 0, 1)], [(Buf.OUT, 0, 1)]),
        Access([(Buf.OUT, 0, 1)], [("dram", 100, 108)]),
        Access([("dram", 8, 16)], [(Buf.INP, 0, 4)]),
        Access([("dram", 100, 108)], [(Buf.INP, 8, 12)]),
        Access(),
    ]
    return insns, acc


def test_raw_and_war_tokens_and_balance():
    insns, acc = _stream()
    insert_tokens(insns, acc)
    assert insns[0].signal == MM and insns[1].wait == LOAD
    assert insns[2].wait == MM
    assert insns[2].signal == ST and insns[3].wait == RS
    # the second load overwrites INP rows the GEMM read: it waits for the matmul (WAR)
    assert insns[4].wait == MM and insns[1].signal == RS | LOAD
    # the third load reads what the store wrote: a store -> load token (RAW through DRAM)
    assert insns[5].wait == ST and insns[3].signal == LOAD
    validate_stream(insns, load_config("edge"))


def test_transitive_dependencies_need_no_extra_token():
    """The store already follows the load through load->matmul->rescale->store, so a store
    that also reads the loaded rows needs no direct load->store token."""
    insns = [
        Insn(Op.LOAD, d0=1, d1=1, d2=1, bits=8),
        Insn(Op.GEMM, m=1, k=1, n=1, a_bits=8, w_bits=8),
        Insn(Op.STORE, d0=1, d1=1, d2=1, bits=8),
        Insn(Op.FINISH),
    ]
    acc = [
        Access([], [(Buf.INP, 0, 1)]),
        Access([(Buf.INP, 0, 1)], [(Buf.OUT, 0, 1)]),
        Access([(Buf.OUT, 0, 1), (Buf.INP, 0, 1)], [("dram", 0, 1)]),
        Access(),
    ]
    insert_tokens(insns, acc)
    assert insns[2].wait == MM
    assert insns[0].signal == MM


def _random_stream(rng, n: int):
    """n instructions on random units with one to three random regions each, in two buffers
    and DRAM, overlapping partly, nested or empty, so intervals split and merge."""
    ops = [Op.LOAD, Op.STORE, Op.GEMM, Op.RESCALE, Op.ALU]
    insns, acc = [], []
    for _ in range(n):
        regions = []
        for _ in range(int(rng.integers(1, 4))):
            space = [Buf.INP, Buf.ACC, "dram"][int(rng.integers(3))]
            start = int(rng.integers(0, 40))
            regions.append((space, start, start + int(rng.integers(0, 12))))
        split = int(rng.integers(0, len(regions) + 1))
        insns.append(Insn(ops[int(rng.integers(len(ops)))]))
        acc.append(Access(regions[:split], regions[split:]))
    return insns + [Insn(Op.FINISH)], acc + [Access()]


def _copy(insns):
    return [Insn(i.op, tag=i.tag, **i.f) for i in insns]


@pytest.mark.parametrize("seed", range(6))
def test_compiled_pass_equals_the_reference_on_random_streams(seed):
    """The Numba pass and `insert_tokens_ref` set the same wait and signal bits."""
    insns, acc = _random_stream(np.random.default_rng(seed), 400)
    ref, fast = _copy(insns), _copy(insns)
    insert_tokens_ref(ref, acc)
    insert_tokens(fast, acc, compiled=True)
    assert [(i.wait, i.signal) for i in fast] == [(i.wait, i.signal) for i in ref]
    assert sum(i.wait != 0 for i in ref) > 50


@pytest.mark.parametrize("seed", range(3))
def test_compiled_pass_equals_the_reference_on_lowered_networks(seed):
    cfg = load_config("edge", ["buffers.inp_bytes=4096", "buffers.wgt_bytes=2048"])
    g = fold_batchnorm(random_cnn(np.random.default_rng(seed)))
    plans = plan_layers(g, cfg, None)
    em, places = place_tensors(g, cfg, None)
    emit_nodes(em, g, plans, places, cfg, None)
    table = em.finish()  # the lowered stream as an insn_table table
    ref = insn_table.insns(table)
    insert_tokens_ref(ref, em.accesses)
    expected = [[i.wait, i.signal] for i in ref]
    assert sum(w != 0 for w, _ in expected) > 10
    for compiled in (True, False):  # on the table's columns, either pass
        got = insert_tokens(table.copy(), em.log, compiled=compiled)
        assert got[:, [insn_table.WAIT, insn_table.SIGNAL]].tolist() == expected, compiled
