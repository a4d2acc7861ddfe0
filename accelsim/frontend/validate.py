"""Final check of a lowered stream against the ISA table (as tinygrad checks a spec between
stages): every instruction encodes and decodes to itself, no instruction waits on or signals
its own unit, and every token FIFO receives exactly as many tokens as are taken from it.

The check is vectorised. A value within its field's range encodes and decodes to itself (see
`isa._check_table`), so per opcode the header and the address fields (the values that change
from tile to tile) of all its instructions form one integer array compared with the table's
ranges at once, and every other field is checked once per distinct combination of its values
(a tiled stream repeats a few tile shapes). Token counts are summed with array operations. The
first offending instruction in program order is then checked alone by the full encode /
decode round trip, which gives its exact error.
"""

from __future__ import annotations

from operator import add, attrgetter, itemgetter

import numpy as np

from accelsim.config import HwConfig
from accelsim.errors import IsaError
from accelsim.isa import HEADER_RANGES, TABLE, Insn, Op, Unit, decode, encode

_HEADER = attrgetter(*HEADER_RANGES)  # wait, signal, tag
_OPCODE = attrgetter("op")
_UNIT = {op: -1 if s.unit is None else int(s.unit) for op, s in TABLE.items()}  # FINISH: -1


def _getter(names: list):
    """Callable: a field dict -> the tuple of its values of `names` (None: no names)."""
    if not names:
        return None
    if len(names) == 1:
        return lambda f, get=itemgetter(names[0]): (get(f),)
    return itemgetter(*names)


class _Layout:
    """How the fields of one opcode are checked: the header and the address fields as arrays
    (`lo` / `hi`: their ranges), the other fields once per distinct tuple of values."""

    def __init__(self, spec):
        addr = [f for f in spec.fields if f.name.endswith("_addr")]
        shape = [f for f in spec.fields if not f.name.endswith("_addr")]
        self.width = len(spec.fields)
        self.addr, self.shape = _getter([f.name for f in addr]), _getter([f.name for f in shape])
        ranges = [*HEADER_RANGES.values(), *((f.min, f.max) for f in addr)]
        self.lo, self.hi = (np.array([r[i] for r in ranges]) for i in (0, 1))
        self.shape_ranges = [(f.min, f.max) for f in shape]

    def shape_ok(self, values: tuple) -> bool:
        return all(
            isinstance(v, (int, np.integer)) and lo <= v <= hi
            for v, (lo, hi) in zip(values, self.shape_ranges)
        )


_LAYOUTS = {op: _Layout(spec) for op, spec in TABLE.items()}
_HEAD_LO, _HEAD_HI = (np.array([r[i] for r in HEADER_RANGES.values()]) for i in (0, 1))


def validate_stream(insns: list[Insn], cfg: HwConfig, checked=()) -> None:
    """Raise `IsaError` naming the first instruction that breaks the ISA or token rules.

    checked: (first, end) index ranges of instructions whose table fields are already known to
    lie in their ranges (the compiled GEMM loop checks the rows it writes, see
    `accelsim.frontend.gemm_compiled`); only their headers and tokens are checked here."""
    n = len(Unit)
    codes = np.fromiter(map(_OPCODE, insns), np.int64, len(insns))
    known = np.zeros(len(insns), bool)
    for first, end in checked:
        known[first:end] = True
    bad = len(insns)  # first offending instruction
    units = np.full(len(insns), -1, np.int64)  # -1: FINISH (or not known)
    masks = np.zeros((len(insns), 2), np.int64)  # wait, signal
    for op in np.unique(codes).tolist():
        every = np.flatnonzero(codes == op)
        for idx, fields_known in ((every[~known[every]], False), (every[known[every]], True)):
            if not idx.size:
                continue
            group = [insns[i] for i in idx.tolist()]
            if fields_known:
                first, heads = _first_header_fault(group)
            else:
                first, heads = _first_fault(_LAYOUTS[Op(op)], group)
            if first is not None:
                bad = min(bad, idx[first])
            if heads is not None:
                units[idx] = _UNIT[op]
                masks[idx] = heads[:, :2]
    bad = min(bad, _first_token_fault(units, masks))
    if bad < len(insns):
        _check_one(bad, insns[bad])
        raise IsaError(f"instruction {bad} ({insns[bad].op.name}): rejected")  # pragma: no cover
    bits = (masks[:, :, None] >> np.arange(n)) & 1  # [insn, wait/signal, unit j]
    real = units >= 0
    pushed = np.zeros((n, n), np.int64)  # [producer, consumer]
    popped = np.zeros((n, n), np.int64)  # [consumer, producer]
    np.add.at(pushed, units[real], bits[real, 1])
    np.add.at(popped, units[real], bits[real, 0])
    for p, c in zip(*np.nonzero(pushed != popped.T)):
        raise IsaError(
            f"token FIFO {Unit(p).name.lower()} -> {Unit(c).name.lower()}: "
            f"{pushed[p, c]} pushed but {popped[c, p]} popped"
        )
    if not insns or insns[-1].op is not Op.FINISH:
        raise IsaError("the stream must end with FINISH")


def _first_fault(layout: _Layout, group: list) -> tuple[int | None, np.ndarray | None]:
    """(position in `group` of its first instruction that breaks the table or None, the
    [n, 3] header array or None when the values could not be read as integers)."""
    fields = [insn.f for insn in group]
    try:
        if set(map(len, fields)) - {layout.width}:
            raise KeyError  # other fields than the table's
        rows = list(map(_HEADER, group))
        if layout.addr is not None:
            rows = list(map(add, rows, map(layout.addr, fields)))
        shapes = set(map(layout.shape, fields)) if layout.shape is not None else set()
    except KeyError:
        return _first_by_hand(group), None
    values = np.array(rows)
    if values.dtype.kind not in "iub":
        return _first_by_hand(group), None
    wrong = ((values < layout.lo) | (values > layout.hi)).any(axis=1)
    odd = {s for s in shapes if not layout.shape_ok(s)}
    if odd:
        wrong |= np.fromiter((s in odd for s in map(layout.shape, fields)), bool, len(group))
    found = np.flatnonzero(wrong)
    return (int(found[0]) if found.size else None), values[:, :3]


def _first_header_fault(group: list) -> tuple[int | None, np.ndarray]:
    """(position of the first instruction of `group` whose header is out of range or None,
    the [n, 3] header array) for instructions whose fields are known to be in range."""
    heads = np.array(list(map(_HEADER, group))).reshape(-1, 3)
    if heads.dtype.kind not in "iu":  # a header that is not a (64-bit) integer
        return _first_by_hand(group), None
    wrong = ((heads < _HEAD_LO) | (heads > _HEAD_HI)).any(axis=1)
    found = np.flatnonzero(wrong)
    return (int(found[0]) if found.size else None), heads


def _first_by_hand(group: list) -> int:
    """Position of the first instruction of `group` that fails the full check."""
    for pos, insn in enumerate(group):
        try:
            _check_one(pos, insn)
        except IsaError:
            return pos
    return 0  # pragma: no cover - the fast path found a fault the full check does not


def _first_token_fault(units: np.ndarray, masks: np.ndarray) -> int:
    """Index of the first FINISH carrying tokens or instruction naming its own unit."""
    finish = (units < 0) & (masks != 0).any(axis=1)
    own = (units >= 0) & (((masks[:, 0] | masks[:, 1]) >> np.maximum(units, 0)) & 1).astype(bool)
    found = np.flatnonzero(finish | own)
    return int(found[0]) if found.size else len(units)


def _check_one(i: int, insn: Insn) -> None:
    """The full check of one instruction: raise `IsaError` if it breaks a rule."""
    where = f"instruction {i} ({insn.op.name}, tag {insn.tag})"
    try:
        back, _ = decode(encode(insn))
    except (IsaError, TypeError) as exc:
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
