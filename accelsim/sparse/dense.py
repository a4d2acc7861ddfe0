"""Dense integer reference for sparse convolution: scatter, dense 3D conv, read back.

The sparse tensor is scattered into a zero-filled dense grid, convolved densely in int64 over
the whole grid (every tap is a strided slice times the tap's weight matrix), and the result is
read back at the output voxels. This shares no code with the kernel map, so it checks the map
and the gather-GEMM-scatter together. Grouped conv: for each voxel group g, the inputs outside
g are zeroed and the outputs of g are read back. For small test tensors only.
"""

from __future__ import annotations

import numpy as np

from accelsim.sparse.kmap import downsample_coords
from accelsim.sparse.tensor import check_sparse, group_of


def _dense_grid(coords, feats, extent):
    grid = np.zeros((*extent, feats.shape[1]), dtype=np.int64)
    grid[coords[:, 0], coords[:, 1], coords[:, 2], coords[:, 3]] = feats
    return grid


def _taps(kernel_size):
    t = range(kernel_size)
    return [(tx, ty, tz) for tx in t for ty in t for tz in t]  # row-major: offset numbers


def _conv_grid(grid, weights, out_extent, kernel_size, stride, dilation, padding):
    """Full dense conv: out[o] = sum_t grid[o*s - p + D*t] @ W[t] over the output box."""
    b, _, _, _, _ = grid.shape
    need = [(o - 1) * stride + dilation * (kernel_size - 1) + 1 for o in out_extent]
    pad = np.zeros((b, *need, grid.shape[4]), dtype=np.int64)
    src = grid[
        :, : max(0, need[0] - padding), : max(0, need[1] - padding), : max(0, need[2] - padding)
    ]
    pad[
        :,
        padding : padding + src.shape[1],
        padding : padding + src.shape[2],
        padding : padding + src.shape[3],
    ] = src
    out = np.zeros((b, *out_extent, weights.shape[2]), dtype=np.int64)
    span = [(o - 1) * stride + 1 for o in out_extent]
    for k, (tx, ty, tz) in enumerate(_taps(kernel_size)):
        x0, y0, z0 = dilation * tx, dilation * ty, dilation * tz
        window = pad[
            :, x0 : x0 + span[0] : stride, y0 : y0 + span[1] : stride, z0 : z0 + span[2] : stride
        ]
        out += window @ weights[k].astype(np.int64)
    return out


def _conv_transposed_grid(grid, weights, kernel_size, stride, dilation, padding):
    """Full dense transposed conv: out[c*s - p + D*t] += grid[c] @ W[t]; index shifted by +p."""
    b, nx, ny, nz, _ = grid.shape
    size = [(n - 1) * stride + dilation * (kernel_size - 1) + 1 for n in (nx, ny, nz)]
    out = np.zeros((b, *size, weights.shape[2]), dtype=np.int64)
    for k, (tx, ty, tz) in enumerate(_taps(kernel_size)):
        x0, y0, z0 = dilation * tx, dilation * ty, dilation * tz
        out[
            :,
            x0 : x0 + (nx - 1) * stride + 1 : stride,
            y0 : y0 + (ny - 1) * stride + 1 : stride,
            z0 : z0 + (nz - 1) * stride + 1 : stride,
        ] += grid @ weights[k].astype(np.int64)
    return out


def _read(out_grid, coords, shift):
    """Values of the (shifted) dense output at voxel coords; zero outside the grid."""
    q = coords.astype(np.int64).copy()
    q[:, 1:] += shift
    ok = (q >= 0).all(axis=1) & (q[:, 1:] < np.array(out_grid.shape[1:4])).all(axis=1)
    ok &= q[:, 0] < out_grid.shape[0]
    res = np.zeros((coords.shape[0], out_grid.shape[4]), dtype=np.int64)
    res[ok] = out_grid[q[ok, 0], q[ok, 1], q[ok, 2], q[ok, 3]]
    return res


def dense_conv_ref(
    coords,
    features,
    weights,
    kernel_size=3,
    stride=1,
    dilation=1,
    groups=1,
    group_coeffs=(1, 2, 3),
    transposed=False,
    *,
    padding=None,
    out_coords=None,
):
    """Sparse conv by dense integer convolution; returns (out_coords, int64 [n_out, c_out]).

    Same arguments and output voxel rules as `kernel_map` (submanifold when stride is 1,
    `floor(x/s)` for a strided conv, `out_coords` required for a transposed conv); weights
    [K**3, c_in, c_out] integers with offsets numbered row-major over the taps.
    """
    c, f = check_sparse(coords, features, "dense reference input")
    pad = dilation * ((kernel_size - 1) // 2) if padding is None else padding
    if out_coords is None:
        out_coords = c if stride == 1 else downsample_coords(c, stride)
    out_coords = np.asarray(out_coords, dtype=np.int32)
    extent = tuple(int(v) + 1 for v in c.max(axis=0))
    w = np.asarray(weights)
    gin = group_of(c, groups, group_coeffs)
    gout = group_of(out_coords, groups, group_coeffs)
    result = np.zeros((out_coords.shape[0], w.shape[2]), dtype=np.int64)
    for g in range(groups):
        grid = _dense_grid(c[gin == g], f[gin == g], extent)
        sel = gout == g
        if transposed:
            out_grid = _conv_transposed_grid(grid, w, kernel_size, stride, dilation, pad)
            result[sel] = _read(out_grid, out_coords[sel], pad)
        else:
            o_ext = [int(v) + 1 for v in out_coords[:, 1:].max(axis=0)]
            out_grid = _conv_grid(grid, w, o_ext, kernel_size, stride, dilation, pad)
            result[sel] = _read(out_grid, out_coords[sel], 0)
    return out_coords, result
