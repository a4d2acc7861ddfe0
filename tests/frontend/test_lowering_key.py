"""`lowering_key` names every configuration field lowering reads: changing any other field
leaves the lowered program (instructions, DRAM layout and image) unchanged, so a sweep may
lower once per key. A field added to the config without an entry here fails the test."""

import numpy as np
import pytest

from accelsim.cli.commands import make_input
from accelsim.config import HwConfig, describe, load_config
from accelsim.errors import ConfigError
from accelsim.frontend.lower import lowering_key
from accelsim.isa import encode_program
from accelsim.runner import lower_for_input
from workloads import registry

# a legal other value for each text field (numbers are doubled, flags flipped)
OTHER_TEXT = {
    "chip.name": "other",
    "matmul.dataflow": "ws",
    "matmul.mac_model": "serial_both",
    "matmul.overflow": "wrap",
    "rescale.round_mode": "rne",
    "svge.map_method": "sort",
    "energy.table": "other",
}


def _other(key: str, value) -> HwConfig:
    """`edge` with `key` set to another legal value: numbers doubled (or halved, or one
    less, where the config refuses the double), flags flipped, text from OTHER_TEXT."""
    if isinstance(value, bool):
        tries = [str(not value).lower()]
    elif isinstance(value, (int, float)):
        tries = [repr(value * 2), repr(value // 2 if isinstance(value, int) else value / 2)]
        tries.append(repr(value - 1))
    elif isinstance(value, str):
        tries = [f'"{OTHER_TEXT[key]}"']
    else:
        raise AssertionError(f"no other value for {key} = {value!r}: add one to this test")
    for text in tries:
        try:
            cfg = load_config("edge", [f"{key}={text}"])
        except ConfigError:
            continue
        if getattr(getattr(cfg, key.split(".")[0]), key.split(".")[1]) != value:
            return cfg
    raise AssertionError(f"{key}: none of {tries} is accepted")


def _fields_outside_key(kind: str):
    base = load_config("edge")
    out = []
    for key, _, _, _ in describe():
        section, name = key.split(".")
        value = getattr(getattr(base, section), name)
        if isinstance(value, tuple):
            continue  # svge.group_coeffs: in the key
        cfg = _other(key, value)
        if lowering_key(cfg, kind) == lowering_key(base, kind):
            out.append((key, cfg))
    return out


FIELDS = {kind: _fields_outside_key(kind) for kind in ("dense", "sparse")}


def test_the_key_leaves_out_the_timing_fields():
    names = {k for k, _ in FIELDS["dense"]}
    assert {"matmul.dataflow", "matmul.rows", "dram.bw_bytes_per_cycle", "chip.clock_mhz"} <= names
    assert "matmul.cols" not in names and "buffers.inp_bytes" not in names
    # the sparse lowering balances engines on estimated cycles: only the chip and energy stay out
    assert {k for k, _ in FIELDS["sparse"]} == {"chip.name", "chip.clock_mhz", "energy.table"}


@pytest.mark.parametrize("name", ["small_cnn", "mlp", "resnet18@32", "sparse_tiny"])
def test_fields_outside_the_key_do_not_change_the_program(name):
    model, _, size = name.partition("@")
    g = registry.build(model, (4, 4), 0, **({"image_size": int(size)} if size else {}))
    x = make_input(g, None, 0)
    base = lower_for_input(g, load_config("edge"), x)
    words = encode_program(base.insns)
    for key, cfg in FIELDS[g.kind]:
        p = lower_for_input(g, cfg, x)
        assert np.array_equal(encode_program(p.insns), words), key
        assert p.dram_size == base.dram_size, key
        assert np.array_equal(p.dram, base.dram), key
