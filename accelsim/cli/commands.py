"""Implementations of the CLI commands (argument parsing lives in `accelsim.cli`)."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import numpy as np

from accelsim.config import load_config
from accelsim.errors import AccelsimError, SparseInputError


def resolve_model(name: str | None, bits=(8, 8), seed: int = 0, image_size: int | None = None):
    """A Graph from a model file (native .npz, or .onnx) or a built-in workload name, or a
    `workloads.topology.Topology` from a SCALE-Sim topology file (.csv)."""
    from workloads import registry  # noqa: PLC0415
    from workloads.topology import is_topology_path, read_topology  # noqa: PLC0415

    if name is None:
        return registry.default_model(bits, seed, image_size)
    path = Path(name)
    is_file = not name.startswith("gemm:") and (path.suffix or path.is_file())
    if is_file and image_size is not None:
        raise AccelsimError(
            f"--image-size applies to built-in image models, not to the file {name!r}"
        )
    if is_file and is_topology_path(name):
        return read_topology(path)
    if is_file:
        if not path.exists():
            raise AccelsimError(f"model file {name!r} does not exist")
        if is_onnx(name):
            from accelsim.frontend.onnx import load_onnx  # noqa: PLC0415

            return load_onnx(path)
        from accelsim.frontend.native import load_model  # noqa: PLC0415

        return load_model(path)
    return registry.build(name, bits, seed, image_size)


def is_onnx(name: str | None) -> bool:
    return name is not None and Path(name).suffix.lower() == ".onnx"


def machine_config(args):
    """The config of a command: an ONNX model rounds half to even (its QuantizeLinear and
    requantization semantics) unless `--set rescale.round_mode=...` says otherwise."""
    sets = list(args.set)
    if is_onnx(args.model) and not any(s.startswith("rescale.round_mode=") for s in sets):
        from accelsim.frontend.onnx import ONNX_ROUND_MODE  # noqa: PLC0415

        sets.insert(0, f"rescale.round_mode={ONNX_ROUND_MODE}")
    return load_config(args.config, sets)


def make_input(graph, path: str | None, seed: int):
    """The model input. Dense models: a float NHWC array from a .npy file (shape-checked) or
    seeded random. Sparse models: (coords, features) from a .npz or the workload's scene."""
    return _INPUTS[graph.kind](graph, path, seed)


def make_dense_input(graph, path: str | None, seed: int) -> np.ndarray:
    """A float NHWC input: from a .npy file (shape-checked; batch may differ) or seeded random."""
    shape = graph.tensors[graph.input].shape
    if path is None:
        return np.random.default_rng(seed).random(shape)
    try:
        x = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise AccelsimError(f"input file {path!r} does not exist") from None
    except (OSError, ValueError) as exc:
        raise AccelsimError(f"input file {path!r} is not a .npy array ({exc})") from None
    if x.ndim == len(shape) - 1:
        x = x[None]
    if tuple(x.shape[1:]) != tuple(shape[1:]):
        raise AccelsimError(
            f"input {path!r} has shape {x.shape}; model {graph.name!r} expects "
            f"{shape} (its declared layout; batch may differ)"
        )
    return x


def default_sparse_input(graph, seed: int = 0):
    """The generated LiDAR scene of the workload (`graph.meta["scene"]` arguments of
    `workloads.sparse_nets.make_scene`), features cut to the input's channel count."""
    from workloads.sparse_nets import make_scene  # noqa: PLC0415

    coords, feats = make_scene(seed=seed, **graph.meta.get("scene", {}))
    return coords, feats[:, : graph.tensors[graph.input].channels]


def make_sparse_input(graph, path: str | None, seed: int = 0):
    """(coords, features): from a .npz with arrays `coords` and `features`, or generated."""
    if path is None:
        return default_sparse_input(graph, seed)
    try:
        with np.load(path, allow_pickle=False) as data:
            if not {"coords", "features"} <= set(data.files):
                raise SparseInputError(
                    f"input {path!r}: a sparse input .npz needs arrays "
                    f"'coords' [n, 4] and 'features' [n, c]"
                )
            coords, feats = data["coords"], data["features"]
    except FileNotFoundError:
        raise AccelsimError(f"input file {path!r} does not exist") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise AccelsimError(f"input file {path!r} is not a .npz archive ({exc})") from None
    c = graph.tensors[graph.input].channels
    if np.ndim(feats) == 2 and feats.shape[1] != c:
        raise SparseInputError(
            f"input {path!r}: features have {feats.shape[1]} channels, "
            f"model {graph.name!r} expects {c}"
        )
    return coords, feats


_INPUTS = {"dense": make_dense_input, "sparse": make_sparse_input}  # graph kind -> input maker


def run(args) -> int:
    from accelsim.report import print_report, write_csv, write_json  # noqa: PLC0415
    from accelsim.runner import run_model  # noqa: PLC0415
    from workloads.topology import Topology  # noqa: PLC0415

    cfg = machine_config(args)
    model = resolve_model(args.model, args.bits, args.seed, args.image_size)
    if isinstance(model, Topology):
        result = _run_topology(model, cfg, args)
    else:
        x = make_input(model, args.input, args.seed)
        result = run_model(
            model,
            cfg,
            x,
            count_only=args.timing_only,
            check=args.check,
            trace=args.trace,
            progress=sys.stderr.isatty(),
            engine=args.engine,
        )
        if model.kind == "dense" and not args.timing_only:
            from accelsim.rescale_audit import cheaper_rescales  # noqa: PLC0415

            result.rescale_options = cheaper_rescales(model, cfg, x)
    print_report(result, cfg)
    if args.outputs:
        write_outputs(model, result.outputs, args.outputs, args.timing_only)
    if args.json:
        write_json(result, cfg, args.json)
    if args.csv:
        write_csv(result, cfg, args.csv)
    if args.check:
        print(result.check_message)
        return 1 if result.check_ok is False else 0
    return 0


def _run_topology(topo, cfg, args):
    """Run a SCALE-Sim topology's layers back to back (`accelsim.sequence`)."""
    from accelsim.sequence import run_sequence  # noqa: PLC0415

    for flag, value in (
        ("--input", args.input),
        ("--trace", args.trace),
        ("--outputs", args.outputs),
    ):
        if value:
            raise AccelsimError(
                f"{flag} is not available for the topology file {topo.path!r}: its "
                f"{len(topo.layers)} layers run as separate programs on random inputs"
            )
    models = ((g, make_input(g, None, args.seed)) for g in topo.graphs(args.bits, args.seed))
    return run_sequence(
        topo.name,
        models,
        cfg,
        count_only=args.timing_only,
        check=args.check,
        progress=sys.stderr.isatty(),
        engine=args.engine,
    )


def write_outputs(graph, outputs: dict, path: str, timing_only: bool) -> None:
    """One array per graph output, keyed by its name: floats as float32, integers in the
    narrowest integer type of their width (int8 / uint8, int16 / uint16, int32)."""
    from accelsim.fileio import atomic_write  # noqa: PLC0415

    if timing_only:
        raise AccelsimError("--outputs needs the datapath; drop --timing-only")
    arrays = {}
    for name in graph.outputs:
        t, a = graph.tensors[name], np.asarray(outputs[name])
        if t.is_float:
            arrays[name] = a.astype(np.float32)
        else:
            kind = "int" if t.mode != "unsigned" else "uint"
            arrays[name] = a.astype(f"{kind}{8 if t.bits <= 8 else 16 if t.bits <= 16 else 32}")
    atomic_write(path, lambda f: np.savez(f, **arrays))
    print(f"wrote {path}: {', '.join(f'{k} {v.shape} {v.dtype}' for k, v in arrays.items())}")


def compile(args) -> int:  # noqa: A001 (the command is called compile)
    from accelsim.runner import lower_for_input  # noqa: PLC0415
    from workloads.topology import Topology  # noqa: PLC0415

    cfg = machine_config(args)
    graph = resolve_model(args.model, args.bits, args.seed, args.image_size)
    if isinstance(graph, Topology):
        raise AccelsimError(
            f"{args.model!r} is a SCALE-Sim topology of {len(graph.layers)} independent "
            "layers, each its own program; `accelsim compile` writes one program (run the "
            "file with `accelsim run`, or compile one GEMM row as gemm:M,N,K)"
        )
    # a dense program at the model's batch; a sparse one for the workload's generated scene
    program = lower_for_input(graph, cfg, make_input(graph, None, args.seed))
    program.save(args.output)
    print(f"wrote {args.output}: {program.n_insns} instructions, {program.dram_size} DRAM elements")
    return 0


def inspect(args) -> int:
    from accelsim.frontend.onnx.inspect import format_placements, inspect_onnx  # noqa: PLC0415

    if not is_onnx(args.model):
        raise AccelsimError(f"inspect reads ONNX files; {args.model!r} is not a .onnx file")
    rows, error = inspect_onnx(args.model, machine_config(args))
    print(format_placements(rows))
    if error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def export(args) -> int:
    from accelsim.frontend.onnx.export import save_onnx  # noqa: PLC0415

    graph = resolve_model(args.model, args.bits, args.seed)
    if graph.kind != "dense":
        raise AccelsimError(f"model {graph.name!r} is sparse; ONNX export covers dense graphs")
    save_onnx(graph, args.output)
    print(
        f"wrote {args.output}: ONNX QDQ of {graph.name!r}, {len(graph.nodes)} nodes; "
        "onnxruntime matches the machine run with rescale.round_mode=rne"
    )
    return 0


def disasm(args) -> int:
    from accelsim.asm import disasm as disasm_text  # noqa: PLC0415
    from accelsim.program import Program  # noqa: PLC0415

    program = Program.load(args.program)
    print(disasm_text(program.insns), end="")
    return 0


def workloads(args) -> int:
    from workloads import registry  # noqa: PLC0415

    for name, desc in registry.listing():
        print(f"{name:13s} {desc}")
    return 0


def train(args) -> int:
    from accelsim.cli.train import run_train

    return run_train(args)
