"""Full training runs of the recipes in `workloads/trained.py`: one fp teacher per
(dataset, model, seed), then LSQ and ULQ at each width from that teacher; prints a table of
width x accuracy and optionally writes all metrics as JSON.

    python workloads/train_sweep.py --dataset digits --model cnn --bits 4/4 2/2 1/2 \\
        --seeds 0 1 2 --jobs 2 --json /tmp/digits_cnn.json

--jobs N runs (dataset, model, seed) groups in N processes with one BLAS thread each (on two
cores this beats one process with two BLAS threads on these small GEMMs).
"""

import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np


def _group(dataset: str, model: str, seed: int, bits: list, methods: list, epochs, progress):
    """Train one teacher and its quantized variants; returns a list of metrics dicts."""
    from accelsim.quant.data import load_dataset
    from accelsim.quant.export import fake_quant_predict
    from workloads.trained import get_recipe, run_recipe

    data = load_dataset(dataset)
    fp_recipe = get_recipe(f"{dataset}-{model}-fp", seed)
    teacher, fp_metrics = run_recipe(fp_recipe, progress, dataset=data)
    out = [fp_metrics]
    print(f"[seed {seed}] {fp_recipe.name}: {fp_metrics['test_accuracy']:.4f}", flush=True)
    for w, a in bits:
        for method in methods:
            r = get_recipe(f"{dataset}-{model}-{method}-w{w}a{a}", seed)
            if epochs is not None:
                r = type(r)(**{**r.__dict__, "epochs": epochs})
            qmodel, m = run_recipe(r, progress, teacher=teacher, dataset=data)
            m.pop("config", None)
            # the float reference of the exported integer model (BN folded) vs the training model
            fq = fake_quant_predict(qmodel, data.x_test)
            m["fake_quant_test_accuracy"] = float((fq == data.y_test).mean())
            m["fake_quant_disagreements"] = int((fq != qmodel.predict(data.x_test)).sum())
            out.append(m)
            print(f"[seed {seed}] {r.name}: {m['test_accuracy']:.4f} "
                  f"(stages {[round(s['test_accuracy'], 4) for s in m['stages']]}; "
                  f"fake-quant disagreements {m['fake_quant_disagreements']})", flush=True)
    for m in out:
        m.pop("config", None)
    return out


def _table(results: list, bits: list, methods: list) -> str:
    def acc(method, w, a):
        xs = [m["test_accuracy"] for m in results if m["method"] == method
              and m["w_bits"] == w and m["a_bits"] == a]
        return f"{100 * np.mean(xs):6.2f} ({len(xs)})" if xs else "   -   "

    lines = [f"{'W/A':6s} " + " ".join(f"{m:>11s}" for m in methods)]
    lines.append(f"{'fp':6s} {acc('fp', None, None)}")
    for w, a in bits:
        lines.append(f"{w}/{a:<4d} " + " ".join(f"{acc(m, w, a):>11s}" for m in methods))
    return "\n".join(lines) + "\n(test accuracy %, mean over (n) seeds)"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="digits", choices=("digits", "mnist"))
    ap.add_argument("--model", default="cnn", choices=("mlp", "cnn"))
    ap.add_argument("--bits", nargs="*", default=["8/8", "4/4", "3/3", "2/2", "1/2"],
                    help="W/A widths")
    ap.add_argument("--methods", nargs="*", default=["lsq", "ulq"])
    ap.add_argument("--seeds", nargs="*", type=int, default=[0])
    ap.add_argument("--epochs", type=int, default=None, help="override the quantized epochs")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None, help="write all metrics here")
    args = ap.parse_args(argv)
    bits = [tuple(int(v) for v in b.split("/")) for b in args.bits]
    jobs = [(args.dataset, args.model, s, bits, args.methods, args.epochs, args.jobs == 1)
            for s in args.seeds]
    if args.jobs > 1:
        os.environ["OPENBLAS_NUM_THREADS"] = "1"  # inherited by the worker processes
        with ProcessPoolExecutor(args.jobs) as pool:
            groups = list(pool.map(_group, *zip(*jobs)))
    else:
        groups = [_group(*j) for j in jobs]
    results = [m for g in groups for m in g]
    print(_table(results, bits, args.methods))
    if args.json:
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1) + "\n")
        os.replace(tmp, args.json)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
