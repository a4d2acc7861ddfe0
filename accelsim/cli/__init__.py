"""The `accelsim` command line: simulate, compile, train, sweep, plot and report.

Commands: run | compile | inspect | export | disasm | workloads | train (one model), sweep |
results | recost | plot | report (design spaces).

Every user error (missing file, bad config key, wrong input shape, unsupported op) is an
`AccelsimError`: the command prints `error: <message>` and exits with status 2, no traceback.
"""

from __future__ import annotations

import argparse
import sys

from accelsim.cli.args import bits_type
from accelsim.errors import AccelsimError


def _image_size(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"--image-size expects a positive integer, got {text!r}")
    return n


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="accelsim", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run", help="simulate a model and print per-layer latency, bandwidth and energy"
    )
    run.add_argument(
        "model",
        nargs="?",
        default=None,
        help="model file (.npz native, .onnx QDQ / QOperator / QONNX), SCALE-Sim topology "
        "(.csv) or built-in workload name (`accelsim workloads`; default: the built-in "
        "default workload)",
    )
    _add_machine_args(run)
    run.add_argument(
        "--input",
        help="input tensor .npy in the model's declared layout (NCHW for ONNX, NHWC for "
        "native and built-in models; float, or integers)",
    )
    run.add_argument(
        "--outputs",
        metavar="OUT.npz",
        help="write the model's outputs, one array per graph output keyed by its name",
    )
    out = run.add_mutually_exclusive_group()
    out.add_argument("--json", metavar="OUT", help="write totals and per-layer rows as JSON")
    out.add_argument("--csv", metavar="OUT", help="write per-layer rows as CSV")
    run.add_argument("--trace", metavar="OUT", help="write a Chrome/Perfetto trace JSON")
    run.add_argument(
        "--timing-only",
        action="store_true",
        help="count-only simulation: timing and energy without the datapath",
    )
    run.add_argument(
        "--check",
        action="store_true",
        help="compare every layer's output with the IR integer reference",
    )
    run.add_argument(
        "--engine",
        choices=("event", "fast"),
        default="event",
        help="timing engine: event (SimPy, the reference; default) or fast (the same "
        "schedule from one Numba pass over the unit queues, for sweeps)",
    )

    comp = sub.add_parser("compile", help="lower a model to a program file")
    comp.add_argument("model")
    _add_machine_args(comp)
    comp.add_argument("-o", "--output", required=True, help="program file to write")

    insp = sub.add_parser(
        "inspect", help="list an ONNX model's ops and where each runs (machine, host, not at all)"
    )
    insp.add_argument("model", help="ONNX file")
    insp.add_argument("--config", default="edge", help="preset the lowering is tried for")
    insp.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")

    exp = sub.add_parser("export", help="write a model as an ONNX QDQ file")
    exp.add_argument("model", help="model file or built-in workload name")
    exp.add_argument("-o", "--output", required=True, help="ONNX file to write")
    exp.add_argument("--bits", type=bits_type, default=(8, 8), metavar="A/W")
    exp.add_argument("--seed", type=int, default=0, help="seed of built-in weights")

    dis = sub.add_parser("disasm", help="print a program as assembly text")
    dis.add_argument("program")

    sub.add_parser("workloads", help="list the built-in workloads")

    from accelsim.cli.explore import add_parsers
    from accelsim.cli.train import add_train_parser

    add_train_parser(sub)
    add_parsers(sub)

    return p


def _add_machine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="edge", help="preset name or TOML file (default: edge)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config field; repeatable",
    )
    p.add_argument(
        "--bits",
        type=bits_type,
        default=(8, 8),
        metavar="A/W",
        help="activation/weight bits of a built-in workload (default 8/8)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of built-in weights and input")
    p.add_argument(
        "--image-size",
        type=_image_size,
        default=None,
        metavar="N",
        help="input side in pixels of a built-in image model (those `accelsim workloads` "
        "marks with --image-size; default: the model's own, 224 for the ImageNet models)",
    )


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        from accelsim.cli import commands, explore  # noqa: PLC0415 (keeps `--help` fast)

        name = args.command.replace("-", "_")
        handler = getattr(commands, name, None) or getattr(explore, name)
        return handler(args)
    except AccelsimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
