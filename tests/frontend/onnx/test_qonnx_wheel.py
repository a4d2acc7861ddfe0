"""The ONNX files shipped inside the qonnx wheel: the quantized Brevitas ESPCN with a nearest
Resize runs exactly (qonnx executor = IR reference = machine); every other file is rejected
with one error naming the node and the reason (float layers, FloatQuant, three inputs)."""

import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest

from accelsim.errors import ModelFormatError
from accelsim.frontend.onnx import load_onnx
from accelsim.ir import conv_acc, rescale_params, run_node
from tests.frontend.onnx.nets import check, qonnx_run

qonnx = pytest.importorskip("qonnx")
DATA = Path(qonnx.__file__).parent / "data" / "onnx"
SMALL = (1, 3, 12, 12)  # the ESPCN models are fully convolutional: a small image suffices

REJECTED = {
    "bsd300x3-espcn/nn_resize/float_model.onnx": "no quantizer has quantized",
    "bsd300x3-espcn/subpixel/float_model.onnx": "no quantizer has quantized",
    "bsd300x3-espcn/subpixel/quant_model.onnx": "no quantizer has quantized",  # float input
    "eltwise_chanlast_testcase.onnx": "no quantizer has quantized",
    "floatquant_exec/qonnx_act_weight_fp8.onnx": "'FloatQuant'",
    "matmul_update/sdp.onnx": "the machine takes one model input",
    "mnist-conv/model.onnx": "no quantizer has quantized",
    "residual_block_clean.onnx": "no quantizer has quantized",
}
RUNS = {"bsd300x3-espcn/nn_resize/quant_model.onnx"}


def with_input_shape(path: Path, shape) -> onnx.ModelProto:
    """The model with a new fixed input shape (inferred shapes dropped)."""
    m = onnx.load(str(path))
    dims = m.graph.input[0].type.tensor_type.shape.dim
    for d, v in zip(dims, shape):
        d.ClearField("dim_param")
        d.dim_value = v
    del m.graph.value_info[:]
    for o in m.graph.output:
        o.type.tensor_type.ClearField("shape")
    return m


def test_every_shipped_file_is_accounted_for():
    found = {str(p.relative_to(DATA)) for p in DATA.rglob("*.onnx")}
    assert found == set(REJECTED) | RUNS


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_unsupported_files_give_one_clear_error(name):
    with pytest.raises(ModelFormatError, match=REJECTED[name]) as e:
        load_onnx(DATA / name, input_shape=SMALL if "espcn" in name else None)
    assert str(DATA / name) in str(e.value) and "\n" not in str(e.value)


def test_espcn_nearest_resize():
    """Brevitas ESPCN (Relu -> Quant uint8 -> 3 x [conv, BN, Relu, Quant 4/8 bit] -> nearest
    Resize x2 -> conv -> Relu -> Quant): BN folded into per-channel weight steps and biases,
    the Resize on the machine's DMA. The machine equals the IR reference exactly.

    Against the qonnx executor, each layer is fed qonnx's own input. Its float conv bias and BN
    offset become whole int32 accumulator units here; where the output step is finer than
    the accumulator grid (8-bit outputs of 4-bit x 4-bit layers: half a unit is up to 0.4 of
    an output level) an output whose value lies within that rounding of a tie lands one level
    off. Asserted: every difference is one level, and only where the rounded value is within
    half an accumulator unit of a tie; the input layer and the Upsample agree exactly."""
    model = with_input_shape(DATA / "bsd300x3-espcn/nn_resize/quant_model.onnx", SMALL)
    x = np.random.default_rng(0).uniform(-0.2, 1.2, SMALL).astype(np.float32)
    g = check(model, x, runner=qonnx_run, input_shape=SMALL, exact=False)
    kinds = [type(n).__name__ for n in g.nodes]
    assert kinds.count("QuantConv2d") == 4 and "Upsample" in kinds and "BatchNorm" not in kinds
    assert [type(n).__name__ for n in g.nodes[:2]] == ["HostUnary", "HostTranspose"]
    ctx = qonnx_context(model, x)
    diffs = []
    for node in g.nodes:
        if type(node).__name__ not in ("QuantConv2d", "Upsample"):
            continue
        src, dst = g.tensors[node.inputs[0]], g.tensors[node.output]
        xin = levels(ctx[node.inputs[0].split("#")[0]], src)
        got = run_node(node, [xin], g, round_mode="rne").astype(np.int64)
        want = levels(ctx[node.output.split("#")[0]], dst)
        bad = got != want
        assert np.all(np.abs(got - want) <= 1), node.name
        diffs.append(int(bad.sum()))
        if type(node).__name__ == "QuantConv2d" and bad.any():
            unit = src.scale * node.w_scale_per_channel() / dst.scale  # levels per acc unit
            rp = rescale_params(node, g)
            v = (conv_acc(node, xin, g) + rp.bias) * unit  # value in levels before rounding
            tie_dist = np.abs(v - np.floor(v) - 0.5)
            assert np.all((tie_dist <= unit / 2 + 1e-9)[bad]), node.name
    assert diffs[0] == 0 and diffs[-2] == 0, diffs  # input layer and Upsample: exact
    assert sum(diffs) > 0  # this input does hit the bias rounding (see the report)


def qonnx_context(model, x) -> dict:
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    w = ModelWrapper(model).transform(InferShapes())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return execute_onnx(w, {model.graph.input[0].name: x}, return_full_exec_context=True)


def levels(real: np.ndarray, t) -> np.ndarray:
    """qonnx's dequantized NCHW floats as the machine's NHWC integers of tensor t."""
    q = np.rint(np.asarray(real, np.float64) / t.scale) + t.zero_point
    return q.transpose(0, 2, 3, 1).astype(np.int64)
