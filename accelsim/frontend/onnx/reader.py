"""Reading an ONNX file: the protobuf parsed with the `onnx` package into plain Python (nodes
in a checked topological order, constants as NumPy arrays, inputs with static shapes).

Every structural fault of a malformed or hostile file is one `ModelFormatError` naming the
file and the node or tensor: not a protobuf, external or sparse data, an unknown operator
domain, a missing initialiser, a cycle, a tensor produced twice, a symbolic input dimension.
No data outside the file is ever read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from accelsim.errors import ModelFormatError

# Operator domains whose ops the importer knows, with the name used in messages.
DOMAINS = {
    "": "ONNX",
    "ai.onnx": "ONNX",
    "com.microsoft": "ONNX Runtime contrib",
    "onnx.brevitas": "QONNX (Brevitas)",
    "qonnx.custom_op.general": "QONNX",
}
QONNX_DOMAINS = ("onnx.brevitas", "qonnx.custom_op.general")
MIN_OPSET = 7  # older graphs lack the attributes and inputs the importer reads
MAX_FILE_BYTES = 2**31  # protobuf's own limit for one message


@dataclass
class ONode:
    """One ONNX node: op type and domain, input / output value names ('' = absent optional
    input), attributes as Python values (strings decoded, tensors as arrays)."""

    name: str
    op: str
    domain: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict = field(default_factory=dict)
    proto: object = None  # the NodeProto, for constant folding

    @property
    def where(self) -> str:
        return f"node {self.name!r} ({self.op})"


@dataclass
class OModel:
    """A parsed ONNX model: `nodes` in topological order, `consts` (initialisers and Constant
    outputs), graph `inputs` (name -> (shape, dtype)) and `outputs` (names, in order)."""

    source: str
    opset: int
    nodes: list[ONode]
    consts: dict[str, np.ndarray]
    inputs: dict[str, tuple[tuple[int, ...], np.dtype]]
    outputs: list[str]
    output_dtypes: dict[str, np.dtype | None]
    name: str = "onnx"
    elem_types: dict[str, int] = field(default_factory=dict)  # ONNX type codes of constants


def _onnx():
    try:
        import onnx  # noqa: PLC0415 (an optional dependency: the `onnx` extra)
    except ImportError:
        raise ModelFormatError(
            "reading ONNX files needs the onnx package: pip install 'accelsim[onnx]'"
        ) from None
    return onnx


def to_array(t, where: str) -> np.ndarray:
    """A TensorProto as a NumPy array (int4 / int2 widened to int8 / uint8)."""
    onnx = _onnx()
    from onnx import numpy_helper  # noqa: PLC0415

    if t.data_location == onnx.TensorProto.EXTERNAL or t.external_data:
        raise ModelFormatError(f"{where}: tensor {t.name!r} uses external data (not supported)")
    try:
        a = numpy_helper.to_array(t)
    except Exception as e:  # malformed raw data, wrong element count, unknown type
        raise ModelFormatError(f"{where}: tensor {t.name!r} is unreadable: {e}") from None
    if a.dtype.name in ("int4", "int2"):
        a = a.astype(np.int8)
    elif a.dtype.name in ("uint4", "uint2"):
        a = a.astype(np.uint8)
    return a


def _attrs(node, where: str) -> dict:
    from onnx import AttributeProto, helper  # noqa: PLC0415

    out = {}
    for a in node.attribute:
        if a.type == AttributeProto.TENSOR:
            out[a.name] = to_array(a.t, where)
            continue
        if a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
            out[a.name] = None  # subgraphs (If / Loop): the op itself is unsupported
            continue
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [s.decode("utf-8", "replace") for s in v]
        out[a.name] = v
    return out


def _parse(data: bytes, source: str):
    onnx = _onnx()
    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:  # DecodeError and friends: not a protobuf ModelProto
        raise ModelFormatError(
            f"{source}: not a readable ONNX model (protobuf parse failed: {type(e).__name__})"
        ) from None
    if not model.HasField("graph") or not model.graph.node:
        raise ModelFormatError(f"{source}: the ONNX model has no graph nodes (truncated file?)")
    return model


def _opset(model, source: str) -> int:
    versions = {o.domain: o.version for o in model.opset_import}
    v = versions.get("", versions.get("ai.onnx"))
    if v is None:
        raise ModelFormatError(f"{source}: no opset_import for the default ONNX domain")
    if v < MIN_OPSET:
        raise ModelFormatError(f"{source}: opset {v} is too old (supported: {MIN_OPSET} and later)")
    return int(v)


def _dtype(elem_type: int):
    from onnx import helper  # noqa: PLC0415

    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))
    except Exception:  # UNDEFINED or an unknown code
        return None


def _inputs(model, consts, source: str, input_shape) -> dict:
    out = {}
    for vi in model.graph.input:
        if vi.name in consts:
            continue  # old exporters list initialisers as inputs too
        where = f"{source}: graph input {vi.name!r}"
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type") or not tt.HasField("shape"):
            raise ModelFormatError(f"{where}: must be a tensor with a declared shape")
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        if input_shape is not None:
            if len(input_shape) != len(dims):
                raise ModelFormatError(f"{where}: input_shape {input_shape} has the wrong rank")
            dims = list(input_shape)
        if dims and dims[0] is None:
            dims[0] = 1  # a symbolic batch runs one image unless the input says otherwise
        if any(d is None or d <= 0 for d in dims):
            raise ModelFormatError(
                f"{where}: dimension(s) {dims} must be fixed positive sizes (pass input_shape)"
            )
        out[vi.name] = (tuple(int(d) for d in dims), _dtype(tt.elem_type))
    if not out:
        raise ModelFormatError(f"{source}: the graph has no (non-constant) input")
    return out


def _toposort(nodes: list[ONode], known: set[str], source: str) -> list[ONode]:
    producer = {}
    for n in nodes:
        for o in n.outputs:
            if not o:
                continue
            if o in producer or o in known:
                raise ModelFormatError(f"{source}: {n.where}: tensor {o!r} is produced twice")
            producer[o] = n
    for n in nodes:
        for i in n.inputs:
            if i and i not in producer and i not in known:
                raise ModelFormatError(
                    f"{source}: {n.where}: input {i!r} is neither a graph input, an "
                    "initialiser nor produced by any node (missing initialiser?)"
                )
    order, state = [], {}
    for root in nodes:  # iterative depth-first search; state 1 = on the stack, 2 = done
        stack = [(root, iter(root.inputs))]
        if state.get(id(root)) == 2:
            continue
        state[id(root)] = 1
        while stack:
            node, it = stack[-1]
            nxt = next((producer[i] for i in it if i in producer), None)
            if nxt is None:
                state[id(node)] = 2
                order.append(node)
                stack.pop()
            elif state.get(id(nxt)) == 1:
                raise ModelFormatError(f"{source}: the graph has a cycle through {nxt.where}")
            elif state.get(id(nxt)) != 2:
                state[id(nxt)] = 1
                stack.append((nxt, iter(nxt.inputs)))
    return order


def read_onnx(src, *, input_shape=None) -> OModel:
    """Parse an ONNX model from a path or bytes into an `OModel` (see module docstring).

    input_shape: fixed shape for the graph input, overriding the declared one (a fully
    convolutional model can then run on a smaller image); a symbolic batch becomes 1.
    """
    if isinstance(src, (bytes, bytearray)):
        source, data = "<onnx bytes>", bytes(src)
    else:
        path = Path(os.fspath(src))
        source = str(path)
        if not path.is_file():
            raise ModelFormatError(f"{source}: no such model file")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ModelFormatError(f"{source}: larger than 2 GB (external data unsupported)")
        data = path.read_bytes()
    model = _parse(data, source)
    opset = _opset(model, source)
    g = model.graph
    if len(g.sparse_initializer):
        raise ModelFormatError(f"{source}: sparse initialisers are not supported")
    consts = {t.name: to_array(t, f"{source}: initialiser") for t in g.initializer}
    elem_types = {t.name: t.data_type for t in g.initializer}
    for n in g.node:
        for a in n.attribute:
            if n.op_type == "Constant" and a.name == "value" and n.output:
                elem_types[n.output[0]] = a.t.data_type
    nodes = []
    for i, n in enumerate(g.node):
        name = n.name or f"{n.op_type}_{i}"
        where = f"{source}: node {name!r} ({n.op_type})"
        if n.domain not in DOMAINS:
            raise ModelFormatError(
                f"{where}: unknown operator domain {n.domain!r} (known: "
                f"{', '.join(repr(d) for d in DOMAINS if d)} and the default ONNX domain)"
            )
        nodes.append(
            ONode(name, n.op_type, n.domain, list(n.input), list(n.output), _attrs(n, where), n)
        )
    names = [n.name for n in nodes]
    if len(set(names)) != len(names):  # make node names unique for messages and the IR
        seen: dict[str, int] = {}
        for n in nodes:
            k = seen.get(n.name, 0)
            seen[n.name] = k + 1
            if k:
                n.name = f"{n.name}_{k}"
    inputs = _inputs(model, consts, source, input_shape)
    nodes = _toposort(nodes, set(consts) | set(inputs), source)
    outputs = [o.name for o in g.output]
    if not outputs:
        raise ModelFormatError(f"{source}: the graph declares no outputs")
    produced = {o for n in nodes for o in n.outputs} | set(inputs) | set(consts)
    for o in outputs:
        if o not in produced:
            raise ModelFormatError(f"{source}: graph output {o!r} is not produced by any node")
    out_types = {o.name: _dtype(o.type.tensor_type.elem_type) for o in g.output}
    return OModel(
        source,
        opset,
        nodes,
        consts,
        inputs,
        outputs,
        out_types,
        g.name or Path(source).stem,
        elem_types,
    )
