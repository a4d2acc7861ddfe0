"""The trainer on a tiny slice of digits: loss decreases, seeds reproduce, ULQ stages, Ctrl-C."""

import numpy as np
import pytest

import accelsim.quant.trainer as train_mod
from accelsim.quant.data import Dataset, load_dataset
from accelsim.quant.layers import BatchNorm
from accelsim.quant.models import state_dict
from accelsim.quant.trainer import TrainConfig, stage_epochs, train, ulq_stages

TINY = TrainConfig(
    batch_size=32, fp_epochs=2, fp_lr=0.05, q_lr=0.01, shift_px=1, model_kwargs={"channels": (4, 8)}
)


@pytest.fixture(scope="module")
def tiny():
    d = load_dataset("digits")
    return Dataset("digits", d.x_train[:256], d.y_train[:256], d.x_test[:100], d.y_test[:100])


def test_ulq_stages_and_epoch_split():
    assert ulq_stages(2, 2) == [(8, 8), (4, 4), (2, 2)]
    assert ulq_stages(1, 2) == [(8, 8), (4, 4), (2, 2), (1, 2)]
    assert ulq_stages(3, 3) == [(8, 8), (4, 4), (3, 3)]
    assert ulq_stages(8, 8) == [(8, 8)]
    assert ulq_stages(1, 2, start_bits=4) == [(4, 4), (2, 2), (1, 2)]
    assert ulq_stages(4, 4, start_bits=4) == [(4, 4)]
    assert stage_epochs(10, 3, 0.5) == [3, 2, 5]
    assert stage_epochs(7, 1, 0.5) == [7]
    assert sum(stage_epochs(31, 4, 0.5)) == 31


def test_fp_loss_decreases_and_reproduces(tiny):
    model, m = train(tiny, "cnn", "fp", epochs=3, seed=1, progress=False, config=TINY)
    losses = m["stages"][0]["losses"]
    assert losses[-1] < losses[0]
    assert m["test_accuracy"] > 0.3 and not m["interrupted"]
    again, _ = train(tiny, "cnn", "fp", epochs=3, seed=1, progress=False, config=TINY)
    a, b = state_dict(model), state_dict(again)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.parametrize("method, w_bits, a_bits", [("lsq", 2, 2), ("ulq", 1, 2)])
def test_quantized_training_runs(tiny, method, w_bits, a_bits):
    """ULQ W1A2 starts at twice the weight width: stages 2/2 (4 epochs) and 1/2 (the last
    third of 6 epochs), then the folded fine-tune; LSQ one 6-epoch stage, then the same."""
    cfg = TrainConfig(
        batch_size=32,
        warmup_epochs=0,
        fp_lr=0.1,
        q_lr=0.02,
        fold_epochs=2,
        ulq_last_fraction=1 / 3,
        model_kwargs={"hidden": (32,)},
    )
    teacher, _ = train(tiny, "mlp", "fp", epochs=4, seed=0, progress=False, config=cfg)
    model, m = train(
        tiny,
        "mlp",
        method,
        a_bits,
        w_bits,
        epochs=6,
        seed=0,
        progress=False,
        config=cfg,
        teacher=teacher,
    )
    *stages, fold = m["stages"]
    assert stages[-1]["w_bits"] == fold["w_bits"] == w_bits
    assert stages[-1]["a_bits"] == fold["a_bits"] == a_bits
    assert fold["folded"] and fold["epochs"] == len(fold["losses"]) == cfg.fold_epochs
    assert model.spec["quant"]["w_bits"] == w_bits and model.spec["folded"]
    assert not any(isinstance(layer, BatchNorm) for layer in model.modules())
    assert m["test_accuracy"] > 0.4
    widths = [(s["w_bits"], s["a_bits"]) for s in stages]
    assert widths == ([(2, 2), (1, 2)] if method == "ulq" else [(2, 2)])
    assert [s["epochs"] for s in stages] == ([4, 2] if method == "ulq" else [6])
    # Each stage starts on weights trained at other widths (or in fp): its loss must fall.
    for stage in stages:
        assert stage["losses"][-1] < stage["losses"][0], stage


def test_keyboard_interrupt_returns_last_epoch(tiny, monkeypatch):
    """Ctrl-C in the 3rd epoch (call 17 of shift_augment, 8 batches per epoch) stops cleanly."""
    calls = {"n": 0}
    real = train_mod.shift_augment

    def flaky(x, p, rng):
        calls["n"] += 1
        if calls["n"] == 17:
            raise KeyboardInterrupt
        return real(x, p, rng)

    monkeypatch.setattr(train_mod, "shift_augment", flaky)
    model, m = train(tiny, "cnn", "fp", epochs=5, seed=0, progress=False, config=TINY)
    assert m["interrupted"] and len(m["stages"][0]["losses"]) == 2
    assert np.isfinite(model.logits(tiny.x_test)).all()


def test_bad_method():
    with pytest.raises(train_mod.AccelsimError, match="method"):
        train("digits", "cnn", "sgd", progress=False)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_and_mse_gradients(smoothing):
    rng = np.random.default_rng(0)
    z, t, y = rng.standard_normal((4, 5)), rng.standard_normal((4, 5)), np.array([0, 3, 1, 4])
    loss, dz = train_mod.cross_entropy(z, y, smoothing)
    _, dm = train_mod.mse(z, t)
    num_ce, num_mse = np.zeros_like(z), np.zeros_like(z)
    for i in np.ndindex(z.shape):
        e = np.zeros_like(z)
        e[i] = 1e-6
        num_ce[i] = (
            train_mod.cross_entropy(z + e, y, smoothing)[0]
            - train_mod.cross_entropy(z - e, y, smoothing)[0]
        ) / 2e-6
        num_mse[i] = (train_mod.mse(z + e, t)[0] - train_mod.mse(z - e, t)[0]) / 2e-6
    np.testing.assert_allclose(dz, num_ce, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(dm, num_mse, rtol=1e-5, atol=1e-8)
    if smoothing == 0.0:
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(loss, -np.log(p[np.arange(4), y]).mean())


def test_training_runs_with_one_blas_thread(tiny, monkeypatch):
    """Training runs under `blas_threads` = 1 BLAS thread inside a caller that allows 2 (float
    sums, and so the trained weights, depend on the thread count); the caller's limit is back
    afterwards."""
    from threadpoolctl import threadpool_info, threadpool_limits

    seen = []
    real = train_mod._fit

    def spy(*args, **kwargs):
        seen.append({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"})
        return real(*args, **kwargs)

    monkeypatch.setattr(train_mod, "_fit", spy)
    cfg = TrainConfig(batch_size=64, fp_epochs=1, blas_threads=1, model_kwargs={"hidden": (8,)})
    with threadpool_limits(limits=2, user_api="blas"):
        train(tiny, "mlp", "fp", epochs=1, seed=0, progress=False, config=cfg)
        after = {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}
    assert seen == [{1}]
    assert after == {2}


def test_bias_only_fine_tune_after_folding_keeps_the_weights(tiny):
    """fold_train="bias": the fine-tune after folding moves the biases only, so the integer
    weights and all steps equal those of folding alone (fold_epochs 0)."""
    base = {
        "batch_size": 32,
        "warmup_epochs": 0,
        "fp_lr": 0.1,
        "q_lr": 0.02,
        "model_kwargs": {"hidden": (32,)},
    }
    teacher, _ = train(
        tiny, "mlp", "fp", epochs=2, seed=0, progress=False, config=TrainConfig(**base)
    )
    runs = {}
    for name, extra in {"fold": {}, "bias": {"fold_epochs": 2, "fold_train": "bias"}}.items():
        runs[name], m = train(
            tiny,
            "mlp",
            "lsq",
            2,
            2,
            epochs=2,
            seed=0,
            progress=False,
            config=TrainConfig(**base, **extra),
            teacher=teacher,
        )
        assert m["stages"][-1]["epochs"] == extra.get("fold_epochs", 0)
    a, b = state_dict(runs["fold"]), state_dict(runs["bias"])
    assert sorted(a) == sorted(b)
    assert any(key.endswith(".b") for key in a)  # the biases below exist
    for key in a:
        if key.endswith(".b"):
            assert not np.array_equal(a[key], b[key]), key
        else:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    with pytest.raises(ValueError, match="fold_train"):  # at construction, before training
        TrainConfig(**base, fold_epochs=1, fold_train="weights")
