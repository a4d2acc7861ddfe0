"""Export of native graphs as ONNX QDQ: onnxruntime runs the file with the machine's integer
outputs (rescale.round_mode = rne, the ONNX rounding), for trained LSQ / ULQ digit classifiers
and the built-in workloads; an imported model exported and imported again keeps its graph."""

import numpy as np
import pytest

from accelsim.config import load_config
from accelsim.frontend.onnx import ONNX_ROUND_MODE, load_onnx
from accelsim.frontend.onnx.export import save_onnx, to_onnx
from accelsim.ir import run_reference
from accelsim.quant import TrainConfig, train
from accelsim.quant.data import Dataset, load_dataset
from accelsim.quant.to_ir import model_to_graph
from accelsim.runner import run_model
from tests.frontend.onnx.nets import ort_run, same_level
from tests.helpers import with_fractional_biases
from workloads.dense import mlp, small_cnn

pytest.importorskip("onnxruntime")
CFG = load_config("edge", [f"rescale.round_mode={ONNX_ROUND_MODE}"])


@pytest.fixture(scope="module")
def small():
    d = load_dataset("digits")
    return Dataset("digits", d.x_train[:128], d.y_train[:128], d.x_test[:24], d.y_test[:24])


def machine_vs_ort(graph, x, optimize=False):
    """Machine outputs (checked against the IR reference) and onnxruntime's on the export,
    per image (batch 1, as the trained graphs are built)."""
    model = to_onnx(graph)
    for i in range(len(x)):
        xi = x[i : i + 1]
        res = run_model(graph, CFG, xi, check=True)
        assert res.check_ok, res.check_message
        onnx_x = xi.transpose(0, 3, 1, 2) if xi.ndim == 4 else xi  # the file's input is NCHW
        got = ort_run(model, onnx_x.astype(np.float32), optimize=optimize)
        for name in graph.outputs:
            same_level(got[name], res.outputs[name].reshape(got[name].shape), name)
    return model


@pytest.mark.parametrize(
    "method,arch,w,a,kw",
    [
        ("lsq", "cnn", 4, 4, {"channels": (4, 8), "pools": (False, True)}),
        ("ulq", "cnn", 2, 2, {"channels": (4, 8), "residual": True}),
        ("lsq", "mlp", 2, 2, {"hidden": (16,)}),
    ],
    ids=["lsq_cnn_w4a4", "ulq_cnn_w2a2_residual", "lsq_mlp_w2a2"],
)
def test_trained_digits_export_runs_exactly(small, method, arch, w, a, kw):
    """A tiny digits model trained one epoch; the exported file in onnxruntime (with and
    without its graph optimizations) gives the machine's integer logits on 24 test images."""
    cfg = TrainConfig(fp_epochs=1, batch_size=32, model_kwargs=kw)
    model, _ = train(small, arch, method, a, w, 1, seed=0, progress=False, config=cfg)
    g = model_to_graph(model, batch=1, calib_x=small.x_train)
    machine_vs_ort(g, small.x_test)
    machine_vs_ort(g, small.x_test[:4], optimize=True)


def test_builtin_workloads_round_trip(tmp_path):
    """small_cnn (conv, depthwise, residual add, max / avg / global pools, flatten, linear) and
    mlp exported and imported again: the same machine ops and, through the IR reference, the
    same integers on every output (the importer reads back exactly what was written)."""
    rng = np.random.default_rng(0)
    for g in (small_cnn(4, 4, seed=1, input_hw=8), mlp(8, 8, seed=2)):
        x = rng.random((2, *g.tensors[g.input].shape[1:]))
        save_onnx(g, tmp_path / "m.onnx")
        again = load_onnx(tmp_path / "m.onnx", input_shape=None)
        kinds = [type(n).__name__ for n in again.nodes if type(n).__name__[:4] != "Host"]
        assert kinds == [type(n).__name__ for n in g.nodes]
        onnx_x = x[:1].transpose(0, 3, 1, 2) if x.ndim == 4 else x[:1]
        a = run_reference(g, x[:1], round_mode="rne")[g.outputs[0]]
        b = run_reference(again, onnx_x, round_mode="rne")[again.outputs[0]]
        assert np.array_equal(a.reshape(-1), b.reshape(-1))


def test_builtin_mlp_runs_exactly_in_onnxruntime():
    g = mlp(8, 8, seed=2)
    machine_vs_ort(g, np.random.default_rng(1).random((3, *g.tensors[g.input].shape[1:])))


def test_fractional_biases_export_as_float32():
    """An mlp whose biases carry 13..15 fractional bits (the importer's fold of random real
    offsets): the file holds them as float32 values (no int32 DequantizeLinear, which
    onnxruntime's optimizer would fuse at scale s_in * s_w[c]), and onnxruntime without graph
    optimizations gives the machine's logits on every image. (With them it fuses QGemm, whose
    int32 bias is whole accumulator units again.)"""
    from onnx import numpy_helper

    g = with_fractional_biases(mlp(8, 8, seed=2), seed=0)
    fracs = [n.bias_frac_bits for n in g.nodes if hasattr(n, "bias_frac_bits")]
    assert fracs and min(fracs) > 0
    model = machine_vs_ort(g, np.random.default_rng(4).random((3, *g.tensors[g.input].shape[1:])))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    biases = [v for k, v in inits.items() if k.split("__")[0].endswith("_b")]
    assert len(biases) == len(fracs) and all(b.dtype == np.float32 for b in biases)
