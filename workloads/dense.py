"""Dense quantized workloads with random weights: a small CNN, an MLP, ResNet-18, and a random
CNN generator for lowering tests.

Every builder is seeded and returns a validated `accelsim.ir.Graph` whose step sizes are
calibrated on a random input (see `accelsim.ir.builder`). `WORKLOADS` lists the built-in
models by name for `accelsim workloads` and `accelsim run NAME --bits A/W`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from accelsim.ir import BatchNorm, Graph, QuantConv2d, Quantize, TensorInfo
from accelsim.ir.builder import GraphBuilder, with_input_shape
from accelsim.numeric import MAC_MAX_BITS, check_bits

BITS_CHOICES = (2, 4, 8)  # the per-layer widths random_cnn draws from (MAC widths 1..8)


def small_cnn(
    bits_a: int = 8, bits_w: int = 8, seed: int = 0, *, input_hw: int = 16, num_classes: int = 10
) -> Graph:
    """Small CNN on [1, input_hw, input_hw, 3]: conv3x3, depthwise 3x3 (ReLU6) + pointwise with
    a residual add, maxpool, conv3x3, avgpool, global average pool, linear.

    bits_a / bits_w: activation and weight bits of every layer (the input is 8-bit).
    """
    b = GraphBuilder("small_cnn", (1, input_hw, input_hw, 3), np.random.default_rng(seed))
    x = b.quantize(8, signed=True)
    c1 = b.conv(x, 16, 3, w_bits=bits_w, bits=bits_a, name="conv1")
    dw = b.conv(c1, 16, 3, groups=16, w_bits=bits_w, bits=bits_a, relu6=True, name="dwconv")
    pw = b.conv(dw, 16, 1, w_bits=bits_w, bits=bits_a, signed=True, relu=False, name="pwconv")
    r = b.add(c1, pw, bits=bits_a, name="res_add")
    p = b.maxpool(r, 2, name="maxpool")
    c3 = b.conv(p, 32, 3, w_bits=bits_w, bits=bits_a, name="conv3")
    a = b.avgpool(c3, 2, name="avgpool")
    g = b.global_avgpool(a, name="gap")
    f = b.flatten(g, name="flatten")
    return b.finish(b.linear(f, num_classes, w_bits=bits_w, bits=8, name="fc"))


def mlp(
    bits_a: int = 8,
    bits_w: int = 8,
    seed: int = 0,
    *,
    in_features: int = 64,
    hidden: tuple[int, ...] = (128, 64),
    num_classes: int = 10,
    batch: int = 1,
) -> Graph:
    """Multi-layer perceptron on [batch, in_features]: Linear+ReLU per hidden width, then a
    Linear classifier with 8-bit signed logits."""
    b = GraphBuilder("mlp", (batch, in_features), np.random.default_rng(seed))
    x = b.quantize(8, signed=True)
    for i, width in enumerate(hidden, 1):
        x = b.linear(x, width, w_bits=bits_w, bits=bits_a, signed=False, relu=True, name=f"fc{i}")
    return b.finish(b.linear(x, num_classes, w_bits=bits_w, bits=8, name="logits"))


def image_builder(
    name: str,
    input_hw: int,
    calib_hw: int,
    seed: int,
    weight_dtype: type = np.float64,
    calib_pixels: int = 8192,
) -> GraphBuilder:
    """Builder of an image model on [1, hw, hw, 3] with hw = min(input_hw, calib_hw).

    Calibrating at calib_hw keeps building a 224x224 network fast (the calibration runs every
    layer in the integer reference); `at_image_size` then re-declares the finished graph for
    input_hw with the same weights and steps. Small sizes calibrate on more images (2 to 8,
    about calib_pixels pixels in all). weight_dtype: see `GraphBuilder`.
    """
    hw = min(input_hw, calib_hw)
    batch = max(2, min(8, calib_pixels // (hw * hw)))  # enough pixels at small sizes
    rng = np.random.default_rng(seed)
    return GraphBuilder(name, (1, hw, hw, 3), rng, calib_batch=batch, weight_dtype=weight_dtype)


def at_image_size(g: Graph, input_hw: int) -> Graph:
    """`g` re-declared for a [1, input_hw, input_hw, 3] input (itself if already that size)."""
    hw = g.tensors[g.input].shape[1]
    return g if hw == input_hw else with_input_shape(g, (1, input_hw, input_hw, 3))


def residual_add(
    b: GraphBuilder, x: str, y: str, cout: int, stride: int, name: str, bits_a: int, bits_w: int
) -> str:
    """Close a ResNet block: ReLU(y + shortcut), the shortcut being x, or a 1x1 conv of x
    (`name.downsample`, stride `stride`, cout channels) where the shape changes."""
    if stride != 1 or b.graph.tensors[x].channels != cout:
        x = b.conv(
            x,
            cout,
            1,
            stride=stride,
            padding=0,
            w_bits=bits_w,
            bits=bits_a,
            signed=True,
            relu=False,
            name=f"{name}.downsample",
        )
    return b.add(y, x, bits=bits_a, relu=True, name=f"{name}.add")


def _basic_block(
    b: GraphBuilder, x: str, cout: int, stride: int, name: str, bits_a: int, bits_w: int
) -> str:
    y = b.conv(x, cout, 3, stride=stride, w_bits=bits_w, bits=bits_a, name=f"{name}.conv1")
    y = b.conv(
        y, cout, 3, w_bits=bits_w, bits=bits_a, signed=True, relu=False, name=f"{name}.conv2"
    )
    return residual_add(b, x, y, cout, stride, name, bits_a, bits_w)


def resnet(
    name: str,
    block: Callable[..., str],
    stages: tuple[tuple[int, int], ...],
    bits_a: int,
    bits_w: int,
    seed: int,
    *,
    input_hw: int,
    num_classes: int,
    calib_hw: int,
    weight_dtype: type = np.float64,
) -> Graph:
    """A ResNet on [1, input_hw, input_hw, 3]: conv7x7/2 to 64 channels + maxpool3x3/2, then
    per stage (width, blocks) that many `block(b, x, width, stride, name, bits_a, bits_w)`
    (stride 2 in the first block of every stage but the first), GAP, FC. Layers are named as
    in torchvision (conv1, layer{stage}.{block}.conv1, ..., fc)."""
    b = image_builder(name, input_hw, calib_hw, seed, weight_dtype)
    x = b.quantize(8, signed=True)
    x = b.conv(x, 64, 7, stride=2, padding=3, w_bits=bits_w, bits=bits_a, name="conv1")
    x = b.maxpool(x, 3, stride=2, padding=1, name="maxpool")
    for stage, (width, blocks) in enumerate(stages, 1):
        for blk in range(blocks):
            stride = 2 if stage > 1 and blk == 0 else 1
            x = block(b, x, width, stride, f"layer{stage}.{blk}", bits_a, bits_w)
    x = b.flatten(b.global_avgpool(x, name="gap"), name="flatten")
    fc = b.linear(x, num_classes, w_bits=bits_w, bits=8, name="fc")
    return at_image_size(b.finish(fc), input_hw)


def resnet18(
    bits_a: int = 8,
    bits_w: int = 8,
    seed: int = 0,
    *,
    input_hw: int = 224,
    num_classes: int = 1000,
    calib_hw: int = 64,
) -> Graph:
    """ResNet-18 on [1, input_hw, input_hw, 3]: conv7x7/2 + maxpool3x3/2, four stages of two
    BasicBlocks (64, 128, 256, 512 channels; 1x1 stride-2 downsample convs), GAP, FC.

    20 convs + 1 fc. Step sizes are calibrated at calib_hw x calib_hw (cheap) and the graph is
    then re-declared for input_hw (weights and steps unchanged).
    """
    stages = ((64, 2), (128, 2), (256, 2), (512, 2))
    return resnet(
        "resnet18",
        _basic_block,
        stages,
        bits_a,
        bits_w,
        seed,
        input_hw=input_hw,
        num_classes=num_classes,
        calib_hw=calib_hw,
    )


def random_cnn(
    rng: np.random.Generator,
    *,
    n_layers: int = 6,
    max_hw: int = 13,
    bits: tuple[int, ...] = BITS_CHOICES,
) -> Graph:
    """A random small CNN with mixed per-layer bits, for lowering tests.

    Odd input sizes (batch 1-2, H, W in 5..max_hw, 1-5 channels), then n_layers blocks drawn
    from: conv (k 1/3/5, stride 1/2, dilation 1/2, asymmetric padding), depthwise conv,
    residual block (conv + add), max pool (padded or not), average pool (unpadded), concat
    of two branches, standalone ReLU / ReLU6.
    Ends with global average pool or flatten, then a linear layer. Activation and weight bits
    per layer are drawn from `bits`; outputs are signed or unsigned, with or without ReLU.
    """
    n, h, w = (
        int(rng.integers(1, 3)),
        int(rng.integers(5, max_hw + 1)),
        int(rng.integers(5, max_hw + 1)),
    )
    for bits_choice in bits:  # every layer's activations and weights meet the array
        check_bits(bits_choice, MAC_MAX_BITS, "random_cnn bits")
    b = GraphBuilder("random_cnn", (n, h, w, int(rng.integers(1, 6))), rng)

    def pick() -> int:
        return int(rng.choice(bits))

    x = b.quantize(pick(), signed=bool(rng.integers(2)))
    kinds = ["conv", "conv", "dw", "res", "maxpool", "avgpool", "concat", "clip"]
    for _ in range(n_layers):
        t = b.graph.tensors[x]
        _, hh, ww, c = t.shape
        kind = str(rng.choice(kinds))
        relu, signed = bool(rng.integers(2)), bool(rng.integers(2))
        # stride 2 only while the map is at least 6 wide, so it never collapses to 1x1 early
        stride = 2 if min(hh, ww) >= 6 and rng.integers(2) else 1
        wb = {"w_bits": pick(), "bits": pick()}
        if kind in ("maxpool", "avgpool") and min(hh, ww) >= 3:
            k = int(rng.integers(2, 4))
            pad = int(rng.integers(0, k // 2 + 1))
            if kind == "maxpool":
                x = b.maxpool(x, k, stride, pad)
            else:  # no padding: the vector unit's average pool divides by the full window
                x = b.avgpool(x, k, stride, 0, bits=pick())
        elif kind == "dw":
            x = b.conv(x, c, 3, groups=c, stride=stride, signed=signed, relu=relu, **wb)
        elif kind == "res":
            y = b.conv(x, c, 3, signed=True, relu=False, **wb)
            x = b.add(x, y, bits=pick(), signed=signed, relu=relu)
        elif kind == "concat":
            y1 = b.conv(x, int(rng.integers(1, 9)), 1, **wb)
            y2 = b.conv(x, int(rng.integers(1, 9)), 3, signed=True, relu=False, **wb)
            x = b.concat([y1, y2], bits=pick(), signed=signed)
        elif kind == "clip":
            x = b.clip(x, "relu6" if relu else "relu")
        else:
            k = int(rng.choice([1, 3, 5]))
            dil = int(rng.integers(1, 3)) if k > 1 else 1
            pads = tuple(int(p) for p in rng.integers(0, k // 2 + 2, 4))
            if min(hh + pads[0] + pads[1], ww + pads[2] + pads[3]) < dil * (k - 1) + 1:
                k, dil, pads = 1, 1, (0, 0, 0, 0)
            cout = int(rng.integers(1, 17))
            x = b.conv(x, cout, k, stride=stride, padding=pads, dilation=dil, signed=signed,
                       relu=relu, **wb)  # fmt: skip
    x = b.global_avgpool(x) if rng.integers(2) else x
    x = b.flatten(x)
    return b.finish(b.linear(x, int(rng.integers(2, 11)), w_bits=pick(), bits=pick()))


def conv_bn(seed: int = 0) -> Graph:
    """Tiny unfolded model: Quantize (8-bit unsigned, zp 128) -> 3x3 conv with a float output
    -> BatchNorm (one negative gamma) -> 8-bit signed output with per-channel scales.
    For batch-norm folding and format tests."""
    rng = np.random.default_rng(seed)
    conv = QuantConv2d(
        name="conv",
        inputs=("xq",),
        output="pre",
        weight=rng.integers(-7, 8, (3, 3, 2, 4)).astype(np.int8),
        w_bits=4,
        w_scale=rng.uniform(0.1, 0.2, 4),
        bias=np.arange(4, dtype=np.int32),
        padding=(1, 1, 1, 1),
    )
    bn = BatchNorm(
        name="bn",
        inputs=("pre",),
        output="y",
        gamma=np.array([1.0, -0.5, 2, 1]),
        beta=np.array([0.1, 0.2, -0.3, 0]),
        mean=np.array([0.5, 0, 1, -1]),
        var=np.array([1.0, 2, 0.5, 1]),
        eps=1e-3,
    )
    tensors = {
        "input": TensorInfo("input", (1, 5, 5, 2), 32, "float"),
        "xq": TensorInfo("xq", (1, 5, 5, 2), 8, "unsigned", 0.02, 128),
        "pre": TensorInfo("pre", (1, 5, 5, 4), 32, "float"),
        "y": TensorInfo("y", (1, 5, 5, 4), 8, "signed", np.array([0.1, 0.2, 0.3, 0.4])),
    }
    nodes = [Quantize(name="quant", inputs=("input",), output="xq"), conv, bn]
    g = Graph("conv_bn", tensors, nodes, "input", ["y"])
    g.validate()
    return g


@dataclass(frozen=True)
class Workload:
    """A built-in model: build(bits_a, bits_w, seed) -> Graph, and a one-line description.

    min_image_size: for image models, the smallest side the builder's `input_hw` keyword (the
    `--image-size` flag) accepts; None for models without an image size.
    """

    build: Callable[..., Graph]
    description: str
    min_image_size: int | None = None


WORKLOADS: dict[str, Workload] = {
    "small_cnn": Workload(
        small_cnn,
        "small CNN 16x16x3: conv, depthwise, residual add, "
        "max/avg/global pool, linear (10 classes)",
        min_image_size=4,  # two 2x2 pools
    ),
    "mlp": Workload(mlp, "MLP 64 -> 128 -> 64 -> 10 with ReLU"),
    "resnet18": Workload(
        resnet18,
        "ResNet-18 224x224x3: 20 convs + fc (1000 classes), random weights",
        min_image_size=32,  # five stride-2 stages
    ),
}
