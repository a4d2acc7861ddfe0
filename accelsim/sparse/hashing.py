"""Hash-table kernels of SVG_MAP: open addressing over packed voxel keys.

Keys are int64 packed coordinates (`tensor.pack`). The table has a power-of-two size of at
least twice the key count (load <= 1/2), linear probing, and Fibonacci hashing (top bits of
key * 2**64/golden ratio). Slot s holds (key, value) in `table[s, 0:2]`, one cache line per hit.

Two probe kernels fill the output-stationary neighbour table `nbr[k, o]` (input row feeding
output o through offset k, or -1):

- `probe_voxels`: one lookup per (output, offset): any stride, padding, output set.
- `probe_columns`: submanifold conv with a symmetric kernel. Voxels are sorted by
  (batch, x, y, z) and the table holds (batch, x, y) columns; each column looks up only the
  neighbour columns before it in kernel order (the others follow by symmetry: pair (i, o, k)
  implies (o, i, K**3-1-k)) and matches z within the short sorted columns. About 4 lookups per
  column instead of 26 per voxel for a 3x3x3 kernel.
"""

from __future__ import annotations

import numpy as np

from accelsim.jit import jit_disabled, lazy_njit, prange


@lazy_njit(cache=True)
def slot(key, mask, bits):
    """Fibonacci hashing: the top `bits` bits of key * 2**64/golden ratio (mod 2**64)."""
    h = np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)
    return np.int64(h >> np.uint64(64 - bits)) & mask


if jit_disabled():  # plain-Python run (coverage): same hash without uint64 warnings

    def slot(key, mask, bits):
        return (((int(key) * 0x9E3779B97F4A7C15) & (2**64 - 1)) >> (64 - bits)) & mask


@lazy_njit(cache=True)
def build_table(keys):
    """Table mapping keys[i] -> i. Returns (table [size, 2] int64, dup): dup holds the two
    rows of the first repeated key, or -1."""
    n = keys.shape[0]
    bits = 4
    while (1 << bits) < 2 * n:
        bits += 1
    mask = (1 << bits) - 1
    table = np.full((1 << bits, 2), -1, dtype=np.int64)
    dup = np.full(2, -1, dtype=np.int64)
    for i in range(n):
        s = slot(keys[i], mask, bits)
        while table[s, 0] != -1 and table[s, 0] != keys[i]:
            s = (s + 1) & mask
        if table[s, 0] == keys[i]:
            dup[0] = table[s, 1]
            dup[1] = i
            return table, dup
        table[s, 0] = keys[i]
        table[s, 1] = i
    return table, dup


@lazy_njit(cache=True)
def table_bits(table):
    """log2 of the table size."""
    bits = 0
    while (1 << bits) < table.shape[0]:
        bits += 1
    return bits


@lazy_njit(cache=True)
def lookup(table, key, bits):
    """Value stored for `key`, or -1; `bits` = table_bits(table)."""
    mask = (1 << bits) - 1
    s = slot(key, mask, bits)
    while table[s, 0] != -1:
        if table[s, 0] == key:
            return table[s, 1]
        s = (s + 1) & mask
    return -1


@lazy_njit(cache=True, parallel=True)
def probe_voxels(dst, stride, rel, table, hi, extent, gsrc, gdst, groups, half):
    """nbr[k, o] for input = dst[o]*stride + rel[k]; `half`: submanifold symmetric kernel,
    probe offsets below the centre and mirror each hit."""
    n_k = rel.shape[0]
    n = dst.shape[0]
    bits = table_bits(table)
    nbr = np.full((n_k, n), -1, dtype=np.int32)
    for o in prange(n):
        b = np.int64(dst[o, 0])
        x0 = np.int64(dst[o, 1]) * stride
        y0 = np.int64(dst[o, 2]) * stride
        z0 = np.int64(dst[o, 3]) * stride
        if b > hi[0]:
            continue
        for k in range(n_k // 2 if half else n_k):
            x = x0 + rel[k, 0]
            y = y0 + rel[k, 1]
            z = z0 + rel[k, 2]
            if x < 0 or y < 0 or z < 0 or x > hi[1] or y > hi[2] or z > hi[3]:
                continue
            i = lookup(table, ((b * extent[1] + x) * extent[2] + y) * extent[3] + z, bits)
            if i >= 0 and (groups == 1 or gsrc[i] == gdst[o]):
                nbr[k, o] = i
                if half:
                    nbr[n_k - 1 - k, i] = o
        if half:
            nbr[n_k // 2, o] = o
    return nbr


@lazy_njit(cache=True)
def _first_at_least(z, lo, hi, value):
    """First row r in [lo, hi) with z[r] >= value (z sorted ascending), or hi."""
    while lo < hi:
        mid = (lo + hi) // 2
        if z[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo


@lazy_njit(cache=True, parallel=True)
def probe_columns(sc, order, col_first, table, hi, extent, ksize, dilation, groups, gsrc):
    """Submanifold nbr[k, o] from voxels sorted by (b, x, y, z).

    sc: sorted coords int64 [n, 4]; order[r]: original row of sorted row r; col_first
    [n_cols + 1]: first sorted row of each (b, x, y) column; table: column key -> column.
    """
    n = sc.shape[0]
    n_cols = col_first.shape[0] - 1
    n_k = ksize * ksize * ksize
    r_k = (ksize - 1) // 2
    centre_col = (ksize * ksize - 1) // 2  # columns numbered tx*K + ty
    reach = dilation * r_k
    bits = table_bits(table)
    nbr = np.full((n_k, n), -1, dtype=np.int32)
    z = np.ascontiguousarray(sc[:, 3])
    ncols = np.full((n_cols, max(centre_col, 1)), -1, dtype=np.int64)
    for c in prange(n_cols):
        r0, r1 = col_first[c], col_first[c + 1]
        b, x, y = sc[r0, 0], sc[r0, 1], sc[r0, 2]
        ncol = ncols[c]
        for j in range(centre_col):
            qx = x + dilation * (j // ksize - r_k)
            qy = y + dilation * (j % ksize - r_k)
            if qx >= 0 and qy >= 0 and qx <= hi[1] and qy <= hi[2]:
                ncol[j] = lookup(table, (b * extent[1] + qx) * extent[2] + qy, bits)
        for r in range(r0, r1):
            o = order[r]
            zo = z[r]
            for j in range(centre_col + 1):
                if j < centre_col:
                    if ncol[j] < 0:
                        continue
                    lo, end = col_first[ncol[j]], col_first[ncol[j] + 1]
                    top = zo + reach
                else:  # own column: only the voxels below (z - reach .. z - 1)
                    lo, end = r0, r
                    top = zo - 1
                q = _first_at_least(z, lo, end, zo - reach)
                while q < end and z[q] <= top:
                    dz = z[q] - zo
                    if dilation > 1:  # integer division only when needed (slow on x86)
                        if dz % dilation != 0:
                            q += 1
                            continue
                        dz = dz // dilation
                    i = order[q]
                    if groups == 1 or gsrc[i] == gsrc[o]:
                        k = j * ksize + dz + r_k
                        nbr[k, o] = i
                        nbr[n_k - 1 - k, i] = o
                    q += 1
            nbr[n_k // 2, o] = o
    return nbr
