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
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from accelsim.errors import AccelsimError
from accelsim.numeric import bits_arg

SPEC_KEY = "__spec__.json"  # member of a training checkpoint holding the model spec as JSON


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


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
        type=bits_arg("A/W"),
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
        type=_positive,
        default=None,
        help="epochs of this method (default: the recipe's)",
    )
    p.add_argument(
        "--fp-epochs",
        type=_positive,
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
        type=_positive,
        default=None,
        help="simulate only the first N test images (default: all)",
    )
    p.add_argument(
        "--sim-batch",
        type=_positive,
        default=512,
        help="test images per simulated program (default 512)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


# ----------------------------------------------------------------------------- checkpoints
def save_checkpoint(model, path) -> None:
    """Write a training checkpoint: the model's arrays plus its spec as JSON (no pickle)."""
    from accelsim.quant.models import state_dict

    path = Path(path)
    text = json.dumps(model.spec).encode("utf-8")
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **{SPEC_KEY: np.frombuffer(text, np.uint8)}, **state_dict(model))
    tmp.replace(path)


def load_checkpoint(path):
    """The Model saved by `save_checkpoint` at `path`."""
    from accelsim.quant.models import build_model, load_state_dict

    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise AccelsimError(f"checkpoint {str(path)!r} does not exist") from None
    except (OSError, ValueError) as exc:
        raise AccelsimError(f"checkpoint {str(path)!r} is not an .npz file ({exc})") from None
    if SPEC_KEY not in arrays:
        raise AccelsimError(
            f"checkpoint {str(path)!r} has no {SPEC_KEY} (not written by "
            "`accelsim train --method fp`?)"
        )
    spec = json.loads(arrays.pop(SPEC_KEY).tobytes().decode("utf-8"))
    return load_state_dict(build_model(spec), arrays)


# ----------------------------------------------------------------------------- simulation
def simulate_test_set(graph, cfg, x: np.ndarray, batch: int = 512, progress: bool = False):
    """Run `graph` (batch 1) on the machine over images `x` in batches of up to `batch`.

    Returns (logits int64 [N, classes], exact, message): `exact` is True when every layer's
    simulated output equals `run_reference` for every image.
    """
    from accelsim.frontend.lower import lower
    from accelsim.quant.to_ir import graph_logits
    from accelsim.runner import run_model

    programs, logits, exact, message = {}, [], True, ""
    for i in range(0, len(x), batch):
        xb = x[i : i + batch]
        if len(xb) not in programs:
            programs[len(xb)] = lower(graph, cfg, batch=len(xb))
        res = run_model(graph, cfg, xb, check=True, program=programs[len(xb)], progress=progress)
        logits.append(graph_logits(graph, res.outputs))
        if not res.check_ok and exact:
            exact, message = False, f"images {i}..{i + len(xb) - 1}: {res.check_message}"
        message = message or res.check_message
    return np.concatenate(logits), exact, message


def per_image_cost(graph, cfg, x1: np.ndarray) -> dict:
    """Latency (cycles, ms) and energy (pJ) of one image on `cfg` (count-only simulation)."""
    from accelsim.report import summarize
    from accelsim.runner import run_model

    s = summarize(run_model(graph, cfg, x1[:1], count_only=True), cfg)
    return {
        "latency_cycles": int(s["latency_cycles"]),
        "latency_ms": float(s["latency_ms"]),
        "energy_pj": float(s["energy_pj"]),
        "macs": int(s["macs"]),
        "dram_bytes": int(s["dram_bytes"]),
    }


def evaluate_on_machine(
    model, data, cfg, n_images: int | None = None, batch: int = 512, progress: bool = False
) -> tuple[dict, object]:
    """Convert a trained quantized model, simulate it over the test set and compare.

    Returns (metrics, graph). Metrics: simulated_accuracy; fake_quant_accuracy (the trained
    model in eval mode); disagreements (machine class != the trained model's class,
    `model.predict`); disagreements_export (vs `fake_quant_predict`, the exported layers in
    float64, biases as the model holds them); disagreements_int_bias (vs the exported layers
    with biases rounded to the int32 the machine holds); reference_exact; per-image cost. For a
    model trained to the end (BN folded, bias on the int32 grid) the three references coincide.
    """
    from accelsim.quant.export import export_layers, fake_quant_predict, run_exported
    from accelsim.quant.to_ir import integer_bias_layers, model_to_graph

    graph = model_to_graph(model, batch=1, calib_x=data.x_train)
    x, y = data.x_test[:n_images], data.y_test[:n_images]
    t0 = time.perf_counter()
    logits, exact, message = simulate_test_set(graph, cfg, x, batch, progress)
    sim = logits.argmax(axis=1)
    trained = model.predict(x)
    fq = fake_quant_predict(model, x)
    fq_int = run_exported(integer_bias_layers(export_layers(model)), x).argmax(axis=1)
    out = {
        "simulated_accuracy": float((sim == y).mean()),
        "fake_quant_accuracy": float((trained == y).mean()),
        "simulated_images": len(x),
        "disagreements": int((sim != trained).sum()),
        "agreement": float((sim == trained).mean()),
        "disagreements_export": int((sim != fq).sum()),
        "disagreements_int_bias": int((sim != fq_int).sum()),
        "reference_exact": bool(exact),
        "reference_check": message,
        "sim_seconds": time.perf_counter() - t0,
    }
    cost = per_image_cost(graph, cfg, x)
    out.update({f"{k}_per_image": v for k, v in cost.items()})
    return out, graph


# ----------------------------------------------------------------------------- command
def _recipe_config(dataset: str, model: str, fp_epochs: int | None):
    from workloads.trained import CONFIGS, Q_EPOCHS

    cfg = CONFIGS[(dataset, model)]
    if fp_epochs is not None:
        cfg = replace(cfg, fp_epochs=fp_epochs)
    return cfg, Q_EPOCHS[dataset]


def format_table(metrics: dict) -> str:
    """Bit width x accuracy table of one run: each training stage, then the machine."""
    lines = [f"{'stage':<10} {'W/A':<6} {'epochs':>6} {'test acc %':>10}"]
    for s in metrics["stages"]:
        wa = "fp" if s["w_bits"] is None else f"{s['w_bits']}/{s['a_bits']}"
        kind = "folded" if s.get("folded") else "train"
        lines.append(f"{kind:<10} {wa:<6} {s['epochs']:>6} {100 * s['test_accuracy']:>10.2f}")
    if metrics.get("simulated_accuracy") is not None:
        wa = f"{metrics['w_bits']}/{metrics['a_bits']}"
        lines.append(
            f"{'machine':<10} {wa:<6} {'':>6} {100 * metrics['simulated_accuracy']:>10.2f}"
        )
        lines.append(
            f"disagreements with the trained model: {metrics['disagreements']} of "
            f"{metrics['simulated_images']} (exported float64 layers: "
            f"{metrics['disagreements_export']}, with int32 biases: "
            f"{metrics['disagreements_int_bias']}); reference exact: {metrics['reference_exact']}"
        )
        lines.append(
            f"per image on {metrics['hw_config']}: {metrics['latency_cycles_per_image']} cycles "
            f"({metrics['latency_ms_per_image']:.4f} ms), "
            f"{metrics['energy_pj_per_image'] / 1e6:.3f} uJ"
        )
    return "\n".join(lines)


def run_train(args) -> int:
    """Implementation of `accelsim train` (see the module docstring); returns the exit code."""
    from accelsim.config import load_config
    from accelsim.frontend.native import save_model
    from accelsim.quant.data import load_dataset
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
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (tuple, set)):
        return list(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")
