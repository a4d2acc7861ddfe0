"""The ONNX files shipped inside the qonnx wheel: the quantized Brevitas ESPCN with a nearest
Resize runs exactly (qonnx executor = IR reference = machine, on every output element); every
other file is rejected with one error naming the node and the reason (float layers, FloatQuant,
three inputs)."""

import copy
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest

from accelsim.errors import ModelFormatError
from accelsim.frontend.onnx import load_onnx
from accelsim.frontend.onnx.export import to_onnx
from accelsim.ir import QuantConv2d, run_node, run_reference
from accelsim.numeric import BIAS_FRAC_MAX
from tests.frontend.onnx.nets import check, ort_run, qonnx_run, same_level

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
    the Resize on the machine's DMA. The float conv biases and BN offsets are no whole number
    of accumulator units (s_in * s_w), so each layer's bias keeps fractional bits (RESCALE's
    F). qonnx executor = IR reference = machine on every output, and each layer fed qonnx's
    own input gives qonnx's own output on every element. The same graph with the biases
    rounded to whole units (F = 0, as before F existed) differs from qonnx on this input:
    in layer 3 one unit is 0.41 output levels, so half a unit moves values across ties."""
    model = with_input_shape(DATA / "bsd300x3-espcn/nn_resize/quant_model.onnx", SMALL)
    x = np.random.default_rng(0).uniform(-0.2, 1.2, SMALL).astype(np.float32)
    g = check(model, x, runner=qonnx_run, input_shape=SMALL)
    kinds = [type(n).__name__ for n in g.nodes]
    assert kinds.count("QuantConv2d") == 4 and "Upsample" in kinds and "BatchNorm" not in kinds
    assert [type(n).__name__ for n in g.nodes[:2]] == ["HostUnary", "HostTranspose"]
    convs = [n for n in g.nodes if isinstance(n, QuantConv2d)]
    assert all(0 < n.bias_frac_bits <= BIAS_FRAC_MAX for n in convs)
    ctx = qonnx_context(model, x)
    for node in g.nodes:
        if type(node).__name__ not in ("QuantConv2d", "Upsample"):
            continue
        xin = levels(ctx[node.inputs[0].split("#")[0]], g.tensors[node.inputs[0]])
        got = run_node(node, [xin], g, round_mode="rne")
        want = levels(ctx[node.output.split("#")[0]], g.tensors[node.output])
        np.testing.assert_array_equal(got, want, err_msg=node.name)
    whole = copy.deepcopy(g)
    for n in whole.nodes:
        if isinstance(n, QuantConv2d):
            n.bias = np.rint(np.ldexp(n.bias, -n.bias_frac_bits)).astype(np.int32)
            n.bias_frac_bits = 0
    out = g.outputs[0]
    ref = run_reference(whole, x, round_mode="rne")[out]
    assert np.count_nonzero(ref != qonnx_run(model, x)[out]) > 0


def test_espcn_exported_again_runs_exactly_in_onnxruntime():
    """The imported ESPCN written back as ONNX QDQ (its fractional biases as float32, see
    `accelsim.frontend.onnx.export`): onnxruntime, graph optimizations off, gives the IR
    reference's outputs (which the machine equals, above) on every element."""
    pytest.importorskip("onnxruntime")
    model = with_input_shape(DATA / "bsd300x3-espcn/nn_resize/quant_model.onnx", SMALL)
    g = load_onnx(model.SerializeToString(), input_shape=SMALL)
    x = np.random.default_rng(1).uniform(-0.2, 1.2, SMALL).astype(np.float32)
    got = ort_run(to_onnx(g), x)
    ref = run_reference(g, x, round_mode="rne")
    for name in g.outputs:
        same_level(got[name], np.asarray(ref[name]).reshape(got[name].shape), name)


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
