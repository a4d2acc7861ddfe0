"""Export of a trained quantized model as the integer hardware sees it, and its float reference.

`export_layers` folds any remaining batch norm into each GEMM's per-channel weight scale and
bias and returns integer weights, scales and activation formats layer by layer (a model that
finished training is folded already, `fold.fold_batchnorm`, and its biases lie on the int32
accumulator grid); `run_exported` evaluates that list in float64 (fake quantization, eval mode,
BN folded), and `fake_quant_predict` gives the predicted classes the lowered model on the
machine should reproduce.
"""

import numpy as np

from accelsim.errors import AccelsimError
from accelsim.quant.fold import fold_bn
from accelsim.quant.layers import BatchNorm, Conv2d, Linear, ReLU, conv_out_size, im2col
from accelsim.quant.models import Model
from accelsim.quant.pooling import Flatten, GlobalAvgPool, MaxPool2d, Residual


def _gemm_dict(layer, bn, relu: bool, src: str, shape: tuple) -> dict:
    if layer.wq is None or layer.aq is None:
        raise AccelsimError(f"export: layer {layer.name} is not quantized")
    w_int = layer.wq.int_codes(layer.w.value)
    n = w_int.shape[1]
    scale = layer.wq.steps(n)
    bias = layer.bias_value(np.float64) if layer.b is not None else np.zeros(n)
    if bn is not None:
        scale, bias = fold_bn(scale, bias, bn)
    neg = scale < 0  # negative BN gamma: flip the integers (symmetric/bipolar codes stay in range)
    w_int[:, neg] *= -1
    q_n, q_p = layer.aq.q_n, layer.aq.q_p
    d = {
        "name": layer.name,
        "inputs": [src],
        "in_shape": tuple(shape),
        "w_int": w_int.astype(np.int8),
        "w_bits": layer.wq.bits,
        "w_mode": "bipolar" if layer.wq.mode == "bipolar" else "signed",
        "w_scale": np.abs(scale),
        "w_per_channel": layer.wq.per_channel,
        "bias": bias,
        "act_bits": layer.aq.bits,
        "act_mode": layer.aq.mode,
        "act_scale": float(layer.aq.step.value[0]),
        "act_qmin": -q_n,
        "act_qmax": q_p,
        "relu": relu,
    }
    if isinstance(layer, Conv2d):
        h, w, _ = shape
        oh = conv_out_size(h, layer.kernel[0], layer.stride[0], layer.padding[0])
        ow = conv_out_size(w, layer.kernel[1], layer.stride[1], layer.padding[1])
        d.update(
            type="conv2d",
            kernel=layer.kernel,
            stride=layer.stride,
            padding=layer.padding,
            out_shape=(oh, ow, n),
        )
    else:
        d.update(type="linear", out_shape=(n,))
    return d


def _export_seq(layers: list, src: str, shape: tuple, out: list):
    i = 0
    while i < len(layers):
        layer = layers[i]
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if isinstance(layer, (Conv2d, Linear)):
            bn = nxt if isinstance(nxt, BatchNorm) else None
            j = i + 1 + (bn is not None)
            relu = j < len(layers) and isinstance(layers[j], ReLU)
            d = _gemm_dict(layer, bn, relu, src, shape)
            i = j + relu
        elif isinstance(layer, Residual):
            body_name, _ = _export_seq(layer.body, src, shape, out)
            relu = isinstance(nxt, ReLU)
            d = {
                "type": "add",
                "name": f"add_{layer.name}",
                "inputs": [src, body_name],
                "in_shape": tuple(shape),
                "out_shape": tuple(shape),
                "relu": relu,
            }
            aq = getattr(layer.body[0], "aq", None)
            if aq is not None:  # the skip operand is x on the body's input grid (`Residual`)
                d.update(
                    skip_act_scale=float(aq.step.value[0]), skip_qmin=-aq.q_n, skip_qmax=aq.q_p
                )
            i += 1 + relu
        elif isinstance(layer, MaxPool2d):
            h, w, c = shape
            oh = conv_out_size(h, layer.kernel[0], layer.stride[0], layer.padding[0])
            ow = conv_out_size(w, layer.kernel[1], layer.stride[1], layer.padding[1])
            d = {
                "type": "maxpool",
                "name": layer.name,
                "inputs": [src],
                "in_shape": tuple(shape),
                "out_shape": (oh, ow, c),
                "kernel": layer.kernel,
                "stride": layer.stride,
                "padding": layer.padding,
                "relu": False,
            }
            i += 1
        elif isinstance(layer, (GlobalAvgPool, Flatten, ReLU)):
            kind = {GlobalAvgPool: "global_avgpool", Flatten: "flatten", ReLU: "relu"}[type(layer)]
            out_shape = {
                "global_avgpool": (shape[-1],),
                "flatten": (int(np.prod(shape)),),
                "relu": tuple(shape),
            }[kind]
            d = {
                "type": kind,
                "name": layer.name,
                "inputs": [src],
                "in_shape": tuple(shape),
                "out_shape": out_shape,
                "relu": kind == "relu",
            }
            i += 1
        else:
            raise AccelsimError(
                f"export: layer {layer.name} ({type(layer).__name__}) must follow "
                "a Linear or Conv2d to be folded"
            )
        out.append(d)
        src, shape = d["name"], d["out_shape"]
    return src, shape


def export_layers(model: Model) -> list[dict]:
    """Describe a quantized model layer by layer, in execution order, for the integer hardware.

    Every dict has `type`, `name` (its output tensor), `inputs` (names of input tensors; the
    first entry of the list is `{"type": "input", "name": "input"}`), `in_shape` and
    `out_shape` (per image, NHWC, no batch axis) and `relu` (ReLU fused on the output).
    Types and their extra keys:

    - `conv2d` / `linear`: `w_int` int8 [K, N] (conv K order (kh, kw, cin), cin fastest; linear
      K order = the NHWC flatten order), `w_bits`, `w_mode` ("signed" or "bipolar"),
      `w_scale` float64 [N] (weight step times folded BN scale, always per channel, >= 0),
      `w_per_channel` (granularity of the trained step; per channel once BN is folded),
      `bias` float64 [N] (folded BN; on the int32 accumulator grid once folded in training),
      `act_bits`, `act_mode` ("unsigned" or "signed"), `act_scale` (input step s_a),
      `act_qmin`, `act_qmax` (input integer range); conv2d also `kernel`, `stride`, `padding`
      as (h, w) pairs (zero padding, which is integer 0).
      Meaning: a_int = clip(round_half_even(x / act_scale), act_qmin, act_qmax);
      acc[c] = sum_k a_int[k] * w_int[k, c] (int32); y[c] = act_scale*w_scale[c]*acc[c] + bias[c];
      then ReLU if `relu`. The next GEMM quantizes y with its own act_scale, so the rescale
      multiplier is act_scale*w_scale[c]/next_act_scale and the integer bias round(bias[c] /
      (act_scale*w_scale[c])). The last layer's y are the logits.
    - `maxpool`: `kernel`, `stride`, `padding` (pad value -inf); commutes with quantization.
    - `global_avgpool`: mean over H, W; `flatten`: NHWC -> [H*W*C]; `relu`: max(x, 0).
    - `add`: elementwise sum of its two `inputs` (residual: the block input and the body
      output), then ReLU if `relu`. With `skip_act_scale`, `skip_qmin`, `skip_qmax` (a quantized
      body) the block input is first fake-quantized to the body's input grid, the integer
      tensor the hardware adds.
    """
    if not model.spec.get("quant"):
        raise AccelsimError("export: model is not quantized (train with method lsq or ulq)")
    shape = tuple(model.spec["in_shape"])
    out = [
        {
            "type": "input",
            "name": "input",
            "inputs": [],
            "in_shape": shape,
            "out_shape": shape,
            "relu": False,
        }
    ]
    _export_seq(model.layers, "input", shape, out)
    return out


def _codes(x: np.ndarray, scale: float, qmin: int, qmax: int) -> np.ndarray:
    """Integer codes of `x` on the grid `scale`, clipped to [qmin, qmax] (round half to even)."""
    return np.clip(np.round(x / scale), qmin, qmax)


def _run_gemm(d: dict, x: np.ndarray) -> np.ndarray:
    a = _codes(x, d["act_scale"], d["act_qmin"], d["act_qmax"])
    w = d["w_int"].astype(np.float64)
    if d["type"] == "conv2d":
        cols = im2col(a, d["kernel"], d["stride"], d["padding"])
        n, oh, ow = cols.shape[:3]
        acc = (cols.reshape(n * oh * ow, -1) @ w).reshape(n, oh, ow, -1)
    else:
        acc = a @ w
    return acc * (d["act_scale"] * d["w_scale"]) + d["bias"]


def run_exported(layers: list[dict], x: np.ndarray) -> np.ndarray:
    """Evaluate an `export_layers` list on NHWC images `x` in float64; returns the last output."""
    values = {}
    y = None
    for d in layers:
        args = [values[name] for name in d["inputs"]]
        t = d["type"]
        if t == "input":
            y = np.asarray(x, dtype=np.float64)
        elif t in ("conv2d", "linear"):
            y = _run_gemm(d, args[0])
        elif t == "maxpool":
            y = im2col(args[0], d["kernel"], d["stride"], d["padding"], -np.inf).max(axis=(3, 4))
        elif t == "global_avgpool":
            y = args[0].mean(axis=(1, 2))
        elif t == "flatten":
            y = args[0].reshape(len(args[0]), -1)
        elif t == "add":
            skip = args[0]
            if "skip_act_scale" in d:
                scale = d["skip_act_scale"]
                skip = _codes(skip, scale, d["skip_qmin"], d["skip_qmax"]) * scale
            y = skip + args[1]
        elif t == "relu":
            y = args[0]
        else:
            raise AccelsimError(f"run_exported: unknown layer type {t!r} in {d['name']}")
        if d["relu"]:
            y = np.maximum(y, 0.0)
        values[d["name"]] = y
    return y


def fake_quant_logits(model: Model, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Logits of the quantized model on `x` with fake quantization, eval mode, BN folded."""
    layers = export_layers(model)
    return np.concatenate(
        [run_exported(layers, x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    )


def fake_quant_predict(model: Model, x: np.ndarray) -> np.ndarray:
    """Predicted class per image (int64) of the fake-quantized model (`fake_quant_logits`)."""
    return fake_quant_logits(model, x).argmax(axis=1)
