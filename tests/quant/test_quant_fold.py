"""Batch-norm folding inside the training model: the folded model is the exported network with
int32 biases, it round-trips through its spec, and training ends on it."""

import numpy as np
import pytest

from accelsim.errors import AccelsimError
from accelsim.quant.export import export_layers, run_exported
from accelsim.quant.fold import fold_batchnorm
from accelsim.quant.layers import BatchNorm
from accelsim.quant.models import (
    build_model,
    calibrate,
    cnn,
    load_state_dict,
    mlp,
    quantize,
    state_dict,
)
from accelsim.quant.to_ir import integer_bias_layers

MODELS = {
    "cnn_residual": lambda: cnn(residual=True, channels=(4, 8), seed=3),
    "mlp": lambda: mlp(hidden=(16, 8), seed=4),
}


def _quantized(digits, randomise_bn, arch, w_bits, a_bits, per_channel):
    model = MODELS[arch]()
    randomise_bn(model, 5)
    q = quantize(model, w_bits, a_bits, per_channel=per_channel)
    calibrate(q, digits.x_train[:64])
    return q


def _int_bias(d: dict) -> np.ndarray:
    return np.rint(d["bias"] / (d["act_scale"] * d["w_scale"])).astype(np.int64)


@pytest.mark.parametrize("arch", sorted(MODELS))
@pytest.mark.parametrize("w_bits, a_bits, per_channel", [(1, 2, True), (2, 2, False), (4, 4, True)])
def test_folded_model_is_the_export_with_int32_biases(
    digits, randomise_bn, arch, w_bits, a_bits, per_channel
):
    """Folding in the model gives the same integer weights, weight scales and int32 biases as
    folding at export time and rounding the bias (`integer_bias_layers`), and the folded model's
    own eval-mode classes are those of that export."""
    q = _quantized(digits, randomise_bn, arch, w_bits, a_bits, per_channel)
    folded = fold_batchnorm(q)
    assert folded.spec["folded"] and not q.spec.get("folded")
    assert not any(isinstance(m, BatchNorm) for m in folded.modules())
    assert any(isinstance(m, BatchNorm) for m in q.modules())  # the input model is untouched
    want = integer_bias_layers(export_layers(q))
    got = export_layers(folded)
    assert [d["type"] for d in got] == [d["type"] for d in want]
    for g, w in zip(got, want):
        if g["type"] in ("conv2d", "linear"):
            np.testing.assert_array_equal(g["w_int"], w["w_int"])
            np.testing.assert_allclose(g["w_scale"], w["w_scale"], rtol=1e-7)  # float32 steps
            np.testing.assert_array_equal(_int_bias(g), _int_bias(w))
    x = digits.x_test[:100]
    # The folded model's own forward (not the export, which shares `bias_value`) computes the
    # export of the unfolded model with int32 biases: float-bias logits would be off by up to
    # half an accumulator unit per layer.
    np.testing.assert_allclose(folded.logits(x), run_exported(want, x), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(folded.predict(x), run_exported(got, x).argmax(axis=1))


def test_per_tensor_step_becomes_per_channel_with_its_gradient_scale(digits, randomise_bn):
    """A per-tensor weight step turns into one step per output channel |a[c]|*s; the LSQ gradient
    scale follows N = K weights per step: g = 1/sqrt(K*Q_P) (K = 64 inputs, Q_P = 1 ternary)."""
    q = _quantized(digits, randomise_bn, "mlp", 2, 2, per_channel=False)
    first = q.gemms()[0]
    bn = q.layers[2]
    assert isinstance(bn, BatchNorm) and first.wq.step.value.shape == (1,)
    a = bn.gamma.value.astype(np.float64) / np.sqrt(bn.running_var + bn.eps)
    f = fold_batchnorm(q).gemms()[0]
    assert f.wq.per_channel and f.wq.step.value.shape == (16,)
    want = (first.wq.step.value[0] * np.abs(a)).astype(first.wq.step.value.dtype)
    np.testing.assert_array_equal(f.wq.step.value, want)
    assert f.wq.grad_scale == pytest.approx(1 / np.sqrt(64 * 1))
    assert f.quant_bias and f.b is not None
    assert all(g.quant_bias for g in fold_batchnorm(q).gemms())  # the classifier's bias too


def test_folded_state_round_trip(digits, randomise_bn):
    """`build_model(spec)` of a folded model rebuilds the folded layout; its state loads back and
    gives identical logits."""
    folded = fold_batchnorm(_quantized(digits, randomise_bn, "cnn_residual", 2, 2, True))
    fresh = load_state_dict(build_model(folded.spec), state_dict(folded))
    x = digits.x_test[:50]
    np.testing.assert_array_equal(fresh.logits(x), folded.logits(x))
    assert sorted(state_dict(fresh)) == sorted(state_dict(folded))


def test_fold_rejects_a_float_model():
    with pytest.raises(AccelsimError, match="not quantized"):
        fold_batchnorm(mlp(hidden=(8,)))
