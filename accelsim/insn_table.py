"""An instruction stream as one integer table: the columnar form of a list of `Insn`.

Row i of an int64 [n, COLS] table is instruction i: opcode, wait mask, signal mask, tag, then
the values of its opcode's fields in `isa.TABLE` order (columns past the opcode's last field
are zero). The front end builds lowered streams in this form (the compiled GEMM loop writes
rows directly), tokens are set and the stream is checked on its columns, and the simulator's
planning pass for the fast engine reads them without an object per instruction. `insns`
turns a table back into `Insn` objects for everything that works instruction by instruction
(the event engine, the datapaths, the assembler, traces).
"""

from __future__ import annotations

from operator import itemgetter

import numpy as np

from accelsim.errors import IsaError
from accelsim.isa import TABLE, Insn, Op

OP, WAIT, SIGNAL, TAG = 0, 1, 2, 3  # header columns
FIRST_FIELD = 4
COLS = FIRST_FIELD + max(len(spec.fields) for spec in TABLE.values())
NAMES = {op: tuple(f.name for f in spec.fields) for op, spec in TABLE.items()}
# opcode -> field name -> column
COLUMN = {op: {n: FIRST_FIELD + i for i, n in enumerate(names)} for op, names in NAMES.items()}
# opcode -> callable: an instruction's field dict -> its values in table order
_GET = {
    op: (itemgetter(*names) if len(names) > 1 else lambda f, n=names: tuple(f[k] for k in n))
    for op, names in NAMES.items()
}


def rows_of(insns: list) -> np.ndarray:
    """The [len(insns), COLS] int64 table of `insns`. Raises `IsaError` if a header or field
    value is not an integer that fits int64, or an instruction lacks one of its table's fields
    (`accelsim.frontend.validate.validate_stream` then names the instruction and the field)."""
    pad = [(0,) * k for k in range(COLS + 1)]
    try:
        rows = [
            (insn.op, insn.wait, insn.signal, insn.tag, *vals, *pad[COLS - FIRST_FIELD - len(vals)])
            for insn in insns
            for vals in (_GET[insn.op](insn.f),)
        ]
        table = np.array(rows) if rows else np.zeros((0, COLS), np.int64)
    except (TypeError, ValueError, OverflowError, KeyError, AttributeError):
        raise IsaError("the instruction stream holds values that are not table integers") from None
    widths = [len(insn.f) for insn in insns]
    if table.dtype.kind not in "ib" or widths != [len(NAMES[i.op]) for i in insns]:
        raise IsaError("the instruction stream holds values that are not table integers")
    return table.astype(np.int64, copy=False)


def insn_at(table: np.ndarray, i: int) -> Insn:
    """Instruction i of `table` as an `Insn` (index set)."""
    row = table[i].tolist()
    op = Op(row[OP])
    insn = Insn.of(op, dict(zip(NAMES[op], row[FIRST_FIELD:])), row[TAG])
    insn.wait, insn.signal, insn.index = row[WAIT], row[SIGNAL], i
    return insn


_BY_CODE = {int(op): (op, names) for op, names in NAMES.items()}


def insns(table: np.ndarray) -> list[Insn]:
    """Every row of `table` as an `Insn` (indices set), in order."""
    new, by_code = object.__new__, _BY_CODE
    out = []
    for i, row in enumerate(table.tolist()):
        op, names = by_code[row[OP]]
        insn = new(Insn)
        insn.op, insn.wait, insn.signal, insn.tag, insn.index = op, row[1], row[2], row[3], i
        insn.f = dict(zip(names, row[FIRST_FIELD:]))
        out.append(insn)
    return out
