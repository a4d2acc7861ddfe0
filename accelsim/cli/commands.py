"""Implementations of the CLI commands (argument parsing lives in `accelsim.cli`)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from accelsim.config import load_config
from accelsim.errors import AccelsimError


def resolve_model(name: str | None, bits=(8, 8), seed: int = 0):
    """A Graph from a native model file, or from a built-in workload name."""
    from workloads import registry  # noqa: PLC0415

    if name is None:
        return registry.default_model(bits, seed)
    path = Path(name)
    if path.suffix or path.is_file():
        from accelsim.frontend.native import load_model  # noqa: PLC0415

        if not path.exists():
            raise AccelsimError(f"model file {name!r} does not exist")
        return load_model(path)
    return registry.build(name, bits, seed)


def make_input(graph, path: str | None, seed: int) -> np.ndarray:
    """The model input: from a .npy file (shape-checked) or a seeded random float tensor.
    Sparse models: (coords, features) from a .npz or the workload's generated scene."""
    if getattr(graph, "is_sparse", False):
        from accelsim.sparse_runner import make_sparse_input  # noqa: PLC0415

        return make_sparse_input(graph, path, seed)
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
            f"{shape} (NHWC; batch may differ)"
        )
    return x


def run(args) -> int:
    from accelsim.report import print_report, write_csv, write_json  # noqa: PLC0415
    from accelsim.runner import run_model  # noqa: PLC0415

    cfg = load_config(args.config, args.set)
    graph = resolve_model(args.model, args.bits, args.seed)
    x = make_input(graph, args.input, args.seed)
    result = run_model(
        graph,
        cfg,
        x,
        count_only=args.timing_only,
        check=args.check,
        trace=args.trace,
        progress=sys.stderr.isatty(),
    )
    print_report(result, cfg)
    if args.json:
        write_json(result, cfg, args.json)
    if args.csv:
        write_csv(result, cfg, args.csv)
    if args.check:
        print(result.check_message)
        return 1 if result.check_ok is False else 0
    return 0


def compile(args) -> int:  # noqa: A001 (the command is called compile)
    from accelsim.frontend.lower import lower  # noqa: PLC0415

    cfg = load_config(args.config, args.set)
    graph = resolve_model(args.model, args.bits, args.seed)
    coords = make_input(graph, None, args.seed)[0] if getattr(graph, "is_sparse", False) else None
    program = lower(graph, cfg, coords=coords)
    program.save(args.output)
    print(
        f"wrote {args.output}: {len(program.insns)} instructions, {program.dram.size} DRAM elements"
    )
    return 0


def disasm(args) -> int:
    from accelsim.isa import disasm as disasm_text  # noqa: PLC0415
    from accelsim.program import Program  # noqa: PLC0415

    program = Program.load(args.program)
    print(disasm_text(program.insns), end="")
    return 0


def workloads(args) -> int:
    from workloads import registry  # noqa: PLC0415

    for name, desc in registry.listing():
        print(f"{name:12s} {desc}")
    return 0


def train(args) -> int:
    from accelsim.cli.train import run_train

    return run_train(args)
