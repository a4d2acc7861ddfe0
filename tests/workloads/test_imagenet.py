"""ResNet-50, MobileNetV2 and VGG-16: torchvision's layer shapes and the well-known MAC totals,
and a bit-exact machine run of each at a small image size and low bits.

The totals are the multiply-accumulates of every conv and FC at 224x224. The published
figures they are checked against: torchvision's model documentation lists 4.09, 0.30 and 15.47
"GFLOPS" for resnet50, mobilenet_v2 and vgg16 (it counts multiply-adds); the MobileNetV2 paper
(Sandler et al., CVPR 2018, Table 3) gives 300M multiply-adds; VGG-16 is commonly quoted at
15.5 G. Each test recomputes the exact count from the architecture's own table of shapes, by
hand, independent of the builder.
"""

import numpy as np
import pytest

from accelsim.config import load_config
from accelsim.ir import Add, GlobalAvgPool, MaxPool, QuantConv2d, QuantLinear
from accelsim.runner import run_model
from tests.workloads.conftest import needs_jit
from workloads import imagenet as nets


def _gemm_layers(g):
    return [n for n in g.nodes if isinstance(n, (QuantConv2d, QuantLinear))]


def _macs(g):
    return sum(n.macs(g) for n in _gemm_layers(g))


@needs_jit
def test_resnet50_shapes_and_macs(imagenet):
    """ResNet-50 v1.5 at 224: conv1 7x7/2 to 112x112x64 = 112^2 * 147 * 64 = 118,013,952.
    Bottleneck of width w on an s_in map with cin channels, output s_out (stride on the 3x3):
    s_in^2*cin*w (1x1) + s_out^2*9w*w (3x3) + s_out^2*w*4w (1x1) [+ s_out^2*cin*4w downsample]:
    - layer1.0 (56 -> 56, cin 64, w 64): 12,845,056 + 115,605,504 + 51,380,224 + 51,380,224
      = 231,211,008;
    - first blocks of layers 2-4 (s_in = 2 s_out, cin = 2w): 4 s_out^2 * 2w * w + 9 s_out^2 w^2
      + 4 s_out^2 w^2 + 8 s_out^2 w^2 = 29 s_out^2 w^2 = 372,506,624 each (s_out*w = 28*128 =
      14*256 = 7*512 = 3584);
    - the 12 other blocks (cin = 4w): 4 + 9 + 4 = 17 s_out^2 w^2 = 218,365,952 each (56*64 =
      3584 too);
    - fc 2048 * 1000 = 2,048,000.
    Total 118,013,952 + 231,211,008 + 3 * 372,506,624 + 12 * 218,365,952 + 2,048,000
    = 4,089,184,256 (torchvision: 4.09 G)."""
    g = imagenet("resnet50")
    layers = _gemm_layers(g)
    assert len(layers) == 54 and sum(isinstance(n, Add) for n in g.nodes) == 16
    assert sum(n.name.endswith("downsample") for n in layers) == 4
    shapes = {n.name: n.gemm_shape(g) for n in layers}
    assert shapes["conv1"] == (112 * 112, 7 * 7 * 3, 64)
    assert shapes["layer1.0.conv1"] == (56 * 56, 64, 64)
    assert shapes["layer2.0.conv1"] == (56 * 56, 256, 128)  # v1.5: the 1x1 keeps stride 1
    assert shapes["layer2.0.conv2"] == (28 * 28, 9 * 128, 128)  # ... the 3x3 has stride 2
    assert shapes["layer2.0.downsample"] == (28 * 28, 256, 512)
    assert shapes["layer3.5.conv3"] == (14 * 14, 256, 1024)
    assert shapes["layer4.2.conv3"] == (7 * 7, 512, 2048)
    assert shapes["fc"] == (1, 2048, 1000)
    assert g.tensors["maxpool"].shape == (1, 56, 56, 64)
    s_out_w = 3584  # s_out * w of every stage
    expected = (
        112 * 112 * 147 * 64
        + (56 * 56 * 64 * 64 + 56 * 56 * 9 * 64 * 64 + 2 * 56 * 56 * 64 * 256)
        + 3 * 29 * s_out_w**2
        + 12 * 17 * s_out_w**2
        + 2048 * 1000
    )
    assert expected == 4_089_184_256
    assert _macs(g) == expected
    assert abs(_macs(g) / 4.09e9 - 1) < 0.005


# MobileNetV2 blocks by hand: (expansion t, cin, cout, input side, output side), MAC count of
# [1x1 expand: s_in^2 * cin * t*cin] + depthwise 3x3: s_out^2 * 9 * t*cin + 1x1 project:
# s_out^2 * t*cin * cout.
MBV2_BLOCKS = [(1, 32, 16, 112, 112), (6, 16, 24, 112, 56), (6, 24, 24, 56, 56)]
MBV2_BLOCKS += [(6, 24, 32, 56, 28)] + [(6, 32, 32, 28, 28)] * 2
MBV2_BLOCKS += [(6, 32, 64, 28, 14)] + [(6, 64, 64, 14, 14)] * 3
MBV2_BLOCKS += [(6, 64, 96, 14, 14)] + [(6, 96, 96, 14, 14)] * 2
MBV2_BLOCKS += [(6, 96, 160, 14, 7)] + [(6, 160, 160, 7, 7)] * 2 + [(6, 160, 320, 7, 7)]


@needs_jit
def test_mobilenet_v2_shapes_and_macs(imagenet):
    """MobileNetV2 1.0 at 224: stem 3x3/2 to 112x112x32 = 112^2 * 27 * 32 = 10,838,016; the 17
    blocks of MBV2_BLOCKS (block 1, t = 1: 3,612,672 dw + 6,422,528 project = 10,035,200; ...;
    block 17: 7,526,400 + 423,360 + 15,052,800 = 23,002,560), together 268,585,856; the last
    1x1 conv 7^2 * 320 * 1280 = 20,070,400; fc 1280 * 1000 = 1,280,000.
    Total 300,774,272 (paper: 300 M; torchvision: 0.30 G)."""
    g = imagenet("mobilenet_v2")
    layers = _gemm_layers(g)
    dw = [n for n in layers if isinstance(n, QuantConv2d) and n.groups > 1]
    assert len(layers) == 53 and len(dw) == 17
    assert all(n.groups == n.cout and n.weight.shape[:3] == (3, 3, 1) for n in dw)
    assert sum(isinstance(n, Add) for n in g.nodes) == 10
    assert all(g.node(n.name).clip_hi is not None for n in dw)  # ReLU6
    assert g.tensors["block2.expand"].shape == (1, 112, 112, 96)
    assert g.tensors["block2.dw"].shape == (1, 56, 56, 96)
    assert g.tensors["block17.project"].shape == (1, 7, 7, 320)
    assert g.tensors["conv_last"].shape == (1, 7, 7, 1280)
    assert g.tensors["block17.project"].mode == "signed"  # linear bottleneck
    blocks = 0
    for t, cin, cout, s_in, s_out in MBV2_BLOCKS:
        hidden = t * cin
        blocks += (s_in**2 * cin * hidden if t > 1 else 0) + s_out**2 * 9 * hidden
        blocks += s_out**2 * hidden * cout
    assert blocks == 268_585_856
    expected = 112 * 112 * 27 * 32 + blocks + 7 * 7 * 320 * 1280 + 1280 * 1000
    assert expected == 300_774_272
    assert _macs(g) == expected
    assert abs(_macs(g) / 300e6 - 1) < 0.005


@needs_jit
def test_vgg16_shapes_and_macs(imagenet):
    """VGG-16 (D) at 224: 3x3 convs, stage sides 224, 112, 56, 28, 14:
    conv1_1 224^2 * 27 * 64 = 86,704,128; conv1_2 224^2 * 576 * 64 = 1,849,688,064;
    conv2_1 112^2 * 576 * 128 = 924,844,032; conv2_2 1,849,688,064; conv3_1 924,844,032;
    conv3_2, conv3_3 1,849,688,064 each; conv4_1 924,844,032; conv4_2, conv4_3 1,849,688,064
    each; conv5_1..3 14^2 * 4608 * 512 = 462,422,016 each: convs 15,346,630,656.
    fc6 25,088 * 4096 = 102,760,448; fc7 4096^2 = 16,777,216; fc8 4096 * 1000 = 4,096,000.
    Total 15,470,264,320 (torchvision: 15.47 G)."""
    g = imagenet("vgg16")
    layers = _gemm_layers(g)
    assert [n.name for n in layers][-3:] == ["fc6", "fc7", "fc8"] and len(layers) == 16
    assert sum(isinstance(n, MaxPool) for n in g.nodes) == 5
    assert not any(isinstance(n, GlobalAvgPool) for n in g.nodes)
    assert g.tensors["pool5"].shape == (1, 7, 7, 512)
    stages = ((224, 3, 64, 2), (112, 64, 128, 2), (56, 128, 256, 3), (28, 256, 512, 3))
    stages += ((14, 512, 512, 3),)
    convs = 0
    for stage, (side, cin, cout, n) in enumerate(stages, 1):
        convs += side**2 * 9 * cin * cout + (n - 1) * side**2 * 9 * cout * cout
        assert g.tensors[f"conv{stage}_{n}"].shape == (1, side, side, cout)
    assert convs == 15_346_630_656
    expected = convs + 25088 * 4096 + 4096 * 4096 + 4096 * 1000
    assert expected == 15_470_264_320
    assert _macs(g) == expected
    assert g.node("fc6").gemm_shape(g) == (1, 25088, 4096)
    assert abs(_macs(g) / 15.47e9 - 1) < 0.005


@needs_jit
@pytest.mark.parametrize(
    "name, bits", [("resnet50", (4, 4)), ("mobilenet_v2", (3, 2)), ("vgg16", (2, 1))]
)
def test_runs_bit_exact_at_32_pixels(name, bits):
    """Each network at --image-size 32 (every stage at least 1x1) and low bits runs on edge
    with every layer's output equal to the IR integer reference."""
    g = getattr(nets, name)(*bits, seed=1, input_hw=32)
    assert g.tensors[g.input].shape == (1, 32, 32, 3)
    conv = _gemm_layers(g)[0]
    assert conv.w_bits == bits[1] and g.tensors[conv.output].bits == bits[0]
    x = np.random.default_rng(2).random((1, 32, 32, 3))
    result = run_model(g, load_config("edge"), x, check=True)
    assert result.check_ok, result.check_message
