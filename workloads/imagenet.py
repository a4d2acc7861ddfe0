"""ImageNet classifiers at torchvision's layer shapes, with random quantized weights.

- `resnet50`: ResNet-50 v1.5 (torchvision `resnet50`): Bottleneck blocks [3, 4, 6, 3] of widths
  64, 128, 256, 512 (outputs 4x wider), the stride on the 3x3 conv (v1.5; v1 puts it on the
  first 1x1), 1x1 downsample convs on the shortcut where the shape changes.
- `mobilenet_v2`: MobileNetV2 width 1.0 (Sandler et al., CVPR 2018, Table 2; torchvision
  `mobilenet_v2`): inverted residuals (1x1 expand, depthwise 3x3, linear 1x1 project) with
  ReLU6, residual adds where stride is 1 and the width is kept, a 1x1 conv to 1280, GAP, FC.
- `vgg16`: VGG-16, configuration D (Simonyan and Zisserman, ICLR 2015): thirteen 3x3 convs in
  five stages, each closed by a 2x2 max pool, then fc6 / fc7 (4096, ReLU) and fc8 (1000).

Every conv, linear and add has activations at bits_a (unsigned after a ReLU / ReLU6, signed
where the network is linear: bottleneck and projection outputs, MobileNetV2's adds) and weights
at bits_w; the input is 8-bit and the logits are 8-bit signed, as in `workloads.dense.resnet18`.
Batch norm is taken as folded (it only sets the random biases). Step sizes are calibrated at
calib_hw (default 64; VGG-16 32) and the graph is re-declared for input_hw (default 224).
"""

from __future__ import annotations

import numpy as np

from accelsim.ir import Graph
from accelsim.ir.builder import GraphBuilder
from workloads.dense import Workload, at_image_size, image_builder, residual_add, resnet

RESNET50_STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))  # (bottleneck width, blocks)
# (expansion t, output channels c, repeats n, first stride s): MobileNetV2 paper, Table 2
MOBILENET_V2_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
VGG16_STAGES = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))  # configuration D: (width, convs)


def _bottleneck(
    b: GraphBuilder, x: str, width: int, stride: int, name: str, bits_a: int, bits_w: int
) -> str:
    """ResNet v1.5 Bottleneck: 1x1 -> 3x3 (stride) -> 1x1 (4 x width), plus the shortcut."""
    wb = {"w_bits": bits_w, "bits": bits_a}
    y = b.conv(x, width, 1, name=f"{name}.conv1", **wb)
    y = b.conv(y, width, 3, stride=stride, name=f"{name}.conv2", **wb)
    y = b.conv(y, 4 * width, 1, signed=True, relu=False, name=f"{name}.conv3", **wb)
    return residual_add(b, x, y, 4 * width, stride, name, bits_a, bits_w)


def resnet50(
    bits_a: int = 8,
    bits_w: int = 8,
    seed: int = 0,
    *,
    input_hw: int = 224,
    num_classes: int = 1000,
    calib_hw: int = 64,
) -> Graph:
    """ResNet-50 v1.5 on [1, input_hw, input_hw, 3]: conv7x7/2 + maxpool3x3/2, 16 Bottleneck
    blocks (stride 2 on the 3x3 conv of the first block of stages 2-4), GAP, FC.

    53 convs (49 on the main path, 4 downsample) + 1 fc; 16 residual adds.
    """
    return resnet(
        "resnet50",
        _bottleneck,
        RESNET50_STAGES,
        bits_a,
        bits_w,
        seed,
        input_hw=input_hw,
        num_classes=num_classes,
        calib_hw=calib_hw,
        weight_dtype=np.float32,
    )


def _inverted_residual(
    b: GraphBuilder, x: str, cout: int, stride: int, t: int, name: str, bits
) -> str:
    """MobileNetV2 block: [1x1 expand to t*cin, ReLU6] -> depthwise 3x3 (stride), ReLU6 ->
    linear 1x1 project to cout, plus the input when stride is 1 and cin == cout."""
    bits_a, bits_w = bits
    wb = {"w_bits": bits_w, "bits": bits_a}
    cin = b.graph.tensors[x].channels
    hidden = cin * t
    y = x
    if t != 1:
        y = b.conv(y, hidden, 1, relu6=True, name=f"{name}.expand", **wb)
    y = b.conv(y, hidden, 3, stride=stride, groups=hidden, relu6=True, name=f"{name}.dw", **wb)
    y = b.conv(y, cout, 1, signed=True, relu=False, name=f"{name}.project", **wb)
    if stride == 1 and cin == cout:
        y = b.add(x, y, bits=bits_a, signed=True, relu=False, name=f"{name}.add")
    return y


def mobilenet_v2(
    bits_a: int = 8,
    bits_w: int = 8,
    seed: int = 0,
    *,
    input_hw: int = 224,
    num_classes: int = 1000,
    calib_hw: int = 64,
) -> Graph:
    """MobileNetV2 (width 1.0) on [1, input_hw, input_hw, 3]: conv3x3/2 to 32 (ReLU6), 17
    inverted residual blocks (`MOBILENET_V2_SETTINGS`), conv1x1 to 1280 (ReLU6), GAP, FC.

    52 convs (17 depthwise, 16 expand, 17 project, stem and last) + 1 fc; 10 residual adds.
    """
    b = image_builder("mobilenet_v2", input_hw, calib_hw, seed, np.float32)
    x = b.quantize(8, signed=True)
    x = b.conv(x, 32, 3, stride=2, relu6=True, w_bits=bits_w, bits=bits_a, name="stem")
    block = 1
    for t, c, n, s in MOBILENET_V2_SETTINGS:
        for i in range(n):
            x = _inverted_residual(
                b, x, c, s if i == 0 else 1, t, f"block{block}", (bits_a, bits_w)
            )
            block += 1
    x = b.conv(x, 1280, 1, relu6=True, w_bits=bits_w, bits=bits_a, name="conv_last")
    x = b.flatten(b.global_avgpool(x, name="gap"), name="flatten")
    fc = b.linear(x, num_classes, w_bits=bits_w, bits=8, name="fc")
    return at_image_size(b.finish(fc), input_hw)


def vgg16(
    bits_a: int = 8,
    bits_w: int = 8,
    seed: int = 0,
    *,
    input_hw: int = 224,
    num_classes: int = 1000,
    calib_hw: int = 32,
) -> Graph:
    """VGG-16 (configuration D) on [1, input_hw, input_hw, 3]: 13 3x3 convs (padding 1, ReLU)
    in five stages closed by 2x2 max pools, then fc6 (4096), fc7 (4096) and fc8 (num_classes).

    fc6 reads the flattened last feature map, 7 x 7 x 512 = 25,088 values at 224x224; at other
    sizes it is sized for that size's map (as in the original VGG; torchvision's adaptive
    average pool to 7x7, the identity at 224, is not modelled). The convs are calibrated at
    calib_hw and the classifier at the full size (`GraphBuilder.resize_input`).
    """
    # 15.5 GMACs a 224 image: its convs are calibrated on 2 images of 32x32 (2,048 pixels)
    b = image_builder("vgg16", input_hw, calib_hw, seed, np.float32, calib_pixels=2048)
    x = b.quantize(8, signed=True)
    for stage, (width, convs) in enumerate(VGG16_STAGES, 1):
        for i in range(1, convs + 1):
            x = b.conv(x, width, 3, w_bits=bits_w, bits=bits_a, name=f"conv{stage}_{i}")
        x = b.maxpool(x, 2, name=f"pool{stage}")
    if b.graph.tensors[b.graph.input].shape[1] != input_hw:
        b.resize_input((1, input_hw, input_hw, 3))
    x = b.flatten(x, name="flatten")
    x = b.linear(x, 4096, w_bits=bits_w, bits=bits_a, signed=False, relu=True, name="fc6")
    x = b.linear(x, 4096, w_bits=bits_w, bits=bits_a, signed=False, relu=True, name="fc7")
    return b.finish(b.linear(x, num_classes, w_bits=bits_w, bits=8, name="fc8"))


WORKLOADS: dict[str, Workload] = {
    "resnet50": Workload(
        resnet50,
        "ResNet-50 v1.5 224x224x3: 53 convs (bottlenecks) + fc, 4.1 GMACs, random weights",
        min_image_size=32,  # five stride-2 stages
    ),
    "mobilenet_v2": Workload(
        mobilenet_v2,
        "MobileNetV2 1.0 224x224x3: 17 inverted residuals (depthwise 3x3, ReLU6) + fc, 0.3 GMACs",
        min_image_size=32,
    ),
    "vgg16": Workload(
        vgg16,
        "VGG-16 (config D) 224x224x3: 13 convs, 5 max pools, fc6/fc7/fc8, 15.5 GMACs",
        min_image_size=32,  # five 2x2 max pools
    ),
}
