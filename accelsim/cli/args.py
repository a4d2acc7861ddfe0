"""Argument types the subcommands share (argparse `type=`), kept free of NumPy so that building
the parser for `accelsim --help` stays cheap."""

from __future__ import annotations


def bits_type(text: str) -> tuple[int, int]:
    """An A/W bits option (`accelsim.numeric.bits_arg`, imported when an option is given)."""
    from accelsim.numeric import bits_arg  # noqa: PLC0415

    return bits_arg("A/W")(text)
