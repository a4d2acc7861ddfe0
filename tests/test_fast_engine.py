"""The fast timing engine on hand-written programs: cycles worked out by hand, and the same
results, errors and messages as the event engine (tokens, contention, deadlock, races)."""

import json

import numpy as np
import pytest

from accelsim.cli import main
from accelsim.config import load_config
from accelsim.errors import AccelsimError, DeadlockError, IsaError, RaceError
from accelsim.isa import Buf, Op, Unit
from accelsim.program import ProgramBuilder
from accelsim.sim import simulate
from tests.helpers import handworked_config
from tests.programs import tiled_gemm_program
from tests.test_sim import _chain_program, _contention_program

L, S, Q, MM, RS, SV = (
    1 << u for u in (Unit.LOAD, Unit.STORE, Unit.QUANTIZER, Unit.MATMUL, Unit.RESCALE, Unit.SVGE)
)
ENGINES = ("event", "fast")


@pytest.fixture
def cfg():
    """The machine of tests/test_sim.py's hand-worked cycles."""
    return handworked_config()


def _same(a, b) -> None:
    """Two SimResults agree on every instruction's cycles, every counter and every output."""
    np.testing.assert_array_equal(a.start_cycles, b.start_cycles)
    np.testing.assert_array_equal(a.end_cycles, b.end_cycles)
    assert a.stats.counters == b.stats.counters
    assert a.stats.mac_counts == b.stats.mac_counts
    assert a.stats.layer_span == b.stats.layer_span
    assert a.stats.tokens_left == b.stats.tokens_left
    assert a.stats.latency_cycles == b.stats.latency_cycles
    assert a.outputs.keys() == b.outputs.keys()
    for name in a.outputs:
        np.testing.assert_array_equal(a.outputs[name], b.outputs[name])


def _outcome(program, cfg, engine, **kw):
    """The result, or the (type, message) of the error, of one run."""
    try:
        return simulate(program, cfg, engine=engine, **kw)
    except AccelsimError as exc:
        return type(exc), str(exc)


def _agree(program, cfg, **kw):
    a, b = (_outcome(program, cfg, e, **kw) for e in ENGINES)
    if isinstance(a, tuple) or isinstance(b, tuple):
        assert a == b
    else:
        _same(a, b)
    return b


@pytest.mark.parametrize("engine", ENGINES)
def test_dependencies_against_program_order(cfg, engine):
    """STORE (waits on matmul), GEMM (waits on load, signals store), LOAD (signals matmul), in
    that program order: the queues run in token order. LOAD 8 rows of 16 B: 10 + 8 = 18,
    [0, 18); GEMM 4x4 OS 8x16x4: 2*1*(16 + 6) = 44, [18, 62); STORE 8 rows of 4 B: 10 + 8,
    [62, 80). Token stalls: GEMM 18, STORE 62."""
    b = ProgramBuilder()
    b.alloc(256)
    b.emit(Op.STORE, wait=MM, buf=Buf.OUT, dram_addr=128, d0=8, d1=1, d2=4, s0=4, bits=8)
    b.emit(Op.GEMM, wait=L, signal=S, m=8, k=16, n=4, a_bits=8, w_bits=8, reset=1)
    b.emit(Op.LOAD, signal=MM, buf=Buf.INP, d0=8, d1=1, d2=16, s0=16, bits=8)
    res = simulate(b.build(), cfg, count_only=True, engine=engine)
    np.testing.assert_array_equal(res.start_cycles, [62, 18, 0])
    np.testing.assert_array_equal(res.end_cycles, [80, 62, 18])
    assert res.stats.total("stall_token_cycles", unit="matmul") == 18
    assert res.stats.total("stall_token_cycles", unit="store") == 62


@pytest.mark.parametrize("engine", ENGINES)
def test_bus_tie_own_timeout_before_token_wake(cfg, engine):
    """LOAD and STORE both issue at cycle 30; the STORE gets the bus first although the load
    engine comes first in unit order. STORE 20 rows x 64 B [0, 30) and GEMM 4x4x24 (4x4 OS:
    24 + 6 = 30) [0, 30) start at 0. At 30 the STORE resumes from its own timeout (an event
    made at cycle 0), the LOAD from a wake-up the GEMM's token makes at cycle 30, so SimPy
    runs the STORE first: STORE 4 rows x 64 B ready at 40, bus [40, 44); LOAD of the same size
    ready at 40, bus [44, 48), ends at 48 with a 4-cycle DRAM stall."""
    b = ProgramBuilder()
    b.alloc(4096)
    b.emit(Op.STORE, buf=Buf.OUT, dram_addr=2048, d0=20, d1=1, d2=64, s0=64, bits=8)
    b.emit(Op.GEMM, signal=L, m=4, k=24, n=4, a_bits=8, w_bits=8, reset=1)
    b.emit(Op.LOAD, wait=MM, buf=Buf.INP, d0=4, d1=1, d2=64, s0=64, bits=8)
    b.emit(Op.STORE, buf=Buf.OUT, dram_addr=2048, d0=4, d1=1, d2=64, s0=64, bits=8)
    res = simulate(b.build(), cfg, count_only=True, engine=engine)
    np.testing.assert_array_equal(res.start_cycles, [0, 0, 30, 30])
    np.testing.assert_array_equal(res.end_cycles, [30, 30, 48, 44])
    assert res.stats.total("stall_dram_cycles", unit="load") == 4
    assert res.stats.total("stall_dram_cycles", unit="store") == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_bus_tie_ordered_by_the_waking_events(cfg, engine):
    """Both DMA engines are woken at cycle 30 by tokens: the STORE by a QUANT (4 + 416/16 =
    30 cycles, [0, 30), its end event made at cycle 0), the LOAD by the second GEMM (4x4x6:
    12 cycles [0, 12), then 4x4x12: 18 cycles [12, 30), its end event made at cycle 12). SimPy
    processes the QUANT's end first, so the STORE's wake-up comes first: STORE bus [40, 44),
    LOAD bus [44, 48) with a 4-cycle DRAM stall."""
    b = ProgramBuilder()
    b.alloc(4096)
    b.emit(Op.GEMM, m=4, k=6, n=4, a_bits=8, w_bits=8, reset=1)
    b.emit(Op.GEMM, signal=L, m=4, k=12, n=4, a_bits=8, w_bits=8, reset=1)
    b.emit(
        Op.QUANT,
        signal=S,
        n=416,
        in_bits=32,
        bits=8,
        src_buf=Buf.ACC,
        src_addr=1000,
        dst_buf=Buf.OUT,
    )
    b.emit(Op.LOAD, wait=MM, buf=Buf.INP, d0=4, d1=1, d2=64, s0=64, bits=8)
    b.emit(Op.STORE, wait=Q, buf=Buf.OUT, dram_addr=2048, d0=4, d1=1, d2=64, s0=64, bits=8)
    res = simulate(b.build(), cfg, count_only=True, engine=engine)
    np.testing.assert_array_equal(res.start_cycles, [0, 12, 0, 30, 30])
    np.testing.assert_array_equal(res.end_cycles, [12, 30, 30, 48, 44])
    assert res.stats.total("stall_dram_cycles", unit="load") == 4


@pytest.mark.parametrize("engine", ENGINES)
def test_svge_engines_issue_in_order_and_retire_in_order(cfg, engine):
    """Two SVGE engines, 4x4 fixed OS array each. SVG_CONV A on engine 0: 8 pairs, 16 -> 4
    channels: ceil(8/4)*ceil(4/4)*(16 + 6) = 44, [0, 44). B and C on engine 1: 4 pairs,
    4 -> 4: 1*1*(4 + 6) = 10, [0, 10) and [10, 20); both retire with A at 44, so their tokens
    reach the STOREs (1 row x 64 B: 10 + 1 = 11) at 44: [44, 55) and [55, 66)."""
    b = ProgramBuilder()
    b.alloc(4096)
    conv = dict(n_in=8, n_out=8, n_pairs=8, a_bits=8, w_bits=8, reset=1)
    b.emit(Op.SVG_CONV, engine=0, pairs=8, cin=16, cout=4, **conv)
    b.emit(Op.SVG_CONV, signal=S, engine=1, pairs=4, cin=4, cout=4, **conv)
    b.emit(Op.SVG_CONV, signal=S, engine=1, pairs=4, cin=4, cout=4, **conv)
    for _ in range(2):
        b.emit(Op.STORE, wait=SV, buf=Buf.OUT, dram_addr=2048, d0=1, d1=1, d2=64, bits=8)
    res = simulate(b.build(), cfg, count_only=True, engine=engine)
    np.testing.assert_array_equal(res.start_cycles, [0, 0, 10, 44, 55])
    np.testing.assert_array_equal(res.end_cycles, [44, 10, 20, 55, 66])
    assert res.stats.total("stall_token_cycles", unit="store") == 44


def test_hand_written_programs_agree(cfg):
    """The chain, DMA contention (also with one outstanding transfer) and the int4 tiled GEMM
    with its datapath (outputs included) give the same results on both engines."""
    prog, *_ = _chain_program(np.random.default_rng(0))
    _agree(prog, cfg)
    _agree(prog, cfg, count_only=True)
    assert _agree(_contention_program(), cfg, count_only=True).stats.latency_cycles == 50
    one = load_config(
        "edge", ["dram.latency_cycles=10", "dram.bw_bytes_per_cycle=64.0", "dram.max_outstanding=1"]
    )
    assert _agree(_contention_program(), one, count_only=True).stats.latency_cycles == 60
    edge = load_config("edge")
    rng = np.random.default_rng(1)
    x, w = rng.integers(-8, 8, (40, 70)), rng.integers(-8, 8, (70, 36))
    tiled = tiled_gemm_program(edge, x, w, 7, 1 << 28, 36, a_bits=4, w_bits=4)
    assert _agree(tiled, edge).outputs["y"].shape == (40, 36)


def test_deadlock_message_names_the_same_units_and_counts(cfg):
    """The GEMM pops its load token (pushed at 18), then blocks on rescale->matmul; the RESCALE
    blocks on matmul->rescale. Both engines raise the same message, counts after the pop."""
    b = ProgramBuilder()
    b.alloc(64)
    b.emit(Op.LOAD, signal=MM, buf=Buf.INP, d0=1, d1=1, d2=16, bits=8)
    b.emit(Op.GEMM, wait=L | RS, signal=RS, m=1, k=16, n=1, reset=1)
    b.emit(Op.RESCALE, wait=MM, signal=MM, m=1, n=1, bits=8)
    err = _agree(b.build(), cfg, count_only=True)
    assert err[0] is DeadlockError
    assert "matmul blocked at insn 1 GEMM" in err[1] and "load->matmul (0 tokens)" in err[1]
    assert "rescale blocked at insn 2 RESCALE" in err[1]


def test_tokens_left_and_strict_tokens(cfg):
    b = ProgramBuilder()
    b.alloc(64)
    b.emit(Op.LOAD, signal=MM | RS, buf=Buf.INP, d0=1, d1=1, d2=16, bits=8)
    b.emit(Op.GEMM, wait=L, m=1, k=16, n=1, reset=1)
    prog = b.build()
    assert _agree(prog, cfg, count_only=True).stats.tokens_left == {"load->rescale": 1}
    assert _agree(prog, cfg, count_only=True, strict_tokens=True)[0] is IsaError


def test_races_found_in_the_event_engines_order(cfg):
    """LOAD 1 row x 16 B [0, 11) signals the GEMM (4x4 OS, 1x16x1: 16 + 6 = 22, [11, 33));
    the reloading LOAD of the same rows also starts at 11. The LOAD resumes from its own
    timeout, the GEMM from the token's wake-up, so the LOAD's write is recorded first and the
    GEMM's read is the one reported, by both engines. A write after an unordered read (the
    third LOAD, [22, 33), over rows the GEMM reads) is reported the same way."""
    b = ProgramBuilder()
    b.alloc(64)
    b.emit(Op.LOAD, signal=MM, buf=Buf.INP, d0=1, d1=1, d2=16, bits=8)
    b.emit(Op.GEMM, wait=L, m=1, k=16, n=1, reset=1)
    b.emit(Op.LOAD, buf=Buf.INP, d0=1, d1=1, d2=16, bits=8)
    prog = b.build()
    err = _agree(prog, cfg, count_only=True)
    assert err[0] is RaceError and "insn 1 GEMM (matmul) reads rows written by insn 2" in err[1]
    assert _agree(prog, cfg, count_only=True, check_races=False).stats.latency_cycles == 33
    b = ProgramBuilder()
    b.alloc(64)
    b.emit(Op.LOAD, signal=MM, buf=Buf.INP, d0=1, d1=1, d2=16, bits=8)
    b.emit(Op.GEMM, wait=L, m=1, k=16, n=1, reset=1)
    b.emit(Op.LOAD, buf=Buf.INP, sram_addr=5, d0=1, d1=1, d2=16, bits=8)
    b.emit(Op.LOAD, buf=Buf.INP, d0=1, d1=1, d2=16, bits=8)
    err = _agree(b.build(), cfg, count_only=True)
    assert (
        err[0] is RaceError and "insn 3 LOAD (load) overwrites rows being read by insn 1" in err[1]
    )


def test_engine_argument_errors(cfg):
    prog = _contention_program()
    with pytest.raises(AccelsimError, match="unknown engine 'simpy'"):
        simulate(prog, cfg, engine="simpy")
    with pytest.raises(AccelsimError, match="trace lines need engine='event'"):
        simulate(prog, cfg, engine="fast", trace=[])


def test_chrome_trace_from_the_fast_engine(cfg, tmp_path):
    simulate(_contention_program(), cfg, count_only=True, engine="fast", trace=tmp_path / "t.json")
    events = json.loads((tmp_path / "t.json").read_text())["traceEvents"]
    store = next(e for e in events if e.get("name") == "STORE")
    assert (store["ts"], store["dur"]) == (0.0, 50 / 500)  # 500 MHz: ends at 50 (contention)


def test_cli_engine_fast_writes_the_same_report(capsys, tmp_path):
    docs = []
    for engine in ENGINES:
        out = tmp_path / f"{engine}.json"
        assert (
            main(["run", "small_cnn", "--timing-only", "--engine", engine, "--json", str(out)]) == 0
        )
        docs.append(json.loads(out.read_text()))
    capsys.readouterr()
    assert docs[0] == docs[1] and docs[0]["latency_cycles"] > 0


def test_dma_transfers_are_served_in_issue_order_across_units(cfg):
    """Found by the graph fuzzer (a sparse case of seed 0): the fast engine gave the DRAM bus to
    a LOAD whose token was already pushed before a STORE that issues earlier but whose token
    comes from a unit the worklist had not yet revisited. RESCALE R1 (4 + 1 + 1 = 6 cycles,
    [0, 6)) signals the GEMM, RESCALE R2 (4 + 64 + 4 = 72, [6, 78)) the LOAD; the GEMM (4x4
    OS, 1*1*(4 + 6) = 10, [6, 16)) signals the STORE. STORE 64 rows of 64 B issues at 16: bus
    [26, 90). LOAD issues at 78, ready at 88, waits 2 cycles for the bus: [90, 154)."""
    b = ProgramBuilder()
    b.alloc(4096)
    b.emit(Op.RESCALE, signal=MM, m=1, n=1, bits=8)
    b.emit(Op.RESCALE, signal=L, m=64, n=16, bits=8)
    b.emit(Op.GEMM, wait=RS, signal=S, m=4, k=4, n=4, a_bits=8, w_bits=8, reset=1)
    b.emit(Op.STORE, wait=MM, buf=Buf.OUT, dram_addr=0, d0=64, d1=1, d2=64, s0=64, bits=8)
    b.emit(Op.LOAD, wait=RS, buf=Buf.INP, dram_addr=0, d0=64, d1=1, d2=64, s0=64, bits=8)
    res = _agree(b.build(), cfg, count_only=True, check_races=False)
    assert (res.start_cycles[3], res.end_cycles[3]) == (16, 90)
    assert (res.start_cycles[4], res.end_cycles[4]) == (78, 154)
    assert res.stats.latency_cycles == 154
