"""The public Emitter methods the layer emitters share: emit, load at a row offset, use_slots,
param_slot, rescale_store and alloc_rescale_params. Addresses, rows and DRAM bytes are worked
out by hand for the `edge` fixture: 128-bit rows; PARAM 8 KB = 512 rows, ACC 64 KB = 4096
rows, OUT 32 KB = 2048 rows, COORD 128 KB = 8192 rows; two slots per buffer unless re-cut."""

import numpy as np
import pytest

from accelsim.errors import AccelsimError
from accelsim.frontend.emit import Emitter
from accelsim.ir.params import RescaleParams
from accelsim.isa import AluOp, Buf, Insn, Mode, Op


def _ops(em):
    return [i.op for i in em.insns]


def test_emit_tags_and_records_regions(edge):
    em = Emitter(edge)
    em.tag = 7
    insn = Insn(Op.ALU, alu_op=AluOp.MAX, h=1, w=2, c=3, bits=8, in_bits=8)
    em.emit(insn, [(Buf.INP, 10, 12)], [(Buf.OUT, 4, 5)])
    assert em.insns == [insn] and insn.tag == 7
    assert em.accesses[0].reads == [(Buf.INP, 10, 12)]
    assert em.accesses[0].writes == [(Buf.OUT, 4, 5)]


def test_load_at_a_row_offset_of_a_recut_slot(edge):
    """COORD cut into 4 slots of 8192 / 4 = 2048 rows; slot 1 starts at row 2048. Ten rows of
    4 16-bit coordinates, contiguous in DRAM (s1 = d2 = 4), merge into one 40-element row;
    they take ceil(40 * 16 / 128) = 5 rows at 2048 + 3 and move 40 * 2 = 80 bytes."""
    em = Emitter(edge)
    em.use_slots(Buf.COORD, 4)
    assert em.slots[Buf.COORD].rows == 2048 and em.slots[Buf.COORD].base(3) == 6144
    rows = em.load(Buf.COORD, 1, 500, 1, 10, 4, 0, 4, 16, "unsigned", offset_rows=3)
    assert rows == 5 and em.dram_bytes == 80
    (load,) = em.insns
    assert (load.op, load.buf, load.sram_addr, load.dram_addr) == (Op.LOAD, Buf.COORD, 2051, 500)
    assert (load.d0, load.d1, load.d2, load.s1, load.bits) == (1, 1, 40, 40, 16)
    assert em.accesses[0].reads == [("dram", 500, 540)]
    assert em.accesses[0].writes == [(Buf.COORD, 2051, 2056)]


def test_param_slot_loads_once(edge):
    """5 channels of (bias, multiplier, shift): 15 int32 words, one merged DMA row of 60
    bytes into ceil(15 * 32 / 128) = 4 rows; asked again, the resident slot is reused."""
    em = Emitter(edge)
    slot = em.param_slot("p", 100, 5)
    assert em.param_slot("p", 100, 5) == slot
    assert _ops(em) == [Op.LOAD] and em.dram_bytes == 60
    load = em.insns[0]
    assert (load.buf, load.dram_addr, load.d0, load.d1, load.d2, load.bits) == (
        Buf.PARAM,
        100,
        1,
        1,
        15,
        32,
    )
    assert em.accesses[0].writes == [(Buf.PARAM, 0, 4)]
    assert em.param_slot("q", 200, 5) != slot  # another layer's parameters: the other slot
    assert em.dram_bytes == 120


def test_rescale_store_of_an_output_tile(edge):
    """A 2 x 3 x 5 tile (m = 6 positions, n = 5 channels) in ACC slot 1 (row 2048, 6 * 5 * 32
    bits = 8 rows) -> 4-bit unsigned in OUT slot 0 (ceil(30 * 4 / 128) = 1 row), parameters
    from PARAM slot 0 (ceil(5 * 96 / 128) = 4 rows). The PARAM LOAD moves 60 bytes, the STORE
    2 * 3 runs of ceil(5 * 4 / 8) = 3 bytes = 18 bytes, 78 in all; the STORE writes DRAM
    1000 .. 1000 + 40 + 2 * 8 + 5 (its rows are not contiguous: s1 = 8 > d2 = 5)."""
    em = Emitter(edge)
    em.tag = 3
    args = ("p", 100, 1000, 2, 3, 5, 40, 8, 4, "unsigned")
    em.rescale_store(1, *args, zp=3, relu=True, clip=(4, 9))
    assert _ops(em) == [Op.LOAD, Op.RESCALE, Op.STORE] and em.dram_bytes == 78
    _, rs, st = em.insns
    assert (rs.acc_addr, rs.param_addr, rs.out_addr, rs.m, rs.n) == (2048, 0, 0, 6, 5)
    assert (rs.bits, rs.mode, rs.zp, rs.relu) == (4, Mode.UNSIGNED, 3, 1)
    assert (rs.clip, rs.clip_lo, rs.clip_hi, rs.tag) == (1, 4, 9, 3)
    assert em.accesses[1].reads == [(Buf.ACC, 2048, 2056), (Buf.PARAM, 0, 4)]
    assert em.accesses[1].writes == [(Buf.OUT, 0, 1)]
    assert (st.buf, st.sram_addr, st.dram_addr) == (Buf.OUT, 0, 1000)
    assert (st.d0, st.d1, st.d2, st.s0, st.s1, st.bits) == (2, 3, 5, 40, 8, 4)
    assert em.accesses[2].reads == [(Buf.OUT, 0, 1)]
    assert em.accesses[2].writes == [("dram", 1000, 1061)]

    # the next tile of the same channels: parameters resident, the other OUT slot (row 1024)
    em.rescale_store(0, *args)
    assert _ops(em)[3:] == [Op.RESCALE, Op.STORE] and em.dram_bytes == 78 + 18
    rs2 = em.insns[3]
    assert (rs2.acc_addr, rs2.out_addr, rs2.clip, rs2.relu, rs2.zp) == (0, 1024, 0, 0, 0)


def test_alloc_rescale_params_lays_out_channel_rows(edge):
    """Channel j's (bias, multiplier, shift) are DRAM words 3j .. 3j + 2; a value beyond
    int32 is refused naming the node."""
    em = Emitter(edge)
    em.alloc(5)

    def params(mult):
        shift = np.array([4, 5])
        return RescaleParams(np.array([-7, 8]), np.array(mult), shift, 0, 8, True)

    assert em.alloc_rescale_params(params([1 << 30, 3]), "conv") == 5
    np.testing.assert_array_equal(em.dram_image()[5:], [-7, 1 << 30, 4, 8, 3, 5])
    rp = params([1 << 31, 3])
    with pytest.raises(AccelsimError, match="node 'conv': rescale parameters do not fit int32"):
        em.alloc_rescale_params(rp, "conv")


@pytest.mark.parametrize("n, takes", [(2, 0), (2, 5), (4, 3), (4, 9), (3, 7)])
def test_slots_advance_equals_that_many_takes(edge, n, takes):
    """`Slots.advance(k)` leaves the LRU order and keys `take()` k times would (after a
    lookup that reorders them)."""
    from accelsim.frontend.emit import Slots  # noqa: PLC0415

    a, b = Slots(Buf.INP, edge, n), Slots(Buf.INP, edge, n)
    for s in (a, b):
        s.take("x")
        s.take("y")
        s.lookup("x")
    for _ in range(takes):
        a.take()
    b.advance(takes)
    assert (a.lru, a.keys) == (b.lru, b.keys)
