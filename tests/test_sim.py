"""simulate(): hand-worked timing, tokens, DRAM contention, deadlock, races, capacity, programs."""

import json

import numpy as np
import pytest

from accelsim.config import load_config
from accelsim.errors import DeadlockError, IsaError, ModelFormatError, RaceError
from accelsim.isa import Buf, Op, Unit
from accelsim.kernels.gemm import gemm_ref
from accelsim.kernels.rescale import quantize_multiplier, rescale_ref
from accelsim.program import Program, ProgramBuilder
from accelsim.sim import simulate
from tests.helpers import handworked_config
from tests.programs import bad_stream, tiled_gemm_program

L, S, MM, RS = (1 << Unit.LOAD, 1 << Unit.STORE, 1 << Unit.MATMUL, 1 << Unit.RESCALE)


@pytest.fixture
def cfg():
    """edge with DRAM latency 10 and 64 B/cycle (one cycle per 64 B burst), 4x4 fixed array."""
    return handworked_config()


def _chain_program(rng):
    b = ProgramBuilder()
    x = rng.integers(-128, 128, (8, 16)).astype(np.int8)
    w = rng.integers(-128, 128, (16, 4)).astype(np.int8)
    mult, shift = quantize_multiplier(np.array([0.001, 0.002, 0.003, 0.004]))
    par = np.stack([np.array([5, -5, 100, 0]), mult, shift], 1)
    xa, wa = b.add_tensor("x", x, 8, kind="input"), b.add_tensor("w", w, 8)
    pa, ya = b.add_tensor("p", par, 32), b.add_tensor("y", (8, 4), 8, kind="output")
    b.emit(Op.LOAD, buf=Buf.INP, dram_addr=xa, d0=8, d1=1, d2=16, s0=16, bits=8)
    b.emit(Op.LOAD, signal=MM, buf=Buf.WGT, dram_addr=wa, d0=16, d1=1, d2=4, s0=4, bits=8)
    b.emit(Op.LOAD, signal=RS, buf=Buf.PARAM, dram_addr=pa, d0=1, d1=1, d2=12, bits=32)
    b.emit(Op.GEMM, wait=L, signal=RS, m=8, k=16, n=4, a_bits=8, w_bits=8, reset=1)
    b.emit(Op.RESCALE, wait=MM | L, signal=S, m=8, n=4, bits=8)
    b.emit(Op.STORE, wait=RS, buf=Buf.OUT, dram_addr=ya, d0=8, d1=1, d2=4, s0=4, bits=8)
    b.emit(Op.FINISH)
    return b.build(), x, w, par


def test_serial_chain_by_hand(cfg):
    """LOAD x (8 rows of 16 B: 10 + 8 = 18) [0, 18); LOAD w (16 rows: 10 + 16) issued 18,
    bus [28, 44), ends 44, signals matmul; LOAD params (48 B: 10 + 1) [44, 55) signals
    rescale; GEMM 4x4 OS: ceil(8/4)*ceil(4/4)*(16 + 4 + 4 - 2) = 44 -> [44, 88);
    RESCALE 4 + ceil(32/16) + ceil(4/4) = 7 -> [88, 95); STORE 8 rows: 18 -> [95, 113).
    Token stalls: matmul 44, rescale 88, store 95. The result equals the kernels' refs."""
    prog, x, w, par = _chain_program(np.random.default_rng(0))
    res = simulate(prog, cfg)
    assert res.stats.latency_cycles == 113
    np.testing.assert_array_equal(res.start_cycles[:6], [0, 18, 44, 44, 88, 95])
    np.testing.assert_array_equal(res.end_cycles[:6], [18, 44, 55, 88, 95, 113])
    s = res.stats
    assert [s.total("stall_token_cycles", unit=u) for u in ("matmul", "rescale", "store")] == [
        44,
        88,
        95,
    ]
    assert s.total("stall_dram_cycles") == 0
    assert s.total("busy_cycles", unit="load") == 18 + 26 + 11
    acc = gemm_ref(x, w, a_bits=8, w_bits=8)
    expect = rescale_ref(
        acc, par[:, 0], par[:, 1], par[:, 2], zp=0, bits=8, signed=True, mode="single"
    )
    np.testing.assert_array_equal(res.outputs["y"], expect)
    assert simulate(prog, cfg, count_only=True).stats.latency_cycles == 113


def test_dma_overlaps_compute_through_tokens(cfg):
    """LOAD A [0, 18) signals matmul; LOAD B issued 18, bus [28, 36), ends 36, signals matmul.
    GEMM 1 starts at 18 (token from A), runs 44 -> 62. GEMM 2's token arrived at 36 but the
    array is busy until 62: [62, 106). Total 106 instead of 18 + 18 + 44 + 44 = 124."""
    b = ProgramBuilder()
    b.alloc(256)
    for slot in (0, 8):
        b.emit(Op.LOAD, signal=MM, buf=Buf.INP, sram_addr=slot, d0=8, d1=1, d2=16, s0=16, bits=8)
    for slot, reset in ((0, 1), (8, 0)):
        b.emit(Op.GEMM, wait=L, inp_addr=slot, m=8, k=16, n=4, a_bits=8, w_bits=8, reset=reset)
    res = simulate(b.build(), cfg, count_only=True)
    assert res.stats.latency_cycles == 106
    np.testing.assert_array_equal(res.start_cycles, [0, 18, 18, 62])
    assert res.stats.total("stall_token_cycles", unit="matmul") == 18


def _contention_program():
    b = ProgramBuilder()
    b.alloc(4096)
    b.emit(Op.LOAD, buf=Buf.INP, d0=20, d1=1, d2=64, s0=64, bits=8)
    b.emit(Op.STORE, buf=Buf.OUT, dram_addr=2048, d0=20, d1=1, d2=64, s0=64, bits=8)
    return b.build()


def test_dram_contention_between_load_and_store(cfg):
    """A LOAD and a STORE of 20 rows x 64 B (20 data cycles each, latency 10) both start at 0.
    The load holds the bus [10, 30); the store is ready at 10 but gets the bus at 30 and ends
    at 50: 20 cycles of DRAM-contention stall. Alone each would take 30 cycles."""
    res = simulate(_contention_program(), cfg, count_only=True)
    assert res.stats.latency_cycles == 50
    np.testing.assert_array_equal(res.end_cycles, [30, 50])
    assert res.stats.total("stall_dram_cycles", unit="store") == 20
    assert res.stats.total("busy_cycles") == 60
    # one outstanding transfer: the store is issued at 30, ready at 40, ends at 60
    one = load_config(
        "edge", ["dram.latency_cycles=10", "dram.bw_bytes_per_cycle=64.0", "dram.max_outstanding=1"]
    )
    res = simulate(_contention_program(), one, count_only=True)
    assert res.stats.latency_cycles == 60
    assert res.stats.total("stall_dram_cycles", unit="store") == 30


def test_tiled_int4_gemm_rescale_exact_and_count_only_identical():
    """3 x 3 output tiles (M=40, N=36 with 16x16 tiles, ragged edges), 5 K steps (K=70) of
    int4 x int4, accumulate in ACC, RESCALE to int8, STORE: equals gemm_ref + rescale_ref."""
    cfg = load_config("edge")
    rng = np.random.default_rng(1)
    M, K, N = 40, 70, 36
    x = rng.integers(-8, 8, (M, K)).astype(np.int8)
    w = rng.integers(-8, 8, (K, N)).astype(np.int8)
    bias = rng.integers(-300, 300, N).astype(np.int32)
    mult, shift = quantize_multiplier(rng.uniform(0.002, 0.03, N))
    prog = tiled_gemm_program(cfg, x, w, bias, mult, shift, a_bits=4, w_bits=4)
    res = simulate(prog, cfg)
    expect = rescale_ref(
        gemm_ref(x, w, a_bits=4, w_bits=4),
        bias,
        mult,
        shift,
        zp=0,
        bits=8,
        signed=True,
        mode="single",
    )
    np.testing.assert_array_equal(res.outputs["y"], expect)
    assert res.stats.macs() == M * K * N and res.stats.tokens_left == {}
    fast = simulate(prog, cfg, count_only=True)
    assert fast.stats.latency_cycles == res.stats.latency_cycles
    np.testing.assert_array_equal(fast.start_cycles, res.start_cycles)
    np.testing.assert_array_equal(fast.end_cycles, res.end_cycles)
    # new inputs placed at run time
    x2 = rng.integers(-8, 8, (M, K)).astype(np.int8)
    res2 = simulate(prog, cfg, inputs={"x": x2})
    np.testing.assert_array_equal(
        res2.outputs["y"],
        rescale_ref(
            gemm_ref(x2, w, a_bits=4, w_bits=4),
            bias,
            mult,
            shift,
            zp=0,
            bits=8,
            signed=True,
            mode="single",
        ),
    )


def test_deadlock_names_units_and_channels(cfg):
    b = ProgramBuilder()
    b.alloc(64)
    b.emit(Op.LOAD, buf=Buf.INP, d0=1, d1=1, d2=16, bits=8)  # forgets to signal matmul
    b.emit(Op.GEMM, wait=L | RS, signal=RS, m=1, k=16, n=1, reset=1)
    b.emit(Op.RESCALE, wait=MM, signal=MM, m=1, n=1, bits=8)
    with pytest.raises(DeadlockError) as err:
        simulate(b.build(), cfg, count_only=True)
    msg = str(err.value)
    assert "matmul blocked at insn 1 GEMM" in msg and "load->matmul (0 tokens)" in msg
    assert "rescale->matmul (0 tokens)" in msg
    assert "rescale blocked at insn 2 RESCALE" in msg and "matmul->rescale (0 tokens)" in msg


def test_race_detector(cfg):
    """GEMM reading INP rows a LOAD writes, without a token: RaceError naming both. With the
    token it passes; a second LOAD overwriting the rows before the GEMM signals back races
    (whichever of the two starts first, the second one is reported)."""

    def prog(signal, wait, reload_wait):
        b = ProgramBuilder()
        b.alloc(64)
        b.emit(Op.LOAD, signal=signal, buf=Buf.INP, d0=1, d1=1, d2=16, bits=8)
        b.emit(Op.GEMM, wait=wait, m=1, k=16, n=1, reset=1, signal=reload_wait and L)
        b.emit(Op.LOAD, wait=reload_wait, buf=Buf.INP, d0=1, d1=1, d2=16, bits=8)
        return b.build()

    with pytest.raises(
        RaceError,
        match=r"INP rows \[0, 1\): insn 1 GEMM \(matmul\) reads rows "
        r"written by insn 0 LOAD",
    ):
        simulate(prog(0, 0, MM), cfg, count_only=True)
    with pytest.raises(RaceError, match="insn 1 GEMM .* insn 2 LOAD"):  # both start at 18
        simulate(prog(MM, L, 0), cfg, count_only=True)
    simulate(prog(MM, L, MM), cfg, count_only=True)
    b = ProgramBuilder()  # write after read: the GEMM reads at 18, the reload writes at 36
    b.alloc(64)
    b.emit(Op.LOAD, signal=MM, buf=Buf.INP, d0=1, d1=1, d2=16, bits=8)
    b.emit(Op.GEMM, wait=L, m=1, k=16, n=1, reset=1)
    b.emit(Op.LOAD, buf=Buf.INP, sram_addr=5, d0=1, d1=1, d2=16, bits=8)
    b.emit(Op.LOAD, buf=Buf.INP, d0=1, d1=1, d2=16, bits=8)
    with pytest.raises(RaceError, match="insn 3 LOAD .* overwrites rows being read by insn 1"):
        simulate(b.build(), cfg, count_only=True)
    b = ProgramBuilder()  # partial overlap: LOAD writes rows [0, 4), GEMM reads row 2 only
    b.alloc(64)
    b.emit(Op.LOAD, buf=Buf.INP, d0=4, d1=1, d2=16, s0=16, bits=8)
    b.emit(Op.GEMM, inp_addr=2, m=1, k=16, n=1, reset=1)
    with pytest.raises(RaceError, match=r"INP rows \[2, 3\): insn 1 GEMM"):
        simulate(b.build(), cfg, count_only=True)
    simulate(prog(0, 0, MM), cfg, count_only=True, check_races=False)


def test_capacity_and_range_errors(cfg):
    rows = cfg.buffers.capacity_rows("inp")
    b = ProgramBuilder()
    b.alloc(64)
    b.emit(Op.LOAD, buf=Buf.INP, sram_addr=rows - 1, d0=2, d1=1, d2=16, bits=8)
    with pytest.raises(
        IsaError,
        match=rf"insn 0 LOAD: INP rows \[{rows - 1}, {rows + 1}\) "
        rf"exceed the buffer's {rows} rows",
    ):
        simulate(b.build(), cfg, count_only=True)
    b = ProgramBuilder()
    b.alloc(64)
    b.emit(Op.LOAD, buf=Buf.INP, dram_addr=60, d0=1, d1=1, d2=16, bits=8)
    with pytest.raises(IsaError, match="beyond the 64-element DRAM image"):
        simulate(b.build(), cfg, count_only=True)


@pytest.mark.parametrize("case", ["self", "finish_wait", "after_finish", "svge"])
def test_bad_streams(cfg, case):
    with pytest.raises(IsaError):
        simulate(bad_stream(case, cfg), cfg, count_only=True)


def test_unbalanced_tokens_reported_or_raised(cfg):
    b = ProgramBuilder()
    b.alloc(64)
    b.emit(Op.LOAD, signal=MM, buf=Buf.INP, d0=1, d1=1, d2=16, bits=8)
    prog = b.build()
    assert simulate(prog, cfg, count_only=True).stats.tokens_left == {"load->matmul": 1}
    with pytest.raises(IsaError, match="load->matmul"):
        simulate(prog, cfg, count_only=True, strict_tokens=True)


def test_trace_lines_and_chrome_trace(cfg, tmp_path):
    lines = []
    simulate(_contention_program(), cfg, count_only=True, trace=lines)
    assert len(lines) == 4 and "load: #0 LOAD" in lines[0] and lines[-1].split()[0] == "50"
    simulate(_contention_program(), cfg, count_only=True, trace=str(tmp_path / "t.json"))
    events = json.loads((tmp_path / "t.json").read_text())["traceEvents"]
    store = next(e for e in events if e.get("name") == "STORE")
    assert (store["ts"], store["dur"]) == (0.0, 50 / 500)  # 500 MHz: 1 cycle = 0.002 us


def test_program_save_load_roundtrip(tmp_path, cfg):
    prog, *_ = _chain_program(np.random.default_rng(2))
    prog.tags[0] = "layer0"
    path = tmp_path / "p.npz"
    prog.save(path)
    back = Program.load(path)
    assert back.insns == prog.insns and back.tags == {0: "layer0"}
    np.testing.assert_array_equal(back.dram, prog.dram)
    assert back.inputs == prog.inputs and back.outputs == prog.outputs
    np.testing.assert_array_equal(
        simulate(back, cfg).outputs["y"], simulate(prog, cfg).outputs["y"]
    )


def test_program_load_errors(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ModelFormatError, match="bad.npz"):
        Program.load(bad)
    with pytest.raises(ModelFormatError, match="no such file"):
        Program.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "partial.npz", dram=np.zeros(3, np.int32))
    with pytest.raises(ModelFormatError, match="missing array.*meta.*words"):
        Program.load(tmp_path / "partial.npz")
    np.savez(
        tmp_path / "words.npz",
        dram=np.zeros(3, np.int32),
        meta=np.frombuffer(b'{"format_version": 1}', np.uint8),
        words=np.zeros(16, np.uint8),
    )
    with pytest.raises(ModelFormatError, match="words.npz: bad instruction stream"):
        Program.load(tmp_path / "words.npz")


def test_progress_bar_same_timing(cfg, capsys):
    prog = _contention_program()
    assert simulate(prog, cfg, count_only=True, progress=True).stats.latency_cycles == 50
    assert "simulate" in capsys.readouterr().err


def test_extra_unit_registers_by_class(cfg):
    """A unit class for the sparse engine plugs in through the Unit -> class mapping: here a
    stand-in SVGE that takes 7 cycles per SVG_MAP, waiting on a LOAD (18 cycles) -> 25."""
    from accelsim.sim import UNITS
    from accelsim.units.base import UnitBase

    class FakeSvge(UnitBase):
        unit = Unit.SVGE

        def cycles(self, insn):
            return 7

        def profile(self, insn):
            return 7, (), ()

        def run(self, insn, mem):
            pass

    b = ProgramBuilder()
    b.alloc(64)
    b.emit(Op.LOAD, signal=1 << Unit.SVGE, buf=Buf.COORD, d0=8, d1=1, d2=16, bits=8)
    b.emit(Op.SVG_MAP, wait=L)
    res = simulate(b.build(), cfg, units={**UNITS, Unit.SVGE: FakeSvge})
    assert res.stats.latency_cycles == 25
    assert res.stats.total("busy_cycles", unit="svge") == 7
