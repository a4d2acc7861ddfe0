"""Final check of a lowered stream against the ISA table (as tinygrad checks a spec between
stages): every instruction encodes and decodes to itself, no instruction waits on or signals
its own unit, and every token FIFO receives exactly as many tokens as are taken from it.

The check works on the stream as an `accelsim.insn_table` table. A value within its field's
range encodes and decodes to itself (see `isa._check_table`), so every header and field value
of every instruction is compared with its range in one array operation, and token counts are
summed with array operations. The first offending instruction in program order is then
checked alone by the full encode / decode round trip, which gives its exact error.
"""

from __future__ import annotations

import numpy as np

from accelsim.config import HwConfig
from accelsim.errors import IsaError
from accelsim.insn_table import COLS, FIRST_FIELD, OP, SIGNAL, TAG, WAIT, insn_at, rows_of
from accelsim.isa import HEADER_RANGES, TABLE, Insn, Op, Unit, decode, encode

_N_CODES = 1 + max(int(op) for op in TABLE)
_UNIT = np.full(_N_CODES, -1, np.int64)  # opcode -> unit id (-1: FINISH or no opcode)
# opcode -> lowest / highest legal value per column; an unused column must hold 0 and a code
# that is no opcode matches nothing (lowest 1 > highest 0 in its OP column)
_LO = np.zeros((_N_CODES, COLS), np.int64)
_HI = np.zeros((_N_CODES, COLS), np.int64)
_LO[:, OP] = 1
for _op, _spec in TABLE.items():
    if _spec.unit is not None:
        _UNIT[int(_op)] = int(_spec.unit)
    _LO[int(_op), OP] = _HI[int(_op), OP] = int(_op)
    for _col, (_lo, _hi) in zip((WAIT, SIGNAL, TAG), HEADER_RANGES.values()):
        _LO[int(_op), _col], _HI[int(_op), _col] = _lo, _hi
    for _i, _f in enumerate(_spec.fields):
        _LO[int(_op), FIRST_FIELD + _i], _HI[int(_op), FIRST_FIELD + _i] = _f.min, _f.max


_MASK_BITS = (np.arange(HEADER_RANGES["wait"][1] + 1)[:, None] >> np.arange(len(Unit))) & 1


def validate_stream(insns, cfg: HwConfig) -> None:
    """Raise `IsaError` naming the first instruction that breaks the ISA or token rules.
    `insns`: a list of `Insn` or an `accelsim.insn_table` table."""
    if isinstance(insns, np.ndarray):
        return validate_table(insns, cfg)
    try:
        table = rows_of(insns)
    except IsaError:
        first_fault_by_hand(insns)
        raise
    validate_table(table, cfg, insns)


def validate_table(table: np.ndarray, cfg: HwConfig, insns: list | None = None) -> None:
    """`validate_stream` of a table (`insns`: the same instructions as objects, if at hand,
    for the error message)."""
    n = len(Unit)
    codes = table[:, OP]
    inside = (codes >= 0) & (codes < _N_CODES)
    safe = np.where(inside, codes, 0)
    wrong = ~inside | ((table < _LO[safe]) | (table > _HI[safe])).any(axis=1)
    units = np.where(inside, _UNIT[safe], -1)
    masks = table[:, [WAIT, SIGNAL]]
    bad = min(_first(wrong), _first_token_fault(units, masks))
    if bad < len(table):
        if not inside[bad] or _UNIT[codes[bad]] == -1 and codes[bad] != int(Op.FINISH):
            raise IsaError(f"instruction {bad}: bad opcode {codes[bad]}")
        _check_one(bad, insns[bad] if insns is not None else insn_at(table, bad))
        raise IsaError(f"instruction {bad}: rejected")  # pragma: no cover
    real = units >= 0
    n_masks = len(_MASK_BITS)  # every mask is in range here

    def tokens(mask: np.ndarray) -> np.ndarray:  # [unit, other unit]: tokens named
        per_mask = np.bincount(units[real] * n_masks + mask[real], minlength=n * n_masks)
        return per_mask.reshape(n, n_masks) @ _MASK_BITS

    pushed = tokens(masks[:, 1])  # [producer, consumer]
    popped = tokens(masks[:, 0])  # [consumer, producer]
    for p, c in zip(*np.nonzero(pushed != popped.T)):
        raise IsaError(
            f"token FIFO {Unit(p).name.lower()} -> {Unit(c).name.lower()}: "
            f"{pushed[p, c]} pushed but {popped[c, p]} popped"
        )
    if not len(table) or table[-1, OP] != int(Op.FINISH):
        raise IsaError("the stream must end with FINISH")


def _first(flags: np.ndarray) -> int:
    found = np.flatnonzero(flags)
    return int(found[0]) if found.size else len(flags)


def first_fault_by_hand(insns: list, offset: int = 0) -> None:
    """Raise the `IsaError` of the first instruction of `insns` (the `offset`-th of its
    program onwards) that fails the full check; return if none does."""
    for pos, insn in enumerate(insns):
        _check_one(offset + pos, insn)


def _first_token_fault(units: np.ndarray, masks: np.ndarray) -> int:
    """Index of the first FINISH carrying tokens or instruction naming its own unit."""
    finish = (units < 0) & (masks != 0).any(axis=1)
    own = (units >= 0) & (((masks[:, 0] | masks[:, 1]) >> np.maximum(units, 0)) & 1).astype(bool)
    return _first(finish | own)


def _check_one(i: int, insn: Insn) -> None:
    """The full check of one instruction: raise `IsaError` if it breaks a rule."""
    where = f"instruction {i} ({insn.op.name}, tag {insn.tag})"
    try:
        back, _ = decode(encode(insn))
    except (IsaError, TypeError, KeyError, AttributeError, OverflowError, ValueError) as exc:
        raise IsaError(f"{where}: {exc}") from None
    if back != insn:
        raise IsaError(f"{where}: does not survive encode/decode")
    if insn.op is Op.FINISH:
        if insn.wait or insn.signal:
            raise IsaError(f"{where}: FINISH carries no tokens")
        return
    u = int(insn.unit)
    if (insn.wait | insn.signal) >> u & 1:
        raise IsaError(f"{where}: waits on or signals its own unit {Unit(u).name.lower()}")
