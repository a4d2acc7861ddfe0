"""Native model format for sparse graphs: the `.npz` + JSON layout of `accelsim.frontend.native`
with format "accelsim-sparse-model" and sparse tensors::

    {"format": "accelsim-sparse-model", "version": 1, "name": "...", "input": "features",
     "outputs": [...], "meta": {"scene": {...}},
     "tensors": [{"name": "x0", "channels": 4, "bits": 8, "mode": "signed", "scale": 0.25,
                  "zero_point": 0, "coord_set": "s1"}, ...],
     "nodes": [{"name": "stem", "op": "SparseConv", "inputs": ["x0"], "output": "stem",
                "attrs": {"weight": {"array": "stem/weight"}, "stride": 1, ...}}, ...]}

`accelsim.frontend.native.save_model` / `load_model` dispatch here for sparse graphs.
"""

from __future__ import annotations

import dataclasses

from accelsim.errors import ModelFormatError
from accelsim.frontend.native import _BASE_FIELDS, _decode, _encode, _get
from accelsim.ir.sparse_ops import SPARSE_OP_TYPES, SparseGraph, SparseTensor

FORMAT = "accelsim-sparse-model"
VERSION = 1


def sparse_graph_to_json(graph: SparseGraph):
    """(JSON description, arrays) of a sparse graph."""
    arrays: dict = {}
    tensors = [
        {
            "name": t.name,
            "channels": t.channels,
            "bits": t.bits,
            "mode": t.mode,
            "scale": float(t.scale),
            "zero_point": t.zero_point,
            "coord_set": t.coord_set,
        }
        for t in graph.tensors.values()
    ]
    nodes = [
        {
            "name": n.name,
            "op": type(n).__name__,
            "inputs": list(n.inputs),
            "output": n.output,
            "attrs": {
                f.name: _encode(getattr(n, f.name), f"{n.name}/{f.name}", arrays)
                for f in dataclasses.fields(n)
                if f.name not in _BASE_FIELDS
            },
        }
        for n in graph.nodes
    ]
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": graph.name,
        "input": graph.input,
        "outputs": list(graph.outputs),
        "meta": graph.meta,
        "tensors": tensors,
        "nodes": nodes,
    }, arrays


def sparse_graph_from_json(doc: dict, arrays: dict) -> SparseGraph:
    """Inverse of `sparse_graph_to_json` (ModelFormatError naming the tensor / node)."""
    if doc.get("version") != VERSION or isinstance(doc.get("version"), bool):
        raise ModelFormatError(f"graph JSON: unsupported version {doc.get('version')!r}")
    tensors = {}
    for i, t in enumerate(_get(doc, "tensors", list, "graph JSON")):
        where = f"tensor #{i}"
        name = _get(t, "name", str, where)
        tensors[name] = SparseTensor(
            name,
            _get(t, "channels", int, where),
            _get(t, "bits", int, where),
            _get(t, "mode", str, where),
            float(_get(t, "scale", (int, float), where)),
            _get(t, "zero_point", int, where),
            _get(t, "coord_set", str, where),
        )
    nodes = []
    for i, nd in enumerate(_get(doc, "nodes", list, "graph JSON")):
        name = _get(nd, "name", str, f"node #{i}")
        where = f"node {name!r}"
        cls = SPARSE_OP_TYPES.get(_get(nd, "op", str, where))
        if cls is None:
            raise ModelFormatError(f"{where}: unknown sparse op {nd.get('op')!r}")
        attrs = _get(nd, "attrs", dict, where)
        unknown = set(attrs) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ModelFormatError(f"{where}: unknown attribute(s) {sorted(unknown)}")
        kwargs = {k: _decode(v, arrays, f"{where} attribute {k!r}") for k, v in attrs.items()}
        try:
            nodes.append(
                cls(
                    name=name,
                    inputs=tuple(_get(nd, "inputs", list, where)),
                    output=_get(nd, "output", str, where),
                    **kwargs,
                )
            )
        except TypeError as e:
            raise ModelFormatError(f"{where}: {e}") from None
    meta = doc.get("meta", {})
    return SparseGraph(
        _get(doc, "name", str, "graph JSON"),
        tensors,
        nodes,
        _get(doc, "input", str, "graph JSON"),
        [str(o) for o in _get(doc, "outputs", list, "graph JSON")],
        meta if isinstance(meta, dict) else {},
    )
