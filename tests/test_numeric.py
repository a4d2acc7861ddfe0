"""accelsim.numeric: the one home of modes, value ranges, dtypes, bit widths and --bits parsing."""

import argparse
import ast
from pathlib import Path

import numpy as np
import pytest

from accelsim import isa, numeric
from accelsim.config import load_config
from accelsim.errors import AccelsimError, ConfigError
from accelsim.numeric import parse_bits, storage_dtype, value_range


@pytest.mark.parametrize(
    "bits, mode, expected",
    [
        (1, "signed", (-1, 0)),
        (4, "signed", (-8, 7)),
        (8, "signed", (-128, 127)),
        (32, "signed", (-(2**31), 2**31 - 1)),
        (1, "unsigned", (0, 1)),
        (3, "unsigned", (0, 7)),
        (16, "unsigned", (0, 65535)),
        (1, "bipolar", (-1, 1)),
    ],
)
def test_value_range(bits, mode, expected):
    assert value_range(bits, mode) == expected


@pytest.mark.parametrize(
    "bits, mode, message",
    [
        (2, "bipolar", "bipolar values are 1-bit"),
        (0, "signed", "1..32"),
        (33, "unsigned", "1..32"),
        (True, "signed", "integer"),
        (4, "float", "mode must be one of signed, unsigned, bipolar"),
    ],
)
def test_value_range_rejects(bits, mode, message):
    with pytest.raises(AccelsimError, match=message):
        value_range(bits, mode)


def test_storage_dtype():
    assert storage_dtype(8, "signed") == np.int8 and storage_dtype(1, "bipolar") == np.int8
    assert storage_dtype(8, "unsigned") == np.uint8
    assert storage_dtype(9, "signed") == storage_dtype(16, "unsigned") == np.int32


@pytest.mark.parametrize(
    "text, order, expected",
    [("4/2", "A/W", (4, 2)), ("4/2", "W/A", (2, 4)), ("1/8", "A/W", (1, 8))],
)
def test_parse_bits_returns_activations_then_weights(text, order, expected):
    assert parse_bits(text, order) == expected


@pytest.mark.parametrize("text", ["9/4", "4/0", "four", "4", "4/4/4"])
def test_parse_bits_rejects(text):
    with pytest.raises(AccelsimError, match="A/W"):
        parse_bits(text)
    with pytest.raises(argparse.ArgumentTypeError):
        numeric.bits_arg()(text)


def test_isa_limits_come_from_numeric():
    """The ISA's mode names and width limits are the numeric module's."""
    assert tuple(isa.MODE_NAMES[isa.Mode(i)] for i in range(len(isa.Mode))) == numeric.MODES
    assert isa.MODE_BY_NAME["bipolar"] == isa.Mode.BIPOLAR == 2
    fields = {(op, f.name): f for op, spec in isa.TABLE.items() for f in spec.fields}
    for op in (isa.Op.GEMM, isa.Op.SVG_CONV):
        assert fields[(op, "a_bits")].max == fields[(op, "w_bits")].max == numeric.MAC_MAX_BITS
    for op in (isa.Op.QUANT, isa.Op.RESCALE, isa.Op.ALU):
        assert fields[(op, "bits")].max == numeric.TENSOR_MAX_BITS
        assert fields[(op, "mode")].max == isa.Mode.UNSIGNED  # bipolar is not an output mode
    assert fields[(isa.Op.ALU, "in_bits")].max == numeric.TENSOR_MAX_BITS
    assert fields[(isa.Op.QUANT, "in_bits")].max == numeric.ELEMENT_MAX_BITS
    for op in (isa.Op.LOAD, isa.Op.STORE):
        assert fields[(op, "bits")].max == numeric.ELEMENT_MAX_BITS


def test_config_rejects_operands_wider_than_the_macs():
    assert load_config("edge").matmul.max_bits == numeric.MAC_MAX_BITS
    with pytest.raises(ConfigError, match="at most 8"):
        load_config("edge", ["matmul.max_bits=9"])


def test_numeric_imports_only_errors_of_the_package():
    tree = ast.parse(Path(numeric.__file__).read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } | {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    assert {m for m in imported if m.startswith("accelsim")} == {"accelsim.errors"}
