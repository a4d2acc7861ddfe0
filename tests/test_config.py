"""Hardware configuration loading, overrides and validation."""

import dataclasses

import pytest

from accelsim.config import HwConfig, describe, load_config, preset_names
from accelsim.errors import ConfigError


def test_presets_load_with_expected_arrays():
    assert {"edge", "server", "scalesim32"} <= set(preset_names())
    edge, server, ss = (load_config(n) for n in ("edge", "server", "scalesim32"))
    assert (edge.matmul.rows, edge.matmul.cols, edge.matmul.mac_model) == (16, 16, "fusion")
    assert (server.matmul.rows, server.matmul.cols) == (128, 128)
    assert (ss.matmul.rows, ss.matmul.cols, ss.matmul.mac_model, ss.matmul.dataflow) == (
        32,
        32,
        "fixed",
        "os",
    )
    total_kib = sum(getattr(edge.buffers, f"{b}_bytes") for b in ("inp", "wgt", "acc", "out"))
    assert 100 * 1024 <= total_kib <= 1024 * 1024


def test_frozen():
    cfg = load_config("edge")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.matmul.rows = 3


def test_overrides_apply_and_parse_types():
    cfg = load_config(
        "edge",
        [
            "matmul.rows=32",
            "matmul.dataflow=ws",
            "dram.bw_bytes_per_cycle=8",
            "svge.group_coeffs=[1, 1, 1]",
            "matmul.fill_drain=false",
        ],
    )
    assert cfg.matmul.rows == 32 and cfg.matmul.dataflow == "ws"
    assert cfg.dram.bw_bytes_per_cycle == 8.0 and cfg.svge.group_coeffs == (1, 1, 1)
    assert cfg.matmul.fill_drain is False
    assert load_config("edge").matmul.rows == 16  # the preset is untouched


@pytest.mark.parametrize(
    "override, message",
    [
        ("matmul.foo=1", "unknown key matmul.foo"),
        ("nosuch.rows=1", r"unknown section \[nosuch\]"),
        ("matmul.rows=0", "matmul.rows: must be positive"),
        ("matmul.rows=-4", "matmul.rows: must be positive"),
        ("matmul.rows=2.5", "matmul.rows: expected an integer"),
        ("matmul.dataflow=diag", "matmul.dataflow: expected one of os, ws, is"),
        ("rescale.mult_bits=24", "rescale.mult_bits: expected one of 16, 32"),
        ("matmul.fill_drain=3", "expected true or false"),
        ("svge.group_coeffs=[1,2]", "expected a list of 3 integers"),
        ("rows=3", "must look like section.key=value"),
    ],
)
def test_bad_overrides_are_rejected_with_the_key_named(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("edge", [override])


def test_bad_files_name_the_file_and_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[matmul]\nrows = 8\ncolumns = 8\n")
    with pytest.raises(ConfigError, match=r"bad.toml: unknown key matmul.columns"):
        load_config(str(bad))
    bad.write_text("[buffers]\ninp_bytes = 0\n")
    with pytest.raises(ConfigError, match=r"bad.toml: buffers.inp_bytes: must be positive"):
        load_config(str(bad))
    bad.write_text("[matmul\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(str(bad))
    with pytest.raises(ConfigError, match="no such file or preset"):
        load_config("nope")


def test_file_with_only_some_keys_uses_defaults(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text("[matmul]\nrows = 8\ncols = 4\n")
    cfg = load_config(str(f))
    assert (cfg.matmul.rows, cfg.matmul.cols) == (8, 4)
    assert cfg.dram == HwConfig().dram


def test_every_field_is_described_with_a_unit_or_meaning():
    rows = describe()
    assert len(rows) > 30
    assert all(doc for _, _, _, doc in rows)
    assert load_config("edge").buffers.capacity_rows("inp") == 64 * 1024 * 8 // 128


def test_to_toml_reads_back_to_the_same_config(tmp_path):
    from accelsim.config import to_toml

    cfg = load_config(
        "edge",
        [
            'chip.name="a \\"quoted\\" name"',
            "svge.group_coeffs=[3, -1, 17]",
            "rescale.mult_bits=16",
        ],
    )
    path = tmp_path / "c.toml"
    path.write_text(to_toml(cfg))
    assert load_config(str(path)) == cfg
