"""workloads/trained_table.py: the Markdown table from `accelsim train --json` metrics."""

import json

from workloads.trained_table import main, table

FP = {
    "dataset": "digits",
    "model": "cnn",
    "method": "fp",
    "w_bits": None,
    "a_bits": None,
    "test_accuracy": 0.99,
}
Q = {
    "dataset": "digits",
    "model": "cnn",
    "method": "lsq",
    "w_bits": 2,
    "a_bits": 2,
    "test_accuracy": 0.98,
    "simulated_accuracy": 0.985,
    "simulated_images": 359,
    "disagreements": 3,
    "disagreements_int_bias": 0,
    "latency_cycles_per_image": 3177,
    "energy_pj_per_image": 3.965e6,
}


def test_table_rows():
    lines = table([FP, Q]).splitlines()
    assert len(lines) == 4
    assert lines[2] == "| digits | cnn | fp | fp | 99.00 | - | - | - | - |"
    assert lines[3] == "| digits | cnn | lsq | 2/2 | 98.00 | 98.50 | 3 of 359 | 3177 | 3.96 |"


def test_from_json(tmp_path, capsys):
    paths = []
    for i, m in enumerate((FP, Q)):
        p = tmp_path / f"{i}.json"
        p.write_text(json.dumps(m))
        paths.append(str(p))
    main(["--from-json", *paths])
    assert "| digits | cnn | lsq | 2/2 |" in capsys.readouterr().out
