"""Native model format: one `.npz` file holding every array plus the graph as JSON.

Layout of `model.npz` (written with `np.savez`, read with `allow_pickle=False`):

- `__graph__.json`: uint8 array, the UTF-8 bytes of a JSON object. A dense `Graph`::

      {"format": "accelsim-model", "version": 1, "name": "...",
       "input": "x", "outputs": ["logits"],
       "tensors": [{"name": "x", "shape": [1, 32, 32, 3], "bits": 32, "mode": "float",
                    "scale": 1.0, "zero_point": 0}, ...],
       "nodes": [{"name": "conv1", "op": "QuantConv2d", "inputs": ["xq"], "output": "c1",
                  "attrs": {"stride": [1, 1], "w_bits": 4, "w_scale": {"array": "conv1/w_scale"},
                            "weight": {"array": "conv1/weight"}, ...}}, ...]}

  A `SparseGraph` has format "accelsim-sparse-model", a "meta" object (e.g. the arguments of
  its default scene) and sparse tensors::

      {"format": "accelsim-sparse-model", "version": 1, "name": "...", "input": "features",
       "outputs": [...], "meta": {"scene": {...}},
       "tensors": [{"name": "x0", "channels": 4, "bits": 8, "mode": "signed", "scale": 0.25,
                    "zero_point": 0, "coord_set": "s1"}, ...],
       "nodes": [...as above, with the sparse ops...]}

- every array-valued field is an npz member; the JSON refers to it as `{"array": KEY}`.
  Keys are `<node>/<field>` for op fields and `tensor/<name>/scale` for per-channel tensor
  scales. Integer weights use int8/uint8 (<= 8 bits) or int32, biases int32, scales and batch
  norm statistics float64.

Both kinds share one codec (nodes, arrays, the tensor table, the header) and the same checks;
only the tensor fields and the graph class differ (`_Codec`, chosen by `graph.kind` when
saving and by "format" when loading). Every problem found while loading raises
`accelsim.errors.ModelFormatError` with the file name and the node, tensor or array concerned.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from accelsim.errors import ModelFormatError
from accelsim.fileio import atomic_write
from accelsim.ir import OP_TYPES, Graph, TensorInfo
from accelsim.ir.sparse_ops import SPARSE_OP_TYPES, SparseGraph, SparseTensor

FORMAT = "accelsim-model"
SPARSE_FORMAT = "accelsim-sparse-model"
VERSION = 1  # of both formats
GRAPH_KEY = "__graph__.json"
_BASE_FIELDS = ("name", "inputs", "output")


def _encode(value, key: str, arrays: dict[str, np.ndarray]):
    """JSON form of one field value; arrays are moved to `arrays` under `key`."""
    if isinstance(value, np.ndarray):
        arrays[key] = value
        return {"array": key}
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def _fields_to_json(obj, prefix: str, arrays: dict, skip=()) -> dict:
    """JSON form of the dataclass fields of `obj` (but `skip`); arrays go to `arrays` under
    `<prefix>/<field>`."""
    return {
        f.name: _encode(getattr(obj, f.name), f"{prefix}/{f.name}", arrays)
        for f in dataclasses.fields(obj)
        if f.name not in skip
    }


def graph_to_json(graph: Graph | SparseGraph) -> tuple[dict, dict[str, np.ndarray]]:
    """Split `graph` (either kind) into its JSON description and the arrays it refers to."""
    codec = _CODECS[graph.kind]
    arrays: dict[str, np.ndarray] = {}
    doc = {
        "format": codec.format,
        "version": VERSION,
        "name": graph.name,
        "input": graph.input,
        "outputs": list(graph.outputs),
        **codec.header(graph),
        "tensors": [_fields_to_json(t, f"tensor/{t.name}", arrays) for t in graph.tensors.values()],
        "nodes": [
            {
                "name": n.name,
                "op": type(n).__name__,
                "inputs": list(n.inputs),
                "output": n.output,
                "attrs": _fields_to_json(n, n.name, arrays, _BASE_FIELDS),
            }
            for n in graph.nodes
        ],
    }
    return doc, arrays


def save_model(graph: Graph | SparseGraph, path: str | os.PathLike) -> None:
    """Validate `graph` and write it to `path` (.npz) atomically (temp file + os.replace)."""
    graph.validate()
    doc, arrays = graph_to_json(graph)
    text = json.dumps(doc, indent=1, allow_nan=False).encode("utf-8")
    members = {GRAPH_KEY: np.frombuffer(text, dtype=np.uint8), **arrays}
    atomic_write(path, lambda f: np.savez(f, **members))


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise ModelFormatError(f"{path}: no such model file")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as e:
        raise ModelFormatError(
            f"{path}: not a readable accelsim model (.npz): {type(e).__name__}: {e}"
        ) from None


def _get(obj: dict, key: str, types, where: str):
    """obj[key], checked to be of `types` (bools are never accepted as numbers)."""
    if not isinstance(obj, dict) or key not in obj:
        raise ModelFormatError(f"{where}: missing field {key!r}")
    v = obj[key]
    if isinstance(v, bool) or not isinstance(v, types):
        raise ModelFormatError(f"{where}: field {key!r} has the wrong type ({type(v).__name__})")
    return v


def _decode(value, arrays: dict[str, np.ndarray], where: str):
    """Field value from JSON: {"array": key} -> the npz array; lists -> tuples."""
    if isinstance(value, dict):
        key = value.get("array")
        if set(value) != {"array"} or not isinstance(key, str):
            raise ModelFormatError(f'{where}: expected {{"array": KEY}}, got {value!r}')
        if key not in arrays:
            raise ModelFormatError(f"{where}: array {key!r} is missing from the file")
        return arrays[key]
    if isinstance(value, list):
        return tuple(value)
    return value


def _dense_tensor(t: dict, name: str, arrays: dict, where: str) -> TensorInfo:
    shape = _get(t, "shape", list, where)
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise ModelFormatError(f"{where}: shape must be a list of integers, got {shape!r}")
    scale = _decode(_get(t, "scale", (int, float, dict), where), arrays, where)
    if isinstance(scale, np.ndarray) and scale.dtype.kind != "f":
        raise ModelFormatError(f"{where}: scale array must be float, got {scale.dtype}")
    return TensorInfo(
        name,
        tuple(shape),
        bits=_get(t, "bits", int, where),
        mode=_get(t, "mode", str, where),
        scale=scale,
        zero_point=_get(t, "zero_point", int, where),
    )


def _sparse_tensor(t: dict, name: str, arrays: dict, where: str) -> SparseTensor:
    return SparseTensor(
        name,
        _get(t, "channels", int, where),
        _get(t, "bits", int, where),
        _get(t, "mode", str, where),
        float(_get(t, "scale", (int, float), where)),  # one scale per sparse tensor
        _get(t, "zero_point", int, where),
        _get(t, "coord_set", str, where),
    )


def _tensors_from_json(doc: dict, arrays: dict, codec: _Codec) -> dict:
    """The tensor table: each entry's fields checked, no name declared twice."""
    tensors = {}
    for i, t in enumerate(_get(doc, "tensors", list, "graph JSON")):
        name = _get(t, "name", str, f"tensor #{i}")
        where = f"tensor {name!r}"
        if name in tensors:
            raise ModelFormatError(f"{where}: declared twice")
        unknown = set(t) - {f.name for f in dataclasses.fields(codec.tensor_type)}
        if unknown:
            raise ModelFormatError(f"{where}: unknown field(s) {sorted(unknown)}")
        tensors[name] = codec.read_tensor(t, name, arrays, where)
    return tensors


def _node_from_json(nd: dict, i: int, arrays: dict, op_types: dict):
    """One op node: a known op type, tensor-name inputs, known attributes, arrays resolved."""
    name = _get(nd, "name", str, f"node #{i}")
    where = f"node {name!r}"
    op = _get(nd, "op", str, where)
    cls = op_types.get(op)
    if cls is None:
        raise ModelFormatError(
            f"{where}: unknown op type {op!r} (known: {', '.join(sorted(op_types))})"
        )
    inputs = _get(nd, "inputs", list, where)
    if not all(isinstance(s, str) for s in inputs):
        raise ModelFormatError(f"{where}: inputs must be tensor names, got {inputs!r}")
    attrs = _get(nd, "attrs", dict, where)
    known = {f.name for f in dataclasses.fields(cls)} - set(_BASE_FIELDS)
    unknown = set(attrs) - known
    if unknown:
        raise ModelFormatError(f"{where}: unknown attribute(s) {sorted(unknown)} for {op}")
    kwargs = {k: _decode(v, arrays, f"{where} attribute {k!r}") for k, v in attrs.items()}
    try:
        return cls(name=name, inputs=tuple(inputs), output=_get(nd, "output", str, where), **kwargs)
    except TypeError as e:  # a required field is missing
        raise ModelFormatError(f"{where}: {e}") from None


def graph_from_json(doc: dict, arrays: dict[str, np.ndarray]) -> Graph | SparseGraph:
    """Build a graph of the kind named by the JSON's "format" from its description and arrays
    (no validation of the graph itself)."""
    fmt = doc.get("format") if isinstance(doc, dict) else None
    codec = next((c for c in _CODECS.values() if c.format == fmt), None)
    if codec is None:
        raise ModelFormatError(
            f"graph JSON: field 'format' must be {FORMAT!r} or {SPARSE_FORMAT!r}, got {fmt!r}"
        )
    version = doc.get("version")
    if isinstance(version, bool) or version != VERSION:
        raise ModelFormatError(
            f"graph JSON: unsupported version {version!r} (this reader reads {VERSION})"
        )
    tensors = _tensors_from_json(doc, arrays, codec)
    nodes = [
        _node_from_json(nd, i, arrays, codec.op_types)
        for i, nd in enumerate(_get(doc, "nodes", list, "graph JSON"))
    ]
    outputs = _get(doc, "outputs", list, "graph JSON")
    return codec.make_graph(
        doc,
        name=_get(doc, "name", str, "graph JSON"),
        tensors=tensors,
        nodes=nodes,
        input=_get(doc, "input", str, "graph JSON"),
        outputs=[str(o) for o in outputs],
    )


def _dense_graph(doc: dict, **fields) -> Graph:
    return Graph(**fields)


def _sparse_graph(doc: dict, **fields) -> SparseGraph:
    meta = doc.get("meta", {})
    if not isinstance(meta, dict):
        raise ModelFormatError(f"graph JSON: field 'meta' must be an object, got {meta!r}")
    return SparseGraph(**fields, meta=meta)


class _Codec(NamedTuple):
    """What the file format of one graph kind does not share with the other."""

    format: str  # the JSON's "format"
    op_types: dict  # op name -> node class
    tensor_type: type  # the tensor dataclass; its fields are the JSON tensor's fields
    read_tensor: Callable  # (JSON object, name, arrays, where) -> tensor
    header: Callable  # graph -> extra top-level JSON fields
    make_graph: Callable  # (doc, name=, tensors=, nodes=, input=, outputs=) -> graph


_CODECS = {
    "dense": _Codec(FORMAT, OP_TYPES, TensorInfo, _dense_tensor, lambda g: {}, _dense_graph),
    "sparse": _Codec(
        SPARSE_FORMAT,
        SPARSE_OP_TYPES,
        SparseTensor,
        _sparse_tensor,
        lambda g: {"meta": g.meta},
        _sparse_graph,
    ),
}


def load_model(path: str | os.PathLike) -> Graph | SparseGraph:
    """Read and validate a native model file of either graph kind; ModelFormatError names the
    file and the fault."""
    path = Path(path)
    arrays = _read_npz(path)
    raw = arrays.pop(GRAPH_KEY, None)
    if raw is None:
        raise ModelFormatError(f"{path}: member {GRAPH_KEY!r} (the graph JSON) is missing")
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ModelFormatError(f"{path}: {GRAPH_KEY!r} must be a 1-D uint8 array of JSON bytes")
    try:
        doc = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFormatError(f"{path}: {GRAPH_KEY!r} is not valid JSON: {e}") from None
    try:
        graph = graph_from_json(doc, arrays)
        graph.validate()
    except ModelFormatError as e:
        raise ModelFormatError(f"{path}: {e}") from None
    return graph
