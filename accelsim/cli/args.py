"""Argument types the subcommands share (argparse `type=`), kept free of NumPy so that building
the parser for `accelsim --help` stays cheap."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An integer option that must be at least 1 (workers, seeds, epochs)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def bits_type(text: str) -> tuple[int, int]:
    """An A/W bits option (`accelsim.numeric.bits_arg`, imported when an option is given)."""
    from accelsim.numeric import bits_arg  # noqa: PLC0415

    return bits_arg("A/W")(text)
