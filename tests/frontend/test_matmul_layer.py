"""Lowering of the transformer ops: the second operand of a MatMul LOADed in place (K^T
gathered one element per DMA row, V by rows), the DMA cost of that gather, a layer norm's
parameter words, and a transformer graph refusing a batch override."""

import numpy as np
import pytest

from accelsim.errors import AccelsimError
from accelsim.frontend.lower import lower
from accelsim.isa import AluOp, Buf, Op
from accelsim.units.dma import dma_cycles
from workloads.bert import bert_base

SEQ, HIDDEN, HEADS, FFN = 16, 64, 2, 128


@pytest.fixture(scope="module")
def bert():
    return bert_base(8, 8, 0, seq=SEQ, hidden=HIDDEN, heads=HEADS, ffn=FFN)


def _layer(program, name: str) -> list:
    tag = next(t for t, n in program.tags.items() if n == name)
    return [i for i in program.insns if i.tag == tag]


def test_scores_gather_k_transposed(bert, edge):
    """Q . K^T: each WGT LOAD of the scores layer reads a [k, n] tile of K^T from K's
    natural [seq, hidden] layout: d0 = k features (stride 1), d1 = n keys (stride hidden),
    d2 = 1 element per DMA row. Every element of K is loaded once (the tile of one head stays
    in WGT across its row tiles): here one [32, 16] tile per head (head size 32, 16 keys).
    Such a LOAD costs, by the DMA formula on edge (latency 100, 64-byte bursts, 25.6 bytes
    per cycle), 100 + 32 * 16 * ceil(1 / 64) * ceil(64 / 25.6) = 100 + 512 * 3 = 1636
    cycles, where the same bytes in 16-element rows would cost 100 + 32 * 3 = 196."""
    program = lower(bert, edge)
    loads = [i for i in _layer(program, "scores") if i.op == Op.LOAD and i.buf == Buf.WGT]
    assert loads and all((i.d2, i.s0, i.s1, i.bits) == (1, 1, HIDDEN, 8) for i in loads)
    assert [(i.d0, i.d1) for i in loads] == [(HIDDEN // HEADS, SEQ)] * HEADS
    assert dma_cycles(edge, 32, 16, 1, 8) == 1636 and dma_cycles(edge, 1, 32, 16, 8) == 196


def test_context_loads_v_by_rows(bert, edge):
    """P . V: V is [seq, hidden] and head h's [k, n] tile is k rows of n = hidden / heads
    contiguous elements at stride hidden; P is head-major [heads, seq, seq]."""
    program = lower(bert, edge)
    insns = _layer(program, "context")
    loads = [i for i in insns if i.op == Op.LOAD and i.buf == Buf.WGT]
    assert loads and all((i.d0, i.d2, i.s1) == (1, HIDDEN // HEADS, HIDDEN) for i in loads)
    gemms = [i for i in insns if i.op == Op.GEMM]
    assert {(i.k, i.n) for i in gemms} == {(SEQ, HIDDEN // HEADS)}
    assert sum(i.m for i in gemms) == HEADS * SEQ


def test_layernorm_params_take_the_whole_param_buffer(bert, edge):
    """LAYERNORM reads 2 * 64 + 1 = 129 int32 words (129 * 32 / 128 = 33 rows of PARAM).
    With a 1 KB PARAM buffer (64 rows: two slots of 32) they need the whole buffer; with
    512 bytes they do not fit and lowering names the node."""
    small = edge.with_overrides(["buffers.param_bytes=1024"])
    alu = [i for i in _layer(lower(bert, small), "attn_layernorm") if i.op == Op.ALU]
    assert alu and all(i.alu_op == AluOp.LAYERNORM and i.param_addr == 0 for i in alu)
    with pytest.raises(AccelsimError, match="'attn_layernorm'.*129 ALU parameter words"):
        lower(bert, edge.with_overrides(["buffers.param_bytes=512"]))


def test_transformer_refuses_a_batch(bert, edge):
    with pytest.raises(AccelsimError, match="declared rows only"):
        lower(bert, edge, batch=SEQ * 2)


def test_vector_layers_use_the_ibert_ops(bert, edge):
    program = lower(bert, edge)
    ops = {name: {AluOp(i.alu_op) for i in _layer(program, name) if i.op == Op.ALU}
           for name in ("softmax", "gelu", "out_layernorm", "ffn_residual")}  # fmt: skip
    assert ops == {
        "softmax": {AluOp.SOFTMAX},
        "gelu": {AluOp.GELU},
        "out_layernorm": {AluOp.LAYERNORM},
        "ffn_residual": {AluOp.ADD},
    }
    rows = [i.w for i in _layer(program, "softmax") if i.op == Op.ALU]
    assert sum(rows) == HEADS * SEQ and np.all([i.c == SEQ for i in _layer(program, "softmax")
                                                if i.op == Op.ALU])  # fmt: skip
