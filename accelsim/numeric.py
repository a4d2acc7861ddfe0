"""Numeric facts of the machine in one place: integer modes, value ranges, storage dtypes, the
int32 accumulator bounds, the legal bit widths and the "A/W" bits argument of the scripts.

Every integer the machine holds is a value of `bits` bits read in one of three modes (the ISA
encodes them in this order as `isa.Mode` 0, 1, 2):

- ``signed``:   [-2**(bits-1), 2**(bits-1) - 1] (two's complement)
- ``unsigned``: [0, 2**bits - 1]
- ``bipolar``:  {-1, +1}; bits is 1, the bit stores the sign (0 is not a value)

Integers are held at their real value (never as offsets or bit patterns) in the smallest numpy
dtype: int8 for signed or bipolar and uint8 for unsigned up to 8 bits, int32 above.

Legal widths, each set by a part of the hardware:

- MAC operands, 1..`MAC_MAX_BITS` (8): the array multiplies at most 8-bit activations and
  weights (GEMM and SVG_CONV `a_bits`, `w_bits`; `matmul.max_bits` may lower it).
- tensors, 1..`TENSOR_MAX_BITS` (16): QUANT, RESCALE and the vector ALU write at most 16 bits,
  so activations and outputs are at most that wide.
- elements, 1..`ELEMENT_MAX_BITS` (32): DRAM, the DMA and the buffers also hold the int32
  accumulators and rescale parameters.
- bias fractions, 0..`BIAS_FRAC_MAX` (15) fractional bits: RESCALE's `frac` field, the bits
  below the accumulator's unit that a conv / linear bias carries (`accelsim.kernels.rescale`).

Like `accelsim.isa` and `accelsim.config`, this module imports nothing else of the package but
its errors, so every layer can import it.
"""

from __future__ import annotations

import argparse

import numpy as np

from accelsim.errors import AccelsimError

MODES = ("signed", "unsigned", "bipolar")  # integer encodings, in ISA Mode order
FLOAT_MODE = "float"  # a graph's float input tensor; not an integer encoding
TENSOR_MODES = (FLOAT_MODE, *MODES)  # modes a graph tensor may have

INT32_MIN = -(2**31)  # accumulators, biases and rescale parameters are int32
INT32_MAX = 2**31 - 1

MAC_MAX_BITS = 8  # widest MAC operand (activation or weight) of the matmul array, in bits
TENSOR_MAX_BITS = 16  # widest tensor QUANT, RESCALE or the vector ALU writes, in bits
ELEMENT_MAX_BITS = 32  # widest element DRAM, the DMA or a buffer holds (int32), in bits
BIAS_FRAC_MAX = 15  # most fractional bits of a RESCALE bias (a 4-bit instruction field)
BYTE_STORAGE_BITS = 8  # values up to this width are stored in int8 / uint8, wider in int32


def check_mode(mode: str, what: str = "mode") -> str:
    """Return `mode` if it is one of `MODES`; raise AccelsimError naming `what` otherwise."""
    if mode not in MODES:
        raise AccelsimError(f"{what} must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def check_bits(bits, max_bits: int = ELEMENT_MAX_BITS, what: str = "bits") -> int:
    """Return `bits` as an int if it is an integer in 1..max_bits; raise AccelsimError naming
    `what` otherwise (bool is not an integer width)."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise AccelsimError(f"{what} must be an integer in 1..{max_bits}, got {bits!r}")
    if not 1 <= bits <= max_bits:
        raise AccelsimError(f"{what} must be an integer in 1..{max_bits}, got {bits!r}")
    return int(bits)


def value_range(bits, mode: str) -> tuple[int, int]:
    """Inclusive (lo, hi) value range of a `bits`-bit integer in `mode` (module docstring).

    Raises AccelsimError for an unknown mode, bits outside 1..ELEMENT_MAX_BITS or a bipolar
    width other than 1."""
    check_mode(mode)
    bits = check_bits(bits)
    if mode == "bipolar":
        if bits != 1:
            raise AccelsimError(f"bipolar values are 1-bit, got bits={bits}")
        return -1, 1
    if mode == "signed":
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def sign_mode(signed: bool) -> str:
    """The mode of a signed or unsigned integer ("signed" / "unsigned")."""
    return "signed" if signed else "unsigned"


def storage_dtype(bits: int, mode: str) -> np.dtype:
    """numpy dtype that holds `bits`-bit values in `mode`: int8 / uint8 up to 8 bits, else int32."""
    if bits <= BYTE_STORAGE_BITS:
        return np.dtype(np.uint8 if mode == "unsigned" else np.int8)
    return np.dtype(np.int32)


def parse_bits(text: str, order: str = "A/W") -> tuple[int, int]:
    """(a_bits, w_bits) of a bits argument such as "4/2", written activations first
    (order "A/W", the `accelsim` commands) or weights first (order "W/A", the training tables).

    Both widths are MAC operands: integers in 1..MAC_MAX_BITS. Raises AccelsimError."""
    if order not in ("A/W", "W/A"):
        raise ValueError(f"order must be 'A/W' or 'W/A', got {order!r}")
    try:
        first, second = (int(v) for v in text.split("/"))
    except ValueError:
        raise AccelsimError(f"bits: expected {order} such as 4/2, got {text!r}") from None
    a, w = (first, second) if order == "A/W" else (second, first)
    if not (1 <= a <= MAC_MAX_BITS and 1 <= w <= MAC_MAX_BITS):
        raise AccelsimError(
            f"bits: activation and weight widths must be 1..{MAC_MAX_BITS} ({order}), got {text!r}"
        )
    return a, w


def bits_arg(order: str = "A/W"):
    """argparse `type=` for a bits argument: `parse_bits` with its errors as usage errors."""

    def bits(text: str) -> tuple[int, int]:
        try:
            return parse_bits(text, order)
        except AccelsimError as exc:  # argparse names the option itself
            raise argparse.ArgumentTypeError(str(exc).removeprefix("bits: ")) from None

    return bits
