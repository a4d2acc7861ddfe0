"""Token insertion from read/write sets: RAW, WAR and transitive orderings."""

from accelsim.config import load_config
from accelsim.frontend.tokens import Access, insert_tokens
from accelsim.frontend.validate import validate_stream
from accelsim.isa import Buf, Insn, Op, Unit

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
