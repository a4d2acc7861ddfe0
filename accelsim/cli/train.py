"""`accelsim train`: train an LSQ/ULQ digit classifier on offline data, save it in the native
model format, run it on the simulated machine over the whole test set, and report accuracy,
latency and energy.

    accelsim train --dataset digits --model cnn --method lsq --bits 4/4 -o cnn_w4a4.npz \\
        --json cnn_w4a4.json

Hyperparameters come from the recipes of `workloads/trained.py` (per dataset and model);
`--epochs` overrides the quantized (or, for fp, the full-precision) epoch count. Method `fp`
writes a training checkpoint instead of a native model (a float model does not run on the
integer machine); `--teacher` takes such a checkpoint so LSQ/ULQ runs skip the fp training.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

from accelsim.cli.args import bits_type, positive_int
from accelsim.errors import AccelsimError


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    """Add the `train` subcommand to an argparse subparsers object."""
    p = subparsers.add_parser(
        "train",
        help="train an LSQ/ULQ digit classifier, save it and run it on the simulated machine",
    )
    p.add_argument("--dataset", default="digits", choices=("digits", "mnist"))
    p.add_argument("--model", default="cnn", choices=("mlp", "cnn"))
    p.add_argument("--method", default="lsq", choices=("fp", "lsq", "ulq"))
    p.add_argument(
        "--bits",
        type=bits_type,
        default=(4, 4),
        metavar="A/W",
        help="activation/weight bits, 1..8 each (default 4/4; activations 1 = {0, 1} after "
        "ReLU; weights 1 = binary, 2 = ternary)",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="model file to write (.npz; native format, or a checkpoint for fp)",
    )
    p.add_argument("--json", metavar="METRICS", help="write the metrics as JSON")
    p.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help="epochs of this method (default: the recipe's)",
    )
    p.add_argument(
        "--fp-epochs",
        type=positive_int,
        default=None,
        help="epochs of the fp teacher when it is trained here (default: recipe's)",
    )
    p.add_argument("--teacher", metavar="CKPT", help="fp checkpoint from `train --method fp`")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--config", default="edge", help="hardware preset or TOML (default: edge)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config field; repeatable",
    )
    p.add_argument(
        "--sim-images",
        type=positive_int,
        default=None,
        help="simulate only the first N test images (default: all)",
    )
    p.add_argument(
        "--sim-batch",
        type=positive_int,
        default=512,
        help="test images per simulated program (default 512)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _recipe_config(dataset: str, model: str, fp_epochs: int | None):
    from workloads.trained import CONFIGS, Q_EPOCHS

    cfg = CONFIGS[(dataset, model)]
    if fp_epochs is not None:
        cfg = replace(cfg, fp_epochs=fp_epochs)
    return cfg, Q_EPOCHS[dataset]


def run_train(args) -> int:
    """Implementation of `accelsim train` (see the module docstring); returns the exit code."""
    from accelsim.config import load_config
    from accelsim.frontend.native import save_model
    from accelsim.quant.checkpoint import load_checkpoint, save_checkpoint
    from accelsim.quant.data import load_dataset
    from accelsim.quant.machine import evaluate_on_machine, format_table
    from accelsim.quant.trainer import train

    hw = load_config(args.config, args.set)  # fail on a bad config before training
    out = Path(args.output)
    for path in (out, Path(args.json) if args.json else None):
        if path is not None and not path.parent.is_dir():
            raise AccelsimError(f"output directory {str(path.parent)!r} does not exist")
    a_bits, w_bits = args.bits
    tcfg, q_epochs = _recipe_config(args.dataset, args.model, args.fp_epochs)
    epochs = args.epochs or (tcfg.fp_epochs if args.method == "fp" else q_epochs)
    teacher = None
    if args.teacher and args.method != "fp":
        teacher = load_checkpoint(args.teacher)
        if teacher.spec.get("quant") or teacher.spec.get("arch") != args.model:
            raise AccelsimError(
                f"--teacher {args.teacher!r}: expected a full-precision "
                f"{args.model} checkpoint, got spec {teacher.spec}"
            )
    data = load_dataset(args.dataset)
    if teacher is not None and list(teacher.spec["in_shape"]) != list(data.image_shape):
        raise AccelsimError(
            f"--teacher {args.teacher!r} takes images {teacher.spec['in_shape']}, "
            f"dataset {args.dataset} has {list(data.image_shape)}"
        )
    progress = not args.no_progress and sys.stderr.isatty()
    model, metrics = train(
        data,
        args.model,
        args.method,
        a_bits,
        w_bits,
        epochs,
        args.seed,
        progress,
        config=tcfg,
        teacher=teacher,
    )
    metrics.update(
        hw_config=hw.chip.name,
        output=str(out),
        teacher=args.teacher,
        bits=None if args.method == "fp" else f"{a_bits}/{w_bits}",
        simulated_accuracy=None,
        disagreements=None,
    )
    if args.method != "fp" and not model.spec.get("quant"):  # Ctrl-C while training the teacher
        print("interrupted while training the fp teacher: no model written", file=sys.stderr)
        return 130
    if args.method == "fp":
        save_checkpoint(model, out)
    else:
        sim, graph = evaluate_on_machine(model, data, hw, args.sim_images, args.sim_batch, progress)
        metrics.update(sim)
        save_model(graph, out)
    metrics["config"] = {
        k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(tcfg).items()
    }
    print(format_table(metrics))
    print(f"wrote {out}")
    if args.json:
        from accelsim.fileio import atomic_write_text

        atomic_write_text(args.json, json.dumps(metrics, indent=1, default=_jsonable) + "\n")
        print(f"wrote {args.json}")
    return 0


def _jsonable(v):
    import numpy as np  # noqa: PLC0415 (the parser above is built for `accelsim --help`)

    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (tuple, set)):
        return list(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")
