"""Native model format: round trips and one clear ModelFormatError per kind of broken file."""

import json

import numpy as np
import pytest

from accelsim.errors import ModelFormatError
from accelsim.frontend.native import GRAPH_KEY, load_model, save_model
from accelsim.ir import Graph, run_reference
from workloads.dense import conv_bn, mlp, small_cnn


def assert_graphs_equal(a: Graph, b: Graph) -> None:
    assert (a.name, a.input, a.outputs) == (b.name, b.input, b.outputs)
    assert list(a.tensors) == list(b.tensors)
    for name, t in a.tensors.items():
        u = b.tensors[name]
        assert (t.shape, t.bits, t.mode, t.zero_point) == (u.shape, u.bits, u.mode, u.zero_point)
        np.testing.assert_array_equal(np.asarray(t.scale), np.asarray(u.scale))
        assert type(t.scale) is type(u.scale)
    assert [type(n) for n in a.nodes] == [type(n) for n in b.nodes]
    for n, m in zip(a.nodes, b.nodes):
        for f in n.__dataclass_fields__:
            x, y = getattr(n, f), getattr(m, f)
            if isinstance(x, np.ndarray):
                assert x.dtype == y.dtype and x.shape == y.shape, (n.name, f)
                np.testing.assert_array_equal(x, y)
            else:
                assert x == y, (n.name, f)


@pytest.mark.parametrize(
    "build",
    [lambda: small_cnn(4, 2, seed=3, input_hw=8), lambda: mlp(8, 4, seed=1), conv_bn],
    ids=["small_cnn", "mlp", "batchnorm"],
)
def test_round_trip_equal(tmp_path, build):
    g = build()
    path = tmp_path / "m.npz"
    save_model(g, path)
    g2 = load_model(path)
    assert_graphs_equal(g, g2)
    x = np.random.default_rng(0).standard_normal(g.tensors["input"].shape)
    a, b = run_reference(g, x), run_reference(g2, x)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert not list(tmp_path.glob("*.tmp"))  # the atomic write left no temp file


def test_fractional_bias_survives(tmp_path):
    """A bias in 2**-9 accumulator units saves and loads with its fraction bits (files written
    before the field existed load with 0: `test_hand_written_version_1_files_load`)."""
    g = small_cnn(4, 4, seed=3, input_hw=8)
    conv = g.node("conv1")
    conv.bias = (conv.bias_or_zeros().astype(np.int64) * 512 + np.arange(conv.cout) * 37).astype(
        np.int32
    )
    conv.bias_frac_bits = 9
    save_model(g, tmp_path / "m.npz")
    g2 = load_model(tmp_path / "m.npz")
    assert_graphs_equal(g, g2)
    assert g2.node("conv1").bias_frac_bits == 9 and g2.node("conv3").bias_frac_bits == 0
    x = np.random.default_rng(0).standard_normal(g.tensors["input"].shape)
    np.testing.assert_array_equal(run_reference(g, x)["fc"], run_reference(g2, x)["fc"])


def test_per_channel_scales_survive(tmp_path):
    g = conv_bn()
    save_model(g, tmp_path / "m.npz")
    g2 = load_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(g2.tensors["y"].scale, [0.1, 0.2, 0.3, 0.4])
    np.testing.assert_array_equal(g2.node("conv").w_scale, g.node("conv").w_scale)
    with np.load(tmp_path / "m.npz", allow_pickle=False) as z:
        assert "tensor/y/scale" in z.files and "conv/weight" in z.files
        doc = json.loads(z[GRAPH_KEY].tobytes())
    assert doc["format"] == "accelsim-model" and doc["version"] == 1


def rewrite(src, dst, doc_fn=None, arrays_fn=None):
    """Copy model `src` to `dst`, editing its JSON (doc_fn) and/or arrays (arrays_fn)."""
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    doc = json.loads(arrays.pop(GRAPH_KEY).tobytes())
    if doc_fn:
        doc_fn(doc)
    if arrays_fn:
        arrays_fn(arrays)
    text = json.dumps(doc).encode()
    np.savez(dst, **{GRAPH_KEY: np.frombuffer(text, np.uint8)}, **arrays)


def node(doc, name):
    return next(n for n in doc["nodes"] if n["name"] == name)


def set_(d, key, value):
    d[key] = value


BROKEN = {
    "wrong version": (lambda d: set_(d, "version", 2), None, "unsupported version 2"),
    "wrong format": (lambda d: set_(d, "format", "onnx"), None, "'format' must be"),
    "unknown op": (
        lambda d: set_(node(d, "conv3"), "op", "LSTM"),
        None,
        "node 'conv3': unknown op type 'LSTM'",
    ),
    "missing array": (
        None,
        lambda a: a.pop("conv1/weight"),
        "node 'conv1' attribute 'weight': array 'conv1/weight' is missing",
    ),
    "missing tensor": (
        lambda d: set_(node(d, "pwconv"), "inputs", ["nope"]),
        None,
        "node 'pwconv'.*input tensor 'nope' is not declared",
    ),
    "weight shape": (
        None,
        lambda a: set_(a, "conv3/weight", a["conv3/weight"][:, :, :3]),
        "node 'conv3'.*weight shape",
    ),
    "bias dtype": (
        None,
        lambda a: set_(a, "fc/bias", a["fc/bias"].astype(np.float32)),
        "node 'fc'.*bias must be an int32 array",
    ),
    "bias shape": (
        None,
        lambda a: set_(a, "fc/bias", a["fc/bias"][:3]),
        r"node 'fc'.*bias must have shape \(10,\)",
    ),
    "weight range": (
        None,
        lambda a: a["dwconv/weight"].__setitem__((0, 0, 0, 0), 9),
        r"node 'dwconv'.*weight: values must lie in \[-8, 7\]",
    ),
    "weight float": (
        None,
        lambda a: set_(a, "fc/weight", a["fc/weight"].astype(np.float64)),
        "node 'fc'.*weight.*integer",
    ),
    "unknown attr": (
        lambda d: set_(node(d, "maxpool")["attrs"], "ceil_mode", 1),
        None,
        r"node 'maxpool'.*unknown attribute\(s\) \['ceil_mode'\]",
    ),
    "missing attr": (
        lambda d: node(d, "maxpool")["attrs"].pop("kernel"),
        None,
        "node 'maxpool'.*kernel",
    ),
    "bad stride": (
        lambda d: set_(node(d, "conv1")["attrs"], "stride", [0, 1]),
        None,
        "node 'conv1'.*stride must be 2 integers >= 1",
    ),
    "order": (
        lambda d: d["nodes"].insert(0, d["nodes"].pop(3)),
        None,
        "node 'pwconv'.*before it is produced",
    ),
    "tensor shape": (
        lambda d: set_(d["tensors"][2], "shape", [1, 8, 8, 15]),
        None,
        "node 'conv1'.*declared with shape",
    ),
    "zero point": (
        lambda d: set_(d["tensors"][2], "zero_point", 300),
        None,
        "tensor 'conv1': zero point 300 outside",
    ),
    "scale type": (
        lambda d: set_(d["tensors"][2], "scale", "big"),
        None,
        "tensor 'conv1': field 'scale' has the wrong type",
    ),
    "dangling tensor": (
        lambda d: d["tensors"].append(dict(d["tensors"][2], name="ghost")),
        None,
        "tensor 'ghost' is declared but no node produces it",
    ),
    "relu type": (
        lambda d: set_(node(d, "conv1")["attrs"], "relu", "yes"),
        None,
        "node 'conv1'.*relu must be true or false",
    ),
    "two inputs": (lambda d: set_(d, "input", "conv1"), None, "must have mode 'float'"),
    "bias fraction": (
        lambda d: set_(node(d, "fc")["attrs"], "bias_frac_bits", 16),
        None,
        r"node 'fc'.*bias_frac_bits must be an integer in 0..15, got 16",
    ),
}


@pytest.fixture(scope="module")
def good_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("native") / "good.npz"
    save_model(small_cnn(4, 4, seed=0, input_hw=8), path)
    return path


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_file_names_the_fault(tmp_path, good_model, case):
    doc_fn, arrays_fn, pattern = BROKEN[case]
    bad = tmp_path / "bad.npz"
    rewrite(good_model, bad, doc_fn, arrays_fn)
    with pytest.raises(ModelFormatError, match=pattern) as e:
        load_model(bad)
    assert str(bad) in str(e.value)


def test_truncated_corrupt_and_missing_files(tmp_path, good_model):
    data = good_model.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFormatError, match="cut.npz: not a readable accelsim model"):
        load_model(cut)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip file at all")
    with pytest.raises(ModelFormatError, match="junk.npz"):
        load_model(junk)
    with pytest.raises(ModelFormatError, match="no such model file"):
        load_model(tmp_path / "absent.npz")
    plain = tmp_path / "plain.npz"
    np.savez(plain, w=np.zeros(3))
    with pytest.raises(ModelFormatError, match="'__graph__.json'.*missing"):
        load_model(plain)
    badjson = tmp_path / "badjson.npz"
    np.savez(badjson, **{GRAPH_KEY: np.frombuffer(b"{not json", np.uint8)})
    with pytest.raises(ModelFormatError, match="not valid JSON"):
        load_model(badjson)


def test_pickled_arrays_are_refused(tmp_path, good_model):
    """An object array (which would need pickle) is rejected, not unpickled."""
    bad = tmp_path / "pickled.npz"
    rewrite(
        good_model,
        bad,
        None,
        lambda a: set_(a, "conv1/bias", np.array([object()] * 16, dtype=object)),
    )
    with pytest.raises(ModelFormatError, match="pickled.npz"):
        load_model(bad)


# ---------------------------------------------------------------- sparse graphs, same codec

SPARSE_BROKEN = {
    "duplicate tensor": (
        lambda d: d["tensors"].append(dict(d["tensors"][1])),
        "tensor 'x0': declared twice",
    ),
    "integer input name": (
        lambda d: set_(node(d, "stem"), "inputs", [3]),
        r"node 'stem': inputs must be tensor names, got \[3\]",
    ),
    "list input name": (
        lambda d: set_(node(d, "stem"), "inputs", [["x0"]]),
        "node 'stem': inputs must be tensor names",
    ),
    "unknown tensor field": (
        lambda d: set_(d["tensors"][1], "shape", [1, 4]),
        r"tensor 'x0': unknown field\(s\) \['shape'\]",
    ),
    "float channels": (
        lambda d: set_(d["tensors"][1], "channels", 4.0),
        "tensor 'x0': field 'channels' has the wrong type",
    ),
    "dense op": (
        lambda d: set_(node(d, "stem"), "op", "QuantConv2d"),
        "node 'stem': unknown op type 'QuantConv2d'",
    ),
    "meta": (lambda d: set_(d, "meta", [1]), "field 'meta' must be an object"),
    "version": (lambda d: set_(d, "version", 2), "unsupported version 2"),
}


@pytest.fixture(scope="module")
def good_sparse_model(tmp_path_factory):
    from workloads.sparse_nets import sparse_tiny

    path = tmp_path_factory.mktemp("native") / "sparse.npz"
    save_model(sparse_tiny(4, 8, seed=0, channels=4), path)
    return path


@pytest.mark.parametrize("case", sorted(SPARSE_BROKEN))
def test_broken_sparse_file_names_the_fault(tmp_path, good_sparse_model, case):
    """The sparse loader runs the dense loader's checks: a tensor declared twice or a node
    input that is not a tensor name is refused, not silently overwritten or crashed on."""
    doc_fn, pattern = SPARSE_BROKEN[case]
    bad = tmp_path / "bad.npz"
    rewrite(good_sparse_model, bad, doc_fn)
    with pytest.raises(ModelFormatError, match=pattern) as e:
        load_model(bad)
    assert str(bad) in str(e.value)


def _write(path, doc, arrays):
    text = json.dumps(doc).encode()
    np.savez(path, **{GRAPH_KEY: np.frombuffer(text, np.uint8)}, **arrays)


def test_hand_written_version_1_files_load(tmp_path):
    """Files in the version-1 layouts of the module docstring (written here by hand, not by
    `save_model`) load: the format of files saved before the codec was shared still reads."""
    dense = {
        "format": "accelsim-model",
        "version": 1,
        "name": "tiny",
        "input": "x",
        "outputs": ["y"],
        "tensors": [
            {
                "name": "x",
                "shape": [1, 4],
                "bits": 32,
                "mode": "float",
                "scale": 1.0,
                "zero_point": 0,
            },
            {
                "name": "xq",
                "shape": [1, 4],
                "bits": 8,
                "mode": "signed",
                "scale": 0.5,
                "zero_point": 0,
            },
            {
                "name": "y",
                "shape": [1, 2],
                "bits": 8,
                "mode": "signed",
                "scale": 0.25,
                "zero_point": 0,
            },
        ],
        "nodes": [
            {"name": "q", "op": "Quantize", "inputs": ["x"], "output": "xq", "attrs": {}},
            {
                "name": "fc",
                "op": "QuantLinear",
                "inputs": ["xq"],
                "output": "y",
                "attrs": {"weight": {"array": "fc/weight"}, "w_bits": 4, "w_scale": 0.125},
            },
        ],
    }
    w = np.array([[1, -2], [3, 4], [-5, 6], [7, -8]], np.int8)
    _write(tmp_path / "dense.npz", dense, {"fc/weight": w})
    g = load_model(tmp_path / "dense.npz")
    assert g.kind == "dense" and [n.name for n in g.nodes] == ["q", "fc"]
    np.testing.assert_array_equal(g.node("fc").weight, w)
    assert g.tensors["y"].shape == (1, 2) and g.node("fc").w_bits == 4
    assert g.node("fc").bias_frac_bits == 0  # the field is newer than the file

    sparse = {
        "format": "accelsim-sparse-model",
        "version": 1,
        "name": "tiny3d",
        "input": "features",
        "outputs": ["y"],
        "meta": {"scene": {"voxel_size_m": 0.4}},
        "tensors": [
            {
                "name": "features",
                "channels": 2,
                "bits": 32,
                "mode": "float",
                "scale": 1.0,
                "zero_point": 0,
                "coord_set": "s1",
            },
            {
                "name": "x0",
                "channels": 2,
                "bits": 8,
                "mode": "signed",
                "scale": 0.25,
                "zero_point": 0,
                "coord_set": "s1",
            },
            {
                "name": "y",
                "channels": 3,
                "bits": 8,
                "mode": "signed",
                "scale": 0.5,
                "zero_point": 0,
                "coord_set": "s1",
            },
        ],
        "nodes": [
            {
                "name": "q",
                "op": "SparseQuantize",
                "inputs": ["features"],
                "output": "x0",
                "attrs": {},
            },
            {
                "name": "conv",
                "op": "SparseConv",
                "inputs": ["x0"],
                "output": "y",
                "attrs": {"weight": {"array": "conv/weight"}, "w_scale": 0.125, "stride": 1},
            },
        ],
    }
    w3 = np.arange(6, dtype=np.int8).reshape(1, 2, 3)
    _write(tmp_path / "sparse.npz", sparse, {"conv/weight": w3})
    s = load_model(tmp_path / "sparse.npz")
    assert s.kind == "sparse" and s.meta == {"scene": {"voxel_size_m": 0.4}}
    assert (s.tensors["y"].channels, s.tensors["y"].coord_set) == (3, "s1")
    np.testing.assert_array_equal(s.nodes[1].weight, w3)
