"""SCALE-Sim topology files: reading both formats, SCALE-Sim's layer meaning, per-layer rows
whose compute_cycles equal SCALE-Sim's formulas, and one clear error per bad file.

The rows below are copied from topologies shipped with scale-sim-v2: `conv_nets/Resnet18.csv`
(Conv1, Conv2_1a, Conv3_s, FC), `conv_nets/mobilenet.csv` (Conv2, a "depthwise" row written as
a dense conv of 32 channels to 1 filter), `GEMM_mnk/gpt2.csv` (QKT, QKTV) and
`GEMM_mnk/test_mnk_input.csv` (Test 1), plus one row named "DP" (SCALE-Sim's depthwise mode).
"""

import numpy as np
import pytest

from accelsim.config import load_config
from accelsim.errors import ModelFormatError
from accelsim.ir import QuantConv2d, QuantLinear
from accelsim.report import summarize
from accelsim.runner import run_model
from accelsim.sequence import run_sequence
from tests.workloads.conftest import scalesim_cycles
from workloads.topology import read_topology

CONV_FILE = """\
Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,
Conv1,224,224,7,7,3,64,2,
Conv2_1a,56,56,3,3,64,64,1,
Conv3_s,56,56,1,1,64,128,2,
FC,1,1,1,1,512,1000,1,
Conv2,  112, 112,    3, 3,      32,      1,     1,

Conv2_DP,112,112,3,3,32,1,1,#dw
"""
GEMM_FILE = "Layer,M,N,K,\r\nQKT,1024,1024,64,\r\nQKTV,1024,64,1024,\r\nTest 1, 128, 64, 256,"


def _models(topo, seed=0, bits=(8, 8)):
    for g in topo.graphs(bits, seed):
        yield g, np.random.default_rng(seed).random(g.tensors[g.input].shape)


def test_conv_file_is_read_with_scalesim_meaning(tmp_path):
    """Output side ceil((H - Fh) / S) + 1 (SCALE-Sim's topo_calc_hyperparams):
    Conv1 ceil(217 / 2) + 1 = 110; Conv2_1a 54; Conv3_s ceil(55 / 2) + 1 = 29; FC 1x1;
    Conv2 110 (32 channels to 1 filter, K = 288); Conv2_DP: depthwise, 32 channels."""
    path = tmp_path / "nets.csv"
    path.write_text(CONV_FILE)
    topo = read_topology(path)
    assert topo.name == "nets" and topo.kind == "conv"
    assert [layer.name for layer in topo.layers] == [
        "Conv1", "Conv2_1a", "Conv3_s", "FC", "Conv2", "Conv2_DP"
    ]  # fmt: skip
    assert [layer.line for layer in topo.layers] == [2, 3, 4, 5, 6, 8]
    assert topo.layers[0].dims == (224, 224, 7, 7, 3, 64, 2)
    assert [layer.depthwise for layer in topo.layers] == [False] * 5 + [True]
    graphs = list(topo.graphs())
    convs = [next(n for n in g.nodes if isinstance(n, QuantConv2d)) for g in graphs]
    outs = [g.tensors[c.output].shape for g, c in zip(graphs, convs)]
    assert outs == [
        (1, 110, 110, 64),
        (1, 54, 54, 64),
        (1, 29, 29, 128),
        (1, 1, 1, 1000),
        (1, 110, 110, 1),
        (1, 110, 110, 32),
    ]
    assert convs[0].padding == (0, 1, 0, 1)  # the last window overhangs by 1: zero padding
    assert graphs[0].tensors["input"].shape == (1, 224, 224, 3)
    assert graphs[2].tensors["input"].shape == (1, 57, 57, 64)  # a 1x1 window past the edge
    assert convs[5].groups == 32 and convs[5].weight.shape == (3, 3, 1, 32)
    assert not np.array_equal(convs[1].weight[..., :3, :3], convs[0].weight[:3, :3, :3, :3])


def test_conv_rows_compute_cycles_equal_scalesim(tmp_path):
    """scalesim32 (32 x 32, OS), one GEMM per row, SCALE-Sim's (M, K, N):
    Conv1 (12100, 147, 64): ceil(12100/32) * 2 * (147 + 62) = 379 * 2 * 209 = 158,422;
    Conv2_1a (2916, 576, 64): 92 * 2 * 638 = 117,392; Conv3_s (841, 64, 128): 27 * 4 * 126 =
    13,608; FC (1, 512, 1000): 1 * 32 * 574 = 18,368; Conv2 (12100, 288, 1): 379 * 350 =
    132,650. Conv2_DP runs as 32 one-column problems packed on the columns, one GEMM of
    (12100, 9, 32): 379 * 1 * 71 = 26,909 cycles; SCALE-Sim runs it as 32 layers of
    (12100, 9, 1), 32 * 379 * 71 = 861,088 cycles, with the same 3,484,800 MACs.
    Layers run back to back: the latency is the sum of the rows' separate runs."""
    path = tmp_path / "nets.csv"
    path.write_text(CONV_FILE)
    cfg = load_config("scalesim32")
    res = run_sequence("nets", _models(read_topology(path)), cfg, count_only=True)
    rows = summarize(res, cfg)["layers"]
    assert res.layers == 6 and [r["name"] for r in rows][0] == "Conv1"
    got = {r["name"]: r["compute_cycles"] for r in rows}
    assert got == {
        "Conv1": 158_422,
        "Conv2_1a": 117_392,
        "Conv3_s": 13_608,
        "FC": 18_368,
        "Conv2": 132_650,
        "Conv2_DP": 26_909,
    }
    assert got["Conv1"] == scalesim_cycles("os", 12100, 147, 64)
    assert rows[-1]["macs"] == 12100 * 9 * 32 == 32 * 12100 * 9
    assert 32 * scalesim_cycles("os", 12100, 9, 1) == 861_088
    spans = [(r["start_cycle"], r["end_cycle"]) for r in res.stats.layer_rows()]
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # one after the other
    alone = [run_model(g, cfg, x, count_only=True).stats.latency_cycles for g, x in _models(
        read_topology(path))]  # fmt: skip
    assert res.stats.latency_cycles == sum(alone)


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_gemm_file_compute_cycles_equal_scalesim(tmp_path, dataflow):
    """SCALE-Sim's GEMM format (CRLF, trailing commas, no newline at the end): QKT
    (M, K, N) = (1024, 64, 1024), QKTV (1024, 1024, 64), Test 1 (128, 256, 64). OS by hand:
    QKT 32 * 32 * 126 = 129,024; QKTV 32 * 2 * 1086 = 69,504; Test 1 4 * 2 * 318 = 2,544."""
    path = tmp_path / "gpt2_part.csv"
    path.write_bytes(GEMM_FILE.encode())
    topo = read_topology(path)
    assert topo.kind == "gemm" and [layer.dims for layer in topo.layers] == [
        (1024, 1024, 64),
        (1024, 64, 1024),
        (128, 64, 256),
    ]
    g = next(topo.graphs())
    fc = next(n for n in g.nodes if isinstance(n, QuantLinear))
    assert fc.gemm_shape(g) == (1024, 64, 1024)
    cfg = load_config("scalesim32", [f"matmul.dataflow={dataflow}"])
    res = run_sequence(topo.name, _models(topo), cfg, count_only=True)
    got = [r["compute_cycles"] for r in summarize(res, cfg)["layers"]]
    want = [scalesim_cycles(dataflow, m, k, n) for m, n, k in (layer.dims for layer in topo.layers)]
    assert got == want
    if dataflow == "os":
        assert want == [129_024, 69_504, 2_544]


def test_topology_runs_bit_exact_at_low_bits(tmp_path):
    """Small rows (a stride overhang, a 1x1 stride-2 row, DP rows with one filter per channel:
    depthwise, and with two: a grouped conv of 3 groups) on edge at 3/2 bits."""
    path = tmp_path / "small.csv"
    path.write_text(
        "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
        "Num Filter, Strides,\nA,9,8,3,2,5,7,2,\nB_DP,6,6,3,3,4,1,1,\nA,6,6,1,1,4,3,2,\n"
        "C_DP,7,7,3,3,3,2,1,\n"
    )
    topo = read_topology(path)
    assert [layer.name for layer in topo.layers] == ["A", "B_DP", "A#2", "C_DP"]  # unique
    graphs = list(topo.graphs((3, 2), 1))
    assert {g.tensors[g.outputs[0]].bits for g in graphs} == {3}
    assert {g.tensors[g.nodes[1].inputs[0]].bits for g in graphs} == {3}
    assert all(g.nodes[1].w_bits == 2 for g in graphs)
    res = run_sequence(topo.name, _models(topo, 1, (3, 2)), load_config("edge"), check=True)
    assert res.check_ok, res.check_message
    assert "all 4 layers" in res.check_message


HEADER = (
    "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
    "Num Filter, Strides,\n"
)


@pytest.mark.parametrize(
    "text, where, message",
    [
        ("Name, A, B,\nx,1,2,\n", "line 1", "neither SCALE-Sim's convolution format"),
        (
            HEADER + "C1,224,224,7,x,3,64,2,\n",
            "line 2, column 5 (Filter Width)",
            "positive integer, got 'x'",
        ),
        (HEADER + "C1,224,224,7,7,3,0,2,\n", "line 2, column 7 (Num Filter)", "got '0'"),
        (HEADER + "C1,224,224,7,7,3,\n", "line 2, column 7 (Num Filter)", "expected 8 fields"),
        (HEADER + "\nC1,9,9,3,3,3,4,1,2,5,\n", "line 3, column 9", "unexpected field '2'"),
        (
            HEADER + "C1,5,5,7,3,1,1,1,\n",
            "line 2, column 4 (Filter Height)",
            "7 exceeds the IFMAP Height 5",
        ),
        (
            HEADER.replace("Strides,", "Stride height, Stride width,") + "C,9,9,3,3,1,1,2,1,\n",
            "line 2, column 9 (Stride width)",
            "one stride for both axes",
        ),
        (HEADER, "line 1", "no layer rows"),
        ("Layer,M,N,K,\nG1,4,4,4,\nG2,4,4,\n", "line 3, column 4 (K)", "expected 4 fields"),
        ("Layer,M,N,K,X,\n", "line 1, column 5", "unexpected column 'X'"),
        ("Layer name, IFMAP Height, IFMAP Width,\n", "line 1", "lacks column 'Filter Height'"),
        ("", "line 1", "empty file"),
    ],
)
def test_bad_files_name_file_line_and_column(tmp_path, text, where, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ModelFormatError) as info:
        read_topology(path)
    msg = str(info.value)
    assert msg.startswith(f"topology file {str(path)!r} {where}: "), msg
    assert message in msg


def test_header_variants_of_scalesim_files(tmp_path):
    """SCALE-Sim's own files carry a BOM, lower-case or misspelt names, a separate stride
    width (its write_topo_file header), blank or all-comma lines; all read the same."""
    path = tmp_path / "v.csv"
    path.write_bytes(
        "\ufeffLayer name,Ifmap height,ifmap width,filter height,filter width,channel,"
        "num filters,Stride height,Stride width,\n,,,,,,,\n\nC,9,9,3,3,2,4,2,2,\n".encode()
    )
    (layer,) = read_topology(path).layers
    assert (layer.name, layer.line, layer.dims) == ("C", 4, (9, 9, 3, 3, 2, 4, 2))
    path.write_text("Layer\tM\tN\tK\nG\t1\t2\t3\n")
    with pytest.raises(ModelFormatError, match="line 1: the header is neither"):
        read_topology(path)  # tab-separated: SCALE-Sim splits on commas only


def test_unreadable_files(tmp_path):
    with pytest.raises(ModelFormatError, match="does not exist"):
        read_topology(tmp_path / "missing.csv")
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"Layer,M,N,K,\n\xe9,1,1,1,\n")
    with pytest.raises(ModelFormatError, match="not UTF-8"):
        read_topology(path)
