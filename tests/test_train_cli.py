"""`accelsim train` on a tiny budget: files, metrics keys, teacher reuse, and bad arguments."""

import json

import numpy as np
import pytest

from accelsim.cli import main
from accelsim.frontend.native import load_model
from accelsim.quant.checkpoint import load_checkpoint

KEYS = (
    "test_accuracy",
    "simulated_accuracy",
    "disagreements",
    "disagreements_export",
    "disagreements_int_bias",
    "reference_exact",
    "w_bits",
    "a_bits",
    "method",
    "dataset",
    "seconds",
    "latency_cycles_per_image",
    "latency_ms_per_image",
    "energy_pj_per_image",
)


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """An fp MLP checkpoint trained for one epoch."""
    path = tmp_path_factory.mktemp("teacher") / "fp.npz"
    code = main(
        [
            "train",
            "--model",
            "mlp",
            "--method",
            "fp",
            "--epochs",
            "1",
            "-o",
            str(path),
            "--no-progress",
        ]
    )
    assert code == 0
    return path


def test_fp_writes_a_checkpoint(teacher):
    model = load_checkpoint(teacher)
    assert model.spec["arch"] == "mlp" and not model.spec.get("quant")


def test_lsq_writes_native_model_and_metrics(capsys, tmp_path, teacher):
    out, js = tmp_path / "m.npz", tmp_path / "m.json"
    code, text, err = _run(
        capsys,
        "train",
        "--model",
        "mlp",
        "--method",
        "lsq",
        "--bits",
        "2/1",
        "--epochs",
        "1",
        "--teacher",
        str(teacher),
        "--sim-images",
        "24",
        "-o",
        str(out),
        "--json",
        str(js),
        "--no-progress",
    )
    assert code == 0, err
    assert "machine" in text and "disagreements" in text
    doc = json.loads(js.read_text())
    for key in KEYS:
        assert key in doc, key
    assert (doc["w_bits"], doc["a_bits"], doc["method"]) == (1, 2, "lsq")
    assert doc["reference_exact"] is True
    assert doc["simulated_images"] == 24
    # The returned model is BN-folded with int32-grid biases: all three references agree.
    assert doc["disagreements"] == doc["disagreements_export"] == doc["disagreements_int_bias"] == 0
    assert 0 <= doc["simulated_accuracy"] <= 1 and doc["latency_cycles_per_image"] > 0
    g = load_model(out)
    assert g.tensors[g.input].shape == (1, 8, 8, 1)
    w = next(n for n in g.nodes if type(n).__name__ == "QuantLinear")
    assert w.w_mode == "bipolar" and set(np.unique(w.weight)) <= {-1, 1}


def test_one_bit_activations_train_and_run_exactly(capsys, tmp_path, teacher):
    """A/W = 1/2: every activation after the input follows a ReLU, so it is an unsigned
    1-bit code {0, 1}; the machine runs it exactly like the trained model."""
    out, js = tmp_path / "m.npz", tmp_path / "m.json"
    code, _, err = _run(
        capsys,
        *("train", "--model", "mlp", "--method", "lsq", "--bits", "1/2", "--epochs", "1"),
        *("--teacher", str(teacher), "--sim-images", "24", "-o", str(out), "--json", str(js)),
        "--no-progress",
    )
    assert code == 0, err
    doc = json.loads(js.read_text())
    assert (doc["a_bits"], doc["w_bits"]) == (1, 2)
    assert doc["reference_exact"] is True and doc["disagreements"] == 0
    g = load_model(out)
    fc2 = [n for n in g.nodes if type(n).__name__ == "QuantLinear"][1]
    t = g.tensors[fc2.inputs[0]]
    assert (t.bits, t.mode) == (1, "unsigned")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--bits", "9/4"], "widths must be 1..8"),
        (["--bits", "four"], "A/W"),
        (["--dataset", "cifar"], "invalid choice"),
        (["--epochs", "0"], "positive integer"),
        (["--teacher", "/nonexistent/fp.npz"], "does not exist"),
        (["-o", "/nonexistent/dir/m.npz"], "output directory"),
        (["--config", "nosuchchip"], "nosuchchip"),
    ],
)
def test_bad_arguments_give_one_clear_error(capsys, tmp_path, argv, message):
    base = ["train", "--model", "mlp", "--epochs", "1", "-o", str(tmp_path / "m.npz")]
    try:
        code = main(base + argv)
    except SystemExit as exc:  # argparse errors exit 2 with a usage line
        code = exc.code
    _, err = capsys.readouterr()
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "m.npz").exists()
