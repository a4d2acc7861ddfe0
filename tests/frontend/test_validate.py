"""The final stream check rejects every instruction that breaks the ISA table or the token
rules, naming the first one in program order, and accepts a lowered network."""

import numpy as np
import pytest

from accelsim.config import load_config
from accelsim.errors import IsaError
from accelsim.frontend.lower import lower
from accelsim.frontend.validate import validate_stream
from accelsim.insn_table import rows_of
from accelsim.isa import Insn, Op, Unit
from workloads.dense import random_cnn

LOAD, MM = (1 << int(u) for u in (Unit.LOAD, Unit.MATMUL))


def _stream():
    """load -> gemm (one load->matmul token), then FINISH."""
    return [
        Insn(Op.LOAD, d0=1, d1=1, d2=8, bits=8, signal=MM, tag=1),
        Insn(Op.GEMM, m=1, k=8, n=1, a_bits=8, w_bits=8, wait=LOAD, tag=1),
        Insn(Op.FINISH),
    ]


def test_a_balanced_stream_and_a_lowered_network_pass(edge):
    validate_stream(_stream(), edge)
    cfg = load_config("edge", ["buffers.inp_bytes=2048", "matmul.cols=4"])
    validate_stream(lower(random_cnn(np.random.default_rng(0)), cfg).insns, cfg)


@pytest.mark.parametrize(
    ("where", "field", "value", "message"),
    [
        (1, "m", 0, r"instruction 1 \(GEMM, tag 1\): GEMM.m = 0 is out of range \[1, 65535\]"),
        (1, "k", 1 << 16, r"GEMM.k = 65536 is out of range \[1, 65535\]"),
        (0, "dram_addr", -1, r"instruction 0 \(LOAD, tag 1\): LOAD.dram_addr = -1 is out of"),
        (0, "pad_value", 1 << 15, r"LOAD.pad_value = 32768 is out of range \[-32768, 32767\]"),
        (0, "bits", 0, r"LOAD.bits = 0 is out of range"),
        (1, "a_mode", 3, r"GEMM.a_mode = 3 is out of range \[0, 2\]"),
    ],
)
def test_a_field_out_of_range_is_named(edge, where, field, value, message):
    insns = _stream()
    insns[where].f[field] = value
    with pytest.raises(IsaError, match=message):
        validate_stream(insns, edge)


def test_the_first_bad_instruction_is_named(edge):
    """Two bad instructions of different opcodes: the earlier one is reported."""
    insns = _stream()
    insns[1].f["n"] = 0
    insns.insert(1, Insn(Op.STORE, d0=1, d1=1, d2=8, bits=8, tag=2))
    insns[1].f["d0"] = 0
    with pytest.raises(IsaError, match=r"instruction 1 \(STORE, tag 2\): STORE.d0 = 0"):
        validate_stream(insns, edge)


@pytest.mark.parametrize(
    ("attr", "value", "message"),
    [
        ("tag", 2048, r"tag = 2048 is out of range \[0, 2047\]"),
        ("wait", 1 << 7, r"GEMM.wait = 128 is out of range \[0, 127\]"),
        ("signal", -1, r"GEMM.signal = -1 is out of range"),
    ],
)
def test_header_out_of_range_is_named(edge, attr, value, message):
    insns = _stream()
    setattr(insns[1], attr, value)
    with pytest.raises(IsaError, match=message):
        validate_stream(insns, edge)


def test_a_field_the_table_does_not_have_does_not_survive(edge):
    insns = _stream()
    insns[1].f["bogus"] = 1
    with pytest.raises(IsaError, match=r"instruction 1 \(GEMM, tag 1\): does not survive"):
        validate_stream(insns, edge)


def test_token_rules(edge):
    insns = _stream()
    insns[2].wait = LOAD
    with pytest.raises(IsaError, match=r"instruction 2 \(FINISH, tag 0\): FINISH carries no"):
        validate_stream(insns, edge)
    insns = _stream()
    insns[1].signal = MM
    with pytest.raises(IsaError, match="waits on or signals its own unit matmul"):
        validate_stream(insns, edge)
    insns = _stream()
    insns[1].wait = 0
    with pytest.raises(IsaError, match="token FIFO load -> matmul: 1 pushed but 0 popped"):
        validate_stream(insns, edge)
    with pytest.raises(IsaError, match="must end with FINISH"):
        validate_stream(_stream()[:2], edge)
    with pytest.raises(IsaError, match="must end with FINISH"):
        validate_stream([], edge)


def test_rules_of_different_kinds_name_the_earliest_instruction(edge):
    """A GEMM signalling its own unit comes before a LOAD with a bad field: the GEMM is named
    even though the field ranges are checked for all instructions of an opcode at once."""
    insns = _stream()
    insns.insert(2, Insn(Op.LOAD, d0=1, d1=1, d2=8, bits=8, tag=3))
    insns[2].f["d1"] = 0
    insns[1].signal = MM
    with pytest.raises(IsaError, match=r"instruction 1 \(GEMM, tag 1\): waits on or signals"):
        validate_stream(insns, edge)
    insns[1].signal = 0
    with pytest.raises(IsaError, match=r"instruction 2 \(LOAD, tag 3\): LOAD.d1 = 0"):
        validate_stream(insns, edge)


def test_a_value_that_is_not_an_integer_is_rejected(edge):
    insns = _stream()
    insns[1].f["k"] = 2.5
    with pytest.raises(IsaError, match=r"instruction 1 \(GEMM, tag 1\)"):
        validate_stream(insns, edge)


def test_an_odd_value_in_a_later_instruction_of_an_opcode_names_that_one(edge):
    """Two GEMMs; only the second holds a value that is not an integer: it is named."""
    insns = _stream()
    insns.insert(2, Insn(Op.GEMM, m=1, k=8, n=1, a_bits=8, w_bits=8, tag=4))
    insns[2].f["n"] = 1.5
    with pytest.raises(IsaError, match=r"instruction 2 \(GEMM, tag 4\)"):
        validate_stream(insns, edge)


def _message(stream, cfg) -> str:
    with pytest.raises(IsaError) as err:
        validate_stream(stream, cfg)
    return str(err.value)


@pytest.mark.parametrize(
    "spoil",
    [
        lambda s: s[1].f.__setitem__("m", 0),
        lambda s: s[0].f.__setitem__("dram_addr", -1),
        lambda s: setattr(s[1], "tag", 1 << 30),
        lambda s: setattr(s[1], "wait", 0),
        lambda s: setattr(s[1], "signal", MM),
        lambda s: setattr(s[2], "wait", LOAD),
        lambda s: s.pop(),
    ],
)
def test_the_table_form_is_named_as_the_list(edge, spoil):
    """A lowered stream is checked as an `accelsim.insn_table` table: each fault gives the
    message the list of the same instructions gives."""
    insns = _stream()
    spoil(insns)
    assert _message(rows_of(insns), edge) == _message(insns, edge)


def test_a_code_that_is_no_opcode_is_named_in_a_table(edge):
    table = rows_of(_stream())
    table[1, 0] = 31
    with pytest.raises(IsaError, match="instruction 1"):
        validate_stream(table, edge)
