"""Sweep specs: the contract format parses into points (full product, zip groups, bits rules),
and every kind of bad spec is refused before a point runs, naming the key."""

import pytest

from accelsim.cli.sources import CliWorkloads
from accelsim.errors import AccelsimError
from accelsim.sweep.points import code_version, expand
from accelsim.sweep.spec import parse_spec

CONTRACT = """
name = "bits_resnet18"
workloads = ["resnet18", "small_cnn"]
base = "edge"
engine = "fast"
timing_only = true
[axes]
bits = ["8/8", "4/4", "2/2", "2/8"]
"matmul.rows" = [8, 16, 32]
[zip]
"matmul.cols" = [16, 32]
"buffers.wgt_bytes" = [65536, 131072]
"""


@pytest.fixture
def source(tmp_path):
    return CliWorkloads(str(tmp_path / "cache"))


def _points(text, source, folder="."):
    spec = parse_spec(text, "spec.toml")
    return spec, expand(spec, source, "event", "test")


def test_contract_format_expands_to_the_full_product(source):
    """2 workloads x 4 bits x 3 rows x 2 zipped (cols, wgt_bytes) rows = 48 points, in file
    order; every point id distinct; the zip keys move together."""
    spec, points = _points(CONTRACT, source)
    assert spec.swept_keys == ["bits", "matmul.rows", "matmul.cols", "buffers.wgt_bytes"]
    assert spec.config_keys == ["matmul.rows", "matmul.cols", "buffers.wgt_bytes"]
    assert len(points) == 48 and len({p.point_id for p in points}) == 48
    first, second = points[0], points[1]
    assert (first.workload, first.bits_label, dict(first.swept)) == (
        "resnet18",
        "8/8",
        {"matmul.rows": 8, "matmul.cols": 16, "buffers.wgt_bytes": 65536},
    )
    assert dict(second.swept) == {"matmul.rows": 8, "matmul.cols": 32, "buffers.wgt_bytes": 131072}
    assert second.config.matmul.cols == 32 and second.config.buffers.wgt_bytes == 131072
    assert {p.bits for p in points} == {(8, 8), (4, 4), (2, 2), (2, 8)}
    assert [p.seq for p in points] == list(range(48))


def test_point_ids_are_stable_and_follow_every_ingredient(source):
    """The same spec gives the same ids; another code version, seed or base value other ids."""
    _, a = _points(CONTRACT, source)
    _, b = _points(CONTRACT, source)
    assert [p.point_id for p in a] == [p.point_id for p in b]
    spec = parse_spec(CONTRACT, "spec.toml")
    other_code = expand(spec, source, "event", "other")
    assert not {p.point_id for p in a} & {p.point_id for p in other_code}
    _, seeded = _points(CONTRACT.replace('base = "edge"', 'base = "edge"\nseed = 1'), source)
    assert not {p.point_id for p in a} & {p.point_id for p in seeded}


def test_code_version_names_the_release_and_a_source_hash():
    version = code_version()
    release, digest = version.split("+")
    assert release and len(digest) == 12 and version == code_version()


ROWS = '"matmul.rows" = [8, 16, 32]'
WORKLOADS = 'workloads = ["resnet18", "small_cnn"]'


@pytest.mark.parametrize(
    "old, new, message",
    [
        ('base = "edge"', 'basis = "edge"', r"unknown key\(s\) basis"),
        (ROWS, '"matmul.rowz" = [8]', r"unknown key matmul\.rowz"),
        (
            ROWS,
            '"matmul.rows" = [8, 0]',
            r"spec.toml: \[axes\]: matmul\.rows: must be positive, got 0",
        ),
        (ROWS, '"matmul.rows" = []', r"'matmul.rows' is empty"),
        (ROWS, '"matmul.dataflow" = ["os", "xs"]', r"matmul\.dataflow: expected one of os, ws"),
        (ROWS, "rows = [8]", r"'rows' is not a config key"),
        ('"2/8"]', '"16/8"]', r"bits: activation and weight widths must be 1..8"),
        (
            '"buffers.wgt_bytes" = [65536, 131072]',
            '"buffers.wgt_bytes" = [65536]',
            r"keys varied together need lists of one length",
        ),
        (ROWS, '"matmul.cols" = [8, 16]', r"matmul\.cols vary in more than one axis"),
        ('engine = "fast"', 'engine = "warp"', r"engine must be one of fast, event"),
        (WORKLOADS, 'workloads = ["resnet81"]', r"workload 'resnet81' is not a built-in"),
        (WORKLOADS, 'workloads = ["no.npz"]', r"model file 'no.npz' does not exist"),
        ('base = "edge"', 'base = "edgy"', r"base: config 'edgy': no such file or preset"),
    ],
)
def test_bad_specs_are_refused_naming_the_key(source, old, new, message):
    """Each row changes one line of the contract spec; the error names the key or value."""
    text = CONTRACT.replace(old, new)
    assert text != CONTRACT
    with pytest.raises(AccelsimError, match=message):
        _points(text, source)


def test_a_combination_the_config_rejects_names_the_point(source):
    """row_bits 256 is fine alone, and so is a 16-byte param buffer, but not together: the
    buffer is smaller than one row. The error names the point's values."""
    text = """
name = "x"
workloads = ["mlp"]
[axes]
"buffers.row_bits" = [128, 256]
"buffers.param_bytes" = [16, 32]
"""
    with pytest.raises(AccelsimError, match=r"point mlp buffers.row_bits=256, buffers.param_by"):
        _points(text, source)


def test_bits_rules_parse_and_apply_only_where_asked(source):
    text = (
        CONTRACT
        + """
[[bits_rules]]
layers = ["first", "last"]
bits = "8/8"
workloads = ["resnet18"]
"""
    )
    spec, points = _points(text, source)
    assert spec.bits_rules[0].layers == ("first", "last") and spec.bits_rules[0].bits == (8, 8)
    assert all(p.rules for p in points if p.workload == "resnet18")
    assert not any(p.rules for p in points if p.workload == "small_cnn")


@pytest.mark.parametrize(
    "rule, message",
    [
        ('layers = []\nbits = "8/8"', "layers must be a non-empty list"),
        ('layers = ["first"]\nbits = "9/8"', "widths must be 1..8"),
        ('layers = ["first"]\nbits = "8/8"\nwork = 1', r"unknown key\(s\) work"),
        ('layers = ["first"]\nbits = "8/8"\nworkloads = ["vgg"]', "must list workloads of"),
    ],
)
def test_bad_bits_rules(source, rule, message):
    with pytest.raises(AccelsimError, match=message):
        _points(CONTRACT + "\n[[bits_rules]]\n" + rule + "\n", source)


def test_rules_on_a_workload_without_per_layer_widths_are_refused(source):
    text = 'name = "s"\nworkloads = ["sparse_tiny"]\n'
    text += '[[bits_rules]]\nlayers = ["first"]\nbits = "8/8"\n'
    with pytest.raises(AccelsimError, match="'sparse_tiny' does not take per-layer widths"):
        _points(text, source)


def test_trained_workload_has_its_recipes_widths_only(source):
    """trained:digits-cnn-lsq exists at A/W 8/8, 4/4, 3/3, 2/2 and 2/1 (recipes W/A ... 1/2):
    2/1 expands; 1/1 is refused naming the known widths; an unknown recipe lists the known."""
    ok = 'name = "t"\nworkloads = ["trained:digits-cnn-lsq"]\n[axes]\nbits = ["8/8", "2/1"]\n'
    _, points = _points(ok, source)
    assert [p.bits for p in points] == [(8, 8), (2, 1)]
    with pytest.raises(AccelsimError, match=r"no model at bits 1/1 \(A/W; it has .*2/1"):
        _points(ok.replace('"2/1"', '"1/1"'), source)
    with pytest.raises(AccelsimError, match=r"no such recipe; known: .*trained:digits-cnn-ulq"):
        _points(ok.replace("digits-cnn-lsq", "digits-cnn-xyz"), source)


def test_a_model_file_is_not_multiplied_by_the_bits_axis(source, tmp_path):
    """A native model file keeps its own widths: 3 bits values x 2 rows give 2 points with
    bits None, identified by the file's contents."""
    from accelsim.frontend.native import save_model
    from workloads.dense import mlp

    save_model(mlp(4, 4), tmp_path / "m.npz")
    text = (
        'name = "f"\nworkloads = ["m.npz"]\n[axes]\nbits = ["8/8", "4/4", "2/2"]\n'
        '"matmul.rows" = [8, 16]\n'
    )
    spec = parse_spec(text, str(tmp_path / "f.toml"), tmp_path)
    points = expand(spec, source, "event", "test")
    assert [(p.bits, dict(p.swept)) for p in points] == [
        (None, {"matmul.rows": 8}),
        (None, {"matmul.rows": 16}),
    ]
    assert points[0].key["workload"].startswith("file:")
