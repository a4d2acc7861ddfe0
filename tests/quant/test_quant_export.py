"""Export for the integer hardware: integer ranges, BN folding, float reference, state
round trip."""

import numpy as np
import pytest

from accelsim.errors import AccelsimError
from accelsim.numeric import value_range
from accelsim.quant.export import export_layers, fake_quant_logits, fake_quant_predict
from accelsim.quant.models import (
    build_model,
    calibrate,
    cnn,
    load_state_dict,
    mlp,
    quantize,
    state_dict,
)


@pytest.mark.parametrize(
    "w_bits, a_bits, per_channel", [(1, 2, True), (2, 2, False), (4, 4, True), (8, 8, False)]
)
def test_export_int_ranges_and_fake_quant_matches_model(
    digits, randomise_bn, w_bits, a_bits, per_channel
):
    model = cnn(residual=True, channels=(4, 8), seed=3)
    randomise_bn(model, 1)
    q = quantize(model, w_bits, a_bits, per_channel=per_channel)
    calibrate(q, digits.x_train[:64])
    layers = export_layers(q)
    assert layers[0]["type"] == "input"
    gemms = [d for d in layers if d["type"] in ("conv2d", "linear")]
    assert len(gemms) == 5 and [d["type"] for d in layers].count("add") == 1
    for i, d in enumerate(gemms):
        lo, hi = value_range(d["w_bits"], d["w_mode"])
        assert d["w_int"].dtype == np.int8 and d["w_int"].shape == (
            np.prod(d.get("kernel", (1, 1))) * d["in_shape"][-1],
            d["out_shape"][-1],
        )
        assert lo <= d["w_int"].min() and d["w_int"].max() <= hi
        if w_bits == 1:
            assert set(np.unique(d["w_int"])) == {-1, 1}
        else:
            assert np.abs(d["w_int"]).max() <= 2 ** (w_bits - 1) - 1  # symmetric range
        assert np.all(d["w_scale"] > 0) and d["bias"].shape == (d["out_shape"][-1],)
        assert d["act_bits"] == (8 if i == 0 else a_bits)
        assert (d["act_qmin"], d["act_qmax"]) == value_range(d["act_bits"], d["act_mode"])
    assert gemms[0]["act_mode"] == "unsigned" and gemms[-1]["relu"] is False
    x = digits.x_test[:200]
    ref = q.logits(x)
    np.testing.assert_allclose(fake_quant_logits(q, x), ref, rtol=1e-4, atol=1e-3)
    top2 = np.sort(ref, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-3  # an untrained low-bit net has near-tied logits
    np.testing.assert_array_equal(fake_quant_predict(q, x)[clear], q.predict(x)[clear])


def test_export_rejects_float_model():
    with pytest.raises(AccelsimError, match="not quantized"):
        export_layers(mlp())


def test_mlp_export_shapes(digits):
    q = quantize(mlp(hidden=(16,)), 3, 3)
    calibrate(q, digits.x_train[:32])
    layers = export_layers(q)
    assert [d["type"] for d in layers] == ["input", "flatten", "linear", "linear"]
    assert layers[2]["w_int"].shape == (64, 16) and layers[2]["relu"] is True
    assert layers[3]["act_mode"] == "unsigned" and layers[3]["inputs"] == [layers[2]["name"]]


def test_state_dict_round_trip(digits, randomise_bn):
    q = quantize(cnn(channels=(4, 8), seed=2), 2, 2)
    randomise_bn(q, 2)
    calibrate(q, digits.x_train[:32])
    state = {k: v.copy() for k, v in state_dict(q).items()}
    fresh = build_model(q.spec)
    load_state_dict(fresh, state)
    x = digits.x_test[:50]
    np.testing.assert_array_equal(fresh.logits(x), q.logits(x))
    gemms = [(d0, d1) for d0, d1 in zip(export_layers(q), export_layers(fresh)) if "w_int" in d0]
    assert len(gemms) == len(q.gemms())
    for d0, d1 in gemms:
        np.testing.assert_array_equal(d0["w_int"], d1["w_int"])
    with pytest.raises(AccelsimError, match="missing"):
        load_state_dict(build_model(q.spec), {})


def test_input_quantizer_is_fixed_8bit_grid():
    """The first layer's input uses the fixed step 1/255 (not learned); others are learned."""
    q = quantize(cnn(channels=(4, 8)), 2, 2)
    first, second = q.gemms()[0], q.gemms()[1]
    assert first.aq.bits == 8 and not first.aq.trainable
    assert first.aq.step not in q.params() and second.aq.step in q.params()
    calibrate(q, np.random.default_rng(0).uniform(0, 1, (8, 8, 8, 1)).astype(np.float32))
    np.testing.assert_allclose(first.aq.step.value, [1 / 255])
