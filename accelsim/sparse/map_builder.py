"""SVG_MAP datapath: the map builder of one sparse voxel group engine.

One SVG_MAP instruction turns the coordinates of a tile's input window `cin` and of its output
voxels `cout` (both int [n, 4] = batch, x, y, z, rows as they sit in the COORD buffer) into the
tile's kernel map: int32 pairs [P, 3] = (input row, output row, offset), ordered by offset and
then by output row, so that one offset's pairs are one gather-GEMM-scatter (SVG_CONV).

With the kernel taps `rel[k] = D*t - p` of `kmap.tap_offsets` (offset k row-major over the
taps), a pair (i, o, k) exists when input i and output o have the same batch and

    regular:     cin[i].xyz = cout[o].xyz * stride + rel[k]
    transposed:  cin[i].xyz * stride + rel[k] = cout[o].xyz

and, for G = `groups` > 1, lie in the same voxel group `(a*x + b*y + c*z) mod G`. The input
window's coordinates are unique (each voxel is loaded once), so each (offset, output) has at
most one input; a repeated coordinate raises `SparseInputError`.

`tile_map_ref` is that definition, written as a comparison of every input with every probe
(O(n_in * n_out) per offset: small tiles only). `tile_map` is the hash method of the hardware
(`svge.map_method = "hash"`): the window's packed coordinates go into the open-addressing table
of `hashing.py` and each (offset, output) probes it once, in one thread (a tile is small; the
engines work side by side). Both give the same pairs in the same order.
"""

from __future__ import annotations

import numpy as np

from accelsim.jit import lazy_njit
from accelsim.sparse.hashing import build_table, lookup, table_bits
from accelsim.sparse.kmap import tap_offsets
from accelsim.sparse.tensor import check_unique, group_of, pack, packing

WINDOW = "SVG_MAP input window"  # names the coordinates in error messages


def _coords(c) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(c, np.int64).reshape(-1, 4))


def _pairs(nbr: np.ndarray) -> np.ndarray:
    """Pairs [P, 3] of a neighbour table nbr[k, o] (input row or -1), ordered by (k, o)."""
    k, o = np.nonzero(nbr >= 0)  # row-major: sorted by offset, then output row
    return np.stack([nbr[k, o], o, k], axis=1).astype(np.int32)


@lazy_njit(cache=True)
def _probe(cout, rel, stride, transposed, table, hi, extent, g_in, g_out, groups):
    """nbr[k, o]: the window row that output o reads through offset k, or -1."""
    bits = table_bits(table)
    nbr = np.full((rel.shape[0], cout.shape[0]), -1, np.int32)
    for k in range(rel.shape[0]):
        for o in range(cout.shape[0]):
            key = cout[o, 0]
            ok = key <= hi[0]
            for a in range(3):  # packed key ((b*X + x)*Y + y)*Z + z of the input probed
                if not ok:
                    break
                if transposed:
                    v = cout[o, a + 1] - rel[k, a]
                    ok = v % stride == 0
                    v //= stride
                else:
                    v = cout[o, a + 1] * stride + rel[k, a]
                ok = ok and 0 <= v <= hi[a + 1]
                key = key * extent[a + 1] + v
            if ok:
                i = lookup(table, key, bits)
                if i >= 0 and (groups == 1 or g_in[i] == g_out[o]):
                    nbr[k, o] = i
    return nbr


def tile_map(
    cin, cout, kernel: int, stride: int, dilation: int, groups: int, coeffs, transposed: bool
) -> np.ndarray:
    """Kernel map of one tile by hashing: int32 pairs [P, 3] = (input row, output row, offset)
    sorted by (offset, output row); see the module docstring for the rule."""
    cin, cout = _coords(cin), _coords(cout)
    rel = tap_offsets(kernel, dilation)
    if cin.shape[0] == 0 or cout.shape[0] == 0:
        return np.zeros((0, 3), np.int32)
    shift, extent = packing([cin], 0)
    table, dup = build_table(pack(cin, shift, extent))
    if dup[0] >= 0:
        check_unique(cin, WINDOW)  # raises, naming the first repeated coordinate
    if groups > 1:
        g_in, g_out = group_of(cin, groups, coeffs), group_of(cout, groups, coeffs)
    else:
        g_in = g_out = np.zeros(1, np.int32)
    nbr = _probe(
        cout, rel, stride, bool(transposed), table, cin.max(axis=0), extent, g_in, g_out, groups
    )
    return _pairs(nbr)


def tile_map_ref(
    cin, cout, kernel: int, stride: int, dilation: int, groups: int, coeffs, transposed: bool
) -> np.ndarray:
    """NumPy definition of SVG_MAP: every input compared with every output for each offset.

    Same arguments and result as `tile_map`."""
    cin, cout = _coords(cin), _coords(cout)
    rel = tap_offsets(kernel, dilation)
    if cin.shape[0]:
        check_unique(cin, WINDOW)
    same = cin[:, None, 0] == cout[None, :, 0]  # [n_in, n_out]
    if groups > 1:
        same &= group_of(cin, groups, coeffs)[:, None] == group_of(cout, groups, coeffs)[None, :]
    nbr = np.full((rel.shape[0], cout.shape[0]), -1, np.int64)
    for k in range(rel.shape[0]):
        if transposed:
            hit = cin[:, None, 1:] * stride + rel[k] == cout[None, :, 1:]
        else:
            hit = cin[:, None, 1:] == cout[None, :, 1:] * stride + rel[k]
        i, o = np.nonzero(hit.all(axis=2) & same)
        nbr[k, o] = i
    return _pairs(nbr)
