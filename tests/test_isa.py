"""ISA table, binary encode/decode, assembler/disassembler round trips and fuzzing."""

import importlib
import random

import pytest

from accelsim import asm, docs, isa
from accelsim.config import load_config
from accelsim.docs import resolve
from accelsim.errors import IsaError
from accelsim.isa import TABLE, Insn, Op
from accelsim.sim import UNITS


def _random_insn(rng: random.Random, op: Op) -> Insn:
    fields = {f.name: rng.randint(f.min, f.max) for f in TABLE[op].fields}
    return Insn(
        op, wait=rng.randint(0, 127), signal=rng.randint(0, 127), tag=rng.randint(0, 2047), **fields
    )


def test_every_opcode_fits_its_words():
    for spec in TABLE.values():
        assert isa.HEADER_BITS + sum(f.bits for f in spec.fields) <= spec.words * isa.WORD_BITS


@pytest.mark.parametrize("op", list(Op))
def test_encode_decode_round_trip(op):
    rng = random.Random(int(op))
    for _ in range(50):
        insn = _random_insn(rng, op)
        words = isa.encode(insn)
        assert len(words) == TABLE[op].words
        assert all(0 <= w < 2**128 for w in words)
        back, n = isa.decode(words)
        assert n == len(words) and back == insn


def test_program_binary_and_text_round_trip():
    rng = random.Random(7)
    prog = [_random_insn(rng, rng.choice(list(Op))) for _ in range(200)]
    data = isa.encode_program(prog)
    assert isa.decode_program(data) == prog
    text = asm.disasm(prog)
    assert asm.assemble(text) == prog
    assert asm.disasm(asm.assemble(text)) == text


def test_fuzz_random_words_decode_or_raise_isa_error():
    """Random 128-bit words either decode to an instruction that re-encodes to the same words,
    or raise IsaError -- never another exception."""
    rng = random.Random(1)
    decoded = rejected = 0
    for _ in range(3000):
        words = [rng.getrandbits(128) for _ in range(2)]
        if rng.random() < 0.5:  # make valid opcodes and header bits common
            words[0] = (words[0] & ~0xFFFF_FFFF) | rng.randint(1, 9) | rng.randint(0, 127) << 5
        try:
            insn, n = isa.decode(words)
        except IsaError:
            rejected += 1
            continue
        decoded += 1
        assert isa.encode(insn) == words[:n]
    assert rejected > 0
    # FINISH only needs its unused bits clear; build some valid words to make sure decode works
    assert isa.decode([int(Op.FINISH)])[0].op is Op.FINISH


@pytest.mark.parametrize(
    "words, message",
    [
        ([0], "bad opcode 0"),
        ([31], "bad opcode 31"),
        ([int(Op.GEMM)], "needs 2 words"),
        ([int(Op.FINISH) | 1 << 100], "unused bits"),
        ([int(Op.FINISH) | 1 << (5 + 7)], "unit bits"),
    ],
)
def test_malformed_words_name_the_problem(words, message):
    with pytest.raises(IsaError, match=message):
        isa.decode(words)


def test_field_out_of_range_is_rejected_on_decode():
    insn = Insn(Op.GEMM, m=4, k=4, n=4, a_bits=4, w_bits=4)
    words = isa.encode(insn)
    # a_bits sits after 3 addresses (72 bits) and m, k, n (48 bits): set it to 0 (range 1..8)
    pos = isa.HEADER_BITS + 72 + 48
    value = (words[0] | words[1] << 128) & ~(0xF << pos)
    words = [value & (2**128 - 1), value >> 128]
    with pytest.raises(IsaError, match=r"GEMM.a_bits = 0 is out of range \[1, 8\]"):
        isa.decode(words)


def test_encode_rejects_out_of_range_fields():
    with pytest.raises(IsaError, match="LOAD.bits = 33"):
        isa.encode(Insn(Op.LOAD, bits=33))
    with pytest.raises(IsaError, match="unknown field"):
        Insn(Op.LOAD, bogus=1)


def test_assembler_errors_name_the_line():
    with pytest.raises(IsaError, match="line 2: unknown opcode 'NOPE'"):
        asm.assemble("FINISH\nNOPE x=1\n")
    with pytest.raises(IsaError, match="line 1: GEMM has no field 'q'"):
        asm.assemble("GEMM q=1")
    with pytest.raises(IsaError, match="line 1: unknown unit 'dsp'"):
        asm.assemble("FINISH wait=dsp")


def test_truncated_binary_program():
    with pytest.raises(IsaError, match="not a whole number"):
        isa.decode_program(b"\x01" * 17)


def test_table_markdown_lists_every_opcode():
    md = docs.table_markdown()
    for op in Op:
        assert f"| {op.name} |" in md
    gemm = next(line for line in docs.table_markdown(resolve).splitlines() if "| GEMM |" in line)
    assert "`units.matmul:matmul_cycles`: `cycles = ceil(m/R) * ceil(n/C)" in gemm
    assert "`kernels.gemm`: `gemm`, `im2col` (each with its NumPy `_ref` twin)" in gemm


def test_every_opcode_names_its_cost_function_and_datapath():
    """Every opcode but FINISH names a callable cost function whose docstring gives its
    formula, and callable datapath functions; compiled kernels have a `_ref` twin."""
    for op, spec in TABLE.items():
        if op == Op.FINISH:
            assert spec.cost == "" and spec.datapath == ()
            continue
        assert spec.cost and spec.datapath, op
        cost = resolve(spec.cost)
        assert callable(cost) and docs.cost_formula(cost.__doc__).startswith("cycles = "), op
        for path in spec.datapath:
            assert callable(resolve(path)), path
            if path.startswith("accelsim.kernels."):
                assert callable(resolve(path + "_ref")), path


@pytest.mark.parametrize("op", [op for op in Op if op != Op.FINISH])
def test_units_cost_instructions_with_the_named_function(op, monkeypatch):
    """A unit's cycles() is the cost function the table names (replaced here by a marker)."""
    module, _, name = TABLE[op].cost.partition(":")
    monkeypatch.setattr(importlib.import_module(module), name, lambda *args: 12345)
    unit = UNITS[TABLE[op].unit](None, load_config("edge"), None)
    assert unit.cycles(Insn(op)) == 12345


def test_field_max_reads_the_table():
    """Widths from the table: 16-bit DMA dims hold 2**16 - 1, SVG n_pairs (21 bits) 2**21 - 1,
    4-bit LOAD padding 15; bits of a LOAD is capped at 32 below its 6-bit width."""
    assert isa.field_max(Op.LOAD, "d2") == 2**16 - 1
    assert isa.field_max(Op.SVG_MAP, "n_pairs") == 2**21 - 1
    assert isa.field_max(Op.LOAD, "pad_left") == 15
    assert isa.field_max(Op.LOAD, "bits") == 32
    assert isa.field_max(Op.RESCALE, "frac") == 15  # BIAS_FRAC_MAX fills its 4 bits
    with pytest.raises(IsaError, match=r"RESCALE.frac = 16 is out of range \[0, 15\]"):
        isa.encode(Insn(Op.RESCALE, m=1, n=1, bits=8, frac=16))
    with pytest.raises(IsaError, match="GEMM has no field 'd0'"):
        isa.field_max(Op.GEMM, "d0")
