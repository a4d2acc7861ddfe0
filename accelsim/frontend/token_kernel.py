"""The token pass compiled with Numba: `insert_tokens_ref` of `accelsim.frontend.tokens` over
flat arrays (compiled, or loaded from Numba's cache, on first call: `accelsim.jit`)."""

from __future__ import annotations

import numpy as np

from accelsim.jit import lazy_njit


@lazy_njit(cache=True)
def tokens(unit, ptr, regions, n_spaces, n_units):
    """`accelsim.frontend.tokens.insert_tokens_ref` over arrays: unit [n] (-1: FINISH); the
    regions of instruction i are rows ptr[i]:ptr[i + 1] of regions [r, 4] = (space, start,
    end, is_write). Each space keeps its written intervals sorted in st/en with their writer
    (wu, ws) and, per unit, the latest seq that read them since (rd; 0: none), so a write
    needs the writer and those readers. Returns the (wait, signal) masks [n]."""
    n = unit.shape[0]
    cap = 16
    count = np.zeros(n_spaces, np.int64)
    st = np.zeros((n_spaces, cap), np.int64)
    en = np.zeros((n_spaces, cap), np.int64)
    wu = np.zeros((n_spaces, cap), np.int64)
    ws = np.zeros((n_spaces, cap), np.int64)
    rd = np.zeros((n_spaces, cap, n_units), np.int64)
    clock = np.zeros((n_units, n_units), np.int64)
    seq = np.zeros(n_units, np.int64)
    done = np.zeros((n + 1, n_units), np.int64)  # clock of each instruction when it ran
    insn_of = np.zeros((n_units, n + 1), np.int64)  # (unit, seq) -> instruction
    wait = np.zeros(n, np.int64)
    signal = np.zeros(n, np.int64)
    needs = np.zeros(n_units, np.int64)
    needed = np.zeros(n_units, np.bool_)
    piece = np.zeros((2 * cap + 1, 5), np.int64)  # scratch of `_write` (start, end, src, wu, ws)
    piece_rd = np.zeros((2 * cap + 1, n_units), np.int64)
    for i in range(n):
        c = unit[i]
        if c < 0:
            continue
        needs[:] = 0
        for r in range(ptr[i], ptr[i + 1]):
            sp, a, b, write = regions[r, 0], regions[r, 1], regions[r, 2], regions[r, 3]
            k = max(np.searchsorted(st[sp, : count[sp]], a, side="right") - 1, 0)
            while k < count[sp] and st[sp, k] < b:
                if en[sp, k] > a:
                    if ws[sp, k] > needs[wu[sp, k]]:
                        needs[wu[sp, k]] = ws[sp, k]
                    if write:
                        for u in range(n_units):
                            if rd[sp, k, u] > needs[u]:
                                needs[u] = rd[sp, k, u]
                k += 1
        for p in range(n_units):  # producers not yet ordered before this instruction
            needed[p] = p != c and needs[p] > clock[c, p]
        for p in range(n_units):
            if not needed[p]:
                continue
            # no token if another needed producer already follows this one
            covered = False
            for q in range(n_units):
                if q != p and needed[q] and done[insn_of[q, needs[q]], p] >= needs[p]:
                    covered = True
                    break
            if not covered:
                signal[insn_of[p, needs[p]]] |= 1 << c
                wait[i] |= 1 << p
        for p in range(n_units):
            if needed[p]:
                pc = done[insn_of[p, needs[p]]]
                for u in range(n_units):
                    if pc[u] > clock[c, u]:
                        clock[c, u] = pc[u]
        seq[c] += 1
        clock[c, c] = seq[c]
        done[i] = clock[c]
        insn_of[c, seq[c]] = i
        for r in range(ptr[i], ptr[i + 1]):  # the reads, then the writes, in region order
            sp, a, b, write = regions[r, 0], regions[r, 1], regions[r, 2], regions[r, 3]
            if write:
                continue
            k = max(np.searchsorted(st[sp, : count[sp]], a, side="right") - 1, 0)
            while k < count[sp] and st[sp, k] < b:
                if en[sp, k] > a:
                    rd[sp, k, c] = seq[c]
                k += 1
        for r in range(ptr[i], ptr[i + 1]):
            sp, a, b, write = regions[r, 0], regions[r, 1], regions[r, 2], regions[r, 3]
            if not write:
                continue
            if count[sp] + 3 > st.shape[1]:  # room for the pieces of one write
                cap = 2 * st.shape[1]
                st, en, wu, ws, rd = _grow(st, en, wu, ws, rd, cap)
                piece = np.zeros((2 * cap + 1, 5), np.int64)
                piece_rd = np.zeros((2 * cap + 1, n_units), np.int64)
            _write(
                st[sp], en[sp], wu[sp], ws[sp], rd[sp], count, sp, a, b, c, seq[c], piece, piece_rd
            )
    return wait, signal


@lazy_njit(cache=True)
def _grow(st, en, wu, ws, rd, cap):
    out = []
    for arr in (st, en, wu, ws):
        new = np.zeros((arr.shape[0], cap), np.int64)
        new[:, : arr.shape[1]] = arr
        out.append(new)
    r = np.zeros((rd.shape[0], cap, rd.shape[2]), np.int64)
    r[:, : rd.shape[1]] = rd
    return out[0], out[1], out[2], out[3], r


@lazy_njit(cache=True)
def _write(st, en, wu, ws, rd, count, sp, a, b, unit, seq, piece, piece_rd):
    """`_Space.write` on the arrays of one space: [a, b) now written by (unit, seq); the parts
    of overlapped intervals outside it keep their writer and readers. `piece` / `piece_rd`:
    scratch rows for the pieces replacing the overlapped items (at least 2 * items + 1)."""
    m = count[sp]
    lo = max(np.searchsorted(st[:m], a, side="right") - 1, 0)
    hi = lo
    n_p = 0  # pieces replacing items lo:hi: start, end, the item they keep (-1: new)
    while hi < m and st[hi] < b:
        if en[hi] > a:
            if st[hi] < a:
                piece[n_p, 0], piece[n_p, 1], piece[n_p, 2] = st[hi], a, hi
                n_p += 1
            if b < en[hi]:
                piece[n_p, 0], piece[n_p, 1], piece[n_p, 2] = b, en[hi], hi
                n_p += 1
        else:
            piece[n_p, 0], piece[n_p, 1], piece[n_p, 2] = st[hi], en[hi], hi
            n_p += 1
        hi += 1
    piece[n_p, 0], piece[n_p, 1], piece[n_p, 2] = a, b, -1
    n_p += 1
    for j in range(n_p):  # writer and readers kept, read before the items move
        src = piece[j, 2]
        if src < 0:
            piece[j, 3], piece[j, 4] = unit, seq
            piece_rd[j] = 0
        else:
            piece[j, 3], piece[j, 4] = wu[src], ws[src]
            piece_rd[j] = rd[src]
    for j in range(1, n_p):  # stable insertion sort by start, as list.sort
        k = j
        while k > 0 and piece[k - 1, 0] > piece[k, 0]:
            for col in range(5):
                piece[k - 1, col], piece[k, col] = piece[k, col], piece[k - 1, col]
            for u in range(piece_rd.shape[1]):
                piece_rd[k - 1, u], piece_rd[k, u] = piece_rd[k, u], piece_rd[k - 1, u]
            k -= 1
    shift = n_p - (hi - lo)
    if shift > 0:  # move the tail right, from its end
        for k in range(m - 1, hi - 1, -1):
            st[k + shift], en[k + shift], wu[k + shift], ws[k + shift] = st[k], en[k], wu[k], ws[k]
            rd[k + shift] = rd[k]
    elif shift < 0:
        for k in range(hi, m):
            st[k + shift], en[k + shift], wu[k + shift], ws[k + shift] = st[k], en[k], wu[k], ws[k]
            rd[k + shift] = rd[k]
    for j in range(n_p):
        st[lo + j], en[lo + j] = piece[j, 0], piece[j, 1]
        wu[lo + j], ws[lo + j] = piece[j, 3], piece[j, 4]
        rd[lo + j] = piece_rd[j]
    count[sp] = m + shift
