"""Assembly text of programs: `disasm` writes one line per instruction
(`OP wait=.. signal=.. tag=N field=value ...`), `assemble` reads it back (`accelsim disasm`)."""

from __future__ import annotations

from accelsim.errors import IsaError
from accelsim.isa import TABLE, Insn, Op, Unit, disasm_one, validate


def disasm(insns) -> str:
    """Assembly text of a program, one instruction per line."""
    return "\n".join(disasm_one(i) for i in insns) + "\n"


def _parse_mask(text: str, where: str) -> int:
    if text == "-":
        return 0
    mask = 0
    for name in text.split(","):
        try:
            mask |= 1 << Unit[name.strip().upper()]
        except KeyError:
            raise IsaError(f"{where}: unknown unit {name!r}") from None
    return mask


def assemble(text: str) -> list[Insn]:
    """Parse assembly text (as printed by `disasm`); `#` starts a comment."""
    insns = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"line {lineno}"
        name, *args = line.split()
        try:
            op = Op[name.upper()]
        except KeyError:
            raise IsaError(f"{where}: unknown opcode {name!r}") from None
        spec = {f.name: f for f in TABLE[op].fields}
        head, fields = {"wait": 0, "signal": 0, "tag": 0}, {}
        for arg in args:
            key, _, val = arg.partition("=")
            if key in ("wait", "signal"):
                head[key] = _parse_mask(val, where)
            elif key == "tag" or key in spec:
                f = spec.get(key)
                if f is not None and f.enum is not None and not val.lstrip("-").isdigit():
                    try:
                        fields[key] = f.enum[val.upper()]
                    except KeyError:
                        raise IsaError(
                            f"{where}: {key}={val!r} is not a {f.enum.__name__}"
                        ) from None
                    continue
                try:
                    num = int(val, 0)
                except ValueError:
                    raise IsaError(f"{where}: {key}={val!r} is not an integer") from None
                if key == "tag":
                    head["tag"] = num
                else:
                    fields[key] = num
            else:
                raise IsaError(f"{where}: {op.name} has no field {key!r}")
        insn = Insn(op, **head, **fields)
        try:
            validate(insn)
        except IsaError as exc:
            raise IsaError(f"{where}: {exc}") from None
        insn.index = len(insns)
        insns.append(insn)
    return insns
