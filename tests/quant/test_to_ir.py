"""Trained model -> IR -> native file -> lowering -> machine: exact integers, same classes.

Models are tiny (a few channels) and trained for one epoch on 128 digits, so each takes a
second or two; what is checked does not depend on how well they learned.
"""

import numpy as np
import pytest

from accelsim.config import load_config
from accelsim.errors import AccelsimError
from accelsim.frontend.native import load_model, save_model
from accelsim.ir import run_reference
from accelsim.quant import TrainConfig, export_layers, fake_quant_predict, train
from accelsim.quant.data import Dataset, load_dataset
from accelsim.quant.export import run_exported
from accelsim.quant.to_ir import (
    assign_quant,
    graph_logits,
    integer_bias_layers,
    layers_to_graph,
    model_to_graph,
)
from accelsim.runner import run_model


@pytest.fixture(scope="module")
def small():
    d = load_dataset("digits")
    return Dataset("digits", d.x_train[:128], d.y_train[:128], d.x_test[:12], d.y_test[:12])


def _trained(small, arch: str, w_bits: int, a_bits: int, **model_kwargs):
    cfg = TrainConfig(fp_epochs=1, batch_size=32, model_kwargs=model_kwargs)
    model, _ = train(small, arch, "lsq", a_bits, w_bits, 1, seed=0, progress=False, config=cfg)
    return model


CASES = {  # name -> (arch, w_bits, a_bits, model kwargs)
    "cnn_w4a4": ("cnn", 4, 4, {"channels": (4, 8), "pools": (False, True)}),
    "cnn_w1a2_binary": ("cnn", 1, 2, {"channels": (4, 8)}),
    "mlp_w2a2_ternary": ("mlp", 2, 2, {"hidden": (16,)}),
    "cnn_w2a2_residual": ("cnn", 2, 2, {"channels": (4, 8), "residual": True}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_machine_equals_reference_and_integer_bias_fake_quant(small, tmp_path, case):
    """The file round trip keeps the graph; the machine's every layer equals run_reference;
    every integer tensor equals the fake-quantized codes round(y / s) of the export with
    int32 biases, and the classes are the trained model's own."""
    arch, w, a, kw = CASES[case]
    model = _trained(small, arch, w, a, **kw)
    path = tmp_path / "m.npz"
    save_model(model_to_graph(model, batch=1, calib_x=small.x_train), path)  # as `accelsim train`
    g = load_model(path)
    assert g.outputs == [g.nodes[-1].output]
    x = small.x_test
    res = run_model(g, load_config("edge"), x, check=True)
    assert res.check_ok, res.check_message
    ref = run_reference(g, x)
    logits = graph_logits(g, res.outputs)
    np.testing.assert_array_equal(logits, graph_logits(g, ref))
    layers = integer_bias_layers(export_layers(model))
    for i, d in enumerate(layers[1:], 1):
        t = g.tensors[d["name"]]
        codes = np.clip(np.rint(run_exported(layers[: i + 1], x) / t.scale), *t.qrange)
        np.testing.assert_array_equal(ref[d["name"]].reshape(codes.shape), codes.astype(np.int64))
    np.testing.assert_array_equal(logits.argmax(1), run_exported(layers, x).argmax(1))
    # Training ends BN-folded with int32-grid biases: the trained model itself and its
    # float64 export give the machine's classes.
    np.testing.assert_array_equal(logits.argmax(1), model.predict(x))
    np.testing.assert_array_equal(logits.argmax(1), fake_quant_predict(model, x))


def test_graph_structure_and_quantization(small):
    """Weights NHWC [KH, KW, Cin, Cout]; each tensor takes its reader's LSQ input quantizer;
    the logits are signed 16-bit; the bias is round(bias / (s_in * s_w))."""
    arch, w, a, kw = CASES["cnn_w4a4"]
    model = _trained(small, arch, w, a, **kw)
    layers = export_layers(model)
    g = model_to_graph(model, batch=3, calib_x=small.x_train)
    assert [type(n).__name__ for n in g.nodes] == [
        "Quantize",
        "QuantConv2d",
        "QuantConv2d",
        "MaxPool",
        "Flatten",
        "QuantLinear",
    ]
    assert g.tensors["input"].shape == (3, 8, 8, 1)
    conv1, conv2, lin = layers[1], layers[2], layers[-1]
    assert g.node("conv2d1").weight.shape == (3, 3, 1, 4)
    np.testing.assert_array_equal(g.node("conv2d1").weight.reshape(9, 4), conv1["w_int"])
    t_in, t1 = g.tensors["input_q"], g.tensors["conv2d1"]
    assert (t_in.bits, t_in.mode, t_in.scale) == (8, "unsigned", conv1["act_scale"])
    assert (t1.bits, t1.mode, t1.scale) == (4, "unsigned", conv2["act_scale"])
    assert g.tensors["maxpool2d1"].scale == lin["act_scale"]
    out = g.tensors[g.outputs[0]]
    assert (out.bits, out.mode) == (16, "signed")
    want = np.rint(conv1["bias"] / (conv1["act_scale"] * conv1["w_scale"])).astype(np.int32)
    np.testing.assert_array_equal(g.node("conv2d1").bias, want)
    # calibrated logits use their range: the largest |logit| on the calibration set is
    # 1/CALIB_MARGIN of full scale, far finer than the worst-case bound
    q_cal = assign_quant(layers, small.x_train)[lin["name"]]
    q_bound = assign_quant(layers, None)[lin["name"]]
    assert q_cal[2] < q_bound[2]


def test_residual_and_global_pool_lower_exactly(small):
    """A residual block (Add) and a global-average-pool head also run bit-exactly; the body
    output and the pool input, read by no GEMM, are 16-bit."""
    model = _trained(small, "cnn", 2, 2, channels=(4, 8), residual=True, head="gap")
    g = model_to_graph(model, batch=1, calib_x=small.x_train)
    kinds = [type(n).__name__ for n in g.nodes]
    assert "Add" in kinds and "GlobalAvgPool" in kinds
    add = next(n for n in g.nodes if type(n).__name__ == "Add")
    assert {g.tensors[i].bits for i in add.inputs} == {2, 16}
    res = run_model(g, load_config("edge"), small.x_test[:4], check=True)
    assert res.check_ok, res.check_message


def test_float_model_is_rejected(small):
    cfg = TrainConfig(fp_epochs=1, model_kwargs={"hidden": (8,)})
    model, _ = train(small, "mlp", "fp", epochs=1, progress=False, config=cfg)
    with pytest.raises(AccelsimError, match="not quantized"):
        model_to_graph(model)
    with pytest.raises(AccelsimError, match="start with the input"):
        layers_to_graph([])


def test_saved_file_is_a_native_model(small, tmp_path):
    model = _trained(small, "mlp", 4, 4, hidden=(8,))
    g = model_to_graph(model, batch=1, calib_x=small.x_train)
    save_model(g, tmp_path / "a.npz")
    save_model(load_model(tmp_path / "a.npz"), tmp_path / "b.npz")
    assert (tmp_path / "b.npz").stat().st_size > 0
    assert load_model(tmp_path / "b.npz").summary() == g.summary()
