"""Native model format: one `.npz` file holding every array plus the graph as JSON.

Layout of `model.npz` (written with `np.savez`, read with `allow_pickle=False`):

- `__graph__.json`: uint8 array, the UTF-8 bytes of a JSON object::

      {"format": "accelsim-model", "version": 1, "name": "...",
       "input": "x", "outputs": ["logits"],
       "tensors": [{"name": "x", "shape": [1, 32, 32, 3], "bits": 32, "mode": "float",
                    "scale": 1.0, "zero_point": 0}, ...],
       "nodes": [{"name": "conv1", "op": "QuantConv2d", "inputs": ["xq"], "output": "c1",
                  "attrs": {"stride": [1, 1], "w_bits": 4, "w_scale": {"array": "conv1/w_scale"},
                            "weight": {"array": "conv1/weight"}, ...}}, ...]}

- every array-valued field is an npz member; the JSON refers to it as `{"array": KEY}`.
  Keys are `<node>/<field>` for op fields and `tensor/<name>/scale` for per-channel tensor
  scales. Integer weights use int8/uint8 (<= 8 bits) or int32, biases int32, scales and batch
  norm statistics float64.

Every problem found while loading raises `accelsim.errors.ModelFormatError` with the file name
and the node, tensor or array concerned.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from accelsim.errors import ModelFormatError
from accelsim.fileio import atomic_write
from accelsim.ir import OP_TYPES, Graph, TensorInfo

FORMAT = "accelsim-model"
VERSION = 1
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


def graph_to_json(graph: Graph) -> tuple[dict, dict[str, np.ndarray]]:
    """Split `graph` into its JSON description and the arrays it refers to."""
    arrays: dict[str, np.ndarray] = {}
    tensors = [
        {
            "name": t.name,
            "shape": list(t.shape),
            "bits": t.bits,
            "mode": t.mode,
            "scale": _encode(t.scale, f"tensor/{t.name}/scale", arrays),
            "zero_point": t.zero_point,
        }
        for t in graph.tensors.values()
    ]
    nodes = []
    for n in graph.nodes:
        attrs = {
            f.name: _encode(getattr(n, f.name), f"{n.name}/{f.name}", arrays)
            for f in dataclasses.fields(n)
            if f.name not in _BASE_FIELDS
        }
        nodes.append(
            {
                "name": n.name,
                "op": type(n).__name__,
                "inputs": list(n.inputs),
                "output": n.output,
                "attrs": attrs,
            }
        )
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "name": graph.name,
        "input": graph.input,
        "outputs": list(graph.outputs),
        "tensors": tensors,
        "nodes": nodes,
    }
    return doc, arrays


def save_model(graph: Graph, path: str | os.PathLike) -> None:
    """Validate `graph` and write it to `path` (.npz) atomically (temp file + os.replace)."""
    graph.validate()
    if getattr(graph, "is_sparse", False):  # sparse graphs: accelsim.frontend.sparse_native
        from accelsim.frontend.sparse_native import sparse_graph_to_json  # noqa: PLC0415

        doc, arrays = sparse_graph_to_json(graph)
    else:
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


def graph_from_json(doc: dict, arrays: dict[str, np.ndarray]) -> Graph:
    """Build a Graph from its JSON description and arrays (no validation of the graph)."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelFormatError(f"graph JSON: field 'format' must be {FORMAT!r}")
    version = doc.get("version")
    if isinstance(version, bool) or version != VERSION:
        raise ModelFormatError(
            f"graph JSON: unsupported version {version!r} (this reader reads {VERSION})"
        )
    tensors = {}
    for i, t in enumerate(_get(doc, "tensors", list, "graph JSON")):
        where = f"tensor #{i}"
        name = _get(t, "name", str, where)
        where = f"tensor {name!r}"
        shape = _get(t, "shape", list, where)
        if not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise ModelFormatError(f"{where}: shape must be a list of integers, got {shape!r}")
        scale = _decode(_get(t, "scale", (int, float, dict), where), arrays, where)
        if isinstance(scale, np.ndarray) and scale.dtype.kind != "f":
            raise ModelFormatError(f"{where}: scale array must be float, got {scale.dtype}")
        if name in tensors:
            raise ModelFormatError(f"{where}: declared twice")
        tensors[name] = TensorInfo(
            name,
            tuple(shape),
            bits=_get(t, "bits", int, where),
            mode=_get(t, "mode", str, where),
            scale=scale,
            zero_point=_get(t, "zero_point", int, where),
        )
    nodes = []
    for i, nd in enumerate(_get(doc, "nodes", list, "graph JSON")):
        name = _get(nd, "name", str, f"node #{i}")
        where = f"node {name!r}"
        op = _get(nd, "op", str, where)
        cls = OP_TYPES.get(op)
        if cls is None:
            raise ModelFormatError(
                f"{where}: unknown op type {op!r} (known: {', '.join(sorted(OP_TYPES))})"
            )
        inputs = _get(nd, "inputs", list, where)
        if not all(isinstance(s, str) for s in inputs):
            raise ModelFormatError(f"{where}: inputs must be tensor names")
        attrs = _get(nd, "attrs", dict, where)
        known = {f.name for f in dataclasses.fields(cls)} - set(_BASE_FIELDS)
        unknown = set(attrs) - known
        if unknown:
            raise ModelFormatError(f"{where}: unknown attribute(s) {sorted(unknown)} for {op}")
        kwargs = {k: _decode(v, arrays, f"{where} attribute {k!r}") for k, v in attrs.items()}
        try:
            nodes.append(
                cls(
                    name=name, inputs=tuple(inputs), output=_get(nd, "output", str, where), **kwargs
                )
            )
        except TypeError as e:  # a required field is missing
            raise ModelFormatError(f"{where}: {e}") from None
    outputs = _get(doc, "outputs", list, "graph JSON")
    return Graph(
        name=_get(doc, "name", str, "graph JSON"),
        tensors=tensors,
        nodes=nodes,
        input=_get(doc, "input", str, "graph JSON"),
        outputs=[str(o) for o in outputs],
    )


def load_model(path: str | os.PathLike) -> Graph:
    """Read and validate a native model file; ModelFormatError names the file and the fault."""
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
        if isinstance(doc, dict) and doc.get("format") == "accelsim-sparse-model":
            from accelsim.frontend.sparse_native import sparse_graph_from_json  # noqa: PLC0415

            graph = sparse_graph_from_json(doc, arrays)
        else:
            graph = graph_from_json(doc, arrays)
        graph.validate()
    except ModelFormatError as e:
        raise ModelFormatError(f"{path}: {e}") from None
    return graph
