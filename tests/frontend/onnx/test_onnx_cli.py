"""`accelsim run | compile | inspect | export` with ONNX files: inputs in the declared layout,
one output array per ONNX graph output, host ops and cheaper rescales in the report, one
error line and status 2 for bad files."""

import json

import numpy as np
import pytest

from accelsim.cli import main
from tests.frontend.onnx.nets import Net, ort_run
from tests.frontend.onnx.test_qdq import conv_net, grid

pytest.importorskip("onnxruntime")


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def int_and_float_outputs():
    """An MLP whose ONNX outputs are the int8 QuantizeLinear result and its dequantized
    float view after a host affine."""
    n = Net(13)
    x = n.qdq("x", 2**-4, 0)
    w = n.weight(np.random.default_rng(3).integers(-20, 20, (6, 4)), 2**-5, axis=None)
    q = n.q(n.node("MatMul", [x, w]), 2**-3, 1)
    f = n.node("Mul", [n.dq(q, 2**-3, 1), n.const(np.float32(2))])
    return n.model("x", [2, 6], [q, f])


def test_run_onnx_writes_outputs_by_name_in_declared_layout(capsys, tmp_path):
    model = conv_net(13)
    m = tmp_path / "m.onnx"
    m.write_bytes(model.SerializeToString())
    x = grid((1, 3, 6, 6), 2**-5)  # NCHW, as the ONNX input is declared
    np.save(tmp_path / "x.npy", x)
    out, rep = tmp_path / "o.npz", tmp_path / "r.json"
    code, text, err = _run(
        capsys, "run", m, "--input", tmp_path / "x.npy", "--outputs", out, "--check", "--json", rep
    )
    assert code == 0, err
    assert "check passed" in text and "host       before the machine" in text
    with np.load(out) as z:
        name = model.graph.output[0].name
        assert list(z.files) == [name] and z[name].dtype == np.float32
        assert np.array_equal(z[name], ort_run(model, x)[name])
    doc = json.loads(rep.read_text())
    assert {h["stage"] for h in doc["host_ops"]} == {"before", "after"}
    assert set(doc["rescale_options"]) == {r["name"] for r in doc["layers"]}


def test_integer_outputs_keep_their_type(capsys, tmp_path):
    model = int_and_float_outputs()
    m = tmp_path / "m.onnx"
    m.write_bytes(model.SerializeToString())
    x = grid((2, 6), 2**-4)
    np.save(tmp_path / "x.npy", x)
    code, _, err = _run(
        capsys, "run", m, "--input", tmp_path / "x.npy", "--outputs", tmp_path / "o.npz"
    )
    assert code == 0, err
    want = ort_run(model, x)
    with np.load(tmp_path / "o.npz") as z:
        assert sorted(z.files) == sorted(want)
        for k, v in want.items():
            assert z[k].dtype == v.dtype and np.array_equal(z[k], v), k


def test_builtin_model_writes_its_final_output(capsys, tmp_path):
    code, _, err = _run(capsys, "run", "mlp", "--outputs", tmp_path / "o.npz")
    assert code == 0, err
    with np.load(tmp_path / "o.npz") as z:
        assert list(z.files) == ["logits"]


def test_inspect_and_compile(capsys, tmp_path):
    m = tmp_path / "m.onnx"
    m.write_bytes(conv_net(13).SerializeToString())
    code, out, err = _run(capsys, "inspect", m)
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines()[1:-1]}
    assert "machine" in rows["Conv20"] and "QuantConv2d" in rows["Conv20"]
    assert "host" in rows["QuantizeLinear4"] and "folded" in rows["Relu22"]
    assert "dequantize" in rows["DequantizeLinear30"] and "host" in rows["DequantizeLinear30"]
    assert out.splitlines()[-1] == "1 machine, 2 host, 5 folded, 0 not at all"
    code, out, err = _run(capsys, "compile", m, "-o", tmp_path / "p.npz")
    assert code == 0 and "instructions" in out, err


def test_inspect_names_what_cannot_run(capsys, tmp_path):
    n = Net(13)
    x = n.qdq("x", 2**-4, 0)
    y = n.node("LpNormalization", [x])
    m = tmp_path / "m.onnx"
    m.write_bytes(n.model("x", [1, 4], [y]).SerializeToString())
    code, out, err = _run(capsys, "inspect", m)
    assert code == 2 and "not at all" in out and err.startswith("error: ")
    assert "'LpNormalization'" in err and len(err.strip().splitlines()) == 1


def test_bad_files_exit_2_with_one_line(capsys, tmp_path):
    data = conv_net(13).SerializeToString()
    for blob in (data[: len(data) // 2], b"not onnx at all"):
        m = tmp_path / "bad.onnx"
        m.write_bytes(blob)
        code, _, err = _run(capsys, "run", m)
        assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_export_then_run(capsys, tmp_path):
    f = tmp_path / "mlp.onnx"
    code, out, err = _run(capsys, "export", "mlp", "-o", f)
    assert code == 0 and f.exists(), err
    code, out, err = _run(capsys, "run", f, "--check")
    assert code == 0 and "check passed" in out, err
