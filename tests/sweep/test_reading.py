"""The generated reading of a report, on hand-made result rows (the numbers in each expected
sentence are worked out from the rows)."""

from accelsim.plots.data import Results
from accelsim.sweep.reading import (
    _change,
    accuracy_reading,
    bits_reading,
    key_reading,
    mismatch_reading,
    num,
    pareto_reading,
    reading,
)


def _p(seq, bits, rows, latency_ms, energy_uj, **extra):
    return {
        "point_id": f"p{seq}",
        "seq": seq,
        "workload": "net",
        "bits": bits,
        "matmul.rows": rows,
        "matmul.cols": rows,
        "latency_ms": latency_ms,
        "energy_pj": energy_uj * 1e6,
        **extra,
    }


POINTS = [
    _p(0, "8/8", 8, 4.0, 40.0),
    _p(1, "8/8", 16, 2.0, 50.0),
    _p(2, "2/2", 8, 2.0, 10.0),
    _p(3, "2/2", 16, 1.0, 20.0),
]
META = {
    "name": "t",
    "swept": ["matmul.rows", "matmul.cols"],
    "zips": [["matmul.rows", "matmul.cols"]],
}


def test_change_words_and_numbers():
    assert _change([3.0, 3.0]) == "falls 3.00x"
    assert _change([0.5]) == "rises 2.00x"
    assert _change([1.0, 1.0002]) == "does not change"
    assert _change([2.0, 4.0, 2.5]) == "falls 2.00-4.00x (median 2.50x)"
    assert (num(0.015391), num(7.8351), num(16020.4)) == ("0.01539", "7.835", "16,020")


def test_bits_reading_per_setting_of_the_other_keys():
    """rows 8: energy 40/10 = 4x, latency 4/2 = 2x; rows 16: 50/20 = 2.5x, 2/1 = 2x."""
    res = Results("r", POINTS, META["swept"], META)
    (line,) = bits_reading(res)
    assert line.startswith("net: from 8/8 to 2/2 bits, energy falls 2.50-4.00x (median 3.25x)")
    assert "latency falls 2.00x" in line


def test_zip_group_is_one_dimension():
    """(8, 8): medians of 4 and 2 ms = 3 ms, of 40 and 10 µJ = 25 µJ; (16, 16): 1.5 ms, 35 µJ."""
    res = Results("r", POINTS, META["swept"], META)
    (line,) = key_reading(res, ["matmul.rows", "matmul.cols"])
    assert line == (
        "net, matmul.rows, matmul.cols: (8, 8): 3 ms / 25 µJ, (16, 16): 1.5 ms / 35 µJ "
        "(medians over the other settings); latency is lowest at (16, 16), energy at (8, 8)."
    )
    assert sum("matmul.rows, matmul.cols" in line for line in reading(res)) == 1


def test_pareto_and_accuracy_readings():
    """Front: p3 (1 ms, 20 µJ) and p2 (2 ms, 10 µJ); p0 and p1 are beaten."""
    pts = [dict(p, accuracy=a) for p, a in zip(POINTS, (0.99, 0.99, 0.95, 0.96))]
    res = Results("r", pts, META["swept"], META)
    (front,) = pareto_reading(res)
    assert front.startswith("net: Pareto front (no other point both faster and cheaper) 2 of 4")
    assert front.index("2/2, rows=16, cols=16 (1 ms, 20 µJ)") < front.index("2/2, rows=8")
    (acc,) = accuracy_reading(res)
    assert acc == (
        "net: test accuracy on the machine 99.00% at 8/8, 95.00-96.00% at 2/2 "
        "(3.50 points lost from 8/8 to 2/2)."
    )


def test_mismatch_reading_shares_and_energy():
    pts = [
        _p(
            0,
            "8/8",
            8,
            1.0,
            1.0,
            **{"rescale.round_mode": "tflite"},
            rescale_mismatch_vs_rne=25,
            rescale_outputs=1000,
            energy_rescale_pj=2e6,
        ),
        _p(
            1,
            "8/8",
            8,
            1.0,
            1.0,
            **{"rescale.round_mode": "rne"},
            rescale_mismatch_vs_rne=0,
            rescale_outputs=1000,
            energy_rescale_pj=2e6,
        ),
    ]
    res = Results("r", pts, ["rescale.round_mode"], {"swept": ["rescale.round_mode"]})
    assert mismatch_reading(res) == [
        "rescale.round_mode=tflite: 25 outputs differ from round-half-even (2.500% of 1,000 "
        "outputs); rescale energy 2 µJ over 1 points.",
        "rescale.round_mode=rne: 0 outputs differ from round-half-even (0.000% of 1,000 "
        "outputs); rescale energy 2 µJ over 1 points.",
    ]
