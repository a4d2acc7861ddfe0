"""Trained LSQ/ULQ model -> accelsim graph IR, the hand-off from training to the front end.

`model_to_graph` takes the layer list of `accelsim.quant.export.export_layers` (batch norm
already folded into per-channel weight scales and float biases) and builds a `Graph` the
lowering runs on the machine:

- `Quantize` of the float image to the first GEMM's input quantizer (unsigned, step s_a).
- `QuantConv2d` / `QuantLinear`: integer weights [KH, KW, Cin, Cout] (NHWC K order) or [K, N],
  per-channel weight scale (the trained step times the folded BN scale), int32 bias
  `round(bias / (s_in * s_w[c]))` (in accumulator units) and fused ReLU.
- Every tensor takes the quantization of the GEMM that reads it (through MaxPool / Flatten,
  which commute with quantization), i.e. the next layer's LSQ input quantizer: the RESCALE
  multiplier is `s_in * s_w[c] / s_next`. So the integer tensors are exactly the codes the
  fake-quantized training model feeds its GEMMs, up to the rounding of the rescale.
- Tensors no GEMM reads (the logits; the body output of a residual block; the input of a
  global average pool) have no trained quantizer. They get `free_bits` (16, the widest RESCALE
  output) with the smallest power-of-two step that covers their range: the largest |value|
  over `calib_x` times `CALIB_MARGIN` (clamped to the worst-case bound), or the worst-case
  bound from the integer ranges if no calibration data is given. The logits are signed;
  argmax over their integers is the machine's predicted class.
- `MaxPool`, `GlobalAvgPool` (+ `Flatten` to [N, C]), `Flatten`, residual `Add`, and `Clip`
  for a standalone ReLU.

Why the machine's class could differ from the trained model's: trained models end BN-folded
with every bias on the int32 accumulator grid (`fold.fold_batchnorm`), so the model adds the
same integer bias the hardware holds, and their integer codes agree exactly in the trained
digit/MNIST CNNs. What is left is RESCALE, which rounds ties half up in fixed point where the
float model rounds half to even, and its 32-bit fixed-point multiplier; and 16-bit logits (two
logits closer than one step tie and argmax takes the first). For a model exported before
folding (BN and float biases) `integer_bias_layers` rounds the biases the same way. Residual
blocks match too: the model adds its skip operand on the body's input grid
(`pooling.Residual`), the integer tensor the machine adds. Global average pooling does not: its
input has no trained quantizer, so the machine requantizes it at `free_bits`, which can move
a few classes.
"""

from __future__ import annotations

import numpy as np

from accelsim.errors import AccelsimError
from accelsim.ir import (
    Add,
    Clip,
    Flatten,
    GlobalAvgPool,
    Graph,
    MaxPool,
    QuantConv2d,
    Quantize,
    QuantLinear,
    TensorInfo,
)
from accelsim.numeric import INT32_MAX, value_range
from accelsim.quant.export import export_layers, run_exported

FREE_BITS = 16  # width of tensors without a trained quantizer (the widest RESCALE output)
CALIB_MARGIN = 2.0  # head-room over the largest calibrated |value| of such tensors
PASS_THROUGH = ("maxpool", "flatten", "relu")  # ops whose output keeps the input quantization


def _consumers(layers: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {d["name"]: [] for d in layers}
    for d in layers:
        for src in d["inputs"]:
            out[src].append(d)
    return out


def _gemm_quant(d: dict) -> tuple[int, str, float]:
    return int(d["act_bits"]), str(d["act_mode"]), float(d["act_scale"])


def _bounds(layers: list[dict]) -> dict[str, float]:
    """Worst-case |real value| of every tensor from the integer ranges (no data needed)."""
    bound: dict[str, float] = {}
    for d in layers:
        t = d["type"]
        if t == "input":
            bound[d["name"]] = 1.0  # images are scaled to [0, 1]
        elif t in ("conv2d", "linear"):
            amax = max(abs(d["act_qmin"]), abs(d["act_qmax"]))
            w = np.abs(d["w_int"].astype(np.float64)).sum(axis=0)
            b = d["act_scale"] * d["w_scale"] * w * amax + np.abs(d["bias"])
            bound[d["name"]] = float(b.max())
        elif t == "add":
            bound[d["name"]] = sum(bound[s] for s in d["inputs"])
        else:
            bound[d["name"]] = bound[d["inputs"][0]]
    return bound


def _calibrated(layers: list[dict], calib_x: np.ndarray) -> dict[str, float]:
    """Largest |real value| of every tensor over `calib_x` (float model, folded BN)."""
    out = {}
    for i, d in enumerate(layers):
        if d["type"] != "input":
            y = np.concatenate(
                [
                    run_exported(layers[: i + 1], calib_x[j : j + 500])
                    for j in range(0, len(calib_x), 500)
                ]
            )
            out[d["name"]] = float(np.abs(y).max()) if y.size else 0.0
    return out


def assign_quant(
    layers: list[dict], calib_x: np.ndarray | None = None, free_bits: int = FREE_BITS
) -> dict[str, tuple[int, str, float]]:
    """(bits, mode, scale) of every tensor of an `export_layers` list (see module docstring)."""
    cons = _consumers(layers)
    by_name = {d["name"]: d for d in layers}
    bound = _bounds(layers)
    seen = _calibrated(layers, calib_x) if calib_x is not None and len(calib_x) else {}
    quant: dict[str, tuple[int, str, float]] = {}

    def nonneg(name: str) -> bool:  # ReLU output, possibly through max pool / flatten
        d = by_name[name]
        return d["relu"] or (d["type"] in PASS_THROUGH and nonneg(d["inputs"][0]))

    def free(name: str) -> tuple[int, str, float]:
        mode = "unsigned" if nonneg(name) else "signed"
        rng = bound[name]
        if name in seen and seen[name] > 0:
            rng = min(rng, CALIB_MARGIN * seen[name])
        # A power-of-two step: a step sized exactly to the calibrated maximum makes the
        # rescale multiplier s_in*s_w/s_out a ratio of small integers on that channel, so
        # exact .5 ties (where fixed-point half-up and float half-even rounding differ) recur.
        step = max(rng, 1e-12) / value_range(free_bits, mode)[1]
        return free_bits, mode, float(2.0 ** np.ceil(np.log2(step)))

    def of(name: str) -> tuple[int, str, float]:
        if name in quant:
            return quant[name]
        gemms = [c for c in cons[name] if c["type"] in ("conv2d", "linear")]
        passes = [c for c in cons[name] if c["type"] in PASS_THROUGH]
        found = {_gemm_quant(c) for c in gemms} | {of(c["name"]) for c in passes}
        if len(found) > 1:
            raise AccelsimError(
                f"to_ir: tensor {name!r} is read by layers with different input "
                f"quantizers {sorted(found)}; one integer tensor cannot feed both"
            )
        quant[name] = found.pop() if found else free(name)
        return quant[name]

    for d in reversed(layers):
        of(d["name"])
    return quant


def _tensor(name: str, shape: tuple, q: tuple[int, str, float]) -> TensorInfo:
    bits, mode, scale = q
    return TensorInfo(name, tuple(int(v) for v in shape), bits=bits, mode=mode, scale=scale)


def _weighted(d: dict, src: str, ir_src: str, out: str, quant: dict) -> QuantConv2d | QuantLinear:
    w_scale = np.asarray(d["w_scale"], np.float64)
    if np.any(w_scale <= 0) or not np.all(np.isfinite(w_scale)):
        raise AccelsimError(
            f"to_ir: layer {d['name']!r} has a zero or non-finite weight scale "
            "(a batch-norm gamma of 0?); it cannot be rescaled"
        )
    s_in = quant[src][2]
    bias = np.rint(np.asarray(d["bias"], np.float64) / (s_in * w_scale))
    if np.any(np.abs(bias) > INT32_MAX):
        raise AccelsimError(f"to_ir: layer {d['name']!r}: integer bias overflows int32")
    w = np.asarray(d["w_int"]).astype(np.int8)
    # The output tensor's range is the next quantizer's [act_qmin, act_qmax]; fused ReLU
    # clamps at 0 inside RESCALE, so no extra clip is needed.
    kw = {
        "name": d["name"],
        "inputs": (ir_src,),
        "output": out,
        "w_bits": int(d["w_bits"]),
        "w_mode": d["w_mode"],
        "w_scale": w_scale,
        "bias": bias.astype(np.int32),
        "relu": bool(d["relu"]),
    }
    if d["type"] == "linear":
        return QuantLinear(weight=w, **kw)
    kh, kwid = d["kernel"]
    cin = d["in_shape"][-1]
    ph, pw = d["padding"]
    return QuantConv2d(
        weight=w.reshape(kh, kwid, cin, w.shape[1]),
        stride=tuple(d["stride"]),
        padding=(ph, ph, pw, pw),
        **kw,
    )


def layers_to_graph(
    layers: list[dict],
    name: str = "trained",
    batch: int = 1,
    calib_x: np.ndarray | None = None,
    free_bits: int = FREE_BITS,
) -> Graph:
    """Graph IR of an `export_layers` list for `batch` images; the output is the logits."""
    if not layers or layers[0]["type"] != "input":
        raise AccelsimError("to_ir: the layer list must start with the input entry")
    quant = assign_quant(layers, calib_x, free_bits)
    first = layers[0]
    tensors = {"input": TensorInfo("input", (batch, *first["out_shape"]), bits=32, mode="float")}
    nodes: list = []
    ir_name = {first["name"]: "input_q"}  # export tensor -> IR tensor holding its integers

    def add(op, shape, q) -> str:
        tensors[op.output] = _tensor(op.output, (batch, *shape), q)
        nodes.append(op)
        return op.output

    add(
        Quantize(name="input_q", inputs=("input",), output="input_q"),
        first["out_shape"],
        quant[first["name"]],
    )
    for d in layers[1:]:
        t, out = d["type"], d["name"]
        srcs = tuple(ir_name[s] for s in d["inputs"])
        q = quant[out]
        if t in ("conv2d", "linear"):
            op = _weighted(d, d["inputs"][0], srcs[0], out, quant)
            ir_name[out] = add(op, d["out_shape"], q)
        elif t == "maxpool":
            (ph, pw) = d["padding"]
            op = MaxPool(
                name=out,
                inputs=srcs,
                output=out,
                kernel=tuple(d["kernel"]),
                stride=tuple(d["stride"]),
                padding=(ph, ph, pw, pw),
            )
            ir_name[out] = add(op, d["out_shape"], q)
        elif t == "global_avgpool":
            c = d["out_shape"][-1]
            g = add(
                GlobalAvgPool(name=f"{out}_pool", inputs=srcs, output=f"{out}_pool"), (1, 1, c), q
            )
            ir_name[out] = add(Flatten(name=out, inputs=(g,), output=out), (c,), q)
        elif t == "flatten":
            ir_name[out] = add(Flatten(name=out, inputs=srcs, output=out), d["out_shape"], q)
        elif t == "add":
            op = Add(name=out, inputs=srcs, output=out, relu=bool(d["relu"]))
            ir_name[out] = add(op, d["out_shape"], q)
        elif t == "relu":
            lo, hi = value_range(q[0], q[1])
            op = Clip(name=out, inputs=srcs, output=out, lo=max(lo, 0), hi=hi, kind="relu")
            ir_name[out] = add(op, d["out_shape"], q)
        else:
            raise AccelsimError(f"to_ir: layer {out!r} has unsupported type {t!r}")
    g = Graph(name, tensors, nodes, "input", [ir_name[layers[-1]["name"]]])
    g.validate()
    return g


def model_to_graph(
    model,
    name: str | None = None,
    batch: int = 1,
    calib_x: np.ndarray | None = None,
    free_bits: int = FREE_BITS,
) -> Graph:
    """Graph IR of a trained quantized `Model` (method lsq or ulq) for `batch` NHWC images.

    calib_x: images (NHWC, [0, 1]) used to size the steps of tensors with no trained
    quantizer, above all the 16-bit logits; without it the worst-case bound is used (coarser).
    """
    q = model.spec.get("quant") or {}
    name = name or f"{model.spec.get('arch', 'model')}_w{q.get('w_bits')}a{q.get('a_bits')}"
    return layers_to_graph(export_layers(model), name, batch, calib_x, free_bits)


def graph_logits(graph: Graph, outputs: dict) -> np.ndarray:
    """The integer logits [N, classes] among a run's tensors (`RunResult.outputs` or
    `run_reference` output), as int64."""
    out = graph.outputs[0]
    return np.asarray(outputs[out]).astype(np.int64).reshape(-1, graph.tensors[out].shape[-1])


def integer_bias_layers(layers: list[dict]) -> list[dict]:
    """A copy of an `export_layers` list whose GEMM biases are rounded to accumulator units
    (`round(bias / (s_in * s_w[c])) * s_in * s_w[c]`), i.e. the int32 bias the hardware holds.

    `run_exported` on it is the fake-quantized model with integer biases: it differs from the
    machine only by RESCALE rounding (half up in fixed point vs half to even in float) and the
    32-bit multiplier. For a model that finished training (BN folded, `fold.fold_batchnorm`)
    the biases are on that grid already and this copy changes nothing; for one exported
    before folding, `fake_quant_logits` also differs by the bias rounding.
    """
    out = []
    for d in layers:
        d = dict(d)
        if d["type"] in ("conv2d", "linear"):
            unit = d["act_scale"] * np.asarray(d["w_scale"], np.float64)
            d["bias"] = np.rint(np.asarray(d["bias"], np.float64) / unit) * unit
        out.append(d)
    return out
