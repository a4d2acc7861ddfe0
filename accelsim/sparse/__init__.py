"""Sparse 3D convolution on voxelised point clouds (the sparse voxel group engine's datapath).

Public API: validation (`check_sparse`), voxel groups (`group_of`, `group_offsets`), kernel
maps (`kernel_map`, `KernelMap`), the SVG_MAP datapath of one tile (`tile_map`), the integer
conv (`conv`), the dense reference (`dense_conv_ref`), elementwise/layout ops (`relu`, `add`,
`concat`, `voxelize`, `to_bev`) and group statistics (`group_stats`). Every compiled function
has a `_ref` NumPy twin.
"""

from accelsim.sparse.conv import conv, conv_ref
from accelsim.sparse.dense import dense_conv_ref
from accelsim.sparse.groups import (
    GroupStats,
    group_stats,
    group_stats_ref,
    voxel_group_stats,
)
from accelsim.sparse.kmap import (
    KernelMap,
    downsample_coords,
    group_offsets,
    kernel_map,
    kernel_map_ref,
    tap_offsets,
)
from accelsim.sparse.map_builder import tile_map, tile_map_ref
from accelsim.sparse.ops import (
    add,
    add_ref,
    align,
    check_bev_grid,
    concat,
    concat_ref,
    relu,
    relu_ref,
    to_bev,
    to_bev_ref,
    voxelize,
    voxelize_ref,
)
from accelsim.sparse.tensor import check_coords, check_groups, check_sparse, group_of

__all__ = [
    "GroupStats",
    "KernelMap",
    "add",
    "add_ref",
    "align",
    "check_bev_grid",
    "check_coords",
    "check_groups",
    "check_sparse",
    "concat",
    "concat_ref",
    "conv",
    "conv_ref",
    "dense_conv_ref",
    "downsample_coords",
    "group_of",
    "group_offsets",
    "group_stats",
    "group_stats_ref",
    "kernel_map",
    "kernel_map_ref",
    "relu",
    "relu_ref",
    "tap_offsets",
    "tile_map",
    "tile_map_ref",
    "to_bev",
    "to_bev_ref",
    "voxel_group_stats",
    "voxelize",
    "voxelize_ref",
]
