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


def resolve(path: str):
    """The function a "package.module:function" path names (the ISA table's cost and datapath
    entries); AttributeError if the module has no such name."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def config_markdown() -> str:
    from accelsim.config import describe  # noqa: PLC0415

    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, typ, default, doc in describe():
        lines.append(f"| `{key}` | {typ} | `{default}` | {doc} |")
    return "\n".join(lines)


def sections() -> dict[str, str]:
    """Section name -> generated Markdown."""
    from accelsim.isa import table_markdown  # noqa: PLC0415
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
