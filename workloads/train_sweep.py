"""Full training runs of the recipes in `workloads/trained.py`: one fp teacher per
(dataset, model, seed), then LSQ and ULQ at each width from that teacher; prints a table of
width x accuracy and optionally writes all metrics as JSON.

    python workloads/train_sweep.py --dataset digits --model cnn --bits 4/4 2/2 1/2 \\
        --seeds 0 1 2 --jobs 2 --json /tmp/digits_cnn.json

--jobs N runs (dataset, model, seed) groups in N processes (training itself uses
`TrainConfig.blas_threads`, one BLAS thread by default, so results do not depend on N).

--validation trains on 85% of the training images and reports accuracy on the other 15%
(`data.validation_split`), never the test split: use it with --set to choose hyperparameters,

    python workloads/train_sweep.py --bits 2/2 1/2 --methods ulq --seeds 0 1 2 --jobs 2 \
        --validation --set ulq_lambda=1.0
"""

import argparse
import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np


def _group(
    dataset: str,
    model: str,
    seed: int,
    bits: list,
    methods: list,
    epochs,
    progress,
    validation: bool = False,
    overrides: dict | None = None,
):
    """Train one teacher and its quantized variants; returns a list of metrics dicts."""
    from dataclasses import replace

    from accelsim.quant.data import load_dataset, validation_split
    from accelsim.quant.export import fake_quant_predict
    from workloads.trained import get_recipe, run_recipe

    data = load_dataset(dataset)
    if validation:
        data = validation_split(data)

    def recipe(name):
        r = get_recipe(name, seed)
        if not overrides:
            return r
        r = replace(r, config=replace(r.config, **overrides))
        # an fp recipe's epoch count is its own field (fixed from fp_epochs when it was built)
        return replace(r, epochs=r.config.fp_epochs) if r.method == "fp" else r

    fp_recipe = recipe(f"{dataset}-{model}-fp")
    teacher, fp_metrics = run_recipe(fp_recipe, progress, dataset=data)
    out = [fp_metrics]
    print(f"[seed {seed}] {fp_recipe.name}: {fp_metrics['test_accuracy']:.4f}", flush=True)
    for w, a in bits:
        for method in methods:
            r = recipe(f"{dataset}-{model}-{method}-w{w}a{a}")
            if epochs is not None:
                r = type(r)(**{**r.__dict__, "epochs": epochs})
            qmodel, m = run_recipe(r, progress, teacher=teacher, dataset=data)
            m.pop("config", None)
            m["overrides"] = overrides or {}
            # the float64 export (what the machine runs, up to RESCALE rounding) vs the model
            fq = fake_quant_predict(qmodel, data.x_test)
            m["fake_quant_test_accuracy"] = float((fq == data.y_test).mean())
            m["fake_quant_disagreements"] = int((fq != qmodel.predict(data.x_test)).sum())
            out.append(m)
            print(
                f"[seed {seed}] {r.name}: {m['test_accuracy']:.4f} loss {m['test_loss']:.4f} "
                f"(stages {[round(s['test_accuracy'], 4) for s in m['stages']]}; "
                f"fake-quant disagreements {m['fake_quant_disagreements']})",
                flush=True,
            )
    for m in out:
        m.pop("config", None)
    return out


def _table(results: list, bits: list, methods: list) -> str:
    def cell(method, w, a):
        ms = [m for m in results if m["method"] == method and m["w_bits"] == w and m["a_bits"] == a]
        if not ms:
            return "-"
        acc = 100 * np.mean([m["test_accuracy"] for m in ms])
        loss = np.mean([m["test_loss"] for m in ms])
        return f"{acc:.2f} / {loss:.4f} ({len(ms)})"

    lines = [f"{'W/A':6s} " + " ".join(f"{m:>22s}" for m in methods)]
    lines.append(f"{'fp':6s} {cell('fp', None, None):>22s}")
    for w, a in bits:
        lines.append(f"{w}/{a:<4d} " + " ".join(f"{cell(m, w, a):>22s}" for m in methods))
    split = "validation" if results and results[0]["dataset"].endswith("-val") else "test"
    return "\n".join(lines) + f"\n({split} accuracy % / cross entropy, mean over (n) seeds)"


def _overrides(items: list) -> dict:
    """`FIELD=VALUE` strings -> TrainConfig overrides, each value converted to the field's type."""
    from dataclasses import fields

    from accelsim.quant.trainer import TrainConfig

    types = {f.name: type(getattr(TrainConfig(), f.name)) for f in fields(TrainConfig)}
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in types or types[key] in (dict, type(None)):
            raise SystemExit(
                f"--set {item!r}: expected FIELD=VALUE with FIELD a scalar "
                f"TrainConfig field ({', '.join(sorted(types))})"
            )
        if types[key] is bool:
            if value.lower() not in ("true", "false"):
                raise SystemExit(f"--set {item!r}: expected true or false")
            out[key] = value.lower() == "true"
            continue
        try:
            out[key] = types[key](value)
        except ValueError:
            raise SystemExit(f"--set {item!r}: {key} takes a {types[key].__name__}") from None
    try:
        TrainConfig(**out)  # its own checks (e.g. fold_train) before any training starts
    except ValueError as exc:
        raise SystemExit(f"--set: {exc}") from None
    return out


def main(argv=None) -> None:
    from accelsim.numeric import bits_arg
    from workloads.trained import BITS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    ap.add_argument("--seeds", nargs="*", type=int, default=[0])
    ap.add_argument("--epochs", type=int, default=None, help="override the quantized epochs")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument(
        "--validation",
        action="store_true",
        help="hold out 15%% of the training images and report accuracy on them",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a TrainConfig field of every recipe; repeatable",
    )
    ap.add_argument("--json", type=Path, default=None, help="write all metrics here")
    args = ap.parse_args(argv)
    bits = list(BITS) if args.bits is None else [(w, a) for a, w in args.bits]
    overrides = _overrides(args.set)
    jobs = [
        (
            args.dataset,
            args.model,
            s,
            bits,
            args.methods,
            args.epochs,
            args.jobs == 1,
            args.validation,
            overrides,
        )
        for s in args.seeds
    ]
    if args.jobs > 1:
        from accelsim.sweep.executor import die_with_parent

        # Fresh (spawned) workers read OPENBLAS_NUM_THREADS at start; forked ones would keep
        # the parent's already-started BLAS pool and oversubscribe the cores. Each worker is
        # killed by the kernel when this process dies (a SIGTERM would otherwise orphan it).
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
        with ProcessPoolExecutor(
            args.jobs,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=die_with_parent,
            initargs=(os.getpid(),),
        ) as pool:
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
