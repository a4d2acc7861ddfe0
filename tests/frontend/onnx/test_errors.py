"""Malformed, hostile and unsupported ONNX files: each gives one ModelFormatError line naming
the file and the node, tensor or field at fault (the CLI prints it and exits with status 2)."""

import numpy as np
import pytest
from onnx import TensorProto, helper

from accelsim.errors import ModelFormatError
from accelsim.frontend.onnx import load_onnx
from tests.frontend.onnx.nets import Net


def good_model():
    n = Net(13)
    x = n.qdq("x", 2**-4, 0)
    w = n.weight(np.ones((2, 2, 1, 1), np.int64), 2**-4)
    return n.model("x", [1, 2, 3, 3], [n.qdq(n.node("Conv", [x, w]), 2**-3, 0)])


def error_of(src, **kw) -> str:
    with pytest.raises(ModelFormatError) as e:
        load_onnx(src, **kw)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_good_model_loads(tmp_path):
    p = tmp_path / "m.onnx"
    p.write_bytes(good_model().SerializeToString())
    assert load_onnx(p).outputs


def test_truncated_and_garbage_files(tmp_path):
    data = good_model().SerializeToString()
    for i, blob in enumerate([data[: len(data) // 3], b"\x08\x07garbage\xff\xff\xff", b""]):
        p = tmp_path / f"bad{i}.onnx"
        p.write_bytes(blob)
        assert str(p) in error_of(p)
    assert "no such model file" in error_of(tmp_path / "missing.onnx")


def test_missing_initialiser():
    m = good_model()
    gone = m.graph.initializer[2].name
    del m.graph.initializer[2]
    msg = error_of(m.SerializeToString())
    assert f"input {gone!r}" in msg and "missing initialiser" in msg


def test_cycle():
    m = good_model()
    conv = next(n for n in m.graph.node if n.op_type == "Conv")
    last = m.graph.node[-1]
    conv.input[0] = last.output[0]  # conv reads the final dequantize, which reads conv
    assert "cycle" in error_of(m.SerializeToString())


def test_unknown_domain():
    m = good_model()
    m.graph.node[0].domain = "com.evil"
    assert "unknown operator domain 'com.evil'" in error_of(m.SerializeToString())


def test_wrong_weight_shape():
    m = good_model()
    w = next(t for t in m.graph.initializer if t.dims == [2, 2, 1, 1])
    w.CopyFrom(helper.make_tensor(w.name, TensorProto.INT8, [2, 5, 1, 1], [1] * 10))
    msg = error_of(m.SerializeToString())
    assert "Conv" in msg and "does not fit input channels 2" in msg


def test_tensor_data_of_wrong_length():
    m = good_model()
    w = next(t for t in m.graph.initializer if t.dims == [2, 2, 1, 1])
    w.raw_data = w.raw_data[:3]
    assert "unreadable" in error_of(m.SerializeToString())


def test_external_data_is_refused():
    m = good_model()
    t = m.graph.initializer[0]
    t.data_location = TensorProto.EXTERNAL
    t.external_data.add(key="location", value="/etc/passwd")
    assert "external data" in error_of(m.SerializeToString())


def test_unsupported_op_names_type_node_and_list():
    n = Net(13)
    x = n.qdq("x", 2**-4, 0)
    y = n.node("LpNormalization", [x])
    msg = error_of(n.model("x", [1, 4], [y]).SerializeToString())
    assert "'LpNormalization'" in msg and "LpNormalization" in msg.split("node")[1]
    assert "supported: " in msg and "QuantizeLinear" in msg and "Conv" in msg


def test_unsupported_attribute():
    n = Net(13)
    x = n.qdq("x", 2**-4, 0)
    w = n.weight(np.ones((2, 2, 1, 1), np.int64), 2**-4)
    y = n.qdq(n.node("Conv", [x, w], auto_pad="SAME_WEIRD"), 2**-3, 0)
    msg = error_of(n.model("x", [1, 2, 3, 3], [y]).SerializeToString())
    assert "(Conv)" in msg and "auto_pad 'SAME_WEIRD'" in msg


def test_per_channel_weights_along_the_reduction_axis():
    n = Net(13)
    x = n.qdq("x", 2**-4, 0)
    w = n.weight(np.ones((4, 3), np.int64), [2**-4] * 4, axis=0)  # [K, N] scaled per K
    y = n.qdq(n.node("MatMul", [x, w]), 2**-3, 0)
    msg = error_of(n.model("x", [1, 4], [y]).SerializeToString())
    assert "along axis 0" in msg and "output-channel axis (1)" in msg


def test_unquantized_output_and_symbolic_dims():
    n = Net(13)
    x = n.qdq("x", 2**-4, 0)
    w = n.weight(np.ones((4, 3), np.int64), 2**-4)
    y = n.node("MatMul", [x, w])
    msg = error_of(n.model("x", [1, 4], [y]).SerializeToString())
    assert "unquantized float result" in msg
    m = good_model()
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    assert "fixed positive sizes" in error_of(m.SerializeToString())
    assert load_onnx(m.SerializeToString(), input_shape=(1, 2, 3, 3)).outputs


def test_mutated_attributes_and_inputs_never_escape_as_other_exceptions():
    """Every attribute of every node removed or set to a wrong-typed value, and every input
    renamed to another value of the graph: the import succeeds or raises ModelFormatError."""
    from onnx import AttributeProto

    n = Net(13)
    x = n.qdq("x", 2**-4, 0)
    w = n.weight(np.ones((2, 2, 3, 3), np.int64), 2**-4)
    c = n.node("Conv", [x, w], pads=[1, 1, 1, 1], strides=[1, 1], kernel_shape=[3, 3])
    p = n.node("MaxPool", [n.qdq(c, 2**-3, 0)], kernel_shape=[2, 2], strides=[2, 2])
    base = n.model("x", [1, 2, 4, 4], [n.qdq(p, 2**-3, 0)])
    variants = []
    for i, node in enumerate(base.graph.node):
        for j in range(len(node.attribute)):
            m = type(base)()
            m.CopyFrom(base)
            del m.graph.node[i].attribute[j]
            variants.append(m)
            m = type(base)()
            m.CopyFrom(base)
            a = m.graph.node[i].attribute[j]
            a.type, a.s = AttributeProto.STRING, b"zz"
            del a.ints[:]
            variants.append(m)
        for j in range(len(node.input)):
            m = type(base)()
            m.CopyFrom(base)
            m.graph.node[i].input[j] = base.graph.node[(i + 3) % len(base.graph.node)].output[0]
            variants.append(m)
    outcomes = set()
    for m in variants:
        try:
            load_onnx(m.SerializeToString())
            outcomes.add("ok")
        except ModelFormatError as e:
            assert "\n" not in str(e)
            outcomes.add("error")
    assert outcomes == {"ok", "error"}
