"""DMA engines: cost formula, padding, strided blocks, range checks."""

import numpy as np
import pytest

from accelsim.config import load_config
from accelsim.errors import AccelsimError
from accelsim.isa import Buf, Insn, Op
from accelsim.units.dma import (
    DramBus,
    LoadEngine,
    StoreEngine,
    dma_cycles,
    load_block,
    store_block,
)
from tests.helpers import make_mem, standalone


def test_dma_cycles_by_hand(edge):
    """edge: latency 100, burst 64 B, 25.6 B/cycle -> ceil(64/25.6) = 3 cycles per burst.
    8x8x16 block of 4-bit: 64 rows of 8 bytes = 1 burst each -> 100 + 64*1*3 = 292.
    2x1x100 block of 8-bit: 2 rows of 100 B = 2 bursts -> 100 + 2*2*3 = 112.
    1x1x3 block of 32-bit: 12 B -> 100 + 3 = 103."""
    assert dma_cycles(edge, 8, 8, 16, 4) == 292
    assert dma_cycles(edge, 2, 1, 100, 8) == 112
    assert dma_cycles(edge, 1, 1, 3, 32) == 103


def test_profile_counts_unpadded_bytes_and_padded_rows(edge):
    """A 4x4x8 8-bit block padded by 1 on every side: DRAM reads 16 rows x 8 B = 128 bytes
    (padding is made on chip); the tile is 6*6*8 = 288 elements = 2304 bits = 18 rows."""
    unit = standalone(LoadEngine, edge)
    insn = Insn(
        Op.LOAD,
        buf=Buf.INP,
        sram_addr=0,
        dram_addr=0,
        d0=4,
        d1=4,
        d2=8,
        s0=32,
        s1=8,
        bits=8,
        pad_top=1,
        pad_bottom=1,
        pad_left=1,
        pad_right=1,
    )
    cyc, acc, counts = unit.profile(insn)
    assert cyc == 100 + 16 * 3
    assert acc == ((Buf.INP, "sram_addr", 18, True), (-1, "dram_addr", 3 * 32 + 3 * 8 + 8, False))
    assert dict(counts) == {"dram_read_bytes": 128, "sram_write_bits_inp": 18 * 128}


def test_load_pads_and_strides_store_writes_back(edge):
    dram = np.arange(100, dtype=np.int32) % 50
    mem = make_mem(edge)
    mem.dram = dram
    load = standalone(LoadEngine, edge)
    insn = Insn(
        Op.LOAD,
        buf=Buf.INP,
        sram_addr=4,
        dram_addr=3,
        d0=2,
        d1=3,
        d2=2,
        s0=20,
        s1=5,
        bits=8,
        pad_top=1,
        pad_left=2,
        pad_value=-7,
    )
    load.run(insn, mem)
    tile = mem.read(Buf.INP, 4, 3 * 5 * 2, 8, "test").reshape(3, 5, 2)
    expect = np.full((3, 5, 2), -7)
    for i in range(2):
        for j in range(3):
            expect[1 + i, 2 + j] = dram[3 + 20 * i + 5 * j + np.arange(2)]
    np.testing.assert_array_equal(tile, expect)
    store = standalone(StoreEngine, edge)
    mem.write(Buf.OUT, 0, np.array([1, -2, 3, -4], np.int8), 8)
    store.run(
        Insn(
            Op.STORE, buf=Buf.OUT, sram_addr=0, dram_addr=60, d0=2, d1=1, d2=2, s0=10, s1=0, bits=8
        ),
        mem,
    )
    np.testing.assert_array_equal(dram[[60, 61, 70, 71]], [1, -2, 3, -4])


def test_range_checks(edge):
    mem = make_mem(edge, 16)
    mem.dram[:] = 9
    with pytest.raises(AccelsimError, match="outside the 4-bit signed range"):
        standalone(LoadEngine, edge).run(Insn(Op.LOAD, buf=Buf.INP, d0=1, d1=1, d2=4, bits=4), mem)
    mem.write(Buf.OUT, 0, np.array([-1, 1], np.int32), 16)
    with pytest.raises(AccelsimError, match="outside the 16-bit unsigned"):
        standalone(StoreEngine, edge).run(
            Insn(Op.STORE, buf=Buf.OUT, d0=1, d1=1, d2=2, bits=16, mode=1), mem
        )


def test_bus_fcfs_by_hand():
    """latency 10: A issued at 0 with 20 data cycles holds the bus [10, 30); B issued at 5
    with 20 is ready at 15, waits to 30, ends 50 (delay 45, stall 15); C issued at 60 is
    unhindered ([70, 75), delay 15). With max_outstanding = 1, B is issued only at 30."""
    cfg = load_config("edge", ["dram.latency_cycles=10"])
    bus = DramBus(cfg)
    assert bus.transfer(0, 20) == (30, 0)
    assert bus.transfer(5, 20) == (45, 15)
    assert bus.transfer(60, 5) == (15, 0)
    bus = DramBus(load_config("edge", ["dram.latency_cycles=10", "dram.max_outstanding=1"]))
    assert bus.transfer(0, 20) == (30, 0)
    assert bus.transfer(5, 20) == (55, 25)  # issued 30, ready 40, ends 60


@pytest.mark.parametrize(
    ("d0", "d1", "d2", "s0", "s1"),
    [(3, 4, 5, 40, 8), (1, 6, 4, 0, 4), (2, 3, 4, 7, 2), (4, 1, 3, 2, 0), (2, 2, 2, 0, 0)],
)
def test_blocks_move_the_elements_their_indices_name(d0, d1, d2, s0, s1):
    """LOAD reads and STORE writes exactly dram[addr + i*s0 + j*s1 + k] in (i, j, k) order,
    also for blocks whose positions overlap (s1 < d2, s0 < the row span): a later position
    wins, as with index arrays."""
    rng = np.random.default_rng(d0 * 100 + s0)
    dram = rng.integers(-100, 100, 200).astype(np.int32)
    insn = Insn(Op.LOAD, dram_addr=11, d0=d0, d1=d1, d2=d2, s0=s0, s1=s1, bits=8)
    idx = 11 + np.arange(d0)[:, None, None] * s0 + np.arange(d1)[None, :, None] * s1
    idx = idx + np.arange(d2)
    np.testing.assert_array_equal(load_block(dram, insn), dram[idx])
    tile = rng.integers(-100, 100, d0 * d1 * d2).astype(np.int8)
    want = dram.copy()
    for pos, value in zip(idx.reshape(-1), tile):
        want[pos] = value
    store = Insn(Op.STORE, dram_addr=11, d0=d0, d1=d1, d2=d2, s0=s0, s1=s1, bits=8)
    store_block(dram, store, tile)
    np.testing.assert_array_equal(dram, want)
