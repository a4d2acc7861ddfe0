"""The two planning passes (`accelsim.plan`) agree: `plan_table`, which the fast engine's
count-only runs use, gives the rows, tags, queue lengths and counters (in the same order) of
`plan_objects` on lowered dense and sparse programs, and hands every faulty stream back, so
that a run raises the same error, naming the same instruction, on either path."""

import numpy as np
import pytest

from accelsim.cli.commands import make_input, resolve_model
from accelsim.config import load_config
from accelsim.errors import AccelsimError, DeadlockError
from accelsim.isa import Buf, Op, Unit
from accelsim.plan import plan_objects, plan_table
from accelsim.program import ProgramBuilder
from accelsim.runner import lower_for_input
from accelsim.sim import UNITS, _build, simulate
from accelsim.stats import Recorder
from tests.programs import BAD_STREAMS, bad_stream

L, MM, RS = (1 << int(u) for u in (Unit.LOAD, Unit.MATMUL, Unit.RESCALE))


def _plans(program, cfg):
    out = []
    for plan in (plan_table, plan_objects):
        units, chans = _build(None, cfg, UNITS, Recorder(program.n_insns))
        out.append(plan(program, cfg, units, chans))
    return out


@pytest.mark.parametrize(
    "name, size", [("small_cnn", None), ("mlp", None), ("resnet18", 32), ("sparse_tiny", None)]
)
@pytest.mark.parametrize("preset", ["edge", "server", "scalesim32"])
def test_the_table_plan_equals_the_object_plan(name, size, preset):
    graph = resolve_model(name, (4, 4), 0, size)
    cfg = load_config(preset)
    program = lower_for_input(graph, cfg, make_input(graph, None, 0))
    assert program.table is not None  # lowered as a table
    table, objects = _plans(program, cfg)
    assert table is not None and table.entries is None
    np.testing.assert_array_equal(table.rows, objects.rows)
    np.testing.assert_array_equal(table.tags, objects.tags)
    np.testing.assert_array_equal(table.queue_len, objects.queue_len)
    assert list(table.counters.items()) == list(objects.counters.items())
    assert table.queue_len.sum() == program.n_insns - 1  # all but FINISH


def _outcome(program, cfg, **kw):
    try:
        return simulate(program, cfg, count_only=True, **kw).stats.latency_cycles
    except AccelsimError as exc:
        return type(exc), str(exc)


@pytest.mark.parametrize("case", BAD_STREAMS)
def test_a_faulty_stream_is_handed_to_the_object_plan(case):
    """plan_table returns None; the fast count-only run raises what the event engine raises."""
    cfg = load_config("edge")
    program = bad_stream(case, cfg)
    units, chans = _build(None, cfg, UNITS, Recorder(program.n_insns))
    assert plan_table(program, cfg, units, chans) is None
    fast = _outcome(program, cfg, engine="fast", check_races=False)
    assert isinstance(fast, tuple) and fast == _outcome(program, cfg)


def test_a_deadlock_names_the_same_instructions_on_the_table_plan():
    """The GEMM waits on rescale->matmul and the RESCALE on matmul->rescale: neither ever
    gets a token. The fast count-only run (table plan) names the blocked instructions from
    the table as the event engine names them from its queues."""
    b = ProgramBuilder()
    b.alloc(64)
    b.emit(Op.LOAD, signal=MM, buf=Buf.INP, d0=1, d1=1, d2=16, bits=8)
    b.emit(Op.GEMM, wait=L | RS, signal=RS, m=1, k=16, n=1, reset=1)
    b.emit(Op.RESCALE, wait=MM, signal=MM, m=1, n=1, bits=8)
    program = b.build()
    cfg = load_config("edge")
    units, chans = _build(None, cfg, UNITS, Recorder(program.n_insns))
    assert plan_table(program, cfg, units, chans) is not None
    fast = _outcome(program, cfg, engine="fast", check_races=False)
    assert fast[0] is DeadlockError and fast == _outcome(program, cfg, check_races=False)
    assert "matmul blocked at insn 1 GEMM" in fast[1]
