"""A trained model on the simulated machine: convert it to the graph IR, run it over a test
set, compare the machine's classes with the trained model's, and tabulate the result.

This is the one module of `accelsim.quant` that runs the hardware model (front end and
simulator); the training modules know nothing of it.
"""

from __future__ import annotations

import time

import numpy as np

from accelsim.frontend.lower import lower
from accelsim.quant.export import export_layers, fake_quant_predict, run_exported
from accelsim.quant.to_ir import graph_logits, integer_bias_layers, model_to_graph
from accelsim.report import summarize
from accelsim.runner import run_model


def simulate_test_set(graph, cfg, x: np.ndarray, batch: int = 512, progress: bool = False):
    """Run `graph` (batch 1) on the machine over images `x` in batches of up to `batch`.

    Returns (logits int64 [N, classes], exact, message): `exact` is True when every layer's
    simulated output equals `run_reference` for every image.
    """
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


def format_table(metrics: dict) -> str:
    """Bit width x accuracy table of one training run (the metrics of `accelsim train`): each
    training stage, then the machine."""
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
