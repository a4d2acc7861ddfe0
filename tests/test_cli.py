"""The `accelsim` command as a new user meets it: the default run, files, and bad input."""

import json

import numpy as np
import pytest

from accelsim.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_builtin_workload_prints_table_and_writes_json(capsys, tmp_path):
    out_json = tmp_path / "r.json"
    code, out, err = _run(capsys, "run", "mlp", "--bits", "4/4", "--json", str(out_json), "--check")
    assert code == 0, err
    assert "fc1" in out and "latency" in out and "TOPS/W" in out
    assert "check passed" in out
    doc = json.loads(out_json.read_text())
    for key in ("latency_cycles", "latency_ms", "dram_bytes", "energy_pj", "macs", "layers"):
        assert key in doc
    assert [r["name"] for r in doc["layers"]] == ["fc1", "fc2", "logits"]
    for row in doc["layers"]:
        assert {"name", "cycles", "macs", "dram_bytes", "energy_pj"} <= set(row)
    assert doc["macs"] == sum(r["macs"] for r in doc["layers"])
    assert doc["energy_pj"] == pytest.approx(sum(doc["energy_by_component_pj"].values()))


def test_compile_disasm_and_csv(capsys, tmp_path):
    prog = tmp_path / "p.npz"
    code, out, err = _run(capsys, "compile", "mlp", "-o", str(prog))
    assert code == 0, err
    code, out, err = _run(capsys, "disasm", str(prog))
    assert code == 0 and out.splitlines()[-1].startswith("FINISH")
    assert any(line.startswith("GEMM") for line in out.splitlines())
    csv = tmp_path / "r.csv"
    code, out, err = _run(capsys, "run", "mlp", "--timing-only", "--csv", str(csv))
    assert code == 0 and csv.read_text().startswith("name,cycles")


def test_compile_sparse_workload(capsys, tmp_path):
    """A sparse model compiles for its generated scene: map and conv instructions."""
    prog = tmp_path / "s.npz"
    code, out, err = _run(capsys, "compile", "sparse_tiny", "-o", str(prog))
    assert code == 0, err
    code, out, err = _run(capsys, "disasm", str(prog))
    ops = {line.split()[0] for line in out.splitlines()}
    assert code == 0 and {"SVG_MAP", "SVG_CONV", "RESCALE", "FINISH"} <= ops


def test_run_with_input_file(capsys, tmp_path):
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).random((1, 64)))
    code, out, err = _run(capsys, "run", "mlp", "--input", str(x), "--check")
    assert code == 0 and "check passed" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "missing_model.npz"], "does not exist"),
        (["run", "no_such_workload"], "neither a model file nor a built-in workload"),
        (["run", "mlp", "--set", "matmul.bogus=1"], "unknown key matmul.bogus"),
        (["run", "mlp", "--config", "nope"], "no such file or preset"),
        (["run", "mlp", "--input", "missing.npy"], "does not exist"),
        (["disasm", "missing.npz"], "no such file"),
    ],
)
def test_bad_input_gives_one_clear_message(capsys, argv, message):
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_wrong_input_shape(capsys, tmp_path):
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 3, 3)))
    code, out, err = _run(capsys, "run", "mlp", "--input", str(x))
    assert code == 2 and "expects" in err and "(1, 64)" in err


def test_a_hardware_limit_is_refused_with_the_node_named(capsys, tmp_path):
    """An average pool with padding (once refused) runs exactly; the same model on MACs of at
    most 4 bits is refused, naming the node and the limit."""
    from accelsim.frontend.native import save_model
    from accelsim.ir.builder import GraphBuilder

    b = GraphBuilder("padded_avg", (1, 6, 6, 4), np.random.default_rng(0))
    x = b.quantize(8, signed=False)
    x = b.avgpool(x, 3, stride=1, padding=1, name="pool_with_pad")
    x = b.conv(x, 4, 1, w_bits=8, bits=8, name="conv8")
    path = tmp_path / "m.npz"
    save_model(b.finish(x), path)
    code, out, err = _run(capsys, "run", str(path), "--check")
    assert code == 0 and "check passed" in out, err
    code, out, err = _run(capsys, "run", str(path), "--set", "matmul.max_bits=4")
    assert code == 2 and "'conv8'" in err and "exceed matmul.max_bits = 4" in err


def test_output_path_problems_are_clear_errors(capsys, tmp_path):
    code, out, err = _run(capsys, "run", "mlp", "--timing-only", "--json", str(tmp_path))
    assert code == 2 and "is a directory" in err and "Traceback" not in err
    code, out, err = _run(capsys, "compile", "mlp", "-o", str(tmp_path))
    assert code == 2 and "is a directory" in err


def test_check_with_timing_only_is_skipped_not_failed(capsys):
    code, out, err = _run(capsys, "run", "mlp", "--timing-only", "--check")
    assert code == 0 and "check skipped" in out


def test_workloads_lists_builtins(capsys):
    code, out, err = _run(capsys, "workloads")
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()}
    names = ("small_cnn", "mlp", "resnet18", "resnet50", "mobilenet_v2", "vgg16")
    for name in (*names, "gemm:M,N,K", "FILE.csv"):
        assert len(lines[name].split()) > 3, name  # a one-line description follows


def test_image_size_on_run_and_compile(capsys, tmp_path):
    code, out, err = _run(capsys, "run", "small_cnn", "--image-size", "8", "--timing-only")
    assert code == 0, err
    assert out.startswith("model small_cnn_8x8 on edge")
    prog = tmp_path / "p.npz"
    code, out, err = _run(capsys, "compile", "resnet18", "--image-size", "32", "-o", str(prog))
    assert code == 0, err
    from accelsim.program import Program

    assert Program.load(prog).inputs["input"].shape == (1, 32, 32, 3)
    with pytest.raises(SystemExit):
        main(["run", "small_cnn", "--image-size", "0"])
    assert "--image-size expects a positive integer" in capsys.readouterr().err


def test_gemm_workload_runs_exactly(capsys, tmp_path):
    out_json = tmp_path / "g.json"
    code, out, err = _run(
        capsys, "run", "gemm:12,20,40", "--bits", "3/5", "--check", "--json", str(out_json)
    )
    assert code == 0 and "check passed" in out, err
    doc = json.loads(out_json.read_text())
    (row,) = doc["layers"]
    assert row["name"] == "gemm_12x20x40" and row["macs"] == 12 * 20 * 40
    assert row["compute_cycles"] == row["busy_cycles_matmul"] > 0


def test_topology_file_runs_one_row_per_layer(capsys, tmp_path):
    """Two GEMM rows on scalesim32 (OS, 32x32): A (M, K, N) = (64, 32, 40): 2 * 2 * (32 + 62)
    = 376 compute cycles; B (10, 100, 8): 1 * 1 * (100 + 62) = 162."""
    topo = tmp_path / "two.csv"
    topo.write_text("Layer, M, N, K,\nA, 64, 40, 32,\nB, 10, 8, 100,\n")
    rows_csv = tmp_path / "rows.csv"
    argv = ["run", str(topo), "--config", "scalesim32", "--timing-only", "--csv", str(rows_csv)]
    code, out, err = _run(capsys, *argv)
    assert code == 0, err
    assert out.startswith("model two on scalesim32")
    import csv

    with rows_csv.open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["name"], int(r["compute_cycles"])) for r in rows] == [("A", 376), ("B", 162)]
    assert {"busy_cycles_load", "busy_cycles_svge", "stall_dram_cycles"} <= set(rows[0])
    code, out, err = _run(capsys, "run", str(topo), "--check", "--bits", "2/2")
    assert code == 0 and "check passed: the outputs of all 2 layers" in out, err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "mlp", "--image-size", "32"], "'mlp' has no image size; --image-size applies"),
        (["run", "resnet18", "--image-size", "16"], "needs at least 32 pixels"),
        (["run", "m.npz", "--image-size", "32"], "not to the file 'm.npz'"),
        (["run", "gemm:4,4"], "expected gemm:M,N,K"),
        (["run", "gemm:4,0,4"], "three positive integers"),
        (["compile", "TOPO", "-o", "p.npz"], "is a SCALE-Sim topology of 1 independent"),
        (["run", "TOPO", "--trace", "t.json"], "--trace is not available for the topology"),
        (["run", "BAD", "--timing-only"], "line 2, column 3 (IFMAP Width)"),
    ],
)
def test_new_workload_errors_are_clear(capsys, tmp_path, argv, message):
    topo, bad = tmp_path / "t.csv", tmp_path / "bad.csv"
    topo.write_text("Layer,M,N,K,\nG,4,4,4,\n")
    bad.write_text(
        "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
        "Num Filter, Strides,\nC1,8,eight,3,3,1,1,1,\n"
    )
    argv = [{"TOPO": str(topo), "BAD": str(bad)}.get(a, a) for a in argv]
    code, out, err = _run(capsys, *argv)
    assert code == 2, out
    assert err.startswith("error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1
