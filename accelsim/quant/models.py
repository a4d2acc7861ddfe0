"""Digit classifiers (MLP and small CNN) and their quantization for LSQ/ULQ training.

A `Model` is a list of layers run in order (a `Residual` layer holds its own body). `quantize`
attaches LSQ quantizers to every Linear/Conv2d: weights at `w_bits` (bipolar at 1 bit,
symmetric above, per output channel or per tensor) and input activations at `a_bits` (unsigned
where the input follows a ReLU, signed otherwise); the first layer's input (pixels in [0, 1]) is
quantized unsigned at `first_a_bits` (8) on the fixed grid of step 1/(2**bits - 1) = 1/255: the
pixels are 8-bit data already, and a learned input step proved unstable (one gradient spike
sent it to 4e3 and zeroed the input). The last layer's
weights are quantized too, so every GEMM runs on the integer matrix multiplier.
"""

import copy

import numpy as np

from accelsim.errors import AccelsimError
from accelsim.quant.fold import fold_batchnorm
from accelsim.quant.layers import BatchNorm, Conv2d, Linear, Module, ReLU, _QuantGemm
from accelsim.quant.pooling import Flatten, GlobalAvgPool, MaxPool2d, Residual
from accelsim.quant.quantizer import LsqQuantizer, weight_mode

ARCHS = ("mlp", "cnn")


class Model(Module):
    """Layers in order plus the JSON-able `spec` that rebuilds them (`build_model`)."""

    def __init__(self, layers: list, spec: dict):
        self.layers = list(layers)
        self.spec = spec

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x, train)
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def params(self) -> list:
        return [p for layer in self.layers for p in layer.params()]

    def quantizers(self) -> list:
        return [q for layer in self.layers for q in layer.quantizers()]

    def modules(self):
        """Every layer, depth first (a Residual, then its body)."""
        for layer in self.layers:
            yield layer
            if isinstance(layer, Residual):
                yield from layer.body

    def gemms(self) -> list:
        """The Linear and Conv2d layers in execution order."""
        return [m for m in self.modules() if isinstance(m, _QuantGemm)]

    def logits(self, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
        """Eval-mode outputs [N, classes] (fake-quantized if the model is quantized), computed in
        float64 so rounding to the integer grids is not disturbed by float32 sums."""
        x = np.asarray(x, dtype=np.float64)
        outs = [self.forward(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        return np.concatenate(outs)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted class per image (int64)."""
        return self.logits(x).argmax(axis=1)


def _name_and_sign(layers: list, counts: dict, signed: bool) -> bool:
    """Name layers (conv1, bn1, ...) and mark each GEMM's input signedness; return the output's."""
    for layer in layers:
        kind = type(layer).__name__.lower()
        counts[kind] = counts.get(kind, 0) + 1
        layer.name = f"{kind}{counts[kind]}"
        if isinstance(layer, _QuantGemm):
            layer.in_signed = signed
            signed = True
        elif isinstance(layer, Residual):
            _name_and_sign(layer.body, counts, signed)
            signed = True
        elif isinstance(layer, ReLU):
            signed = False
        elif isinstance(layer, BatchNorm):
            signed = True
    return signed


def _conv_block(cin, cout, rng, dtype, stride=1):
    return [
        Conv2d(cin, cout, 3, stride, 1, bias=False, rng=rng, dtype=dtype),
        BatchNorm(cout, dtype=dtype),
        ReLU(),
    ]


def cnn(
    in_shape=(8, 8, 1),
    classes: int = 10,
    channels=(16, 32),
    pools=None,
    head: str = "flatten",
    residual: bool = False,
    seed: int = 0,
    dtype=np.float32,
) -> Model:
    """Small CNN: per entry of `channels` a conv3x3 (pad 1, no bias) + BN + ReLU, then a 2x2 max
    pool where `pools` says (default: pool every block for 28x28 input, only the last for 8x8);
    `residual` adds a two-conv residual block after the first conv; the head is flatten (NHWC
    order) or global average pool, then one Linear to `classes`."""
    h, w, cin = in_shape
    if pools is None:
        pools = [h > 8] * (len(channels) - 1) + [True]
    rng = np.random.default_rng(seed)
    layers = []
    for i, c in enumerate(channels):
        layers += _conv_block(cin, c, rng, dtype)
        if residual and i == 0:
            body = _conv_block(c, c, rng, dtype) + [
                Conv2d(c, c, 3, 1, 1, bias=False, rng=rng, dtype=dtype),
                BatchNorm(c, dtype=dtype),
            ]
            layers += [Residual(body), ReLU()]
        if pools[i]:
            layers.append(MaxPool2d(2))
            h, w = h // 2, w // 2
        cin = c
    if head == "gap":
        layers += [GlobalAvgPool(), Linear(cin, classes, rng=rng, dtype=dtype)]
    elif head == "flatten":
        layers += [Flatten(), Linear(h * w * cin, classes, rng=rng, dtype=dtype)]
    else:
        raise AccelsimError(f"cnn head: expected 'flatten' or 'gap', got {head!r}")
    spec = {
        "arch": "cnn",
        "in_shape": list(in_shape),
        "classes": classes,
        "channels": list(channels),
        "pools": [bool(p) for p in pools],
        "head": head,
        "residual": residual,
        "seed": seed,
    }
    _name_and_sign(layers, {}, signed=False)
    return Model(layers, spec)


def mlp(
    in_shape=(8, 8, 1), classes: int = 10, hidden=(256, 128), seed: int = 0, dtype=np.float32
) -> Model:
    """MLP: flatten, then per entry of `hidden` a Linear (no bias) + BN + ReLU, then Linear."""
    rng = np.random.default_rng(seed)
    k = int(np.prod(in_shape))
    layers = [Flatten()]
    for n in hidden:
        layers += [
            Linear(k, n, bias=False, rng=rng, dtype=dtype),
            BatchNorm(n, dtype=dtype),
            ReLU(),
        ]
        k = n
    layers.append(Linear(k, classes, rng=rng, dtype=dtype))
    spec = {
        "arch": "mlp",
        "in_shape": list(in_shape),
        "classes": classes,
        "hidden": list(hidden),
        "seed": seed,
    }
    _name_and_sign(layers, {}, signed=False)
    return Model(layers, spec)


def build_model(spec: dict) -> Model:
    """Rebuild a model (fresh weights) from its `spec`, including its quantizers and batch-norm
    folding if any."""
    kwargs = {k: v for k, v in spec.items() if k not in ("arch", "quant", "folded")}
    if spec.get("arch") == "cnn":
        model = cnn(**kwargs)
    elif spec.get("arch") == "mlp":
        model = mlp(**kwargs)
    else:
        raise AccelsimError(f"model spec 'arch': expected one of {ARCHS}, got {spec.get('arch')!r}")
    quant = spec.get("quant")
    model = quantize(model, **quant) if quant else model
    return fold_batchnorm(model) if spec.get("folded") else model


def quantize(
    model: Model, w_bits: int, a_bits: int, first_a_bits: int = 8, per_channel: bool = True
) -> Model:
    """A copy of `model` with LSQ quantizers on every Linear/Conv2d (see module docstring).

    Steps initialise from the first forward pass (`calibrate`). On an already quantized model
    the quantizers are replaced by new ones at the new widths.
    """
    q = copy.deepcopy(model)
    for i, layer in enumerate(q.gemms()):
        layer.wq = LsqQuantizer(w_bits, weight_mode(w_bits), "weight", per_channel)
        if i == 0:
            layer.aq = LsqQuantizer(
                first_a_bits,
                "unsigned",
                "act",
                init_step=1.0 / (2**first_a_bits - 1),
                trainable=False,
            )
        else:
            layer.aq = LsqQuantizer(a_bits, "signed" if layer.in_signed else "unsigned", "act")
    q.spec = dict(
        model.spec,
        quant={
            "w_bits": w_bits,
            "a_bits": a_bits,
            "first_a_bits": first_a_bits,
            "per_channel": per_channel,
        },
    )
    return q


def set_bits(model: Model, w_bits: int, a_bits: int) -> None:
    """Change a quantized model's widths in place (ULQ bit lowering), keeping the first layer's
    input width; every step re-initialises from the next forward pass."""
    if not model.spec.get("quant"):
        raise AccelsimError("set_bits: model is not quantized (call quantize first)")
    for i, layer in enumerate(model.gemms()):
        layer.wq.set_bits(w_bits, weight_mode(w_bits))
        if i > 0:
            layer.aq.set_bits(a_bits, layer.aq.mode)
    model.spec = dict(model.spec, quant=dict(model.spec["quant"], w_bits=w_bits, a_bits=a_bits))


def calibrate(model: Model, x: np.ndarray) -> None:
    """Run one training-mode forward pass on `x` so uninitialised steps take their LSQ init.

    Batch-norm running statistics are restored afterwards, so calibration changes only steps.
    """
    bns = [m for m in model.modules() if isinstance(m, BatchNorm)]
    saved = [(b.running_mean.copy(), b.running_var.copy()) for b in bns]
    model.forward(x, train=True)
    for b, (mean, var) in zip(bns, saved):
        b.running_mean, b.running_var = mean, var


def state_dict(model: Model) -> dict[str, np.ndarray]:
    """All arrays of a model keyed `<layer>.<field>` (weights, BN statistics, step sizes and
    gradient scales), for saving with `np.savez` next to `model.spec` as JSON."""
    out = {}
    for m in model.modules():
        for field in ("w", "b", "gamma", "beta"):
            p = getattr(m, field, None)
            if p is not None:
                out[f"{m.name}.{field}"] = p.value
        if isinstance(m, BatchNorm):
            out[f"{m.name}.running_mean"] = m.running_mean
            out[f"{m.name}.running_var"] = m.running_var
        for qname in ("wq", "aq"):
            qz = getattr(m, qname, None)
            if qz is not None and qz.initialized:
                out[f"{m.name}.{qname}.step"] = qz.step.value
                out[f"{m.name}.{qname}.grad_scale"] = np.array(qz.grad_scale)
    return out


def load_state_dict(model: Model, state: dict) -> Model:
    """Set a model's arrays from `state_dict` output (missing or misshaped keys raise)."""
    for key, value in state_dict(model).items():
        if key not in state or np.shape(state[key]) != np.shape(value):
            raise AccelsimError(f"model state: key {key!r} missing or of wrong shape")
    for m in model.modules():
        for field in ("w", "b", "gamma", "beta"):
            p = getattr(m, field, None)
            if p is not None:
                p.value = np.array(state[f"{m.name}.{field}"], dtype=p.value.dtype)
        if isinstance(m, BatchNorm):
            m.running_mean = np.array(state[f"{m.name}.running_mean"], dtype=np.float64)
            m.running_var = np.array(state[f"{m.name}.running_var"], dtype=np.float64)
        for qname in ("wq", "aq"):
            qz = getattr(m, qname, None)
            if qz is not None and f"{m.name}.{qname}.step" in state:
                qz.step.value = np.array(state[f"{m.name}.{qname}.step"], dtype=np.float64)
                qz.step.grad = np.zeros_like(qz.step.value)
                qz.grad_scale = float(state[f"{m.name}.{qname}.grad_scale"])
                qz.initialized = True
    return model
