"""Final check of a lowered stream against the ISA table (as tinygrad checks a spec between
stages): every instruction encodes and decodes to itself, no instruction waits on or signals
its own unit, and every token FIFO receives exactly as many tokens as are taken from it."""

from __future__ import annotations

from accelsim.config import HwConfig
from accelsim.errors import IsaError
from accelsim.isa import Insn, Op, Unit, decode, encode


def validate_stream(insns: list[Insn], cfg: HwConfig) -> None:
    """Raise `IsaError` naming the first instruction that breaks the ISA or token rules."""
    n = len(Unit)
    pushed = [[0] * n for _ in range(n)]
    popped = [[0] * n for _ in range(n)]
    for i, insn in enumerate(insns):
        where = f"instruction {i} ({insn.op.name}, tag {insn.tag})"
        try:
            back, _ = decode(encode(insn))
        except IsaError as exc:
            raise IsaError(f"{where}: {exc}") from None
        if back != insn:
            raise IsaError(f"{where}: does not survive encode/decode")
        if insn.op is Op.FINISH:
            if insn.wait or insn.signal:
                raise IsaError(f"{where}: FINISH carries no tokens")
            continue
        u = int(insn.unit)
        if (insn.wait | insn.signal) >> u & 1:
            raise IsaError(f"{where}: waits on or signals its own unit {Unit(u).name.lower()}")
        for j in range(n):
            pushed[u][j] += insn.signal >> j & 1
            popped[j][u] += insn.wait >> j & 1
    for p in range(n):
        for c in range(n):
            if pushed[p][c] != popped[p][c]:
                raise IsaError(
                    f"token FIFO {Unit(p).name.lower()} -> {Unit(c).name.lower()}: "
                    f"{pushed[p][c]} pushed but {popped[p][c]} popped"
                )
    if not insns or insns[-1].op is not Op.FINISH:
        raise IsaError("the stream must end with FINISH")
