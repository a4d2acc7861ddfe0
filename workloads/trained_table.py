"""Bit width x accuracy table of the trained digit classifiers, in training and on the machine.

For one (dataset, model): trains the fp teacher of `workloads/trained.py` once, then LSQ and ULQ
at each W/A width from it (the recipes' hyperparameters and epochs), converts each model to the
graph IR, simulates it on the whole test set on a hardware preset, and prints a Markdown table:
fake-quant test accuracy (the trained model: BN folded, int32-grid biases), machine accuracy,
images whose machine class differs from the trained model's, latency and energy
per image. Or, with --from-json, tabulates the metrics files that `accelsim train --json` wrote.

    python workloads/trained_table.py --dataset digits --model cnn --bits 4/4 2/2 1/2 \\
        --json /tmp/digits_cnn_table.json
    python workloads/trained_table.py --from-json runs/*.json
"""

import argparse
import json
import sys
from pathlib import Path


def run(dataset, model, bits, methods, epochs, fp_epochs, config, seed, progress) -> list:
    """Train and simulate; returns a list of metrics dicts (the fp teacher first)."""
    from dataclasses import replace

    from accelsim.config import load_config
    from accelsim.quant.data import load_dataset
    from accelsim.quant.machine import evaluate_on_machine
    from workloads.trained import get_recipe, run_recipe

    hw = load_config(config)
    data = load_dataset(dataset)
    fp = get_recipe(f"{dataset}-{model}-fp", seed)
    if fp_epochs is not None:
        fp = replace(fp, epochs=fp_epochs, config=replace(fp.config, fp_epochs=fp_epochs))
    teacher, m = run_recipe(fp, progress, dataset=data)
    out = [dict(m, hw_config=hw.chip.name)]
    for w, a in bits:
        for method in methods:
            r = get_recipe(f"{dataset}-{model}-{method}-w{w}a{a}", seed)
            if epochs is not None:
                r = replace(r, epochs=epochs)
            net, m = run_recipe(r, progress, teacher=teacher, dataset=data)
            sim, _ = evaluate_on_machine(net, data, hw)
            m.update(sim, hw_config=hw.chip.name)
            out.append(m)
            print(
                f"{r.name}: test {m['test_accuracy']:.4f} machine "
                f"{m['simulated_accuracy']:.4f} disagreements {m['disagreements']}",
                flush=True,
            )
    for m in out:
        m.pop("config", None)
    return out


def table(results: list) -> str:
    """Markdown table, one row per run."""
    head = (
        "| data | model | method | W/A | fake-quant acc % | machine acc % | "
        "machine != trained model | cycles/img | uJ/img |"
    )
    lines = [head, "|" + "---|" * 9]
    for m in results:
        wa = "fp" if m.get("w_bits") is None else f"{m['w_bits']}/{m['a_bits']}"
        sim = m.get("simulated_accuracy")
        if sim is None:
            lines.append(
                f"| {m['dataset']} | {m['model']} | {m['method']} | {wa} | "
                f"{100 * m['test_accuracy']:.2f} | - | - | - | - |"
            )
            continue
        n = m["simulated_images"]
        lines.append(
            f"| {m['dataset']} | {m['model']} | {m['method']} | {wa} | "
            f"{100 * m['test_accuracy']:.2f} | {100 * sim:.2f} | "
            f"{m['disagreements']} of {n} | "
            f"{m['latency_cycles_per_image']} | {m['energy_pj_per_image'] / 1e6:.2f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    from accelsim.numeric import bits_arg
    from workloads.trained import BITS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from-json", nargs="+", type=Path, help="tabulate `accelsim train` JSONs")
    ap.add_argument("--dataset", default="digits", choices=("digits", "mnist"))
    ap.add_argument("--model", default="cnn", choices=("mlp", "cnn"))
    ap.add_argument(
        "--bits",
        nargs="*",
        type=bits_arg("W/A"),
        default=None,
        help="W/A widths (default: every width of the recipes)",
    )
    ap.add_argument("--methods", nargs="*", default=["lsq", "ulq"])
    ap.add_argument("--epochs", type=int, default=None, help="override the quantized epochs")
    ap.add_argument("--fp-epochs", type=int, default=None, help="override the teacher epochs")
    ap.add_argument("--config", default="edge")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="write all metrics here")
    args = ap.parse_args(argv)
    if args.from_json:
        results = [json.loads(p.read_text()) for p in args.from_json]
    else:
        results = run(
            args.dataset,
            args.model,
            list(BITS) if args.bits is None else [(w, a) for a, w in args.bits],
            args.methods,
            args.epochs,
            args.fp_epochs,
            args.config,
            args.seed,
            sys.stderr.isatty(),
        )
    print(table(results))
    if args.json:
        from accelsim.fileio import atomic_write_text

        atomic_write_text(args.json, json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
