"""Training throughput of the NumPy LSQ/ULQ trainer (images per second) per model and bit width.

Times forward + backward + optimizer steps on digits (8x8) for the recipe MLP (64-256-128-10)
and CNN (conv 32, 32, pool, 64, linear; `workloads/trained.py`), full
precision and quantized at W/A 8/8, 4/4, 2/2 and 1/2, plus the ULQ step (which adds the
teacher's forward pass). Prints a table and writes benchmarks/results/train.json atomically.
The lead adds simulated latency and energy per image on `edge` to the same rows.

    python benchmarks/bench_train.py [--steps 50] [--batch 64] [--out PATH]
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from accelsim.quant.data import load_dataset, shift_augment
from accelsim.quant.models import calibrate, cnn, mlp, quantize
from accelsim.quant.optim import SGD
from accelsim.quant.trainer import cross_entropy, mse
from workloads.trained import CONFIGS

BITS = [None, (8, 8), (4, 4), (2, 2), (1, 2)]  # (w_bits, a_bits); None = full precision
OUT = Path(__file__).parent / "results" / "train.json"


def _machine() -> dict:
    blas = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or "default"
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas_threads": blas,
    }


def time_steps(model, data, steps: int, batch: int, teacher=None) -> float:
    """Seconds for `steps` SGD steps of `batch` images (after 3 warm-up steps)."""
    rng = np.random.default_rng(0)
    opt = SGD(model.params(), lr=0.01, momentum=0.9, nesterov=True)
    n = len(data.x_train)
    for i in range(steps + 3):
        if i == 3:
            t0 = time.perf_counter()
        idx = rng.integers(0, n, batch)
        x = shift_augment(data.x_train[idx], 1, rng)
        opt.zero_grad()
        logits = model.forward(x, train=True)
        _, dz = cross_entropy(logits, data.y_train[idx])
        if teacher is not None:
            dz = dz + mse(logits, teacher.forward(x))[1]
        model.backward(dz.astype(logits.dtype))
        opt.step()
    return time.perf_counter() - t0


def run(steps: int, batch: int) -> list[dict]:
    """Benchmark rows: model, method, w_bits, a_bits, images_per_s."""
    data = load_dataset("digits")
    rows = []
    for arch, build in (("mlp", mlp), ("cnn", cnn)):
        kwargs = CONFIGS[("digits", arch)].model_kwargs  # the recipe's architecture
        fp = build(in_shape=data.image_shape, classes=10, seed=0, **kwargs)
        for bits in BITS:
            methods = ["fp"] if bits is None else ["lsq", "ulq"]
            for method in methods:
                model = fp if bits is None else quantize(fp, bits[0], bits[1])
                if bits is not None:
                    calibrate(model, data.x_train[:256])
                seconds = time_steps(model, data, steps, batch, fp if method == "ulq" else None)
                rows.append(
                    {
                        "dataset": "digits",
                        "model": arch,
                        "method": method,
                        "w_bits": None if bits is None else bits[0],
                        "a_bits": None if bits is None else bits[1],
                        "batch": batch,
                        "steps": steps,
                        "images_per_s": round(steps * batch / seconds, 1),
                    }
                )
                label = "float" if bits is None else f"W{bits[0]}A{bits[1]}"
                print(
                    f"{arch:4s} {method:4s} {label:6s} {rows[-1]['images_per_s']:10.1f} images/s",
                    flush=True,
                )
    return rows


def write_atomic(path: Path, payload: dict) -> None:
    """Write JSON to `path` through a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=50, help="timed SGD steps per row")
    ap.add_argument("--batch", type=int, default=64, help="images per step")
    ap.add_argument("--out", type=Path, default=OUT, help="JSON output path")
    args = ap.parse_args(argv)
    rows = run(args.steps, args.batch)
    write_atomic(args.out, {"benchmark": "train_throughput", "machine": _machine(), "rows": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
