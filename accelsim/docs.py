"""Generated reference sections of the README: config fields, the opcode table (encoding, cost
formula and datapath of every opcode) and the output fields, each rendered from the one place
that defines it. `python -m accelsim.docs` rewrites the
sections between `<!-- BEGIN name -->` and `<!-- END name -->` markers; a test checks that the
README is up to date."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

from accelsim.isa import TABLE, WORD_BITS


def resolve(path: str):
    """The function a "package.module:function" path names (the ISA table's cost and datapath
    entries); AttributeError if the module has no such name."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def cost_formula(doc: str | None) -> str:
    """The `cycles = ...` paragraph of a cost function's docstring, on one line ("" if none)."""
    lines, found = [], False
    for line in (doc or "").splitlines():
        text = line.strip()
        if text.startswith("cycles ="):
            found = True
        elif found and not text:
            break
        if found:
            lines.append(text)
    return " ".join(lines)


def _short(path: str) -> str:
    return path.removeprefix("accelsim.")


def _datapath_cell(paths: tuple[str, ...], resolve) -> str:
    """Datapath functions grouped by module, each with its `_ref` twin when one exists."""
    modules: dict[str, list[str]] = {}
    for path in paths:
        module, _, name = path.partition(":")
        modules.setdefault(module, []).append(name)
    cells = []
    for module, names in modules.items():
        twins = []
        for name in names:
            try:
                twins.append(resolve is not None and resolve(f"{module}:{name}_ref") is not None)
            except AttributeError:
                twins.append(False)
        if resolve is None:
            note = ""
        elif all(twins):
            note = " (each with its NumPy `_ref` twin)" if len(names) > 1 else " (+ `_ref` twin)"
        elif not any(twins):
            note = " (NumPy, no compiled twin)"
        else:
            names = [f"{n} (+ `_ref`)" if t else n for n, t in zip(names, twins)]
            note = ""
        cells.append(f"`{_short(module)}`: " + ", ".join(f"`{n}`" for n in names) + note)
    return "; ".join(cells) or "-"


def table_markdown(resolve=None) -> str:
    """The opcode table as Markdown, for the docs: the three views of every opcode, its
    encoding (bits, fields), its cost model and its datapath. `resolve` maps a
    "package.module:function" path to the function (`accelsim.docs.resolve`); with it, the
    cost column shows the cost function's formula and the datapath column the `_ref` twins."""
    lines = [
        "| opcode | unit | bits | fields | meaning | cost | datapath |",
        "|---|---|---|---|---|---|---|",
    ]
    for spec in TABLE.values():
        unit = spec.unit.name.lower() if spec.unit is not None else "all"
        fields = ", ".join(f"{f.name}:{f.bits}" for f in spec.fields) or "-"
        cost = "-"
        if spec.cost:
            formula = cost_formula(resolve(spec.cost).__doc__) if resolve is not None else ""
            cost = f"`{_short(spec.cost)}`" + (f": `{formula}`" if formula else "")
        lines.append(
            f"| {spec.op.name} | {unit} | {spec.words * WORD_BITS} | {fields} | {spec.meaning} "
            f"| {cost} | {_datapath_cell(spec.datapath, resolve)} |"
        )
    return "\n".join(lines)


def config_markdown() -> str:
    from accelsim.config import describe  # noqa: PLC0415

    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, typ, default, doc in describe():
        lines.append(f"| `{key}` | {typ} | `{default}` | {doc} |")
    return "\n".join(lines)


def sections() -> dict[str, str]:
    """Section name -> generated Markdown."""
    from accelsim.report import run_fields_markdown  # noqa: PLC0415
    from accelsim.stats import fields_markdown  # noqa: PLC0415

    return {
        "config-fields": config_markdown(),
        "isa-table": table_markdown(resolve),
        "stats-fields": fields_markdown(),
        "run-fields": run_fields_markdown(),
    }


def render(text: str) -> str:
    """`text` with every generated section replaced by its current content."""
    for name, body in sections().items():
        pattern = re.compile(rf"(<!-- BEGIN {name} -->\n).*?(<!-- END {name} -->)", re.S)
        text = pattern.sub(lambda m, body=body: m.group(1) + body + "\n" + m.group(2), text)
    return text


def main() -> int:
    readme = Path(__file__).resolve().parent.parent / "README.md"
    old = readme.read_text()
    new = render(old)
    if new != old:
        readme.write_text(new)
        print(f"updated {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
