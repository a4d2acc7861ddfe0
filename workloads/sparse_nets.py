"""Sparse LiDAR networks with quantized random weights: MinkUNet-style segmentation and a
SECOND-style VoxelBackBone8x encoder, on procedural scenes from `workloads.lidar`.

Both take (bits_a, bits_w, seed) like the dense workloads, plus the scene: `voxel_size_m`
(0.05 is the full 80k-110k voxel frame) and `crop_m` (a square of that side around the sensor,
None = the whole 102.4 m scene). The defaults (0.4 m voxels, 25.6 m crop, about 2,400
voxels) keep `accelsim run minkunet` to seconds; `accelsim run` takes the scene from
`graph.meta["scene"]`. Every activation is unsigned at bits_a with one shared scale and zero
point 0 (post-ReLU), so Concat is a copy and Add a same-scale add; the input features
(x, y, z, reflectance in metres) and the segmentation logits are signed. Per-layer weight
scales keep the integer activations' spread roughly constant from layer to layer (a
calibration-free rule: M = 2 / (sqrt(k_eff * c_in) * std(w_int)), k_eff = typical pairs per
output). Submanifold convs take their voxel groups from `svge.groups`; strided and transposed
convs use G = 1.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from accelsim.errors import SparseInputError
from accelsim.ir.sparse_ops import (
    SparseAdd,
    SparseConcat,
    SparseConv,
    SparseGraph,
    SparseQuantize,
    SparseTensor,
    SparseToBEV,
)
from workloads.dense import Workload
from workloads.lidar import CROP_MAX_M, CROP_MIN_M, generate_scene

ACT_SCALE = 1 / 16  # real value of one activation step (shared by all activations)
INPUT_SCALE = 0.25  # metres per step of the quantized input features
MINKUNET_CHANNELS = (32, 32, 64, 128, 256, 256, 128, 96, 96)


def make_scene(seed: int = 0, voxel_size_m: float = 0.2, crop_m: float | None = 25.6):
    """A voxelised LiDAR frame (coords int32 [n, 4], features float32 [n, 4]), optionally
    cropped to a crop_m x crop_m square around the sensor (coords shifted to start at 0)."""
    coords, feats = generate_scene(seed=seed, voxel_size_m=voxel_size_m)
    if crop_m is not None:
        centre = (-np.array(CROP_MIN_M[:2])) / voxel_size_m
        half = crop_m / 2 / voxel_size_m
        keep = (np.abs(coords[:, 1:3] + 0.5 - centre) <= half).all(axis=1)
        coords, feats = coords[keep], feats[keep]
        if coords.shape[0] == 0:
            raise SparseInputError(
                f"empty scene: no voxel lies in the {crop_m} m crop around "
                f"the sensor (the nearest ground returns are ~3.7 m away)"
            )
        coords[:, 1:] -= coords[:, 1:].min(axis=0)
    return np.ascontiguousarray(coords), np.ascontiguousarray(feats)


class _Builder:
    """Appends sparse ops with quantized random weights to a SparseGraph."""

    def __init__(self, name, bits_a, bits_w, seed, c_in, scene):
        self.bits_a, self.bits_w = bits_a, bits_w
        self.rng = np.random.default_rng(seed)
        t_in = SparseTensor("features", c_in, 32, "float", 1.0, 0, "s1")
        self.g = SparseGraph(name, {"features": t_in}, [], "features", [], {"scene": scene})
        q = self.tensor("x0", c_in, "s1", signed=True, scale=INPUT_SCALE)
        self.g.nodes.append(SparseQuantize(name="quant", inputs=("features",), output=q))

    def tensor(self, name, c, coord_set, signed=False, scale=ACT_SCALE):
        self.g.tensors[name] = SparseTensor(
            name, c, self.bits_a, "signed" if signed else "unsigned", scale, 0, coord_set
        )
        return name

    def conv(
        self,
        name,
        x,
        c_out,
        k=3,
        stride=1,
        transposed=False,
        coord_set=None,
        relu=True,
        signed=False,
        groups=None,
        k_eff=None,
    ):
        src = self.g.tensors[x]
        out_set = coord_set or src.coord_set
        y = self.tensor(name, c_out, out_set, signed=signed)
        wb = self.bits_w
        lo, hi = -(2 ** (wb - 1)), 2 ** (wb - 1) - 1
        w = self.rng.integers(lo, hi + 1, size=(k**3, src.channels, c_out)).astype(np.int8)
        w_std = max(float(np.std(w)), 0.5)
        k_eff = k_eff or {1: 1, 2: 3, 3: 7}[k]
        m = 2.0 / (math.sqrt(k_eff * src.channels) * w_std)
        w_scale = m * self.g.tensors[y].scale / src.scale
        if stride > 1 or transposed:
            groups = 1
        self.g.nodes.append(
            SparseConv(
                name=name,
                inputs=(x,),
                output=y,
                weight=w,
                w_bits=wb,
                w_scale=w_scale,
                relu=relu,
                stride=stride,
                transposed=transposed,
                groups=groups,
            )
        )
        return y

    def block(self, name, x, c_out):
        """Residual block: conv3-ReLU, conv3, shortcut (conv1 if channels change), add-ReLU."""
        h = self.conv(f"{name}.conv1", x, c_out)
        h = self.conv(f"{name}.conv2", h, c_out, relu=False)
        sc = (
            x
            if self.g.tensors[x].channels == c_out
            else self.conv(f"{name}.down", x, c_out, k=1, relu=False)
        )
        y = self.tensor(f"{name}.out", c_out, self.g.tensors[x].coord_set)
        self.g.nodes.append(SparseAdd(name=f"{name}.add", inputs=(h, sc), output=y, relu=True))
        return y

    def concat(self, name, a, b):
        ta, tb = self.g.tensors[a], self.g.tensors[b]
        y = self.tensor(name, ta.channels + tb.channels, ta.coord_set)
        self.g.nodes.append(SparseConcat(name=name, inputs=(a, b), output=y))
        return y


def _scene_kwargs(voxel_size_m, crop_m):
    return {
        "voxel_size_m": float(voxel_size_m),
        "crop_m": None if crop_m is None else float(crop_m),
    }


def minkunet(bits_a=8, bits_w=8, seed=0, voxel_size_m=0.4, crop_m=25.6, num_classes=19):
    """MinkUNet-style U-Net: stem (2 convs), 4 encoder stages (k2 s2 down + residual block),
    4 decoder stages (k2 s2 transposed conv, concat skip, residual block), conv1 head.
    Channels 32, 32, 64, 128, 256 | 256, 128, 96, 96 as TorchSparse's MinkUNet."""
    cs = MINKUNET_CHANNELS
    b = _Builder("minkunet", bits_a, bits_w, seed, 4, _scene_kwargs(voxel_size_m, crop_m))
    x = b.conv("stem.conv1", "x0", cs[0])
    x = b.conv("stem.conv2", x, cs[0])
    skips, sets = [x], ["s1"]
    for i in range(4):
        s = f"s{2 ** (i + 1)}"
        x = b.conv(f"stage{i + 1}.down", x, cs[i], k=2, stride=2, coord_set=s)
        x = b.block(f"stage{i + 1}.block", x, cs[i + 1])
        skips.append(x)
        sets.append(s)
    for i in range(4):
        s = sets[3 - i]
        x = b.conv(f"up{i + 1}.deconv", x, cs[5 + i], k=2, stride=2, transposed=True, coord_set=s)
        x = b.concat(f"up{i + 1}.cat", x, skips[3 - i])
        x = b.block(f"up{i + 1}.block", x, cs[5 + i])
    y = b.conv("head", x, num_classes, k=1, relu=False, signed=True)
    b.g.outputs = [y]
    return b.g


def second(bits_a=8, bits_w=8, seed=0, voxel_size_m=0.4, crop_m=25.6):
    """SECOND-style VoxelBackBone8x: subm conv 16, then stages of a k3 s2 sparse conv and two
    submanifold convs at 16, 32, 64, 64 channels, a final k3 s2 conv to 128 channels (the
    original's (3,1,1) kernel is cubic here) and the BEV collapse to a dense [1, X, Y, 128*Z]
    map, on the machine (`accelsim.frontend.bev_lower`)."""
    b = _Builder("second", bits_a, bits_w, seed, 4, _scene_kwargs(voxel_size_m, crop_m))
    x = b.conv("conv_input", "x0", 16)
    x = b.conv("conv1.subm", x, 16)
    for i, c in enumerate((32, 64, 64)):
        s = f"s{2 ** (i + 1)}"
        x = b.conv(f"conv{i + 2}.spconv", x, c, k=3, stride=2, coord_set=s, k_eff=7)
        x = b.conv(f"conv{i + 2}.subm1", x, c)
        x = b.conv(f"conv{i + 2}.subm2", x, c)
    x = b.conv("conv_out", x, 128, k=3, stride=2, coord_set="s16", k_eff=7)
    extent = _extent(voxel_size_m, crop_m)
    grid = (1, *(-(-e // 16) for e in extent))
    bev = b.tensor("bev", 128 * grid[3], "bev")
    b.g.nodes.append(SparseToBEV(name="to_bev", inputs=(x,), output=bev, shape=grid))
    b.g.outputs = [x, bev]
    return b.g


def sparse_tiny(bits_a=8, bits_w=8, seed=0, voxel_size_m=0.4, crop_m=12.8, channels=8):
    """A small network using every sparse op (for tests and quick checks): submanifold
    conv, k2 s2 down, residual block with conv1 shortcut and Add-ReLU, transposed conv,
    Concat, a k3 s2 strided conv and a signed conv1 head followed by a standalone ReLU."""
    from accelsim.ir.sparse_ops import SparseReLU

    c = channels
    b = _Builder("sparse_tiny", bits_a, bits_w, seed, 4, _scene_kwargs(voxel_size_m, crop_m))
    x0 = b.conv("stem", "x0", c)
    x = b.conv("down", x0, c, k=2, stride=2, coord_set="s2")
    x = b.block("block", x, 2 * c)
    x = b.conv("up", x, c, k=2, stride=2, transposed=True, coord_set="s1")
    x = b.concat("cat", x, x0)
    x = b.conv("strided", x, c, k=3, stride=2, coord_set="t2", k_eff=7)
    h = b.conv("head", x, 5, k=1, relu=False, signed=True)
    y = b.tensor("out", 5, "t2", signed=True)
    b.g.nodes.append(SparseReLU(name="relu", inputs=(h,), output=y))
    b.g.outputs = [y]
    return b.g


def _extent(voxel_size_m, crop_m) -> tuple[int, int, int]:
    """Voxel grid extent (X, Y, Z) of a scene (upper bound of the coordinates + 1)."""
    span = [hi - lo for lo, hi in zip(CROP_MIN_M, CROP_MAX_M)]
    if crop_m is not None:
        span[0] = span[1] = crop_m
    return tuple(math.ceil(s / voxel_size_m) + 1 for s in span)


WORKLOADS: dict[str, Workload] = {
    "minkunet": Workload(
        minkunet,
        "MinkUNet-style sparse U-Net (32..256..96 channels) on a "
        "LiDAR scene (default 0.4 m voxels, 25.6 m crop)",
    ),
    "second": Workload(
        second,
        "SECOND-style VoxelBackBone8x sparse encoder + BEV on a LiDAR "
        "scene (default 0.4 m voxels, 25.6 m crop)",
    ),
    "minkunet_full": Workload(
        partial(minkunet, voxel_size_m=0.05, crop_m=None),
        "minkunet on the full 102.4 m scene at 5 cm (about 82k voxels; slow: use --timing-only)",
    ),
    "second_full": Workload(
        partial(second, voxel_size_m=0.05, crop_m=None),
        "second on the full 102.4 m scene at 5 cm (about 82k voxels)",
    ),
    "sparse_tiny": Workload(
        sparse_tiny, "tiny sparse net using every sparse op (8 channels, about 1,000 voxels; tests)"
    ),
}
